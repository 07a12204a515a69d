"""Recipes with ``--members N``: N models trained at once, evaluated as an ensemble."""

import json
from pathlib import Path

from seqrec.checkpoint import load_checkpoint
from seqrec.recipe import recipe_main, usable_cores
from seqrec.recognizer import Recognizer
from seqrec.train_data import held_out_data

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart"


def test_recipe_trains_members_and_evaluates_their_ensemble(tmp_path, capsys):
    out = tmp_path / "exp"
    small = ["model.hidden=16", "model.layers=1", "train.epochs=1", "train.speeds=[1.0]"]
    results = recipe_main(
        description="test",
        corpus="fsdd",
        config=QUICKSTART / "config.toml",
        default_out=str(out),
        eval_splits=("test",),
        prepare_options={"seen_takes": 2},
        argv=[
            "--data-dir",
            str(QUICKSTART / "fsdd_mini"),
            "--out",
            str(out),
            "--members",
            "2",
            *(x for s in small for x in ("--set", s)),
            "--set",
            "train.seed=3",
        ],
    )
    members = [load_checkpoint(out / "model" / f"member{k}" / "best.pt") for k in (0, 1)]
    trained = [json.loads(p["experiment"])["train"] for p in members]
    # Seeds count up from the configured one; the cores are shared out among the members.
    assert [t["seed"] for t in trained] == [3, 4]
    # ...while all hold out the speakers the configured seed picks.
    assert [json.loads(p["experiment"])["data"]["split_seed"] for p in members] == [3, 3]
    threads = max(1, usable_cores() // 2)
    assert [t["threads"] for t in trained] == [threads, threads]
    ens = Recognizer.load(out / "model" / "best.pt")
    assert len(ens.model.members) == 2
    # The shared dev data travels with the ensemble, for LM tuning on it.
    assert held_out_data(load_checkpoint(out / "model" / "best.pt")) == held_out_data(members[0])
    report = json.loads((out / "test_report.json").read_text())
    assert report["summary"] == results["test"] and report["summary"]["num_items"] > 0
    for k in (0, 1):
        assert json.loads((out / f"member{k}_test_report.json").read_text())["summary"]["num_items"]
    printed = capsys.readouterr().out
    assert "member 0 test:" in printed and "member 1 test:" in printed

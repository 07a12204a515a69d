"""The ``seqrec`` subcommands, run in-process on real recordings shipped with the repo."""

import json
from pathlib import Path

import pytest

from seqrec.cli import main

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "recipes" / "quickstart" / "fsdd_mini"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """prepare + train (a couple of epochs) through the CLI."""
    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "data"
    assert (
        main(["prepare", "fsdd", str(MINI), str(data), "-o", "seen_takes=6", "-o", "max_digits=3"])
        == 0
    )
    for split in ("train", "dev", "test_seen", "test"):
        assert (data / f"{split}.jsonl").exists()
    cfg = tmp / "c.toml"
    cfg.write_text(
        f'[data]\ntrain = "{data / "train.jsonl"}"\ndev = "{data / "dev.jsonl"}"\n'
        'unit = "phone"\n[features]\nsample_rate = 8000\nn_mels = 20\n'
        '[model]\nhidden = 16\nlayers = 1\nfrontend = "stack"\nsubsample = 2\n'
        f'[train]\nout_dir = "{tmp / "model"}"\nepochs = 1\nthreads = 1\n'
    )
    assert main(["train", str(cfg), "--set", "train.max_frames=3000"]) == 0
    return tmp


def test_evaluate_writes_report(trained, capsys):
    report = trained / "report.json"
    rc = main(
        [
            "evaluate",
            str(trained / "model" / "best.pt"),
            str(trained / "data" / "test.jsonl"),
            "--json",
            str(report),
            "--lexicon",
            "digits",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"per", "wer", "num_items"} <= set(summary)
    full = json.loads(report.read_text())
    assert len(full["items"]) == summary["num_items"] > 0
    assert {"id", "ref", "hyp", "ref_words", "hyp_words"} <= set(full["items"][0])
    # Without a lexicon the word transcripts are still there, for breakdowns by word.
    model, manifest = str(trained / "model" / "best.pt"), str(trained / "data" / "test.jsonl")
    assert main(["evaluate", model, manifest, "--json", str(report)]) == 0
    item = json.loads(report.read_text())["items"][0]
    assert item["ref_words"] == full["items"][0]["ref_words"] and "hyp_words" not in item


def test_transcribe_files_and_folders_with_errors(trained, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    out = tmp_path / "out.jsonl"
    folder = MINI / "recordings"
    rc = main(
        [
            "transcribe",
            str(trained / "model" / "best.pt"),
            str(folder / "3_theo_0.wav"),
            str(bad),
            str(trained / "data" / "wav" / "test"),
            "-o",
            str(out),
        ]
    )
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rc == 1  # one input failed
    assert rows[0]["status"] == "ok" and rows[0]["path"].endswith("3_theo_0.wav")
    assert rows[1]["status"] == "error" and "broken.wav" in rows[1]["error"]
    assert len(rows) == 2 + len(list((trained / "data" / "wav" / "test").glob("*.wav")))
    assert all(r["status"] == "ok" for r in rows[2:])


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.pt"), str(tmp_path / "none.jsonl")]) == 2
    assert "none.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prepare"])

"""End-to-end training on a handful of real recordings shipped with the repo."""

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from seqrec.adversary import NO_SPEAKER, SpeakerAdversary, ramp, reverse_gradient
from seqrec.config import experiment_from_dict
from seqrec.data.manifest import Record, write_manifest
from seqrec.evaluate import evaluate
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recognizer import Recognizer
from seqrec.training import train

MINI = Path(__file__).resolve().parents[1] / "recipes" / "quickstart" / "fsdd_mini" / "recordings"
WORDS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()


def _manifest(tmp_path, items):
    recs = [
        Record(f"{d}_{s}_{t}", str(MINI / f"{d}_{s}_{t}.wav"), WORDS[d], speaker=s)
        for d, s, t in items
    ]
    write_manifest(tmp_path / "m.jsonl", recs)
    return tmp_path / "m.jsonl"


def _config(tmp_path, manifest, **train):
    return experiment_from_dict(
        {
            "data": {"train": str(manifest), "dev": str(manifest), "unit": "word"},
            "features": {"sample_rate": 8000, "n_mels": 40, "normalize": "global"},
            "model": {
                "hidden": 96,
                "layers": 1,
                "dropout": 0.0,
                "frontend": "stack",
                "subsample": 2,
            },
            "train": {
                "out_dir": str(tmp_path / "model"),
                "epochs": 60,
                "max_frames": 100,
                "lr": 5e-3,
                "lr_start_divisor": 25.0,
                "warmup_fraction": 0.1,
                "seed": 0,
                "threads": 1,
                **train,
            },
        }
    )


def test_overfits_a_handful_of_utterances(tmp_path):
    m = _manifest(
        tmp_path,
        [
            (0, "jackson", 0),
            (1, "theo", 1),
            (2, "george", 2),
            (7, "nicolas", 0),
            (9, "yweweler", 3),
        ],
    )
    best = train(_config(tmp_path, m))
    summary = evaluate(best, m, tmp_path / "report.json")
    assert summary["num_items"] == 5
    assert summary["wer"] == 0.0, json.loads((tmp_path / "report.json").read_text())["items"]
    history = [
        json.loads(x) for x in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    ]
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 5
    assert (tmp_path / "model" / "curves.png").stat().st_size > 1000
    rec = Recognizer.load(best)
    assert rec.frontend.mean is not None  # normalisation statistics travel with the model


def test_resume_continues_from_last_checkpoint(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1)])
    train(_config(tmp_path, m, epochs=2))
    first = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    assert first["epoch"] == 2
    train(_config(tmp_path, m, epochs=3))
    resumed = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    assert resumed["epoch"] == 3
    assert len(json.loads(resumed["history"])) == 3


def test_infeasible_and_empty_transcripts_are_skipped(tmp_path, caplog):
    m = tmp_path / "m.jsonl"
    write_manifest(
        m,
        [
            Record("ok", str(MINI / "5_theo_0.wav"), "FIVE"),
            Record("empty", str(MINI / "6_theo_0.wav"), ""),
            Record("long", str(MINI / "7_theo_0.wav"), "SEVEN " * 80),
        ],
    )
    with caplog.at_level("WARNING"):
        train(_config(tmp_path, m, epochs=1))
    assert "skipping 2 training items" in caplog.text
    hist = (tmp_path / "model" / "metrics.jsonl").read_text()
    assert "NaN" not in hist and "Infinity" not in hist


@pytest.mark.parametrize("bad", ["features.kind", "model.frontend"])
def test_bad_config_values_fail_early(tmp_path, bad):
    m = _manifest(tmp_path, [(0, "jackson", 0)])
    cfg = _config(tmp_path, m)
    section, key = bad.split(".")
    getattr(cfg, section)[key] = "bogus"
    with pytest.raises(ValueError, match="bogus"):
        train(cfg)


def test_init_from_fine_tunes_an_existing_model(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    first = train(_config(tmp_path / "a", m, epochs=1))
    sub = tmp_path / "sub.jsonl"
    write_manifest(sub, [Record("f", str(MINI / "4_george_3.wav"), "FOUR")])
    cfg = _config(tmp_path / "b", sub, epochs=1, init_from=str(first), lr=1e-9)
    cfg.features["n_mels"] = 80  # ignored: the frontend comes from the model file
    second = Recognizer.load(train(cfg))
    base = Recognizer.load(first)
    assert second.vocab == base.vocab  # THREE and FIVE kept although absent from sub.jsonl
    assert second.frontend.cfg == base.frontend.cfg
    assert torch.equal(second.frontend.mean, base.frontend.mean)
    w1, w2 = base.model.state_dict(), second.model.state_dict()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)  # lr ~ 0: unchanged


def test_non_finite_steps_are_skipped_and_weights_kept():
    from seqrec.data.loader import FeatureDataset
    from seqrec.models.blstm import BiLSTMCTC, ModelConfig
    from seqrec.training import train_epoch
    from seqrec.vocab import Vocabulary

    vocab = Vocabulary.from_transcripts(["A B"], "phone")
    recs = [Record("good", "g", "A B"), Record("nan", "n", "B A")]

    def featurize(rec, speed):
        x = torch.randn(12, 4)
        if rec.id == "nan":
            x[3, 1] = float("nan")
        return x

    ds = FeatureDataset(recs, featurize, vocab)
    model = BiLSTMCTC(ModelConfig(4, len(vocab), hidden=8, layers=1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ctc = torch.nn.CTCLoss(zero_infinity=False)
    loss_sum, n, skipped = train_epoch(model, ds, [[1]], opt, sched, ctc, 5.0, torch.device("cpu"))
    assert (n, skipped) == (0, 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    loss_sum, n, skipped = train_epoch(model, ds, [[0]], opt, sched, ctc, 5.0, torch.device("cpu"))
    assert (n, skipped) == (1, 0) and loss_sum > 0


def test_frame_entropy_averages_valid_frames_only():
    from seqrec.losses import frame_entropy

    uniform, sure = math.log(0.25), torch.log(torch.tensor([1.0, 1e-30, 1e-30, 1e-30]))
    lp = torch.full((2, 3, 4), uniform)
    lp[1, 0] = sure  # item 1: one certain frame, then padding (uniform, must not count)
    h = frame_entropy(lp, torch.tensor([3, 1]))
    assert h.item() == pytest.approx(3 * math.log(4) / 4, rel=1e-5)
    lp = lp.clone()
    lp[1, 0] = torch.tensor([0.0, -math.inf, -math.inf, -math.inf])  # 16-bit underflow
    lp.requires_grad_()
    h = frame_entropy(lp, torch.tensor([3, 1]))
    h.backward()
    assert h.item() == pytest.approx(3 * math.log(4) / 4, rel=1e-5)
    assert torch.isfinite(lp.grad).all()


def _random_dataset():
    """Four items of 16 random 4-dim frames with phone transcripts over A, B, C."""
    from seqrec.data.loader import FeatureDataset
    from seqrec.vocab import Vocabulary

    vocab = Vocabulary.from_transcripts(["A B C"], "phone")
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(16, 4, generator=gen) for _ in range(4)]
    recs = [Record(str(i), str(i), "A B C"[: 1 + 2 * (i % 3)]) for i in range(4)]
    ds = FeatureDataset(recs, lambda rec, speed: feats[int(rec.id)], vocab)
    return vocab, feats, ds


def test_entropy_weight_makes_training_less_confident():
    from seqrec.losses import frame_entropy
    from seqrec.models.blstm import BiLSTMCTC, ModelConfig
    from seqrec.training import train_epoch

    vocab, feats, ds = _random_dataset()
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    lengths, cpu = torch.full((4,), 16), torch.device("cpu")

    def entropy_after(weight: float) -> float:
        torch.manual_seed(0)
        model = BiLSTMCTC(ModelConfig(4, len(vocab), hidden=8, layers=1))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        ctc = torch.nn.CTCLoss()
        batches = [[0, 1, 2, 3]]
        for _ in range(30):
            train_epoch(model, ds, batches, opt, sched, ctc, 5.0, cpu, entropy_weight=weight)
        model.eval()
        with torch.no_grad():
            lp, ol = model(x, lengths)
        return frame_entropy(lp, ol).item()

    h0, h1, h3 = (entropy_after(w) for w in (0.0, 1.0, 3.0))
    assert h0 < h1 < h3 and h3 > 2 * h0


def test_entropy_weight_must_not_be_negative(tmp_path):
    m = _manifest(tmp_path, [(0, "jackson", 0)])
    with pytest.raises(ValueError, match="entropy_weight"):
        train(_config(tmp_path, m, epochs=1, entropy_weight=-0.1))


def _tiny_setup():
    from seqrec.models.blstm import BiLSTMCTC, ModelConfig

    vocab, _, ds = _random_dataset()
    torch.manual_seed(0)
    model = BiLSTMCTC(ModelConfig(4, len(vocab), hidden=8, layers=2, frontend="stack"))
    return ds, model


def _one_step(ds, model, lr: float, weight_noise: float) -> dict[str, torch.Tensor]:
    """Train one step; return the gradients it took (by parameter name)."""
    from seqrec.training import train_epoch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    grads: dict[str, torch.Tensor] = {}
    opt.register_step_pre_hook(
        lambda *_: grads.update({n: p.grad.clone() for n, p in model.named_parameters()})
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    ctc, cpu = torch.nn.CTCLoss(), torch.device("cpu")
    train_epoch(model, ds, [[0, 1, 2, 3]], opt, sched, ctc, 5.0, cpu, weight_noise=weight_noise)
    return grads


def test_weight_noise_perturbs_the_step_and_leaves_the_clean_weights():
    from seqrec.losses import WeightNoise

    ds, model = _tiny_setup()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    clean_grads = _one_step(ds, model, lr=0.0, weight_noise=0.0)
    noisy_grads = _one_step(ds, model, lr=0.0, weight_noise=0.5)
    # With a zero learning rate the weights come back exactly: copied, not subtracted.
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    # The noise reached the forward and backward pass: every gradient moved.
    for n in clean_grads:
        assert not torch.allclose(clean_grads[n], noisy_grads[n]), n
    # Only the BiLSTM weight matrices carry noise.
    noisy = WeightNoise(model, 0.1).params
    names = {n for n, p in model.named_parameters() if any(p is q for q in noisy)}
    assert names == {n for n in before if ".weight_ih" in n or ".weight_hh" in n}
    assert len(names) == 8  # 2 layers x 2 directions x (ih, hh)


def test_weight_noise_update_is_the_one_of_its_noisy_gradient():
    ds, model = _tiny_setup()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = _one_step(ds, model, lr=0.1, weight_noise=0.3)
    # Adam's first step moves each weight by lr * g / (|g| + eps) (about lr * sign(g)),
    # starting from the clean weights, not from the noisy ones.
    for n, p in model.named_parameters():
        g = grads[n]
        expected = before[n] - 0.1 * g / (g.abs() + 1e-8)
        assert torch.allclose(p, expected, atol=1e-6), n


def test_an_interrupted_noisy_step_leaves_the_clean_weights():
    from seqrec.training import train_epoch

    ds, model = _tiny_setup()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    def interrupted(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cpu = torch.device("cpu")
        train_epoch(model, ds, [[0, 1]], opt, sched, interrupted, 5.0, cpu, weight_noise=0.5)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


@pytest.mark.parametrize("key, value", [("weight_noise", -0.1), ("weight_noise_start", 1.0)])
def test_weight_noise_settings_are_checked(tmp_path, key, value):
    m = _manifest(tmp_path, [(0, "jackson", 0)])
    with pytest.raises(ValueError, match=key):
        train(_config(tmp_path, m, epochs=1, **{key: value}))


def test_weight_noise_run_trains_and_starts_late(tmp_path, caplog):
    m = _manifest(tmp_path, [(d, "jackson", 0) for d in range(3)])
    cfg = _config(tmp_path, m, epochs=4, weight_noise=0.05, weight_noise_start=0.5)
    with caplog.at_level(logging.INFO, logger="seqrec.train"):
        train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["skipped_steps"] == 0 for r in rows)
    # Half of a 4-epoch schedule has passed when epoch 3 starts.
    assert [r.getMessage() for r in caplog.records if "weight noise" in r.getMessage()] == [
        "weight noise 0.05 on from epoch 3"
    ]


def test_one_cycle_shape():
    from seqrec.schedule import OneCycle

    c = OneCycle(total_steps=100, warmup_fraction=0.1, start_divisor=10.0)
    f = [c.factor(s) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:10], f[1:11], strict=True)) and all(
        a >= b for a, b in zip(f[10:], f[11:], strict=False)
    )
    assert f[100] == pytest.approx(1e-4) and c.done(100) and not c.done(99)
    timed = OneCycle(total_steps=100, warmup_fraction=0.1, start_divisor=10.0, budget_s=10.0)
    timed.elapsed_before = 5.0  # half the budget used before a resume
    assert timed.progress(1) == pytest.approx(0.5) and timed.factor(1) < 1.0


def test_time_budget_stops_training_early(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1)])
    train(_config(tmp_path, m, epochs=50, max_minutes=1e-4))  # used up by the first step
    history = (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == 1 and (tmp_path / "model" / "best.pt").exists()
    last = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["elapsed_s"] > 0


def test_intermediate_ctc_taps_share_the_output_layer():
    from seqrec.models.blstm import BiLSTMCTC, ModelConfig

    torch.manual_seed(0)
    model = BiLSTMCTC(ModelConfig(6, 5, hidden=8, layers=3)).eval()
    x, lengths = torch.randn(2, 10, 6), torch.tensor([10, 7])
    lp, ol, inter = model(x, lengths, taps=(1, 2))
    plain, _ = model(x, lengths)
    assert torch.equal(lp, plain) and len(inter) == 2
    assert all(t.shape == lp.shape for t in inter)
    assert torch.allclose(inter[0].exp().sum(-1), torch.ones(2, 10))
    assert not torch.allclose(inter[0], inter[1])
    with pytest.raises(ValueError, match="layer 3"):
        model(x, lengths, taps=(3,))


def test_average_states_means_floats_and_keeps_counters():
    from seqrec.selection import average_states

    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(4)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    avg = average_states([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 9


def test_intermediate_ctc_and_checkpoint_averaging_in_training(tmp_path, caplog):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    cfg = _config(tmp_path, m, epochs=4, inter_ctc_layers=[1], average_last=3)
    cfg.model["layers"] = 2
    cfg.model["self_condition"] = [1]  # a TOML list; conditioned on the tapped layer
    with caplog.at_level("INFO"):
        best = train(cfg)
    assert "average of epochs 2-4" in caplog.text
    assert Recognizer.load(best).model.cfg.self_condition == (1,)
    averaged = torch.load(tmp_path / "model" / "averaged.pt", weights_only=True)
    assert averaged["averaged_epochs"] == "2-4"
    history = [
        json.loads(x) for x in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    ]
    chosen = torch.load(best, weights_only=True)
    assert chosen["dev_error"] == min([averaged["dev_error"]] + [h["dev_wer"] for h in history])


def test_keep_average_makes_the_average_best_pt_whatever_its_dev_error(tmp_path, caplog):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    cfg = _config(tmp_path, m, epochs=3, average_last=2, keep_average=True)
    with caplog.at_level("INFO"):
        best = train(cfg)
    assert "it becomes best.pt (train.keep_average)" in caplog.text
    chosen = torch.load(best, weights_only=True)
    averaged = torch.load(tmp_path / "model" / "averaged.pt", weights_only=True)
    assert chosen["averaged_epochs"] == "2-3" and chosen["dev_error"] == averaged["dev_error"]
    for k, v in averaged["state_dict"].items():
        assert torch.equal(chosen["state_dict"][k], v)


def test_a_resumed_run_averages_the_epochs_trained_before_the_interruption(tmp_path, caplog):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1)])
    folder = tmp_path / "model" / "epochs"
    train(_config(tmp_path, m, epochs=3, average_last=3))
    assert sorted(f.name for f in folder.iterdir()) == ["0001.pt", "0002.pt", "0003.pt"]
    with caplog.at_level("INFO"):
        train(_config(tmp_path, m, epochs=5, average_last=3))  # resumes after epoch 3
    assert "average of epochs 3-5" in caplog.text
    assert sorted(f.name for f in folder.iterdir()) == ["0003.pt", "0004.pt", "0005.pt"]
    snaps = [torch.load(folder / f"000{e}.pt", weights_only=True)["state_dict"] for e in (3, 4, 5)]
    averaged = torch.load(tmp_path / "model" / "averaged.pt", weights_only=True)["state_dict"]
    for k, v in averaged.items():
        if v.is_floating_point():
            assert torch.allclose(v, sum(s[k] for s in snaps) / 3, atol=1e-6)


def test_keep_epochs_keeps_every_epoch_and_a_new_run_starts_afresh(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1)])
    folder = tmp_path / "model" / "epochs"
    train(_config(tmp_path, m, epochs=4, average_last=2, keep_epochs=True))
    assert sorted(f.name for f in folder.iterdir()) == [f"000{e}.pt" for e in range(1, 5)]
    (tmp_path / "model" / "last.pt").unlink()  # no checkpoint to resume: a new run
    train(_config(tmp_path, m, epochs=2, average_last=2))
    assert sorted(f.name for f in folder.iterdir()) == ["0001.pt", "0002.pt"]


def test_score_epochs_tool_scores_each_epoch_and_its_averages(tmp_path, capsys, tool):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    train(_config(tmp_path, m, epochs=3, average_last=2, keep_epochs=True))
    args = [str(tmp_path / "model"), str(m), "--windows", "1", "2", "--threads", "1"]
    tool("score_epochs").main(args)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "3 items, 3 epochs (1-3), wer"
    rows = {int(line.split()[0]): line.split()[1:] for line in out[2:5]}
    assert sorted(rows) == [1, 2, 3] and rows[1][1] == "-"
    # The two-epoch average at the end is the model training saved as averaged.pt.
    averaged = evaluate(tmp_path / "model" / "averaged.pt", m)["wer"]
    assert rows[3][1] == f"{100 * averaged:.2f}%"
    assert out[-1] == "command: python tools/score_epochs.py " + " ".join(args)


def test_keep_average_needs_an_average(tmp_path):
    m = _manifest(tmp_path, [(0, "jackson", 0)])
    with pytest.raises(ValueError, match="keep_average needs train.average_last"):
        _config(tmp_path, m, keep_average=True, average_last=1)
    with pytest.raises(ValueError, match="keep_epochs needs train.average_last"):
        _config(tmp_path, m, keep_epochs=True)


def test_training_without_a_dev_set_keeps_the_average_of_the_last_epochs(tmp_path, caplog):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    cfg = _config(tmp_path, m, epochs=3, average_last=2)
    cfg = replace(cfg, data=replace(cfg.data, dev="", dev_speakers=0))
    with caplog.at_level("INFO"):
        best = train(cfg)
    assert "features for 3 train / 0 dev items" in caplog.text
    assert "average of epochs 2-3 (no dev set)" in caplog.text
    history = [
        json.loads(x) for x in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert not any(k.startswith("dev_") for h in history for k in h)
    assert (tmp_path / "model" / "curves.png").stat().st_size > 0
    chosen = torch.load(best, weights_only=True)
    assert chosen["averaged_epochs"] == "2-3" and "dev_error" not in chosen
    averaged = torch.load(tmp_path / "model" / "averaged.pt", weights_only=True)
    for k, v in averaged["state_dict"].items():
        assert torch.equal(chosen["state_dict"][k], v)
    last = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    assert any(not torch.equal(last["state_dict"][k], v) for k, v in chosen["state_dict"].items())


def test_training_without_a_dev_set_and_no_average_keeps_the_last_epoch(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1)])
    cfg = _config(tmp_path, m, epochs=2)
    cfg = replace(cfg, data=replace(cfg.data, dev="", dev_speakers=0))
    chosen = torch.load(train(cfg), weights_only=True)
    last = torch.load(tmp_path / "model" / "last.pt", weights_only=True)
    assert chosen["epoch"] == 2 and "dev_error" not in chosen
    for k, v in last["state_dict"].items():
        assert torch.equal(chosen["state_dict"][k], v)


def test_negative_dev_speakers_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="dev_speakers"):
        experiment_from_dict({"data": {"train": "m.jsonl", "dev_speakers": -1}})


def test_intermediate_ctc_layer_must_lie_below_the_top(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0)])
    with pytest.raises(ValueError, match="inter_ctc_layers"):
        train(_config(tmp_path, m, epochs=1, inter_ctc_layers=[1]))  # one layer: nothing below


def test_blank_shift_is_tuned_on_dev_after_training(tmp_path, caplog):
    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    cfg = _config(tmp_path, m, epochs=3, tune_blank_shift=True)
    with caplog.at_level("INFO"):
        best = train(cfg)
    assert "blank shift on dev: 0: " in caplog.text
    chosen = torch.load(best, weights_only=True)
    shift = chosen["model_config"]["blank_shift"]
    errors = chosen["blank_shift_dev_errors"]
    assert len(errors) == 17 and chosen["dev_error_unshifted"] == errors["0"]
    assert chosen["dev_error"] == errors[f"{shift:g}"] == min(errors.values())
    # The stored shift is what decoding uses: the dev manifest scores as tuned.
    assert Recognizer.load(best).model.cfg.blank_shift == shift
    assert evaluate(best, m)["wer"] == pytest.approx(chosen["dev_error"])
    # A run resumed after the end tunes again from the unshifted model: same result.
    train(cfg)
    again = torch.load(best, weights_only=True)
    assert again["model_config"]["blank_shift"] == shift
    assert again["blank_shift_dev_errors"] == errors


def test_blank_shift_is_not_a_training_setting(tmp_path):
    m = _manifest(tmp_path, [(3, "jackson", 0)])
    cfg = _config(tmp_path, m, epochs=1)
    cfg.model["blank_shift"] = 1.0
    with pytest.raises(ValueError, match="tune_blank_shift"):
        train(cfg)


def test_tune_blank_tool_shifts_a_trained_model_on_held_out_speakers(tmp_path, capsys, tool):
    from seqrec.data.loader import split_by_speaker
    from seqrec.data.manifest import read_manifest

    m = _manifest(tmp_path, [(3, "jackson", 0), (4, "theo", 1), (5, "george", 2)])
    best = train(_config(tmp_path, m, epochs=3))
    tune_blank = tool("tune_blank")
    out = tmp_path / "shifted.pt"
    with pytest.raises(SystemExit):  # this model was selected on a dev manifest: say which
        tune_blank.main([str(best), str(m), "--out", str(out)])
    assert "pass that dev manifest" in capsys.readouterr().err
    _, dev = split_by_speaker(read_manifest(m), 1, 0)
    write_manifest(tmp_path / "dev.jsonl", dev)
    tune_blank.main([str(best), str(m), "--out", str(out), "--dev", str(tmp_path / "dev.jsonl")])
    assert "best: " in capsys.readouterr().out
    shifted = torch.load(out, weights_only=True)
    shift = shifted["model_config"]["blank_shift"]
    assert evaluate(out, tmp_path / "dev.jsonl")["wer"] == pytest.approx(shifted["dev_error"])
    # Tuning the shifted file again starts from its unshifted output: the same shift.
    again = tmp_path / "again.pt"
    tune_blank.main([str(out), str(m), "--out", str(again), "--dev", str(tmp_path / "dev.jsonl")])
    twice = torch.load(again, weights_only=True)
    assert twice["model_config"]["blank_shift"] == shift
    assert twice["blank_shift_dev_errors"] == shifted["blank_shift_dev_errors"]


def test_held_out_split_follows_the_model_files_own_dev_setting(tmp_path):
    from seqrec.data.loader import split_by_speaker
    from seqrec.data.manifest import read_manifest
    from seqrec.train_data import held_out_split

    speakers = ["george", "jackson", "nicolas", "theo", "yweweler"]
    m = _manifest(tmp_path, [(d, s, t) for d in (0, 1) for s in speakers for t in (0, 1)])
    recs = read_manifest(m)

    def payload(data, seed=3):
        return {"experiment": json.dumps({"data": data, "train": {"seed": seed}})}

    rest, dev = held_out_split(payload({"dev_speakers": 2}), m)
    assert (rest, dev) == split_by_speaker(recs, 2, 3)
    assert len({r.speaker for r in dev}) == 2
    assert not {r.speaker for r in dev} & {r.speaker for r in rest}
    # Explicit settings win over the model file's.
    assert held_out_split(payload({"dev_speakers": 2}), m, dev_speakers=1, seed=0) == (
        split_by_speaker(recs, 1, 0)
    )
    # A model selected on its own dev manifest: that manifest, all of train beside it.
    write_manifest(tmp_path / "dev.jsonl", recs[:2])
    selected_on = payload({"dev": str(tmp_path / "dev.jsonl"), "dev_speakers": 8})
    with pytest.raises(ValueError, match="dev.jsonl"):
        held_out_split(selected_on, m)
    assert held_out_split(selected_on, m, tmp_path / "dev.jsonl") == (recs, recs[:2])
    with pytest.raises(ValueError, match="no dev split"):
        held_out_split(payload({"dev_speakers": 0}), m)


def test_tune_lm_tool_tunes_on_the_speakers_training_held_out(tmp_path, capsys, tool):
    from seqrec.data.loader import split_by_speaker
    from seqrec.data.manifest import read_manifest

    speakers = ["george", "jackson", "nicolas", "theo", "yweweler"]
    m = _manifest(tmp_path, [(d, s, 0) for d in range(4) for s in speakers])
    cfg = _config(tmp_path, m, epochs=2)
    cfg = replace(cfg, data=replace(cfg.data, dev="", dev_speakers=2))
    best = train(cfg)
    tune_lm = tool("tune_lm")
    out = tmp_path / "lm"
    args = [str(best), str(m), "--out", str(out), "--orders", "2", "--weights", "0.5"]
    tune_lm.main([*args, "--bonuses", "0", "--beam", "4"])
    rest, dev = split_by_speaker(read_manifest(m), 2, 0)  # the model file's split
    assert f"dev: {len(dev)} items held out" in capsys.readouterr().out
    assert read_manifest(out / "lm_train_part.jsonl") == rest


# Speaker-adversarial training


def test_reverse_gradient_is_the_identity_forwards_and_flips_backwards():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.25 * w)


def test_ramp_rises_from_zero_towards_one():
    values = [ramp(p / 10) for p in range(11)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(1.0, abs=1e-4)
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert ramp(-1.0) == 0.0 and ramp(2.0) == ramp(1.0)


def test_speaker_classes_come_from_the_records():
    recs = [
        Record("a", "a.wav", "x", speaker="s2"),
        Record("b", "b.wav", "x", speaker=None),
        Record("c", "c.wav", "x", speaker="s1"),
        Record("d", "d.wav", "x", speaker="s2"),
    ]
    adv = SpeakerAdversary.for_records(8, recs, layer=1)
    assert adv.labels.tolist() == [1, NO_SPEAKER, 0, 1]
    assert adv.net[-1].out_features == 2
    with pytest.raises(ValueError, match="at least 2 training speakers"):
        SpeakerAdversary.for_records(8, recs[:2], layer=1)


def _captured_loss(scale: float, pool: bool = False, confuse: bool = False):
    torch.manual_seed(0)
    model = BiLSTMCTC(ModelConfig(4, 5, hidden=3, layers=2))
    adv = SpeakerAdversary(
        6, [0, 1, NO_SPEAKER], num_speakers=2, layer=1, pool=pool, confuse=confuse
    )
    adv.scale = scale
    feats = torch.randn(3, 7, 4)
    lengths = torch.tensor([7, 4, 6])
    hook = adv.capture(model)
    model(feats, lengths)
    hook.remove()
    h = adv._captured
    loss = adv.loss(lengths, torch.tensor([0, 1, 2]))
    return model, adv, h, loss


def test_loss_counts_the_valid_frames_of_items_with_a_speaker():
    model, adv, h, loss = _captured_loss(1.0)
    assert h.shape == (3, 7, 6)  # the first BiLSTM layer's output, after its LayerNorm
    with torch.no_grad():
        expected = torch.cat(
            [
                torch.nn.functional.cross_entropy(
                    adv.net(h[0, :7]), torch.zeros(7, dtype=int), reduction="none"
                ),
                torch.nn.functional.cross_entropy(
                    adv.net(h[1, :4]), torch.ones(4, dtype=int), reduction="none"
                ),
            ]
        ).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    mean_loss, accuracy = adv.take_stats()
    assert mean_loss == pytest.approx(expected.item(), rel=1e-5)
    assert 0.0 <= accuracy <= 1.0 and adv.take_stats() == (0.0, 0.0)


def test_pooled_loss_classifies_each_item_from_its_mean_frame():
    _, adv, h, loss = _captured_loss(1.0, pool=True)
    with torch.no_grad():
        means = torch.stack([h[0, :7].mean(0), h[1, :4].mean(0)])
        expected = torch.nn.functional.cross_entropy(adv.net(means), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert adv.take_stats()[1] in (0.0, 0.5, 1.0)  # two items classified


def test_the_model_gets_the_classifier_gradient_reversed_and_scaled():
    def grads(scale):
        model, adv, _, loss = _captured_loss(scale)
        loss.backward()
        lstm = model.lstms[0].fwd.weight_ih_l0.grad.clone()
        return lstm, adv.net[0].weight.grad.clone()

    lstm_plain, clf_plain = grads(-1.0)  # scale -1: an ordinary gradient
    lstm_rev, clf_rev = grads(0.5)
    assert torch.allclose(clf_rev, clf_plain)  # the classifier learns as usual
    assert torch.allclose(lstm_rev, -0.5 * lstm_plain, atol=1e-7)
    assert lstm_plain.abs().sum() > 0


def test_confusion_loss_is_bounded_and_leaves_the_classifier_its_plain_gradient():
    def grads(**kw):
        model, adv, h, loss = _captured_loss(0.5, **kw)
        loss.backward()
        lstm = model.lstms[0].fwd.weight_ih_l0.grad.clone()
        return lstm, adv.net[0].weight.grad.clone(), adv, h, loss

    lstm_rev, clf_rev, *_ = grads()
    lstm_conf, clf_conf, adv, h, loss = grads(confuse=True)
    assert torch.allclose(clf_conf, clf_rev)  # the classifier learns from the same loss
    assert lstm_conf.abs().sum() > 0 and not torch.allclose(lstm_conf, lstm_rev)
    # The value is the classifier's cross-entropy plus scale x the confusion term.
    with torch.no_grad():
        frames = torch.cat([h[0, :7], h[1, :4]])
        logp = torch.log_softmax(adv.net(frames), -1)
        target = torch.tensor([0] * 7 + [1] * 4)
        ce = torch.nn.functional.nll_loss(logp, target)
        expected = ce + 0.5 * (-logp.mean(-1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert adv.take_stats()[0] == pytest.approx(ce.item(), rel=1e-5)
    # The layers below get the confusion term's gradient and nothing of the
    # classifier's cross-entropy.
    model, adv, h, _ = _captured_loss(0.5, confuse=True)
    for q in adv.parameters():
        q.requires_grad_(False)
    frames = torch.cat([h[0, :7], h[1, :4]])
    (0.5 * (-torch.log_softmax(adv.net(frames), -1).mean(-1)).mean()).backward()
    assert torch.allclose(lstm_conf, model.lstms[0].fwd.weight_ih_l0.grad, atol=1e-7)
    # The layers below minimise it down to ln K, where the classifier's output
    # is uniform; unlike the reversed cross-entropy it has no reward beyond.
    assert (loss.item() - ce.item()) / 0.5 >= math.log(2) - 1e-6


def test_loss_without_capture_is_an_error():
    adv = SpeakerAdversary(6, [0, 1], num_speakers=2, layer=1)
    with pytest.raises(RuntimeError, match="capture"):
        adv.loss(torch.tensor([3]), torch.tensor([0]))


def test_adversarial_run_trains_logs_and_resumes(tmp_path):
    m = _manifest(tmp_path, [(d, s, 0) for d in range(3) for s in ("jackson", "theo")])
    cfg = _config(tmp_path, m, epochs=3, speaker_adversary=0.5, speaker_adversary_layer=1)
    train(cfg)
    out = tmp_path / "model"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["skipped_steps"] == 0 for r in rows)
    assert all(math.isfinite(r["speaker_loss"]) and r["speaker_loss"] > 0 for r in rows)
    assert rows[0]["reversal"] == 0.0 and 0 < rows[1]["reversal"] < rows[2]["reversal"] <= 0.5
    last = torch.load(out / "last.pt", weights_only=False)
    assert set(last["speaker_adversary"]) >= {"net.0.weight", "labels"}
    assert "speaker_adversary" not in torch.load(out / "best.pt", weights_only=False)
    # More epochs continue from last.pt, classifier and optimiser state included.
    train(
        _config(
            tmp_path,
            m,
            epochs=4,
            speaker_adversary=0.5,
            speaker_adversary_layer=1,
            speaker_adversary_pool=True,  # the classifier's weights are the same either way
            speaker_adversary_confuse=True,
        )
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"speaker_adversary": -0.1}, "speaker_adversary must be"),
        ({"speaker_adversary": 0.1, "speaker_adversary_layer": 2}, "not one of 1..1"),
    ],
)
def test_adversary_settings_are_checked(tmp_path, settings, message):
    m = _manifest(tmp_path, [(0, "jackson", 0), (1, "theo", 0)])
    with pytest.raises(ValueError, match=message):
        train(_config(tmp_path, m, epochs=1, **settings))


def test_splicing_starts_late_and_resumes_with_its_cut_points(tmp_path, caplog):
    m = _manifest(tmp_path, [(d, s, 0) for d in range(3) for s in ("jackson", "theo")])
    settings = {"splice_prob": 0.5, "splice_start": 0.5, "splice_labels": [1, 1]}
    with caplog.at_level(logging.INFO, logger="seqrec.train"):
        train(_config(tmp_path, m, epochs=4, **settings))
    messages = [r.getMessage() for r in caplog.records if "splic" in r.getMessage()]
    # Half of a 4-epoch schedule has passed when epoch 3 starts; the model aligns first.
    assert messages[0].startswith("splicing: aligned ") and "of 6 items" in messages[0]
    assert messages[1] == "splicing 0.5 of the items from epoch 3"
    out = tmp_path / "model"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["skipped_steps"] == 0 for r in rows)
    cuts = torch.load(out / "last.pt", weights_only=True)["splice_cuts"]
    assert len(cuts) == 6 and any(c is not None for c in cuts)
    assert all(c is None or (c[0] == 0 and len(c) == 2) for c in cuts)  # one-word transcripts
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="seqrec.train"):
        train(_config(tmp_path, m, epochs=5, **settings))
    # Resumed with its cut points: no second alignment.
    assert not [r for r in caplog.records if "aligned" in r.getMessage()]
    assert torch.load(out / "last.pt", weights_only=True)["splice_cuts"] == cuts


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"splice_prob": 1.5}, "splice_prob must be"),
        ({"splice_start": 1.0}, "splice_start must be"),
        ({"splice_labels": [3, 2]}, "splice_labels must be"),
        ({"splice_labels": [2]}, "splice_labels must be"),
    ],
)
def test_splice_settings_are_checked(tmp_path, settings, message):
    m = _manifest(tmp_path, [(0, "jackson", 0)])
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, m, **settings)


def test_check_splice_tool_reports_recorded_spliced_and_moved_cuts(tmp_path, capsys, tool):
    m = _manifest(tmp_path, [(d, s, 0) for d in range(3) for s in ("jackson", "theo")])
    best = train(_config(tmp_path, m, epochs=2))
    args = [str(best), str(m), "--dev", str(m), "--speakers", "1", "--runs", "1-1", "--shift", "2"]
    tool("check_splice").main(args)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "3 utterances of 1 training speakers, 3 aligned"
    assert out[1].startswith("as recorded: ") and out[2].startswith("spliced, runs of 1-1: ")
    assert out[3].startswith("  cuts moved +2 frames: ") and out[4].startswith("  cuts moved -2")
    assert out[5] == "command: python tools/check_splice.py " + " ".join(args)

"""Mixed precision: bf16 (CPU, CUDA) and fp16 (CUDA) track fp32; CTC stays in float32."""

import copy
import logging

import pytest
import torch

from seqrec.config import TrainConfig
from seqrec.data.loader import FeatureDataset
from seqrec.data.manifest import Record
from seqrec.distributed import Runtime
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.training import train_epoch
from seqrec.vocab import Vocabulary


def _setup(n=8, seed=0):
    torch.manual_seed(seed)
    vocab = Vocabulary.from_transcripts(["A B C"], "phone")
    texts = ["A B", "C A B", "B", "A C C", "B A", "C", "A B C", "C B"]
    recs = [Record(f"r{i}", f"r{i}", texts[i % len(texts)]) for i in range(n)]
    feats = {r.id: torch.randn(20 + 3 * i, 10) for i, r in enumerate(recs)}
    ds = FeatureDataset(recs, lambda rec, speed: feats[rec.id], vocab)
    model = BiLSTMCTC(ModelConfig(10, len(vocab), hidden=16, layers=2, dropout=0.0))
    return ds, model


def _steps(model, ds, rt, steps=3):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    ctc = torch.nn.CTCLoss(zero_infinity=False)
    losses = []
    for _ in range(steps):
        loss_sum, n, skipped = train_epoch(
            model, ds, [list(range(len(ds)))], opt, sched, ctc, 5.0, rt.device, runtime=rt
        )
        losses.append(loss_sum / max(n, 1) if not skipped else float("nan"))
    return losses


def test_fp16_is_ignored_on_cpu_with_a_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="seqrec"):
        rt = Runtime("cpu", "fp16")
    assert rt.amp == "none" and not rt.scaler.is_enabled()
    assert "train.amp=fp16 ignored on cpu" in caplog.text
    with pytest.raises(ValueError, match="fp8"):
        Runtime("cpu", "fp8")
    with pytest.raises(ValueError, match="fp8"):
        TrainConfig(amp="fp8")


def test_fp16_setting_trains_on_cpu_exactly_like_fp32():
    ds, model = _setup()
    twin = copy.deepcopy(model)
    plain = _steps(model, ds, Runtime("cpu", "none"))
    mixed = _steps(twin, ds, Runtime("cpu", "fp16"))
    assert plain == mixed and all(torch.isfinite(torch.tensor(plain)))
    assert plain[-1] < plain[0]


def test_bf16_falls_back_to_fp32_where_it_is_not_faster(monkeypatch, caplog):
    monkeypatch.setattr("seqrec.distributed._cpu_has_fast_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger="seqrec"):
        rt = Runtime("cpu", "bf16")
    assert rt.amp == "none" and "float32 is faster" in caplog.text


@pytest.mark.parametrize(
    ("amx", "probe", "fast"),
    [
        (True, None, True),  # AMX: no timing needed
        (False, (1.0, 0.6), True),
        (False, (1.0, 0.95), False),  # not enough faster to be worth it
        (False, (0.7, 0.9), False),
    ],
)
def test_fast_bf16_follows_amx_or_the_timing(monkeypatch, amx, probe, fast):
    import seqrec.distributed as d

    def timing():
        assert probe is not None, "probed although the CPU has AMX"
        return probe

    monkeypatch.setattr(torch._C._cpu, "_init_amx", lambda: amx, raising=False)
    monkeypatch.setattr(d, "_bf16_probe_seconds", timing)
    d._cpu_has_fast_bf16.cache_clear()
    try:
        assert d._cpu_has_fast_bf16() is fast
    finally:
        d._cpu_has_fast_bf16.cache_clear()


def test_bf16_probe_times_both_and_leaves_the_random_state_alone():
    from seqrec.distributed import _bf16_probe_seconds

    torch.manual_seed(123)
    state = torch.get_rng_state()
    fp32, bf16 = _bf16_probe_seconds(reps=1)
    assert 0 < fp32 < 60 and 0 < bf16 < 60
    assert torch.equal(torch.get_rng_state(), state)


def test_bf16_on_cpu_runs_in_bfloat16_without_a_scaler_and_tracks_fp32(monkeypatch):
    monkeypatch.setattr("seqrec.distributed._cpu_has_fast_bf16", lambda: True)
    rt = Runtime("cpu", "bf16")
    assert rt.amp == "bf16" and not rt.scaler.is_enabled()
    ds, model = _setup(n=16)
    with rt.autocast():
        lp, _ = model(torch.randn(2, 12, 10), torch.tensor([12, 7]))
    assert lp.dtype == torch.bfloat16  # the output layer really ran in bfloat16
    ref = _steps(copy.deepcopy(model), ds, Runtime("cpu", "none"), steps=4)
    got = _steps(model, ds, rt, steps=4)
    assert all(torch.isfinite(torch.tensor(got))), got
    assert got != ref  # a different precision, not the float32 path again
    for r, g in zip(ref, got, strict=True):
        assert abs(g - r) <= 0.05 * abs(r), (ref, got)
    assert got[-1] < got[0]


class _HalfOutput(torch.nn.Module):
    """A model whose log-probs come out in bfloat16, as under autocast."""

    def __init__(self, inner: BiLSTMCTC) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, lengths):
        lp, ol = self.inner(x, lengths)
        return lp.to(torch.bfloat16), ol


def test_ctc_loss_is_computed_in_float32():
    ds, model = _setup()
    # CPU CTC has no bfloat16 kernel: this runs only if log-probs are cast first.
    losses = _steps(_HalfOutput(model), ds, Runtime("cpu"), steps=2)
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_tracks_fp32(amp):
    ds, model = _setup(n=16)
    ref = _steps(copy.deepcopy(model).cuda(), ds, Runtime("cuda", "none"), steps=4)
    got = _steps(model.cuda(), ds, Runtime("cuda", amp), steps=4)
    assert all(torch.isfinite(torch.tensor(got))), got
    for r, g in zip(ref, got, strict=True):
        assert abs(g - r) <= 0.05 * abs(r), (ref, got)

"""Utterance mixing (MixSpeech) for CTC training."""

import pytest
import torch

from seqrec.config import TrainConfig
from seqrec.data.loader import pad_targets
from seqrec.mixing import Mix, mix_batch, mixed_ctc


def _batch(lengths=(7, 5, 6, 4), feat_dim=3):
    torch.manual_seed(0)
    feats = torch.zeros(len(lengths), max(lengths), feat_dim)
    for i, n in enumerate(lengths):
        feats[i, :n] = torch.randn(n, feat_dim)
    tgt, tl = pad_targets([[1, 2], [3], [2, 2, 1], [1]])
    return {"feats": feats, "lengths": torch.tensor(lengths), "targets": tgt, "target_lengths": tl}


def test_no_mixing_leaves_the_batch_alone():
    b = _batch()
    assert mix_batch(b, 0.0, 0.5) == (b, None)


def test_mixed_rows_overlay_another_row_over_the_longer_length():
    b = _batch()
    before = b["feats"].clone()
    torch.manual_seed(3)
    out, mix = mix_batch(b, 1.0, 0.5)
    assert torch.equal(b["feats"], before)  # the input batch is not changed
    assert mix.rows.tolist() == [0, 1, 2, 3]
    assert all(p != r for r, p in zip(mix.rows.tolist(), mix.partners.tolist(), strict=True))
    assert sorted(mix.partners.tolist()) == [0, 1, 2, 3]
    assert ((mix.lam > 0) & (mix.lam < 1)).all()
    for r, p, lam in zip(mix.rows.tolist(), mix.partners.tolist(), mix.lam.tolist(), strict=True):
        want = lam * before[r] + (1 - lam) * before[p]
        assert torch.allclose(out["feats"][r], want)
        assert out["lengths"][r] == max(b["lengths"][r], b["lengths"][p])
    assert out["targets"] is b["targets"]


def test_mixing_probability_is_the_fraction_of_rows_mixed():
    n = 2000
    b = {"feats": torch.zeros(n, 2, 1), "lengths": torch.full((n,), 2)}
    torch.manual_seed(0)
    _, mix = mix_batch(b, 0.3, 0.5)
    assert abs(mix.rows.numel() / n - 0.3) < 0.04


def _log_probs(b, classes=4):
    torch.manual_seed(1)
    return torch.randn(len(b["lengths"]), int(b["lengths"].max()), classes).log_softmax(-1)


def test_unmixed_loss_is_the_mean_ctc_loss():
    b = _batch()
    lp = _log_probs(b)
    want = torch.nn.CTCLoss(reduction="mean")(
        lp.transpose(0, 1), b["targets"], b["lengths"], b["target_lengths"]
    )
    got = mixed_ctc(lp, b["targets"], b["lengths"], b["target_lengths"], None)
    assert torch.allclose(got, want)


def test_mixed_loss_weighs_both_transcripts():
    b = _batch()
    lp = _log_probs(b)
    tgt, tl, ol = b["targets"], b["target_lengths"], b["lengths"]
    per = torch.nn.CTCLoss(reduction="none")

    def item(row, target_row):
        x = lp[row : row + 1].transpose(0, 1)
        t, n = tgt[target_row : target_row + 1], tl[target_row : target_row + 1]
        return per(x, t, ol[row : row + 1], n)[0] / n[0]

    mix = Mix(
        rows=torch.tensor([0, 2]), partners=torch.tensor([1, 3]), lam=torch.tensor([0.25, 1.0])
    )
    got = mixed_ctc(lp, tgt, ol, tl, mix)
    want = (
        0.25 * item(0, 0)
        + 0.75 * item(0, 1)
        + item(1, 1)
        + item(2, 2)
        + 0.0 * item(2, 3)
        + item(3, 3)
    ) / 4
    assert torch.allclose(got, want)


def test_mixed_loss_trains_toward_both_transcripts():
    logits = torch.zeros(2, 6, 4, requires_grad=True)
    tgt, tl = pad_targets([[1], [2]])
    mix = Mix(rows=torch.tensor([0]), partners=torch.tensor([1]), lam=torch.tensor([0.5]))
    mixed_ctc(logits.log_softmax(-1), tgt, torch.tensor([6, 6]), tl, mix).backward()
    g = logits.grad[0].sum(0)  # the mixed row
    assert g[1] < g[3] and g[2] < g[3]  # both labels pulled up against the unused one
    logits.grad = None
    mixed_ctc(logits.log_softmax(-1), tgt, torch.tensor([6, 6]), tl, None).backward()
    g = logits.grad[0].sum(0)
    assert g[1] < g[3] and torch.isclose(g[2], g[3])  # unmixed: its own label alone


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"mix_prob": 1.5}, "mix_prob"),
        ({"mix_prob": -0.1}, "mix_prob"),
        ({"mix_alpha": 0.0}, "mix_alpha"),
        ({"mix_prob": 0.3, "attention_weight": 0.3}, "cannot be combined"),
        ({"mix_prob": 0.3, "word_ctc_weight": 0.3}, "cannot be combined"),
    ],
)
def test_mixing_settings_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)

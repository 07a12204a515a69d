"""Property-based tests: frontends, the greedy decoder and the metrics under random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqrec.decoders.greedy import greedy_decode
from seqrec.features.audio import (
    AudioFrontendConfig,
    compute_features,
    normalize_features,
    num_frames,
)
from seqrec.features.image import ImageError, ImageFrontendConfig, image_features
from seqrec.metrics import align, cer, edit_counts, edit_distance, error_rate, wer
from seqrec.transcribe import decode_long
from seqrec.vocab import BLANK_ID, Vocabulary

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------
# Audio frontend

AUDIO = AudioFrontendConfig(n_mels=16)


@st.composite
def waves(draw) -> np.ndarray:
    n = draw(st.integers(1, 6000))
    kind = draw(st.sampled_from(["noise", "silence", "huge", "tiny", "clipped", "dc"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(n)
    scale = {"noise": 0.1, "silence": 0.0, "huge": 1e6, "tiny": 1e-30, "clipped": 50.0, "dc": 0.0}
    x = x * scale[kind]
    if kind == "clipped":
        x = np.clip(x, -1.0, 1.0)
    if kind == "dc":
        x = x + 0.7
    return x.astype(np.float32)


@SETTINGS
@given(waves(), st.sampled_from(["fbank", "mfcc"]), st.sampled_from(["utterance", "none"]))
def test_audio_features_are_finite_and_sized_by_the_frame_count(wave, kind, norm):
    cfg = AudioFrontendConfig(n_mels=16, kind=kind, normalize=norm, deltas=kind == "mfcc")
    feats = compute_features(torch.from_numpy(wave), cfg)
    assert feats.shape == (num_frames(len(wave), cfg), cfg.feature_dim)
    out = normalize_features(feats, cfg)
    assert torch.isfinite(out).all()
    if norm == "utterance":
        # Standardised values are bounded by sqrt(T) (Samuelson), whatever the input's scale.
        assert float(out.abs().max()) <= out.shape[0] ** 0.5 + 0.1


# ---------------------------------------------------------------------------
# Image frontend


@st.composite
def images(draw) -> np.ndarray:
    h = draw(st.integers(1, 120))
    w = draw(st.integers(1, 4000))
    kind = draw(st.sampled_from(["random", "white", "black", "stripes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        return rng.random((h, w), dtype=np.float32)
    if kind == "stripes":
        a = np.ones((h, w), np.float32)
        a[:, ::3] = 0.0
        return a
    return np.full((h, w), 1.0 if kind == "white" else 0.0, np.float32)


@SETTINGS
@given(images(), st.sampled_from(["columns", "rows"]), st.integers(1, 48))
def test_image_frames_keep_the_aspect_ratio_and_stay_in_unit_range(gray, mode, size):
    cfg = ImageFrontendConfig(height=size, width=size, mode=mode, max_width=3000)
    h, w = gray.shape
    t = max(1, round(w * size / h)) if mode == "columns" else max(1, round(h * size / w))
    if t > cfg.max_width:
        with pytest.raises(ImageError, match="max_width"):
            image_features(gray, cfg)
        return
    frames = image_features(gray, cfg)
    assert frames.shape == (t, size)
    assert frames.dtype == torch.float32
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0


# ---------------------------------------------------------------------------
# Greedy decoding


@st.composite
def log_prob_batches(draw) -> tuple[torch.Tensor, torch.Tensor]:
    b = draw(st.integers(1, 4))
    t = draw(st.integers(1, 40))
    v = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    sharp = draw(st.sampled_from([0.1, 1.0, 10.0, 1e4]))  # near-uniform to near-one-hot
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(sharp * torch.randn(b, t, v, generator=g), dim=-1)
    lengths = torch.tensor([draw(st.integers(1, t)) for _ in range(b)])
    lengths[0] = t  # the longest item fills the batch
    return lp, lengths


@SETTINGS
@given(log_prob_batches())
def test_greedy_invariants(batch):
    lp, lengths = batch
    v = lp.shape[-1]
    hyps, scores = greedy_decode(lp, lengths)
    for b, (h, s) in enumerate(zip(hyps, scores, strict=True)):
        n = int(lengths[b])
        assert len(h) <= n and all(0 < i < v for i in h)  # never blank, always a real id
        best = lp[b, :n].max(-1)
        assert float(s) == pytest.approx(float(best.values.sum()), abs=1e-4)
        assert float(s) <= 1e-5  # a log-probability
        path = best.indices.tolist()
        runs = [p for k, p in enumerate(path) if p != BLANK_ID and (k == 0 or path[k - 1] != p)]
        assert h == runs
        # Per item equals batched, whatever sits in the padding.
        alone, s1 = greedy_decode(lp[b : b + 1, :n], lengths[b : b + 1])
        assert alone[0] == h and float(s1[0]) == pytest.approx(float(s), abs=1e-4)


@SETTINGS
@given(log_prob_batches())
def test_best_path_never_beats_all_paths_of_its_labels(batch):
    """The greedy path is one CTC path of its labels, so P(path) <= P(labels)."""
    lp, lengths = batch
    hyps, scores = greedy_decode(lp, lengths)
    for b, h in enumerate(hyps):
        n = int(lengths[b])
        target = torch.tensor([h], dtype=torch.long) if h else torch.zeros(1, 0, dtype=torch.long)
        nll = torch.nn.functional.ctc_loss(
            lp[b : b + 1, :n].transpose(0, 1).double(),
            target,
            torch.tensor([n]),
            torch.tensor([len(h)]),
            blank=BLANK_ID,
            reduction="sum",
            zero_infinity=False,
        )
        assert float(scores[b]) <= -float(nll) + 1e-4


@SETTINGS
@given(log_prob_batches(), st.lists(st.integers(0, 40), max_size=5))
def test_stitched_segments_decode_as_the_whole(batch, cuts):
    lp, lengths = batch
    whole = lp[0, : int(lengths[0])]
    bounds = sorted({min(c, whole.shape[0]) for c in cuts} | {0, whole.shape[0]})
    segments = [whole[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    vocab = Vocabulary(("<blank>", *[chr(97 + i) for i in range(lp.shape[-1] - 1)]), "char")

    class Rec:
        pass

    rec = Rec()
    rec.vocab = vocab
    hyps, scores = greedy_decode(whole[None], torch.tensor([whole.shape[0]]))
    fields = decode_long(rec, iter(segments))
    assert fields["text"] == vocab.decode(hyps[0])
    assert fields["score"] == pytest.approx(float(scores[0]), abs=1e-3)


# ---------------------------------------------------------------------------
# Metrics

symbols = st.lists(st.sampled_from("abcde"), max_size=12)


@SETTINGS
@given(symbols, symbols, symbols)
def test_edit_distance_is_a_metric(a, b, c):
    d = edit_distance
    assert (d(a, b) == 0) == (a == b)
    assert d(a, b) == d(b, a)
    assert d(a, c) <= d(a, b) + d(b, c)
    assert abs(len(a) - len(b)) <= d(a, b) <= max(len(a), len(b))


@SETTINGS
@given(symbols, symbols)
def test_edit_counts_add_up_to_the_edit_distance(ref, hyp):
    subs, dels, ins = edit_counts(ref, hyp)
    assert subs + dels + ins == edit_distance(ref, hyp)
    assert dels - ins == len(ref) - len(hyp)
    assert min(subs, dels, ins) >= 0


@SETTINGS
@given(symbols, symbols)
def test_an_alignment_spells_out_both_sequences(ref, hyp):
    ops = align(ref, hyp)
    assert [r for op, r, _ in ops if op != "ins"] == list(ref)
    assert [h for op, _, h in ops if op != "del"] == list(hyp)
    assert all((r == h) == (op == "ok") for op, r, h in ops if op in ("ok", "sub"))
    assert sum(op != "ok" for op, _, _ in ops) == edit_distance(ref, hyp)


@SETTINGS
@given(st.lists(st.tuples(symbols, symbols), min_size=1, max_size=5))
def test_error_rate_bounds(pairs):
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    total = sum(len(r) for r in refs)
    rate = error_rate(refs, hyps)
    assume(total > 0)
    assert (rate == 0) == (refs == hyps)
    longest = sum(max(len(r), len(h)) for r, h in pairs)
    assert 0.0 <= rate <= longest / total
    assert error_rate(refs, [[] for _ in refs]) == 1.0  # deleting everything: 100 %
    assert error_rate(refs, refs) == 0.0


@SETTINGS
@given(st.lists(st.text("ab c", max_size=15), min_size=1, max_size=4))
def test_cer_and_wer_ignore_whitespace_layout(texts):
    spaced = ["  " + "   ".join(t.split()) + " " for t in texts]
    assert cer(texts, spaced) == 0.0
    assert wer(texts, spaced) == 0.0

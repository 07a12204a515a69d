import pytest
import torch

from seqrec.decoders.align import best_path_spans, forced_align
from seqrec.decoders.decode import decode_log_probs
from seqrec.decoders.options import DecodeOptions
from seqrec.vocab import Vocabulary


def _random(b, t, v, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, t, v, generator=g) * 3, -1)


def _path_score(lp, spans, length):
    """Log-prob of the frame path that the spans describe (blank elsewhere)."""
    labels = torch.zeros(length, dtype=torch.long)
    for s in spans:
        labels[s.start : s.end] = s.token
    return float(lp[torch.arange(length), labels].sum())


@pytest.mark.parametrize("seed", range(4))
def test_spans_ordered_inside_and_spell_the_target(seed):
    lp = _random(3, 30, 5, seed)
    lengths = torch.tensor([30, 17, 6])
    targets = [[1, 1, 2, 3], [4, 2], [3, 3, 3]]
    for spans, n, tgt in zip(forced_align(lp, lengths, targets), lengths, targets, strict=True):
        assert [s.token for s in spans] == tgt
        assert all(0 <= s.start < s.end <= n for s in spans)
        assert all(a.end <= b.start for a, b in zip(spans[:-1], spans[1:], strict=True))
        assert all(0 < s.confidence <= 1 for s in spans)


@pytest.mark.parametrize("seed", range(3))
def test_alignment_is_the_best_path_for_its_labels(seed):
    """Same path score as torchaudio's forced_align (our own Viterbi otherwise)."""
    functional = pytest.importorskip("torchaudio.functional")
    if not hasattr(functional, "forced_align"):
        pytest.skip("this torchaudio has no forced_align")
    lp = _random(1, 25, 6, seed)
    target = [2, 5, 5, 1]
    ours = forced_align(lp, torch.tensor([25]), [target])[0]
    path, scores = functional.forced_align(lp, torch.tensor([target], dtype=torch.int32), blank=0)
    assert _path_score(lp[0], ours, 25) == pytest.approx(float(scores.sum()), abs=1e-4)


def test_impossible_alignment_is_none():
    lp = _random(1, 3, 4, 0)
    assert forced_align(lp, torch.tensor([3]), [[1, 1, 1]]) == [None]  # needs 5 frames
    assert forced_align(lp, torch.tensor([3]), [[]])[0] == []


def test_best_path_spans_match_forced_alignment_of_greedy_output():
    lp = _random(1, 40, 5, 7)
    spans = best_path_spans(lp[0], 40)
    again = forced_align(lp, torch.tensor([40]), [[s.token for s in spans]])[0]
    assert [(s.start, s.end) for s in spans] == [(s.start, s.end) for s in again]


def test_timestamps_scale_by_frame_step_and_stay_monotonic():
    vocab = Vocabulary(("<blank>", "a", "b", "c", "d"), "char")
    lp = _random(2, 50, 5, 1)
    lengths = torch.tensor([50, 20])
    step = 0.04  # 10 ms frames x 4 subsampling
    for opts in (DecodeOptions(timestamps=True), DecodeOptions(beam=4, timestamps=True)):
        for h, n in zip(
            decode_log_probs(lp, lengths, vocab, opts, frame_step=step), lengths, strict=True
        ):
            assert len(h.timestamps) == len(h.ids) == len(h.token_confidences)
            flat = [x for pair in h.timestamps for x in pair]
            assert flat == sorted(flat)
            assert all(0 <= x <= float(n) * step + 1e-9 for x in flat)
            assert all(a < b for a, b in h.timestamps)


def test_align_transcripts_in_seconds():
    from seqrec.decoders.decode import align_transcripts
    from seqrec.vocab import UnknownSymbolError

    vocab = Vocabulary(("<blank>", "AH", "B", "K"), "phone")
    lp = _random(2, 20, 4, 3)
    out = align_transcripts(lp, torch.tensor([20, 2]), vocab, ["B AH K", "B B K"], 0.04)
    assert [x[0] for x in out[0]] == ["B", "AH", "K"]
    assert all(0 <= s < e <= 20 * 0.04 + 1e-9 for _, s, e, _ in out[0])
    assert out[1] is None  # three tokens, a repeat, in two frames
    with pytest.raises(UnknownSymbolError):
        align_transcripts(lp, torch.tensor([20, 20]), vocab, ["B Z", "B"])

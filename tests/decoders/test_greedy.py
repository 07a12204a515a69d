import torch

from seqrec.decoders.greedy import best_blank_shift, blank_shift_errors, greedy_decode
from seqrec.vocab import Vocabulary


def _lp(frames, vocab=4):
    """Log-probs whose argmax per frame is the given id."""
    x = torch.full((len(frames), vocab), -5.0)
    for t, k in enumerate(frames):
        x[t, k] = -0.1
    return torch.log_softmax(x, -1)


def test_merges_repeats_and_drops_blanks():
    lp = _lp([0, 1, 1, 0, 1, 2, 2, 0, 3])[None]
    hyps, _ = greedy_decode(lp, torch.tensor([9]))
    assert hyps == [[1, 1, 2, 3]]


def test_respects_lengths_and_batches():
    a, b = _lp([1, 1, 2, 0, 3]), _lp([2, 0, 2, 3, 3])
    batch = torch.stack([a, b])
    hyps, scores = greedy_decode(batch, torch.tensor([3, 5]))
    assert hyps == [[1, 2], [2, 2, 3]]
    h0, s0 = greedy_decode(a[None, :3], torch.tensor([3]))
    assert h0 == [[1, 2]]
    assert torch.allclose(scores[0], s0[0])


def test_best_path_score_matches_ctc_loss_when_single_alignment_dominates():
    # One path carries nearly all probability: -ctc_loss ~= best path log-prob.
    lp = torch.log_softmax(torch.tensor([[0.0, 30, 0, 0], [30, 0, 0, 0], [0, 0, 30, 0]]), -1)
    hyps, scores = greedy_decode(lp[None], torch.tensor([3]))
    assert hyps == [[1, 2]]
    loss = torch.nn.functional.ctc_loss(
        lp[:, None], torch.tensor([[1, 2]]), torch.tensor([3]), torch.tensor([2]), reduction="sum"
    )
    assert torch.allclose(-loss, scores[0], atol=1e-6)


def test_blank_shift_sweep_recovers_tokens_that_blank_narrowly_beats():
    vocab = Vocabulary(("<blank>", "a", "b", "c"), "phone")
    # Frame 1: blank 0.5 nats above "b"; frame 3: "c" clearly best.
    x = torch.full((5, 4), -6.0)
    x[0, 0], x[1, 0], x[1, 2], x[2, 0], x[3, 3], x[4, 0] = 0.0, 0.5, 0.0, 0.0, 2.0, 0.0
    lp = torch.log_softmax(x, -1)
    errors = blank_shift_errors([lp, lp[:4]], ["b c", "b c"], vocab, shifts=(0.0, 0.25, 1.0, 9.0))
    assert errors[0.0] == 0.5  # "b" deleted in both
    assert errors[0.25] == 0.5  # not enough
    assert errors[1.0] == 0.0
    assert errors[9.0] > 0  # blank never wins: tied frames emit the first token, inserted
    assert best_blank_shift(errors) == 1.0
    assert best_blank_shift({0.0: 0.2, 0.5: 0.1, 1.0: 0.1}) == 0.5

import torch

from seqrec.decoders.greedy import greedy_decode


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

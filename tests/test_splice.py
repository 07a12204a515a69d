"""Splicing augmentation: forced alignment, cut points and spliced items."""

import itertools
import random

import pytest
import torch

from seqrec.data.loader import FeatureDataset
from seqrec.data.manifest import Record
from seqrec.data.splice import SplicePool, align_dataset, cut_points, forced_align
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.vocab import Vocabulary


def _collapse(path):
    out, prev = [], 0
    for s in path:
        if s != 0 and s != prev:
            out.append(s)
        prev = s
    return out


def _brute_force_first_frames(lp, targets):
    """First frame of each label on the best of all paths that collapse to ``targets``."""
    n_frames, vocab = lp.shape
    best, best_path = -float("inf"), None
    for path in itertools.product(range(vocab), repeat=n_frames):
        if _collapse(path) != list(targets):
            continue
        score = sum(float(lp[t, s]) for t, s in enumerate(path))
        if score > best:
            best, best_path = score, path
    first, prev = [], 0
    for t, s in enumerate(best_path):
        if s != 0 and s != prev:
            first.append(t)
        prev = s
    return first


@pytest.mark.parametrize("seed", range(12))
def test_forced_align_finds_the_best_path(seed):
    g = torch.Generator().manual_seed(seed)
    n_frames = 4 + seed % 3
    targets = [[1, 2], [2, 2], [1, 2, 1], [3]][seed % 4]
    lp = torch.randn(n_frames, 4, generator=g).log_softmax(-1)
    assert forced_align(lp, targets) == _brute_force_first_frames(lp, targets)


def test_forced_align_follows_clear_posteriors_and_rejects_too_few_frames():
    # Frames 0-1 blank, 2-3 label 5, 4 blank, 5 label 5 again, 6 label 2.
    best = [0, 0, 5, 5, 0, 5, 2]
    lp = torch.full((len(best), 6), -20.0)
    lp[torch.arange(len(best)), torch.tensor(best)] = 0.0
    assert forced_align(lp, [5, 5, 2]) == [2, 5, 6]
    with pytest.raises(ValueError, match="do not fit"):
        forced_align(lp[:3], [5, 5, 2])  # a repeat needs a blank between: 4 frames
    with pytest.raises(ValueError):
        forced_align(lp, [])


def test_cut_points_lie_halfway_and_scale_to_the_input():
    # Labels first emitted at output frames 1, 5 and 6 of 8; 4 input frames each.
    cuts = cut_points([1, 5, 6], n_out=8, n_in=32)
    assert cuts == [0, round(3.5 * 4), round(6 * 4), 32]
    assert cut_points([0], 3, 12) == [0, 12]
    assert cut_points([2, 2], 3, 3) == sorted(cut_points([2, 2], 3, 3))


def _coded(j, n_labels, frames_per_label, speed=1.0):
    """Item ``j``'s features: each frame holds ``j`` and the label it belongs to."""
    per = round(frames_per_label / speed)
    rows = [[float(j), float(k)] for k in range(n_labels) for _ in range(per)]
    return torch.tensor(rows)


def test_spliced_items_join_runs_of_one_speakers_labels():
    n_labels, per = 6, 4
    targets = [[10 * j + k for k in range(n_labels)] for j in range(4)]
    cuts = [[per * k for k in range(n_labels + 1)] for _ in range(4)]
    cuts[2] = None  # not aligned: never used
    speakers = ["a", "b", "a", "a"]
    pool = SplicePool(cuts, speakers, min_labels=1, max_labels=3)
    rng = random.Random(0)
    for speed in (1.0, 0.5):
        seen = set()
        for _ in range(30):
            feats, labels = pool.splice(
                0, speed, rng, lambda j, s: _coded(j, n_labels, per, s), targets, 40
            )
            # About the asked-for 40 frames: short of it by less than one more run.
            assert 40 - 3 * per / speed < feats.shape[0] <= 40
            # Frame by frame, the features are those of the labels the transcript gives.
            keys = [10 * int(j) + int(k) for j, k in feats.tolist()]
            assert keys == [lab for lab in labels for _ in range(round(per / speed))]
            seen.update(int(j) for j in feats[:, 0])
        assert seen == {0, 3}  # speaker "a"'s aligned items, both used
    # A speaker with no aligned item gets nothing.
    lone = SplicePool([None, cuts[0]], ["x", "y"])
    assert lone.splice(0, 1.0, rng, lambda j, s: _coded(j, n_labels, per), targets, 40) is None


def test_a_splice_too_short_for_ctc_is_not_made():
    targets = [[1, 2, 3, 4]]
    pool = SplicePool([[0, 1, 2, 3, 4]], ["a"], min_labels=4, max_labels=4, subsample=4)
    feats = lambda j, s: torch.zeros(4, 2)  # noqa: E731
    assert pool.splice(0, 1.0, random.Random(0), feats, targets, 4) is None  # 1 output frame
    roomy = SplicePool([[0, 4, 8, 12, 16]], ["a"], min_labels=4, max_labels=4, subsample=4)
    out = roomy.splice(0, 1.0, random.Random(0), lambda j, s: torch.zeros(16, 2), targets, 16)
    assert out is not None and out[1] == [1, 2, 3, 4]


def test_dataset_items_are_spliced_at_the_set_rate():
    vocab = Vocabulary.from_transcripts(["abcd"], "char")
    recs = [Record(f"u{j}", f"u{j}.wav", "abcd", speaker="s") for j in range(3)]
    raw = {j: _coded(j, 4, 5) for j in range(3)}
    ds = FeatureDataset(recs, lambda r, s: raw[int(r.id[1:])], vocab, seed=0)
    plain = [ds.item(0, random.Random(1))[0] for _ in range(3)]
    assert all(torch.equal(f, raw[0]) for f in plain)
    ds.splice = SplicePool([[0, 5, 10, 15, 20]] * 3, ["s"] * 3, 1, 2)
    ds.splice_prob = 1.0
    rng = random.Random(1)
    items = [ds.item(0, rng) for _ in range(20)]
    assert any(set(f[:, 0].tolist()) != {0.0} for f, _, _ in items)  # other utterances used
    for f, tgt, i in items:
        assert i == 0 and f.shape[0] <= 20 + 10
        assert len(tgt) == round(f.shape[0] / 5)  # 5 frames per label
    ds.splice_prob = 0.0
    assert torch.equal(ds.item(0, random.Random(1))[0], raw[0])


def test_align_dataset_gives_cut_points_for_each_alignable_item():
    torch.manual_seed(0)
    vocab = Vocabulary.from_transcripts(["ab"], "char")
    recs = [Record("short", "x", "abab"), Record("long", "y", "ab"), Record("other", "z", "a")]
    sizes = {"short": 3, "long": 24, "other": 12}
    ds = FeatureDataset(recs, lambda r, s: torch.randn(sizes[r.id], 8), vocab)
    model = BiLSTMCTC(ModelConfig(input_dim=8, vocab_size=len(vocab), hidden=16, layers=1))
    cuts = align_dataset(model, ds, [0, 1], max_frames=100, device=torch.device("cpu"))
    assert cuts[0] is None  # 3 frames cannot hold 4 labels
    assert cuts[1] is not None and cuts[1][0] == 0 and cuts[1][-1] == 24 and len(cuts[1]) == 3
    assert cuts[2] is None  # not asked for
    assert not model.training

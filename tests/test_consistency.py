"""Consistency-regularised CTC: two augmented views of each item and the KL term between them."""

import random

import pytest
import torch

from seqrec.data.loader import (
    FeatureDataset,
    SpecAugmentConfig,
    batch_stream,
    build_batch,
    collate,
)
from seqrec.data.manifest import Record
from seqrec.losses import view_consistency
from seqrec.vocab import Vocabulary

SPEC = SpecAugmentConfig(freq_masks=1, freq_width=3, time_masks_per_100=10, time_width=4)


def _dataset(views: int, spec: SpecAugmentConfig | None = SPEC, speeds=(0.9, 1.0, 1.1)):
    """Five items of random 8-dim frames, as many frames as 10 x speed x (index + 2)."""
    vocab = Vocabulary.from_transcripts(["A B C"], "phone")
    recs = [Record(str(i), f"item{i}.wav", "A B C"[: 1 + 2 * (i % 3)]) for i in range(5)]

    def featurize(rec: Record, speed: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(rec.id) * 100 + int(speed * 10))
        return torch.randn(int(10 * speed * (int(rec.id) + 2)), 8, generator=gen)

    return FeatureDataset(recs, featurize, vocab, speeds=speeds, spec_augment=spec, views=views)


def test_two_views_share_speed_and_targets_but_not_their_masks():
    ds = _dataset(views=2)
    idx = [0, 3, 4]
    b = build_batch(ds, idx, random.Random(1))
    k = len(idx)
    assert b["index"].tolist() == idx + idx  # view one of every item, then view two
    assert torch.equal(b["lengths"][:k], b["lengths"][k:])
    assert torch.equal(b["targets"][:k], b["targets"][k:])
    assert torch.equal(b["target_lengths"][:k], b["target_lengths"][k:])
    for j in range(k):
        n = int(b["lengths"][j])
        one, two = b["feats"][j, :n], b["feats"][k + j, :n]
        assert not torch.equal(one, two)  # their own SpecAugment draws
        # Away from both views' masks (zeroed), the frames are the same features.
        kept = (one != 0) & (two != 0)
        assert kept.any() and torch.equal(one[kept], two[kept])


def test_without_spec_augment_the_views_are_equal():
    b = build_batch(_dataset(views=2, spec=None), [1, 2], random.Random(0))
    assert torch.equal(b["feats"][:2], b["feats"][2:])


def test_one_view_batches_are_what_they_were():
    """One view draws speed, then SpecAugment, from the generator, as items always did."""
    ds = _dataset(views=1)
    got = build_batch(ds, [2, 0], random.Random(5))
    rng = random.Random(5)
    items = []
    for i in (2, 0):
        speed = rng.choice(ds.speeds)
        feats = SPEC.apply(ds.normalize(ds.raw_features(i, speed)), rng)
        items.append((feats, torch.tensor(ds.targets[i]), i))
    want = collate(items)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_input_augmentation_is_drawn_for_each_view():
    ds = _dataset(views=2, spec=None)
    calls = []

    def augment(rec, speed, rng):
        calls.append(rec.id)
        return ds.raw_features(int(rec.id), speed) + rng.random()

    ds.augment = augment
    b = build_batch(ds, [1, 3], random.Random(0))
    assert calls == ["1", "1", "3", "3"]
    assert not torch.equal(b["feats"][0], b["feats"][2])
    assert torch.equal(b["lengths"][:2], b["lengths"][2:])


def test_views_of_different_lengths_are_an_error_naming_the_file():
    ds = _dataset(views=2, spec=None)
    ds.augment = lambda rec, speed, rng: torch.zeros(rng.randint(5, 500), 8)
    with pytest.raises(ValueError, match="item1.wav: its views have"):
        build_batch(ds, [1], random.Random(0))


def test_worker_processes_build_the_views_too():
    batches = [[0, 1], [2, 3, 4]]
    for b in batch_stream(_dataset(views=2), batches, workers=1):
        k = len(b["index"]) // 2
        assert b["index"][:k].tolist() == b["index"][k:].tolist()
        assert torch.equal(b["lengths"][:k], b["lengths"][k:])


def test_views_must_be_positive():
    with pytest.raises(ValueError, match="views"):
        _dataset(views=0)


def test_view_consistency_is_the_symmetric_kl_per_target_phone():
    gen = torch.Generator().manual_seed(0)
    lp = torch.randn(4, 6, 5, generator=gen).log_softmax(-1)  # two items, two views
    lengths = torch.tensor([6, 4, 6, 4])
    target_lengths = torch.tensor([3, 2, 3, 2])
    got = view_consistency(lp, lengths, target_lengths)
    want = 0.0
    for j in range(2):
        n = int(lengths[j])
        p, q = lp[j, :n].exp(), lp[2 + j, :n].exp()
        kl_pq = (p * (p.log() - q.log())).sum()
        kl_qp = (q * (q.log() - p.log())).sum()
        want += 0.5 * float(kl_pq + kl_qp) / int(target_lengths[j])
    assert got.item() == pytest.approx(want / 2, rel=1e-5)
    # Equal views agree: nothing to learn. Padding frames never count.
    same = torch.cat([lp[:2], lp[:2]])
    assert view_consistency(same, lengths, target_lengths).item() == pytest.approx(0.0, abs=1e-6)
    padded = lp.clone()
    padded[1, 4:] = padded[3, 4:].flip(-1)
    assert view_consistency(padded, lengths, target_lengths).item() == pytest.approx(got.item())


def test_view_consistency_holds_each_view_fixed_as_the_other_ones_target():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, generator=gen, requires_grad=True)
    lp = logits.log_softmax(-1)
    loss = view_consistency(lp, torch.tensor([3, 3]), torch.tensor([1, 1]))
    loss.backward()
    # The gradient of KL(sg(p) || q) in q's logits is q - p, halved for the average of the two.
    p, q = lp[0].detach().exp(), lp[1].detach().exp()
    assert torch.allclose(logits.grad[0], 0.5 * (p - q), atol=1e-6)
    assert torch.allclose(logits.grad[1], 0.5 * (q - p), atol=1e-6)


def test_view_consistency_needs_two_views():
    with pytest.raises(ValueError, match="two views"):
        view_consistency(torch.zeros(3, 2, 4), torch.tensor([2, 2, 2]), torch.tensor([1, 1, 1]))


def _train_tiny(weight: float, views: int = 2, steps: int = 40):
    """A 1 x 16 BiLSTM trained on the five items; returns it, its dataset and the
    (loss sum, items) of the first and last epochs."""
    from seqrec.models.blstm import BiLSTMCTC, ModelConfig
    from seqrec.training import train_epoch

    ds = _dataset(views=views, speeds=(1.0,))
    torch.manual_seed(0)
    model = BiLSTMCTC(ModelConfig(8, len(ds.vocab), hidden=16, layers=1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    ctc, cpu = torch.nn.CTCLoss(), torch.device("cpu")
    epochs = [
        train_epoch(
            model, ds, [[0, 1, 2, 3, 4]], opt, sched, ctc, 5.0, cpu, consistency_weight=weight
        )
        for _ in range(steps)
    ]
    return model, ds, epochs[0], epochs[-1]


def test_consistency_training_brings_the_views_closer():
    def after(weight: float) -> tuple[float, float, float]:
        model, ds, first, last = _train_tiny(weight)
        assert first[1] == last[1] == 5  # items, not views
        model.eval()
        b = build_batch(ds, [0, 1, 2, 3, 4], random.Random(123))
        with torch.no_grad():
            lp, ol = model(b["feats"], b["lengths"])
        return view_consistency(lp, ol, b["target_lengths"]).item(), first[0], last[0]

    plain, weighted = after(0.0), after(5.0)
    assert weighted[0] < 0.5 * plain[0]
    assert weighted[2] < 0.5 * weighted[1]  # it still learns the labels, not just agreement


def test_consistency_weight_needs_two_views():
    with pytest.raises(ValueError, match="two views"):
        _train_tiny(0.2, views=1, steps=1)


def test_each_view_gets_half_the_frame_budget():
    from seqrec.config import TrainConfig
    from seqrec.distributed import DistEnv
    from seqrec.train_data import frame_sampler

    lengths = [100, 100, 100, 100, 100, 100]
    env = DistEnv()
    assert [len(b) for b in frame_sampler(lengths, TrainConfig(max_frames=400), env)] == [4, 2]
    halved = frame_sampler(lengths, TrainConfig(max_frames=400, consistency_weight=0.2), env)
    assert sorted(len(b) for b in halved) == [2, 2, 2]


def test_consistency_weight_must_not_be_negative():
    from seqrec.config import TrainConfig

    with pytest.raises(ValueError, match="consistency_weight"):
        TrainConfig(consistency_weight=-0.1)
    with pytest.raises(ValueError, match="consistency_weight"):
        TrainConfig(consistency_weight=float("nan"))

import random

import pytest
import torch

from seqrec.data.loader import (
    FeatureDataset,
    FrameBudgetSampler,
    SpecAugmentConfig,
    collate,
    ctc_min_frames,
    split_by_speaker,
)
from seqrec.data.manifest import Record, read_manifest, write_manifest
from seqrec.vocab import Vocabulary


def test_manifest_round_trip_resolves_relative_paths(tmp_path):
    recs = [
        Record("a", "wav/a.wav", "A B", duration=1.5, speaker="s1"),
        Record("b", "/abs/b.wav", "", width=30),
    ]
    write_manifest(tmp_path / "m.jsonl", recs)
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0].path == str(tmp_path / "wav/a.wav")
    assert back[1] == recs[1]
    assert back[0].duration == 1.5 and back[0].speaker == "s1"


def test_manifest_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a", "path": "x"}\n{oops\n')
    try:
        read_manifest(p)
    except ValueError as e:
        assert "bad.jsonl:2" in str(e)
    else:
        raise AssertionError("expected an error")


def test_ctc_min_frames_counts_repeats():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 8
    assert ctc_min_frames([]) == 0


def test_sampler_respects_budget_and_covers_everything():
    rng = random.Random(0)
    lengths = [rng.randint(5, 200) for _ in range(300)]
    s = FrameBudgetSampler(lengths, max_frames=1000, seed=1)
    for epoch in range(2):
        s.set_epoch(epoch)
        batches = list(s)
        assert sorted(i for b in batches for i in b) == list(range(300))
        for b in batches:
            assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 1000
    s.set_epoch(0)
    first = list(s)
    s.set_epoch(1)
    assert first != list(s)


def test_dataset_collate_and_spec_augment():
    vocab = Vocabulary.from_transcripts(["A B", "B"], "phone")
    recs = [Record("x", "x", "A B"), Record("y", "y", "B")]
    calls = []

    def featurize(rec, speed):
        calls.append((rec.id, speed))
        return torch.ones(10 if rec.id == "x" else 4, 3)

    ds = FeatureDataset(
        recs,
        featurize,
        vocab,
        spec_augment=SpecAugmentConfig(
            freq_masks=1, freq_width=3, time_masks_per_100=20, time_width=2
        ),
    )
    batch = collate([ds[0], ds[1]])
    assert batch["feats"].shape == (2, 10, 3)
    assert batch["lengths"].tolist() == [10, 4]
    assert batch["targets"].tolist() == [[1, 2], [2, 0]]
    assert batch["target_lengths"].tolist() == [2, 1]
    ds[0]
    assert calls == [("x", 1.0), ("y", 1.0)]  # cached after the first call
    assert (batch["feats"][0] == 0).any()  # some masking happened


def test_split_by_speaker_is_disjoint():
    recs = [Record(str(i), f"{i}.wav", "A", speaker=f"s{i % 10}") for i in range(100)]
    train, dev = split_by_speaker(recs, 2, seed=3)
    assert {r.speaker for r in train}.isdisjoint({r.speaker for r in dev})
    assert len({r.speaker for r in dev}) == 2 and len(train) + len(dev) == 100


def _augmented_dataset(seed=0):
    vocab = Vocabulary.from_transcripts(["A B"], "phone")
    recs = [Record(str(i), f"{i}.wav", "A B") for i in range(12)]

    def featurize(rec, speed):
        return torch.ones(int((8 + int(rec.id)) / speed), 6)

    spec = SpecAugmentConfig(freq_masks=1, freq_width=3, time_masks_per_100=20, time_width=2)
    return FeatureDataset(
        recs, featurize, vocab, speeds=(0.9, 1.0, 1.1), spec_augment=spec, seed=seed
    )


def test_batch_stream_in_process_is_the_plain_loop():
    from seqrec.data.loader import batch_stream

    batches = [[0, 3], [5], [7, 1, 2]]
    a, b = _augmented_dataset(), _augmented_dataset()
    got = list(batch_stream(a, batches, workers=0))
    want = [collate([b[i] for i in idx]) for idx in batches]
    for g, w in zip(got, want, strict=True):
        assert all(torch.equal(g[k], w[k]) for k in w)


def test_batch_stream_workers_depend_on_the_seed_only():
    from seqrec.data.loader import batch_stream

    batches = [[0, 3], [5], [7, 1, 2], [4, 6], [8, 9, 10, 11]]
    one = list(batch_stream(_augmented_dataset(), batches, workers=1))
    two = list(batch_stream(_augmented_dataset(), batches, workers=2))
    other = list(batch_stream(_augmented_dataset(seed=1), batches, workers=2))
    assert [b["index"].tolist() for b in two] == batches
    for x, y in zip(one, two, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert any(not torch.equal(x["feats"], z["feats"]) for x, z in zip(two, other, strict=True))


def test_warp_frequency_moves_a_peak_by_the_factor():
    from seqrec.data.loader import warp_frequency

    feats = torch.zeros(3, 40)
    feats[:, 10] = 1.0
    assert torch.equal(warp_frequency(feats, 1.0), feats)
    up = warp_frequency(feats, 1.2)
    assert up.shape == (3, 40)
    assert int(up[0].argmax()) == 12
    down = warp_frequency(feats, 0.8)
    assert int(down[0].argmax()) == 8
    # linear interpolation: the peak's mass is spread, never amplified
    assert float(up.max()) <= 1.0 and float(down.max()) <= 1.0


def test_spec_augment_freq_warp_is_seeded_and_validated():
    feats = torch.randn(50, 40)
    spec = SpecAugmentConfig(freq_masks=0, time_masks_per_100=0, freq_warp=0.1)
    a = spec.apply(feats, random.Random(3))
    b = spec.apply(feats, random.Random(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, feats)
    none = SpecAugmentConfig(freq_masks=0, time_masks_per_100=0)
    assert torch.equal(none.apply(feats, random.Random(3)), feats)
    with pytest.raises(ValueError, match="freq_warp"):
        SpecAugmentConfig(freq_warp=0.7)

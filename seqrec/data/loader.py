"""Datasets, SpecAugment, collation and a frame-budget bucketing sampler."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from seqrec.data.manifest import Record
from seqrec.vocab import Vocabulary

if TYPE_CHECKING:
    from seqrec.data.cache import FeatureStore
    from seqrec.data.splice import SplicePool

Featurizer = Callable[[Record, float], torch.Tensor]
"""``(record, speed) -> (T, F)`` un-normalised features; speed 1.0 means unchanged."""


def ctc_min_frames(targets: Sequence[int]) -> int:
    """Fewest output frames CTC needs for ``targets``: one per label plus one per repeat."""
    repeats = sum(1 for a, b in zip(targets[:-1], targets[1:], strict=True) if a == b)
    return len(targets) + repeats


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Frequency and time masking (Park et al., 2019) applied to training features.

    ``freq_warp`` > 0 first stretches or squeezes the feature axis by a random
    factor in ``[1 - freq_warp, 1 + freq_warp]`` (vocal tract length
    perturbation, Jaitly & Hinton, 2013): formants move as they would for a
    longer or shorter vocal tract, which helps most when training has few
    speakers.
    """

    freq_masks: int = 2
    freq_width: int = 15
    time_masks_per_100: float = 1.0
    time_width: int = 25
    max_time_fraction: float = 0.2
    freq_warp: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.freq_warp < 0.5:
            raise ValueError(f"freq_warp must be in [0, 0.5), got {self.freq_warp}")

    def apply(self, feats: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """Warp, then mask ``(T, F)`` features with zeros (the normalised mean)."""
        t, f = feats.shape
        if self.freq_warp > 0:
            out = warp_frequency(feats, rng.uniform(1 - self.freq_warp, 1 + self.freq_warp))
        else:
            out = feats.clone()
        for _ in range(self.freq_masks):
            w = rng.randint(0, min(self.freq_width, f))
            s = rng.randint(0, f - w)
            out[:, s : s + w] = 0
        n = int(self.time_masks_per_100 * t / 100)
        budget = int(self.max_time_fraction * t)
        for _ in range(n):
            w = min(rng.randint(0, self.time_width), budget)
            if w <= 0:
                break
            budget -= w
            s = rng.randint(0, t - w)
            out[s : s + w, :] = 0
        return out


def warp_frequency(feats: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(T, F)`` features with the feature axis scaled by ``alpha``.

    Output bin ``j`` reads input position ``j / alpha`` by linear interpolation,
    so what was at bin ``k`` moves to ``alpha * k``; positions past the top bin
    repeat it. A new tensor, also for ``alpha == 1``.
    """
    f = feats.shape[1]
    pos = (torch.arange(f, dtype=torch.float32) / alpha).clamp(max=f - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=f - 1)
    frac = (pos - lo).to(feats.dtype)
    return feats[:, lo] * (1 - frac) + feats[:, hi] * frac


class FeatureDataset(Dataset):
    """Items ``(features (T, F), target ids (L,), index)`` with an in-memory cache.

    Features are computed once per (item, speed) and kept; normalisation and
    SpecAugment apply on the way out, so cached features stay reusable. With
    ``augment`` ``(record, speed, rng) -> raw features`` (input-level
    augmentation such as image distortion), training items are computed afresh
    on every access; the cache then only serves lengths and evaluation.
    ``stores`` maps a speed to precomputed features (a memory-mapped on-disk
    cache, see :mod:`seqrec.data.cache`); they take the place of the in-memory
    cache for that speed. With a ``splice`` pool set (see
    :mod:`seqrec.data.splice`), each training item is replaced by a spliced
    one with probability ``splice_prob``.
    """

    def __init__(
        self,
        records: Sequence[Record],
        featurize: Featurizer,
        vocab: Vocabulary,
        normalize: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
        speeds: Sequence[float] = (1.0,),
        spec_augment: SpecAugmentConfig | None = None,
        seed: int = 0,
        cache: bool = True,
        augment: Callable[[Record, float, random.Random], torch.Tensor] | None = None,
    ) -> None:
        self.records = list(records)
        self.featurize = featurize
        self.vocab = vocab
        self.normalize = normalize
        self.speeds = tuple(speeds)
        self.spec_augment = spec_augment
        self.rng = random.Random(seed)
        self.cache: dict[tuple[int, float], torch.Tensor] | None = {} if cache else None
        self.augment = augment
        self.stores: dict[float, FeatureStore] = {}
        self.targets = [vocab.encode(r.text, source=r.path) for r in self.records]
        self.splice: SplicePool | None = None
        self.splice_prob = 0.0

    def __len__(self) -> int:
        return len(self.records)

    def raw_features(self, i: int, speed: float = 1.0) -> torch.Tensor:
        if speed in self.stores:
            return self.stores[speed][i]
        key = (i, speed)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        feats = self.featurize(self.records[i], speed)
        if self.cache is not None:
            self.cache[key] = feats
        return feats

    def cached_length(self, i: int, speed: float = 1.0) -> int | None:
        """Frames of item ``i`` at ``speed`` if already computed, else None (computes nothing)."""
        if speed in self.stores:
            return self.stores[speed].length(i)
        cached = self.cache.get((i, speed)) if self.cache is not None else None
        return None if cached is None else cached.shape[0]

    def length(self, i: int, speed: float = 1.0) -> int:
        """Frames of item ``i`` at ``speed`` (computing its features if need be)."""
        n = self.cached_length(i, speed)
        return n if n is not None else self.raw_features(i, speed).shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.item(i, self.rng)

    def item(self, i: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Item ``i``, drawing its speed and augmentation from ``rng``."""
        speed = rng.choice(self.speeds) if len(self.speeds) > 1 else self.speeds[0]
        target: Sequence[int] = self.targets[i]
        spliced = None
        if self.splice is not None and rng.random() < self.splice_prob:
            frames = self.length(i, speed)
            spliced = self.splice.splice(i, speed, rng, self.raw_features, self.targets, frames)
        if spliced is not None:
            raw, target = spliced
        elif self.augment is not None:
            raw = self.augment(self.records[i], speed, rng)  # fresh every time: no cache
        else:
            raw = self.raw_features(i, speed)
        feats = self.normalize(raw)
        if self.spec_augment is not None:
            feats = self.spec_augment.apply(feats, rng)
        return feats, torch.tensor(target, dtype=torch.long), i


def collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, int]],
) -> dict[str, torch.Tensor]:
    """Pad a list of items into ``feats (B, T, F)``, ``lengths``, ``targets (B, L)``,
    ``target_lengths`` and ``index``."""
    feats = torch.nn.utils.rnn.pad_sequence([b[0] for b in batch], batch_first=True)
    lengths = torch.tensor([b[0].shape[0] for b in batch], dtype=torch.long)
    targets, tl = pad_targets([b[1] for b in batch])
    index = torch.tensor([b[2] for b in batch], dtype=torch.long)
    return {
        "feats": feats,
        "lengths": lengths,
        "targets": targets,
        "target_lengths": tl,
        "index": index,
    }


def pad_targets(seqs: Sequence[torch.Tensor | Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Id sequences as zero-padded ``targets (B, L)`` and their ``lengths (B,)``."""
    seqs = [torch.as_tensor(s, dtype=torch.long) for s in seqs]
    lengths = torch.tensor([s.numel() for s in seqs], dtype=torch.long)
    targets = torch.zeros(len(seqs), max(1, int(lengths.max())), dtype=torch.long)
    for k, s in enumerate(seqs):
        targets[k, : s.numel()] = s
    return targets, lengths


class FrameBudgetSampler(Sampler[list[int]]):
    """Batches of similar length whose padded size stays within ``max_frames``.

    Items are sorted by length (with a little seeded noise so batches differ
    between epochs when ``shuffle``), cut into batches by the frame budget,
    and the batch order is shuffled.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        shuffle: bool = True,
        seed: int = 0,
        max_items: int = 256,
    ) -> None:
        self.lengths = list(lengths)
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.seed = seed
        self.max_items = max_items
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + 1000003 * self.epoch)
        if self.shuffle:
            keyed = [(n * (1 + 0.1 * (rng.random() - 0.5)), i) for i, n in enumerate(self.lengths)]
        else:
            keyed = [(n, i) for i, n in enumerate(self.lengths)]
        order = [i for _, i in sorted(keyed)]
        out: list[list[int]] = []
        cur: list[int] = []
        longest = 0
        for i in order:
            n = self.lengths[i]
            new_longest = max(longest, n)
            if cur and (
                new_longest * (len(cur) + 1) > self.max_frames or len(cur) >= self.max_items
            ):
                out.append(cur)
                cur, new_longest = [], n
            cur.append(i)
            longest = new_longest
        if cur:
            out.append(cur)
        if self.shuffle:
            rng.shuffle(out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class DistributedFrameBudgetSampler(FrameBudgetSampler):
    """This rank's share of the :class:`FrameBudgetSampler` batches of an epoch.

    Every rank builds the same batch list (same lengths, seed and epoch), pads
    it by repeating its first batches to a multiple of ``world_size`` and takes
    every ``world_size``-th batch from ``rank`` on: the shares are disjoint
    (apart from the padding), equal in count, so every rank takes the same
    number of optimiser steps, and neighbours in a sorted (SortaGrad) order go
    to different ranks, so ranks wait little for each other at every step.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        rank: int,
        world_size: int,
        shuffle: bool = True,
        seed: int = 0,
        max_items: int = 256,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        super().__init__(lengths, max_frames, shuffle, seed, max_items)
        self.rank, self.world_size = rank, world_size

    def batches(self) -> list[list[int]]:
        everything = super().batches()
        if not everything:
            return []
        pad = (-len(everything)) % self.world_size
        everything = everything + [everything[k % len(everything)] for k in range(pad)]
        return everything[self.rank :: self.world_size]


class _BatchFetcher(Dataset):
    """A dataset view whose items are whole collated batches, keyed by ``(seed, indices)``.

    Each batch draws its speeds and augmentation from ``random.Random(seed)``,
    so the result depends on the seed alone, not on which worker builds it.
    """

    def __init__(self, ds: FeatureDataset) -> None:
        self.ds = ds

    def __getitem__(self, key: tuple[int, Sequence[int]]) -> dict[str, torch.Tensor]:
        seed, idx = key
        rng = random.Random(seed)
        return collate([self.ds.item(i, rng) for i in idx])


def _unbatched(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return x


def _one_thread(_worker_id: int) -> None:
    # Workers share the machine with the training process: one thread each.
    torch.set_num_threads(1)


def batch_stream(
    ds: FeatureDataset,
    batches: Sequence[Sequence[int]],
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterable[dict[str, torch.Tensor]]:
    """Collated batches (see :func:`collate`) for ``batches`` of dataset indices, in order.

    ``workers`` 0 builds them in this process from ``ds.rng``, exactly as
    ``collate([ds[i] for i in idx])``. With ``workers`` > 0 they are built in
    that many worker processes (features, augmentation, padding), each batch
    from its own seed drawn from ``ds.rng`` here, so results for a given seed
    are the same whatever the number of workers (but not the same as with 0).
    ``pin_memory`` returns page-locked tensors for asynchronous copies to a GPU.
    """
    if workers <= 0:
        for idx in batches:
            b = collate([ds[i] for i in idx])
            yield {k: v.pin_memory() for k, v in b.items()} if pin_memory else b
        return
    keys = [(ds.rng.getrandbits(63), list(idx)) for idx in batches]
    yield from DataLoader(
        _BatchFetcher(ds),
        sampler=keys,
        batch_size=None,
        collate_fn=_unbatched,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_one_thread,
    )


def split_by_speaker(
    records: Sequence[Record], num_speakers: int, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Hold out ``num_speakers`` whole speakers (or items, when none is known) as a dev set.

    ``num_speakers`` 0 holds out nothing: every record trains.
    """
    if num_speakers <= 0:
        return list(records), []
    rng = random.Random(seed)
    speakers = sorted({r.speaker for r in records if r.speaker})
    if len(speakers) > num_speakers:
        held = set(rng.sample(speakers, num_speakers))
        train = [r for r in records if r.speaker not in held]
        dev = [r for r in records if r.speaker in held]
        return train, dev
    idx = list(range(len(records)))
    rng.shuffle(idx)
    n_dev = max(1, math.ceil(0.05 * len(records)))
    dev_set = set(idx[:n_dev])
    return (
        [r for i, r in enumerate(records) if i not in dev_set],
        [r for i, r in enumerate(records) if i in dev_set],
    )

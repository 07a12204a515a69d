"""Splicing augmentation: new training items cut from aligned ones and joined.

A model trained on a few thousand read sentences learns whole words and word
sequences as much as phones, and then does worst on the words it never heard.
Splicing breaks those patterns up: once the model reads well enough to align
its own training set (CTC forced alignment, :func:`forced_align`), each
utterance gets a cut point between every two consecutive labels, halfway
between where the model emits them (:func:`cut_points`). A spliced item joins
runs of a few labels taken from random utterances of the same speaker (same
voice and channel) until it is about as long as the item it replaces, so the
batch stays within its frame budget; its transcript is the runs' labels
joined. Features are cut from the cached un-normalised features (at any
perturbed speed, the cut points scaled with the length) and normalised as a
whole afterwards.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from seqrec.data.loader import FeatureDataset, FrameBudgetSampler, collate, ctc_min_frames

log = logging.getLogger("seqrec.train")


def forced_align(log_probs: torch.Tensor, targets: Sequence[int], blank: int = 0) -> list[int]:
    """The most likely CTC path of ``targets`` through ``(T, V)`` log-probabilities.

    Returns, for each label, the first frame at which the path emits it
    (increasing). Raises ``ValueError`` when ``T`` frames cannot hold the
    labels (see :func:`ctc_min_frames`).
    """
    n_frames, n_labels = log_probs.shape[0], len(targets)
    if n_labels == 0 or n_frames < ctc_min_frames(targets):
        raise ValueError(f"{n_labels} labels do not fit {n_frames} frames")
    lp = log_probs.detach().float().cpu()
    # States: blank, label 1, blank, label 2, ..., blank (2L + 1).
    states = torch.full((2 * n_labels + 1,), blank, dtype=torch.long)
    states[1::2] = torch.as_tensor(list(targets), dtype=torch.long)
    n_states = states.numel()
    # A label state may also come from two states back when the label differs
    # from the previous one (the blank between them skipped).
    skip = torch.zeros(n_states, dtype=torch.bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    neg = torch.tensor(float("-inf"))
    score = torch.full((n_states,), float("-inf"))
    score[:2] = lp[0, states[:2]]
    back = torch.zeros(n_frames, n_states, dtype=torch.uint8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, n_frames):
        one = torch.cat([neg.view(1), score[:-1]])
        two = torch.where(skip, torch.cat([neg.expand(2), score[:-2]]), neg)
        cand = torch.stack([score, one, two])
        best, arg = cand.max(0)
        back[t] = arg.to(torch.uint8)
        score = best + lp[t, states]
    # The path ends in the last label or the blank after it.
    s = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    path = [0] * n_frames
    for t in range(n_frames - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    first: list[int] = [-1] * n_labels
    prev = -1
    for t, s in enumerate(path):
        if s % 2 == 1 and s != prev:
            first[s // 2] = t
        prev = s
    return first


def cut_points(first: Sequence[int], n_out: int, n_in: int) -> list[int]:
    """Input-frame boundaries around each label: ``[0, c_1, ..., c_{L-1}, n_in]``.

    ``first`` gives each label's first output frame of ``n_out``; the cut
    between labels ``j`` and ``j + 1`` lies halfway between their frames,
    mapped onto the ``n_in`` input frames. Non-decreasing.
    """
    ratio = n_in / max(n_out, 1)
    cuts = [0]
    for a, b in zip(first[:-1], first[1:], strict=True):
        c = round((a + b + 1) / 2 * ratio)
        cuts.append(min(max(c, cuts[-1]), n_in))
    cuts.append(n_in)
    return cuts


class SplicePool:
    """Cut points of aligned training items, grouped by speaker, and the spliced items.

    ``cuts[i]`` are item ``i``'s cut points at speed 1 (see :func:`cut_points`),
    or None when it was not aligned; ``speakers[i]`` its speaker (items without
    one are pooled together). Runs are ``min_labels`` to ``max_labels``
    labels long. ``subsample`` is the model's subsampling factor: a spliced
    item too short for CTC is not made.
    """

    def __init__(
        self,
        cuts: Sequence[Sequence[int] | None],
        speakers: Sequence[str | None],
        min_labels: int = 2,
        max_labels: int = 8,
        subsample: int = 1,
    ) -> None:
        if not 1 <= min_labels <= max_labels:
            raise ValueError(f"need 1 <= min_labels <= max_labels, got {min_labels}, {max_labels}")
        self.cuts = [list(c) if c is not None else None for c in cuts]
        self.min_labels, self.max_labels = min_labels, max_labels
        self.subsample = subsample
        groups: dict[str | None, list[int]] = defaultdict(list)
        for i, c in enumerate(self.cuts):
            if c is not None and len(c) > 1:
                groups[speakers[i]].append(i)
        self.group_of = list(speakers)
        self.groups = dict(groups)

    def splice(
        self,
        i: int,
        speed: float,
        rng: random.Random,
        raw: Callable[[int, float], torch.Tensor],
        targets: Sequence[Sequence[int]],
        frames: int,
    ) -> tuple[torch.Tensor, list[int]] | None:
        """Raw features and labels of a spliced item standing in for item ``i``
        (about ``frames`` frames at ``speed``), or None when its speaker has no
        aligned items or the result would not fit CTC. ``raw(j, speed)`` gives
        item ``j``'s features."""
        group = self.groups.get(self.group_of[i])
        if not group:
            return None
        pieces: list[torch.Tensor] = []
        labels: list[int] = []
        total = 0
        for _ in range(64):  # bounded: a long item rarely needs more than a dozen runs
            j = rng.choice(group)
            cuts = self.cuts[j]
            assert cuts is not None
            n_labels = len(cuts) - 1
            k = min(rng.randint(self.min_labels, self.max_labels), n_labels)
            a = rng.randint(0, n_labels - k)
            feats = raw(j, speed)
            scale = feats.shape[0] / cuts[-1]
            lo, hi = round(cuts[a] * scale), round(cuts[a + k] * scale)
            if hi <= lo:
                continue
            if pieces and total + hi - lo > frames:
                break
            pieces.append(feats[lo:hi])
            labels.extend(targets[j][a : a + k])
            total += hi - lo
            if total >= frames:
                break
        out_frames = -(-total // self.subsample)  # as BiLSTMCTC.output_lengths
        if not pieces or out_frames < ctc_min_frames(labels):
            return None
        return torch.cat(pieces), labels


@torch.inference_mode()
def align_dataset(
    model: torch.nn.Module,
    ds: FeatureDataset,
    items: Sequence[int],
    max_frames: int,
    device: torch.device,
    blank: int = 0,
) -> list[list[int] | None]:
    """Cut points (see :func:`cut_points`) of ``items`` of ``ds`` at speed 1,
    from the model's forced alignment of their transcripts; None for the other
    items and for any the model cannot align. Leaves the model in eval mode."""
    t0 = time.time()
    model.eval()
    cuts: list[list[int] | None] = [None] * len(ds)
    items = list(items)
    lengths = [ds.raw_features(i).shape[0] for i in items]
    for idx in FrameBudgetSampler(lengths, max_frames, shuffle=False):
        chosen = [items[k] for k in idx]
        batch = collate(
            [(ds.normalize(ds.raw_features(i)), torch.tensor(ds.targets[i]), i) for i in chosen]
        )
        lp, out_len = model(batch["feats"].to(device), batch["lengths"].to(device))
        for row, i in enumerate(chosen):
            n_out, n_in = int(out_len[row]), int(batch["lengths"][row])
            try:
                first = forced_align(lp[row, :n_out], ds.targets[i], blank)
            except ValueError:
                continue
            cuts[i] = cut_points(first, n_out, n_in)
    aligned = sum(c is not None for c in cuts)
    log.info("splicing: aligned %d of %d items in %.0f s", aligned, len(items), time.time() - t0)
    return cuts

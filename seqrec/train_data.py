"""A training's data: the train/dev split, features computed up front, and batches."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqrec.config import ExperimentConfig, TrainConfig
from seqrec.data.cache import attach_disk_cache, frontend_spec
from seqrec.data.loader import (
    DistributedFrameBudgetSampler,
    FeatureDataset,
    FrameBudgetSampler,
    ctc_min_frames,
    split_by_speaker,
)
from seqrec.data.manifest import Record, read_manifest
from seqrec.distributed import DistEnv
from seqrec.features.base import Frontend
from seqrec.models.blstm import BiLSTMCTC

log = logging.getLogger("seqrec.train")


def feasible(ds: FeatureDataset, model: BiLSTMCTC, speed: float) -> list[int]:
    """Indices whose transcript is non-empty and fits CTC at the given speed.

    The input length at ``speed`` is read from the cache, or estimated from the
    unperturbed length when that speed is computed on the fly.
    """
    keep = []
    for i, tgt in enumerate(ds.targets):
        cached = ds.cached_length(i, speed)
        t = cached if cached is not None else int(ds.length(i) / speed)
        t_out = int(model.output_lengths(torch.tensor([t]))[0])
        if tgt and ctc_min_frames(tgt) <= t_out:
            keep.append(i)
    return keep


def load_split(cfg: ExperimentConfig) -> tuple[list[Record], list[Record]]:
    return read_split(cfg.data.train, cfg.data.dev, cfg.data.dev_speakers, cfg.train.seed)


def read_split(
    train_manifest: str | Path, dev_manifest: str | Path, dev_speakers: int, seed: int
) -> tuple[list[Record], list[Record]]:
    """``(train, dev)``: a dev manifest beside train, or speakers cut from train."""
    train = read_manifest(train_manifest)
    if dev_manifest:
        return train, read_manifest(dev_manifest)
    return split_by_speaker(train, dev_speakers, seed)


def held_out_split(
    payload: dict[str, Any],
    train_manifest: str | Path,
    dev_manifest: str | Path | None = None,
    dev_speakers: int | None = None,
    seed: int | None = None,
) -> tuple[list[Record], list[Record]]:
    """``(rest of train, dev)``: the dev data a trained model's selection used.

    ``dev_manifest`` given: all of train and that manifest. Otherwise the
    speakers (or writers) cut from ``train_manifest`` with the model file's own
    ``data.dev_speakers`` and ``train.seed``, or the ones given. Raises
    ``ValueError`` when the model was selected on a separate dev manifest that
    is not given, when it trained with no dev split and none is given, or when
    the dev set is empty.
    """
    trained = json.loads(payload.get("experiment", "{}"))
    data, tc = trained.get("data", {}), trained.get("train", {})
    if not dev_manifest and data.get("dev") and dev_speakers is None:
        raise ValueError(f"the model was selected on {data['dev']}: pass that dev manifest")
    speakers = dev_speakers if dev_speakers is not None else data.get("dev_speakers")
    if not dev_manifest and not speakers:
        raise ValueError(
            "the model trained with no dev split: pass the number of dev speakers or a dev manifest"
        )
    seed = seed if seed is not None else tc.get("seed", 0)
    rest, dev = read_split(train_manifest, dev_manifest or "", speakers or 0, seed)
    if not dev:
        raise ValueError("the dev set is empty")
    return rest, dev


def prepare_features(
    train_ds: FeatureDataset,
    dev_ds: FeatureDataset,
    tc: TrainConfig,
    frontend: Frontend,
    build: bool = True,
) -> None:
    """Compute every feature the run needs up front, in memory or in ``tc.feature_cache``.

    ``build`` False waits for another process to write the disk cache.
    """
    t0 = time.time()
    image_augmented = train_ds.augment is not None
    if tc.feature_cache:
        spec = frontend_spec(frontend)
        if image_augmented:
            log.info("train.feature_cache: not used for training items (augmented afresh)")
        else:
            attach_disk_cache(train_ds, tc.feature_cache, "train", spec, tc.speeds, build)
        attach_disk_cache(dev_ds, tc.feature_cache, "dev", spec, (1.0,), build)
    # Image-augmented items are made afresh each time: speed 1 serves lengths and statistics.
    wanted = (1.0,) if image_augmented else tc.speeds
    speeds = [s for s in wanted if s not in train_ds.stores]
    items = range(len(train_ds)) if speeds else range(0)
    for i in tqdm(items, desc="features", leave=False, mininterval=5, disable=None):
        for s in speeds:
            train_ds.raw_features(i, s)
    for i in range(len(dev_ds)):
        dev_ds.raw_features(i)
    log.info(
        "features for %d train / %d dev items in %.0f s",
        len(train_ds),
        len(dev_ds),
        time.time() - t0,
    )


def frame_sampler(lengths: Sequence[int], tc: TrainConfig, env: DistEnv) -> FrameBudgetSampler:
    """Frame-budget batches; under torchrun, this rank's share of them."""
    if env.enabled:
        return DistributedFrameBudgetSampler(
            lengths, tc.max_frames, env.rank, env.world_size, seed=tc.seed
        )
    return FrameBudgetSampler(lengths, tc.max_frames, seed=tc.seed)


class Featurize:
    """``(record, speed[, rng]) -> raw (T, F)`` through a frontend; picklable for workers.

    With an image augmentation config, every call with an ``rng`` distorts the image first.
    """

    def __init__(self, frontend: Frontend, image_augment: Any = None) -> None:
        self.frontend = frontend
        self.image_augment = image_augment

    def __call__(self, rec: Record, speed: float, rng: random.Random | None = None) -> torch.Tensor:
        if self.image_augment is None:
            return self.frontend.raw(rec.path, speed)
        return self.frontend.raw(rec.path, speed, augment=self.image_augment, rng=rng)

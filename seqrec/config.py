"""Experiment configuration: one TOML file with data, features, model and train sections."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from seqrec.data.loader import SpecAugmentConfig
from seqrec.distributed import AMP_MODES
from seqrec.features.augment import ImageAugmentConfig


@dataclass(frozen=True)
class DataConfig:
    """Manifests and label unit. ``dev`` empty: hold out ``dev_speakers`` from ``train``.

    ``dev_speakers = 0`` (and no ``dev``) trains on every record with no model
    selection: ``best.pt`` is the last epoch's model, or the average of the last
    epochs with ``train.average_last``. Tune a recipe with a dev set first.
    """

    train: str
    dev: str = ""
    dev_speakers: int = 8
    unit: str = "char"
    modality: str = "audio"

    def __post_init__(self) -> None:
        if self.dev_speakers < 0:
            raise ValueError(f"data.dev_speakers must be 0 or more, got {self.dev_speakers}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    ``max_frames`` bounds input frames per padded batch. The learning rate follows
    a one-cycle schedule: from ``lr / lr_start_divisor`` up to ``lr`` over the
    first ``warmup_fraction`` of the steps, then a cosine decay towards zero.
    The first ``sortagrad_epochs`` epochs visit batches from short to long
    (SortaGrad), which gets CTC out of its initial all-blank plateau sooner.
    ``init_from`` names a model file to fine-tune: its vocabulary, frontend
    (with normalisation statistics) and model shape are kept; ``[features]``
    and ``[model]`` settings other than ``dropout`` are then ignored.
    ``image_augment`` distorts training line images (affine, elastic, stroke
    width, noise, contrast), freshly at every epoch; evaluation never augments.
    ``max_minutes`` caps the wall-clock time of the epoch loop (training steps and
    dev evaluations): the schedule then runs on whichever of step count and time
    is further along, so the learning rate has decayed when time is up, and
    ``epochs`` becomes an upper bound.
    ``workers`` > 0 builds training batches (features, augmentation, padding) in
    that many background processes; 0 builds them in the training process.
    ``feature_cache`` names a folder where features are stored once as
    memory-mapped arrays and reused by later epochs and runs (see
    :mod:`seqrec.data.cache`). ``amp`` (``none``, ``bf16``, ``fp16``) runs the
    forward pass in that precision: both on CUDA, ``bf16`` alone on CPU.
    ``inter_ctc_layers`` (1-based BiLSTM layers below the top one) adds
    intermediate CTC losses: the shared output layer reads those layers too and
    their mean CTC loss gets weight ``inter_ctc_weight``, the top layer's the
    rest. It regularises the lower layers and leaves the model file unchanged.
    ``average_last`` > 1 averages the weights of the last that many epochs when
    training ends; the average replaces ``best.pt`` when its dev error is lower,
    or always with ``keep_average`` (for dev sets of a few speakers, whose best
    single epoch is often chance). The epochs' weights wait in ``epochs/`` beside
    the model, so a resumed run averages them too; ``keep_epochs`` keeps every
    epoch's file there instead of the last ``average_last``.
    ``tune_blank_shift`` then tries blank shifts of 0 to 4 on dev (see
    ``ModelConfig.blank_shift``) and stores the best in ``best.pt``.
    ``entropy_weight`` > 0 subtracts that weight times the mean per-frame
    entropy of the output distribution from the loss, a confidence penalty
    against over-confident, peaky CTC posteriors.
    ``weight_noise`` > 0 adds Gaussian noise of that standard deviation to the
    BiLSTM weight matrices at every training step (a fresh draw each step; the
    update applies to the clean weights), from the epoch that starts once
    ``weight_noise_start`` (a fraction, 0 to 1) of the schedule has passed:
    a regulariser of the recurrence itself, which dropout leaves alone.
    ``speaker_adversary`` > 0 trains a frame-level speaker classifier on BiLSTM
    layer ``speaker_adversary_layer`` (1-based) and sends its gradient to that
    layer and the ones below reversed and scaled by up to this weight (rising
    from 0 over the schedule), so that they learn features that hide the
    speaker (see :mod:`seqrec.adversary`); training only. With
    ``speaker_adversary_pool`` the classifier reads each item's mean frame instead;
    with ``speaker_adversary_confuse`` the layers below minimise a bounded
    confusion loss (the frozen classifier's output against uniform) instead of
    receiving the reversed gradient.
    ``splice_prob`` > 0 replaces that fraction of training items by spliced
    ones (runs of ``splice_labels`` labels cut from the same speaker's
    utterances and joined, see :mod:`seqrec.data.splice`), from the epoch that
    starts once ``splice_start`` of the schedule has passed, when the model
    aligns the training set to find the cut points.
    """

    out_dir: str = "exp/model"
    epochs: int = 30
    max_frames: int = 20000
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.15
    lr_start_divisor: float = 10.0
    sortagrad_epochs: int = 1
    grad_clip: float = 5.0
    seed: int = 0
    threads: int = 0
    speeds: tuple[float, ...] = (1.0,)
    spec_augment: SpecAugmentConfig | None = None
    image_augment: ImageAugmentConfig | None = None
    device: str = "cpu"
    resume: bool = True
    init_from: str = ""
    log_every: int = 0
    max_minutes: float = 0.0
    workers: int = 0
    feature_cache: str = ""
    amp: str = "none"
    inter_ctc_layers: tuple[int, ...] = ()
    inter_ctc_weight: float = 0.3
    average_last: int = 0
    keep_average: bool = False
    keep_epochs: bool = False
    tune_blank_shift: bool = False
    entropy_weight: float = 0.0
    weight_noise: float = 0.0
    weight_noise_start: float = 0.0
    speaker_adversary: float = 0.0
    speaker_adversary_layer: int = 2
    speaker_adversary_pool: bool = False
    speaker_adversary_confuse: bool = False
    splice_prob: float = 0.0
    splice_start: float = 0.25
    splice_labels: tuple[int, int] = (2, 8)

    def __post_init__(self) -> None:
        for name in ("weight_noise_start", "inter_ctc_weight", "splice_start"):
            fraction = getattr(self, name)
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"train.{name} must be in [0, 1), got {fraction}")
        for name in ("entropy_weight", "speaker_adversary", "weight_noise"):
            weight = getattr(self, name)
            if not (math.isfinite(weight) and weight >= 0.0):
                raise ValueError(f"train.{name} must be >= 0, got {weight}")
        if not 0.0 <= self.splice_prob <= 1.0:
            raise ValueError(f"train.splice_prob must be in [0, 1], got {self.splice_prob}")
        lo, hi = self.splice_labels
        if not 1 <= lo <= hi:
            raise ValueError(f"train.splice_labels must be [min, max], 1 <= min <= max: {[lo, hi]}")
        if self.average_last < 0:
            raise ValueError(f"train.average_last must be 0 or more, got {self.average_last}")
        if self.keep_epochs and self.average_last < 2:
            raise ValueError("train.keep_epochs needs train.average_last of 2 or more")
        if self.keep_average and self.average_last < 2:
            raise ValueError(
                f"train.keep_average needs train.average_last of 2 or more, got {self.average_last}"
            )
        if self.amp not in AMP_MODES:
            raise ValueError(f"train.amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.workers < 0:
            raise ValueError(f"train.workers must be 0 or more, got {self.workers}")


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    features: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)


def _build(cls, d: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "train.epochs", 3)`` sets ``d["train"]["epochs"] = 3``."""
    *path, last = key.split(".")
    for p in path:
        d = d.setdefault(p, {})
    d[last] = value


def experiment_from_dict(raw: dict[str, Any], base: Path | None = None) -> ExperimentConfig:
    """Build a config; relative manifest and output paths are taken against ``base``."""
    raw = {k: dict(v) for k, v in raw.items()}
    unknown = set(raw) - {"data", "train", "features", "model"}
    if unknown:
        raise ValueError(f"config: unknown sections {sorted(unknown)}")
    data = dict(raw.get("data", {}))
    train = dict(raw.get("train", {}))
    if base is not None:
        for key in ("train", "dev"):
            if data.get(key) and not os.path.isabs(data[key]):
                data[key] = str(base / data[key])
        for key in ("out_dir", "feature_cache"):
            if train.get(key) and not os.path.isabs(train[key]):
                train[key] = str(base / train[key])
    if "speeds" in train:
        train["speeds"] = tuple(float(s) for s in train["speeds"])
    if "inter_ctc_layers" in train:
        train["inter_ctc_layers"] = tuple(int(k) for k in train["inter_ctc_layers"])
    if "splice_labels" in train:
        labels = train["splice_labels"]
        if not isinstance(labels, (list, tuple)) or len(labels) != 2:
            raise ValueError(f"train.splice_labels must be [min, max], got {labels!r}")
        train["splice_labels"] = (int(labels[0]), int(labels[1]))
    if isinstance(train.get("image_augment"), dict):
        train["image_augment"] = _build(
            ImageAugmentConfig, train["image_augment"], "train.image_augment"
        )
    if isinstance(train.get("spec_augment"), dict):
        train["spec_augment"] = _build(
            SpecAugmentConfig, train["spec_augment"], "train.spec_augment"
        )
    return ExperimentConfig(
        data=_build(DataConfig, data, "data"),
        train=_build(TrainConfig, train, "train"),
        features=raw.get("features", {}),
        model=raw.get("model", {}),
    )


def load_experiment(
    path: str | os.PathLike, overrides: dict[str, Any] | None = None, base: Path | None = None
) -> ExperimentConfig:
    """Read a TOML config; ``overrides`` maps dotted keys to values."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    for k, v in (overrides or {}).items():
        set_dotted(raw, k, v)
    return experiment_from_dict(raw, base if base is not None else Path.cwd())

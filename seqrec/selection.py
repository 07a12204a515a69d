"""Choosing the model a training keeps: dev decoding and scoring, the average of
the last epochs' weights, and the blank shift tuned on dev."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seqrec.checkpoint import load_checkpoint, save_checkpoint
from seqrec.config import TrainConfig
from seqrec.data.loader import FeatureDataset, FrameBudgetSampler, collate
from seqrec.metrics import METRICS, UNIT_METRICS
from seqrec.models.blstm import BiLSTMCTC
from seqrec.recognizer import Recognizer
from seqrec.vocab import Vocabulary

log = logging.getLogger("seqrec.train")


def decode_dataset(
    model: BiLSTMCTC, ds: FeatureDataset, max_frames: int, device: torch.device
) -> list[list[int]]:
    """Greedy id sequences for every item of ``ds`` (in dataset order)."""
    from seqrec.decoders.greedy import greedy_decode

    model.eval()
    lengths = [ds.raw_features(i).shape[0] for i in range(len(ds))]
    sampler = FrameBudgetSampler(lengths, max_frames, shuffle=False)
    hyps: list[list[int]] = [[] for _ in range(len(ds))]
    with torch.inference_mode():
        for idx in sampler:
            b = collate([ds[i] for i in idx])
            lp, ol = model(b["feats"].to(device), b["lengths"].to(device))
            for i, h in zip(idx, greedy_decode(lp, ol)[0], strict=True):
                hyps[i] = h
    return hyps


def score(vocab: Vocabulary, refs: Sequence[str], hyps: Sequence[list[int]]) -> dict[str, float]:
    texts = [vocab.decode(h) for h in hyps]
    return {m: METRICS[m](refs, texts) for m in UNIT_METRICS[vocab.unit]}


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of model states; integer entries (batch-norm counters) from the last."""
    avg = {}
    for k, v in states[-1].items():
        if v.is_floating_point():
            avg[k] = torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype)
        else:
            avg[k] = v.clone()
    return avg


class EpochSnapshots:
    """Each epoch's weights in ``folder/NNNN.pt``, for the average of the last
    epochs. On disk rather than in memory, so that a run resumed near its end
    still averages the epochs it trained before the interruption. Only the last
    ``window`` files are kept, unless ``keep_all``."""

    def __init__(self, folder: Path, window: int, keep_all: bool = False) -> None:
        self.folder, self.window, self.keep_all = folder, window, keep_all

    def path(self, epoch: int) -> Path:
        return self.folder / f"{epoch:04d}.pt"

    def on_disk(self) -> dict[int, Path]:
        """Every snapshot file in the folder by epoch, in epoch order."""
        found = {int(f.stem): f for f in self.folder.glob("[0-9]*.pt") if f.stem.isdigit()}
        return dict(sorted(found.items()))

    def clear(self) -> None:
        """Forget the snapshots of an earlier run in the same folder."""
        for f in self.on_disk().values():
            f.unlink()

    def save(self, epoch: int, state: dict[str, torch.Tensor]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        cpu = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        save_checkpoint(self.path(epoch), {"epoch": epoch, "state_dict": cpu})
        old = self.path(epoch - self.window)
        if not self.keep_all and old.exists():
            old.unlink()

    def last(self, epoch: int) -> list[dict[str, torch.Tensor]]:
        """The states of epochs ``epoch - window + 1 .. epoch`` that are on disk, oldest first."""
        first = max(1, epoch - self.window + 1)
        found = [self.path(e) for e in range(first, epoch + 1) if self.path(e).exists()]
        return [load_checkpoint(f)["state_dict"] for f in found]


def save_average(
    states: list[dict[str, torch.Tensor]],
    recognizer: Recognizer,
    dev_ds: FeatureDataset,
    dev_refs: list[str],
    tc: TrainConfig,
    device: torch.device,
    best: float,
    out: Path,
    meta: dict[str, Any],
) -> None:
    """Average the last epochs' ``states`` into ``averaged.pt``, which becomes
    ``best.pt`` if its dev error is below ``best`` (always, with
    ``tc.keep_average`` or without a dev set).
    ``meta`` goes into the model file; its ``epoch`` is the number of the epoch
    the last state is from."""
    avg = copy.deepcopy(recognizer.model)
    avg.load_state_dict(average_states(states))
    averaged = Recognizer(recognizer.frontend, avg, recognizer.vocab)
    last = meta["epoch"]
    span = f"{last - len(states) + 1}-{last}"
    meta = {**meta, "averaged_epochs": span}
    if not dev_refs:
        averaged.save(out / "averaged.pt", **meta)
        averaged.save(out / "best.pt", **meta)
        log.info("average of epochs %s (no dev set): it becomes best.pt", span)
        return
    metric = UNIT_METRICS[averaged.vocab.unit][0]
    err = score(averaged.vocab, dev_refs, decode_dataset(avg, dev_ds, tc.max_frames, device))
    meta["dev_error"] = err[metric]
    averaged.save(out / "averaged.pt", **meta)
    keep = tc.keep_average or err[metric] < best
    log.info(
        "average of epochs %s: dev %s %.2f%% (best single epoch %.2f%%)%s",
        span,
        metric,
        100 * err[metric],
        100 * best,
        ("; it becomes best.pt" + (" (train.keep_average)" if tc.keep_average else ""))
        if keep
        else "",
    )
    if keep:
        averaged.save(out / "best.pt", **meta)


def tune_blank_shift(
    path: Path, dev_ds: FeatureDataset, dev_refs: list[str], tc: TrainConfig, device: torch.device
) -> None:
    """Store in ``path`` the blank shift with the lowest greedy dev error (0: none),
    with the dev error of every shift tried. The sweep always starts from the
    unshifted model, so a resumed run that tunes again gets the same result."""
    from seqrec.decoders.greedy import blank_shift_errors

    payload = load_checkpoint(path)
    rec = unshifted_recognizer(payload)
    rec.model.to(device)
    feats = [dev_ds[i][0] for i in range(len(dev_ds))]  # normalised, unaugmented
    lps = rec.log_probs_each(feats, tc.max_frames, device)
    errors = blank_shift_errors(lps, dev_refs, rec.vocab)
    shift = store_blank_shift(payload, errors)
    table = ", ".join(f"{s:g}: {100 * e:.2f}%" for s, e in errors.items())
    log.info("blank shift on dev: %s; best %g", table, shift)
    save_checkpoint(path, payload)


def unshifted_recognizer(payload: dict[str, Any]) -> Recognizer:
    """The recogniser of a model file's ``payload`` without its blank shift."""
    return Recognizer.from_payload(
        {**payload, "model_config": {**payload["model_config"], "blank_shift": 0.0}}
    )


def store_blank_shift(payload: dict[str, Any], errors: dict[float, float]) -> float:
    """Put the best shift of a dev sweep into a model file's ``payload`` and return it:
    ``dev_error`` becomes the shifted model's, ``dev_error_unshifted`` keeps the
    plain one, ``blank_shift_dev_errors`` holds every shift's."""
    from seqrec.decoders.greedy import best_blank_shift

    shift = best_blank_shift(errors)
    payload["model_config"] = {**payload["model_config"], "blank_shift": shift}
    payload["blank_shift_dev_errors"] = {f"{s:g}": e for s, e in errors.items()}
    payload["dev_error"] = errors[shift]
    payload["dev_error_unshifted"] = errors[0.0]
    return shift

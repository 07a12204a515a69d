"""Training and evaluation loops over (model, loader, optimiser)."""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqrec.adversary import SpeakerAdversary, ramp
from seqrec.checkpoint import load_checkpoint, save_checkpoint
from seqrec.config import ExperimentConfig
from seqrec.data.loader import FeatureDataset, batch_stream
from seqrec.data.splice import SplicePool, align_dataset
from seqrec.distributed import Runtime
from seqrec.features.base import Frontend
from seqrec.features.frontend import build_frontend, frontend_from_dict
from seqrec.io import atomic_write_text
from seqrec.losses import WeightNoise, batch_loss
from seqrec.metrics import UNIT_METRICS
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.plots import plot_curves
from seqrec.recognizer import Recognizer
from seqrec.schedule import OneCycle
from seqrec.selection import (
    EpochSnapshots,
    decode_dataset,
    save_average,
    score,
    tune_blank_shift,
)
from seqrec.train_data import (
    Featurize,
    feasible,
    frame_sampler,
    load_split,
    prepare_features,
)
from seqrec.vocab import BLANK_ID, Vocabulary

log = logging.getLogger("seqrec.train")


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def train_epoch(
    model: BiLSTMCTC,
    ds: FeatureDataset,
    batches: Sequence[list[int]],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    ctc: torch.nn.CTCLoss,
    grad_clip: float,
    device: torch.device,
    desc: str = "",
    stop: Callable[[], bool] | None = None,
    runtime: Runtime | None = None,
    workers: int = 0,
    inter_layers: Sequence[int] = (),
    inter_weight: float = 0.0,
    entropy_weight: float = 0.0,
    weight_noise: float = 0.0,
    adversary: SpeakerAdversary | None = None,
) -> tuple[float, int, int]:
    """One pass over ``batches`` (lists of dataset indices), ending early once ``stop()``.

    A batch whose loss or gradient is not finite is skipped (and logged) rather
    than allowed to corrupt the weights. ``runtime`` sets precision and the
    agreement between ranks (default: plain ``device``); ``workers`` > 0 builds
    batches in that many processes (see :func:`batch_stream`). ``inter_layers``
    adds intermediate CTC: the loss is ``(1 - inter_weight)`` times the final
    layer's plus ``inter_weight`` times the mean over those layers' (see
    :meth:`BiLSTMCTC.forward`). ``entropy_weight`` > 0 subtracts that weight
    times the mean entropy of the top layer's output distribution over the
    valid frames (a confidence penalty, see :func:`seqrec.losses.frame_entropy`).
    ``weight_noise`` > 0 adds Gaussian noise of that standard deviation to the
    recurrent layers' weight matrices for each step's forward and backward
    pass; the step itself updates the clean weights (see
    :class:`~seqrec.losses.WeightNoise`). ``adversary`` adds its speaker
    classifier's loss on the layer it reads, with the gradient reaching the
    model reversed (see :mod:`seqrec.adversary`). Returns (sum of per-item losses, items
    used, steps skipped); the loss reported is the final layer's alone,
    comparable across settings.
    """
    rt = runtime if runtime is not None else Runtime(device)
    model.train()
    loss_sum, n, skipped = 0.0, 0, 0
    pin = rt.device.type == "cuda"
    stream = batch_stream(ds, batches, workers, pin_memory=pin)
    bar = tqdm(stream, total=len(batches), desc=desc, leave=False, mininterval=10, disable=None)
    step_loss = functools.partial(
        batch_loss,
        ctc=ctc,
        rt=rt,
        inter_layers=inter_layers,
        inter_weight=inter_weight,
        entropy_weight=entropy_weight,
        adversary=adversary,
    )
    noise = WeightNoise(model, weight_noise) if weight_noise > 0 else None
    try:
        for b in bar:
            b = rt.to_device(b)
            if noise is not None:
                noise.add()
            loss, final = step_loss(model, b)
            opt.zero_grad(set_to_none=True)
            restore = noise.remove if noise is not None else None
            stepped = rt.backward_step(
                loss,
                opt,
                model.parameters(),
                grad_clip,
                restore,
                unclipped=adversary.parameters() if adversary is not None else (),
            )
            if noise is not None:
                noise.remove()  # a no-op when the step already did it
            if not stepped:
                skipped += 1
                # Loss scaling overflows now and then by design: the scale is lowered.
                routine = rt.scaler.is_enabled() and bool(torch.isfinite(loss))
                log.log(
                    logging.DEBUG if routine else logging.WARNING,
                    "non-finite loss or gradient; step skipped (items %s)",
                    [ds.records[i].id for i in b["index"].tolist()][:5],
                )
            else:
                k = len(b["index"])
                loss_sum += final.item() * k
                n += k
                bar.set_postfix(loss=f"{loss_sum / max(n, 1):.3f}")
            rt.tick()  # one clock for all ranks, so the time-based schedule and stop agree
            sched.step()
            if stop is not None and stop():
                break
    finally:
        if noise is not None:
            noise.remove()  # an interrupted step never leaves noisy weights behind
    return loss_sum, n, skipped


@dataclass
class _Start:
    """What a run starts from: nothing, its own ``last.pt`` (resume) or another model file."""

    vocab: Vocabulary
    frontend: Frontend
    model_config: ModelConfig | None = None  # None: a new model, shaped once features exist
    state_dict: dict[str, torch.Tensor] | None = None
    resume: dict[str, Any] | None = None  # the ``last.pt`` payload when resuming


def _starting_point(cfg: ExperimentConfig, out: Path, texts: Sequence[str]) -> _Start:
    """The vocabulary, frontend and (when continuing) model shape and weights of a run.

    A fresh run builds its vocabulary from ``texts``; ``train.resume`` with an
    existing ``last.pt`` and ``train.init_from`` take it from that model file.
    """
    tc = cfg.train
    resume = None
    if tc.resume and (out / "last.pt").exists():
        source: str | Path = out / "last.pt"
        base = resume = load_checkpoint(source)
    elif tc.init_from:
        source = tc.init_from
        base = load_checkpoint(source)
        log.info("initialising from %s (its vocabulary, frontend and model shape)", tc.init_from)
    else:
        if "blank_shift" in cfg.model:
            raise ValueError(
                "model.blank_shift is set after training from dev (train.tune_blank_shift), "
                "not trained through"
            )
        return _Start(
            Vocabulary.from_transcripts(texts, cfg.data.unit),
            build_frontend(cfg.data.modality, cfg.features),
        )
    mcfg = ModelConfig.from_dict(base["model_config"], source)
    if mcfg.blank_shift:
        # Training is always unshifted; train.tune_blank_shift sets it again at the end.
        log.info("%s: its blank shift %g is not trained through", source, mcfg.blank_shift)
        mcfg = replace(mcfg, blank_shift=0.0)
    if resume is None and "dropout" in cfg.model:
        mcfg = replace(mcfg, dropout=cfg.model["dropout"])
    return _Start(
        Vocabulary.from_dict(base["vocab"]),
        frontend_from_dict(base["frontend"]),
        mcfg,
        base["state_dict"],
        resume,
    )


def _build_model(cfg: ExperimentConfig, start: _Start, train_ds: FeatureDataset) -> BiLSTMCTC:
    """The model a run trains: continued from ``start``, or new and shaped by the
    features (whose statistics a new frontend that needs them fits first)."""
    mcfg = start.model_config
    if mcfg is None:
        frontend = start.frontend
        if frontend.needs_stats:
            frontend.fit_stats(train_ds.raw_features(i) for i in range(len(train_ds)))
        mcfg = ModelConfig(input_dim=frontend.feature_dim, vocab_size=len(start.vocab), **cfg.model)
    model = BiLSTMCTC(mcfg)
    if start.state_dict is not None:
        model.load_state_dict(start.state_dict)
    model.check_taps(cfg.train.inter_ctc_layers, "train.inter_ctc_layers")
    return model


def train(cfg: ExperimentConfig) -> Path:
    """Train a model as configured; returns the path of the best model file.

    Writes into ``cfg.train.out_dir``: ``best.pt`` (best dev error), ``last.pt``
    (resumable state), ``metrics.jsonl`` and ``curves.png``. An existing
    ``last.pt`` is resumed when ``cfg.train.resume``. Launched by ``torchrun``,
    each process trains on its share of the batches (DDP); rank 0 alone logs,
    evaluates and writes files, and the replicas are checked equal at the end.
    """
    tc = cfg.train
    out = Path(tc.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    set_seed(tc.seed)
    rt = Runtime.from_environ(tc.device, tc.amp)
    try:
        best = _train(cfg, rt)
        # All ranks leave together: a rank that shuts gloo down while another is
        # still finishing the last collective can abort (not after an error,
        # where the other ranks may never arrive).
        rt.barrier()
        return best
    finally:
        rt.close()


def _train(cfg: ExperimentConfig, rt: Runtime) -> Path:
    tc = cfg.train
    out = Path(tc.out_dir)
    device = rt.device
    is_main = rt.env.is_main

    train_recs, dev_recs = load_split(cfg)
    # Dev transcripts count too: a symbol seen only in dev must still be encodable.
    start = _starting_point(cfg, out, [r.text for r in train_recs + dev_recs])
    frontend, vocab, resume_payload = start.frontend, start.vocab, start.resume

    featurize = Featurize(frontend)
    augment = None
    if tc.image_augment is not None:
        if frontend.modality != "image":
            raise ValueError("train.image_augment needs an image model (data.modality = 'image')")
        augment = Featurize(frontend, tc.image_augment)

    train_ds = FeatureDataset(
        train_recs,
        featurize,
        vocab,
        frontend.normalize,
        tc.speeds,
        tc.spec_augment,
        seed=tc.seed,
        augment=augment,
    )
    dev_ds = FeatureDataset(dev_recs, featurize, vocab, frontend.normalize)
    prepare_features(train_ds, dev_ds, tc, frontend, build=rt.env.local_rank == 0)

    model = _build_model(cfg, start, train_ds)
    model.to(device)
    net = rt.wrap(model)  # what the training steps call; ``model`` itself is what is saved

    keep = feasible(train_ds, model, max(tc.speeds))
    dropped = len(train_ds) - len(keep)
    if dropped and is_main:
        log.warning(
            "skipping %d training items with an empty transcript or one too long "
            "for CTC at their input length",
            dropped,
        )
    lengths = [train_ds.length(i) for i in range(len(train_ds))]
    sampler = frame_sampler([lengths[i] for i in keep], tc, rt.env)
    steps_per_epoch = len(sampler)
    adversary = None
    if tc.speaker_adversary > 0:
        adversary = SpeakerAdversary.for_model(
            model,
            train_ds.records,
            tc.speaker_adversary_layer,
            pool=tc.speaker_adversary_pool,
            confuse=tc.speaker_adversary_confuse,
        ).to(device)
        if resume_payload is not None and "speaker_adversary" in resume_payload:
            adversary.load_state_dict(resume_payload["speaker_adversary"])
        if rt.env.enabled:
            adversary.share_across_ranks(rt.env.world_size)

    def start_splicing(cuts: list[list[int] | None]) -> None:
        speakers = [r.speaker for r in train_ds.records]
        lo, hi = tc.splice_labels
        train_ds.splice = SplicePool(cuts, speakers, lo, hi, subsample=model.cfg.subsample)
        train_ds.splice_prob = tc.splice_prob

    if resume_payload is not None and resume_payload.get("splice_cuts") is not None:
        start_splicing(resume_payload["splice_cuts"])
    trained = list(model.parameters()) + (list(adversary.parameters()) if adversary else [])
    opt = torch.optim.AdamW(trained, lr=tc.lr, weight_decay=tc.weight_decay)
    cycle = OneCycle(
        total_steps=max(1, tc.epochs * steps_per_epoch),
        warmup_fraction=tc.warmup_fraction,
        start_divisor=tc.lr_start_divisor,
        budget_s=60.0 * tc.max_minutes,
        clock=rt.clock,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cycle.factor(step))
    ctc = torch.nn.CTCLoss(blank=BLANK_ID, reduction="mean", zero_infinity=False)
    dev_refs = [r.text for r in dev_recs]
    metric = UNIT_METRICS[vocab.unit][0]
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, math.inf
    if resume_payload is not None:
        opt.load_state_dict(resume_payload["optimizer"])
        # The schedule is a function of the step count (and time used), so a run
        # resumed with more or fewer epochs simply continues on the new cycle.
        sched.load_state_dict(resume_payload["scheduler"])
        cycle.elapsed_before = resume_payload.get("elapsed_s", 0.0)
        start_epoch = resume_payload["epoch"]
        best = resume_payload["best"]
        history = json.loads(resume_payload["history"])
        train_ds.rng.setstate(_tuplify(resume_payload["data_rng"]))
        torch.set_rng_state(resume_payload["torch_rng"])
        log.info("resumed from %s at epoch %d", out / "last.pt", start_epoch)

    recognizer = Recognizer(frontend, model, vocab)
    extra_meta: dict[str, Any] = {"experiment": json.dumps(_jsonable(asdict(cfg)))}

    def save_last(epoch: int, sched_state: dict[str, Any] | None = None) -> None:
        save_checkpoint(
            out / "last.pt",
            {
                **recognizer.payload(),
                **extra_meta,
                "optimizer": opt.state_dict(),
                "scheduler": sched_state or sched.state_dict(),
                "elapsed_s": cycle.elapsed(),
                "epoch": epoch,
                "best": best,
                "history": json.dumps(history[:epoch]),
                "data_rng": _listify(train_ds.rng.getstate()),
                "torch_rng": torch.get_rng_state(),
                **({"speaker_adversary": adversary.state_dict()} if adversary else {}),
                **({"splice_cuts": train_ds.splice.cuts} if train_ds.splice else {}),
            },
        )

    def end_epoch(epoch: int, loss_sum: float, n: int, skipped: int, train_time: float) -> None:
        """Rank 0: evaluate on dev, log, keep the best model, write last.pt and the curves."""
        nonlocal best, finished, finished_sched
        scores = {}
        if dev_refs:
            scores = score(vocab, dev_refs, decode_dataset(model, dev_ds, tc.max_frames, device))
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(n, 1),
            **{f"dev_{k}": v for k, v in scores.items()},
            "lr": sched.get_last_lr()[0],
            "epoch_seconds": train_time,
            "skipped_steps": skipped,
        }
        if adversary is not None:
            adv_loss, adv_acc = adversary.take_stats()
            row.update(speaker_loss=adv_loss, speaker_accuracy=adv_acc, reversal=adversary.scale)
        history.append(row)
        dev_note = f" dev {metric} {100 * scores[metric]:.2f}%" if scores else ""
        log.info(
            "epoch %d loss %.3f%s (%.0f s)", epoch + 1, row["train_loss"], dev_note, train_time
        )
        if adversary is not None:
            log.info(
                "speaker adversary: loss %.3f, %.1f%% right, reversal %.3f",
                row["speaker_loss"],
                100 * row["speaker_accuracy"],
                row["reversal"],
            )
        if scores and scores[metric] < best:
            best = scores[metric]
            recognizer.save(out / "best.pt", **extra_meta, epoch=epoch + 1, dev_error=best)
        if snapshots is not None:
            snapshots.save(epoch + 1, model.state_dict())
        save_last(epoch + 1)
        finished, finished_sched = epoch + 1, copy.deepcopy(sched.state_dict())
        atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        plot_curves(history, out / "curves.png", metric)

    snapshots = None
    if tc.average_last > 1:
        snapshots = EpochSnapshots(out / "epochs", tc.average_last, keep_all=tc.keep_epochs)
        if is_main and resume_payload is None:
            snapshots.clear()

    noise_from: int | None = None

    def weight_noise(epoch: int) -> float:
        """``train.weight_noise`` once the schedule is ``weight_noise_start`` of the way through."""
        nonlocal noise_from
        if tc.weight_noise <= 0 or cycle.progress(sched.last_epoch) < tc.weight_noise_start:
            return 0.0
        if noise_from is None:
            noise_from = epoch + 1
            if is_main:
                log.info("weight noise %g on from epoch %d", tc.weight_noise, noise_from)
        return tc.weight_noise

    epoch = start_epoch
    rt.tick()
    cycle.start_clock()
    finished, finished_sched = start_epoch, copy.deepcopy(sched.state_dict())
    try:
        for epoch in range(start_epoch, tc.epochs):
            sampler.set_epoch(epoch)
            sampler.shuffle = epoch >= tc.sortagrad_epochs
            t0 = time.time()
            batches = [[keep[i] for i in b] for b in sampler]
            if adversary is not None:
                adversary.scale = tc.speaker_adversary * ramp(cycle.progress(sched.last_epoch))
            if (
                tc.splice_prob > 0
                and train_ds.splice is None
                and cycle.progress(sched.last_epoch) >= tc.splice_start
            ):
                # Every rank aligns with its identical replica: no cut points to share.
                start_splicing(align_dataset(model, train_ds, keep, tc.max_frames, device))
                if is_main:
                    log.info("splicing %g of the items from epoch %d", tc.splice_prob, epoch + 1)
            loss_sum, n, skipped = train_epoch(
                net,
                train_ds,
                batches,
                opt,
                sched,
                ctc,
                tc.grad_clip,
                device,
                f"epoch {epoch + 1}",
                stop=lambda: cycle.done(sched.last_epoch),
                runtime=rt,
                workers=tc.workers,
                inter_layers=tc.inter_ctc_layers,
                inter_weight=tc.inter_ctc_weight,
                entropy_weight=tc.entropy_weight,
                weight_noise=weight_noise(epoch),
                adversary=adversary,
            )
            train_time = time.time() - t0
            loss_sum, n, skipped = rt.all_sum(loss_sum, n, skipped)  # over all ranks
            if is_main:
                end_epoch(epoch, loss_sum, int(n), int(skipped), train_time)
            rt.tick()  # the other ranks wait here for rank 0's evaluation and checkpoint
            if cycle.done(sched.last_epoch):
                if epoch + 1 < tc.epochs:
                    log.info("time budget used up after epoch %d", epoch + 1)
                break
    except KeyboardInterrupt:
        log.warning("interrupted: saving %s (resume by running the same command)", out / "last.pt")
        # Keep the weights learnt so far but count finished epochs only: the resumed
        # run repeats the interrupted epoch, on the schedule as it was at its start.
        if is_main:
            save_last(finished, finished_sched)
        raise
    recent = snapshots.last(finished) if snapshots is not None and is_main else []
    if is_main and len(recent) > 1:
        # With a dev set, best.pt exists once an epoch has run; without one, the average is it.
        meta = {**extra_meta, "epoch": finished}
        save_average(recent, recognizer, dev_ds, dev_refs, tc, device, best, out, meta)
    elif is_main and (not dev_refs or not (out / "best.pt").exists()):
        # Without a dev set the model to use is simply the last one.
        meta = {"dev_error": best} if dev_refs else {}
        recognizer.save(out / "best.pt", **extra_meta, epoch=epoch + 1, **meta)
    if is_main and dev_refs and tc.tune_blank_shift:
        # One dev pass and a sweep of cheap comparisons; other ranks wait below.
        tune_blank_shift(out / "best.pt", dev_ds, dev_refs, tc, device)
    if rt.env.enabled:
        digest = rt.check_replicas(model)
        log.info("weights identical on all %d ranks (sha256 %s)", rt.env.world_size, digest[:16])
        if adversary is not None:
            digest = rt.check_replicas(adversary)
            log.info("speaker classifier identical on all ranks (sha256 %s)", digest[:16])
    return out / "best.pt"


def _listify(x: Any) -> Any:
    return [_listify(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x

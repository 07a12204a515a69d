"""Where and how training steps run: device, process group (torchrun) and mixed precision.

One :class:`Runtime` per training process. Run alone, it is a plain device;
launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``)
it joins the process group, with ``nccl`` on CUDA and ``gloo`` on CPU, and
the model is wrapped in ``DistributedDataParallel``. Everything that must be
the same on every rank (skip a step, stop on the time budget) goes through
:meth:`Runtime.all_true` / :meth:`Runtime.tick`, so ranks never disagree and
hang in a collective.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger("seqrec.train")

AMP_MODES = ("none", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DistEnv:
    """This process's place among the training processes (one, unless launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @classmethod
    def from_environ(cls) -> DistEnv:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as set by torchrun."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as e:
            raise ValueError(f"bad RANK/WORLD_SIZE/LOCAL_RANK in the environment: {e}") from None
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RANK {rank} is outside WORLD_SIZE {world}")
        return cls(rank, world, local)


def _cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (torch's query, else the kernel's CPU flags)."""
    init_amx = getattr(getattr(torch._C, "_cpu", None), "_init_amx", None)
    if init_amx is not None:
        try:
            return bool(init_amx())
        except RuntimeError:
            return False
    try:  # a torch without the AMX query: the kernel's CPU flags (Linux)
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


def _bf16_probe_seconds(reps: int = 3) -> tuple[float, float]:
    """Best seconds of ``reps`` forward + backward passes of a small conv + LSTM
    (the speech recipe's shapes, 16 utterances of 2 s) in float32 and in
    bfloat16 autocast, after one warm-up pass each. Torch's random state is
    left as it was."""
    best = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv1 = torch.nn.Conv2d(1, 32, 3, stride=2, padding=1)
        conv2 = torch.nn.Conv2d(32, 32, 3, padding=1)
        lstm = torch.nn.LSTM(32 * 40, 256, batch_first=True)
        x = torch.randn(16, 1, 200, 80)
        for dtype in (torch.float32, torch.bfloat16):
            times = []
            for _ in range(reps + 1):
                t0 = time.perf_counter()
                with torch.autocast("cpu", torch.bfloat16, enabled=dtype is torch.bfloat16):
                    h = conv2(torch.relu(conv1(x)))[:, :, ::2]  # (16, 32, 50, 40)
                    y = lstm(h.permute(0, 2, 1, 3).reshape(16, 50, -1))[0]
                y.float().sum().backward()
                times.append(time.perf_counter() - t0)
            best[dtype] = min(times[1:])
    return best[torch.float32], best[torch.bfloat16]


@functools.cache
def _cpu_has_fast_bf16() -> bool:
    """Whether bfloat16 autocast speeds up training on this CPU.

    Yes with AMX tiles. Otherwise a short timing decides (about half a second,
    once per process): with AVX-512 BF16 alone the answer has gone both ways. A
    speech recipe step (``tools/bench_step.py``, 20 x 400 frames, 2 threads)
    took 0.85 s in bfloat16 against 0.68 s in float32 on one 2-core AVX-512
    BF16 CPU without AMX, and 0.45 s against 0.68 s on another (an AMD EPYC);
    on a CPU with AMX 0.52 s against 0.75 s. bfloat16 is used when the probe
    runs at most 0.85 times as long as float32.
    """
    if _cpu_has_amx():
        return True
    fp32, bf16 = _bf16_probe_seconds()
    fast = bf16 <= 0.85 * fp32
    log.info(
        "bf16 probe: %.3f s float32, %.3f s bfloat16: %s",
        fp32,
        bf16,
        "bfloat16 autocast" if fast else "float32",
    )
    return fast


class Runtime:
    """Device, process group and precision of one training process.

    ``device`` is ``cpu`` or ``cuda`` (under torchrun each process takes
    ``cuda:LOCAL_RANK``). ``amp`` is ``none``, ``bf16`` or ``fp16``: the forward
    pass runs under autocast in that type, and the CTC loss is always computed
    in float32. On CUDA both use a gradient scaler: autocast's wrapper for the
    cuDNN LSTM casts to float16 whatever the autocast type (in the torch sources
    we read), so LSTM gradients need loss scaling in either mode. On CPU
    ``bf16`` runs convs, linear layers and the LSTM in bfloat16 where that is
    faster on this CPU (float32 elsewhere; see ``_cpu_has_fast_bf16``), with no scaler since
    bfloat16 has float32's range; ``fp16`` is ignored on CPU (slower than
    float32 there).
    """

    def __init__(
        self, device: str | torch.device = "cpu", amp: str = "none", env: DistEnv | None = None
    ) -> None:
        if amp not in AMP_MODES:
            raise ValueError(f"train.amp must be one of {AMP_MODES}, got {amp!r}")
        self.env = env if env is not None else DistEnv()
        device = torch.device(device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("train.device is cuda but no CUDA device is available")
            if self.env.enabled:
                device = torch.device("cuda", self.env.local_rank)
            elif device.index is None:
                device = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(device)
        self.device = device
        if amp == "fp16" and device.type != "cuda":
            log.info("train.amp=%s ignored on %s: training in float32", amp, device.type)
            amp = "none"
        if amp == "bf16" and device.type == "cpu" and not _cpu_has_fast_bf16():
            log.info("train.amp=bf16 ignored: float32 is faster on this CPU")
            amp = "none"
        self.amp = amp
        scaled = amp != "none" and device.type == "cuda"
        # Start the loss scale at 2**10, not torch's 2**16: CTC gradients on the LSTM
        # weights reach several units at the start, and on an H200 the default scale
        # overflowed (and so skipped) the first three fp16 steps of a small model.
        self.scaler = torch.amp.GradScaler(device.type, init_scale=2.0**10, enabled=scaled)
        self._now = time.time()
        self._owns_group = False

    @classmethod
    def from_environ(cls, device: str = "cpu", amp: str = "none") -> Runtime:
        """A runtime for this process; joins the torchrun process group when there is one."""
        env = DistEnv.from_environ()
        rt = cls(device, amp, env)
        if env.enabled and not dist.is_initialized():
            backend = "nccl" if rt.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            rt._owns_group = True
            log.info("rank %d of %d (%s, %s)", env.rank, env.world_size, backend, rt.device)
        if not env.is_main:
            # One voice: the other ranks report warnings and errors only.
            logging.getLogger("seqrec").setLevel(logging.WARNING)
        return rt

    def close(self) -> None:
        """Leave the process group if this runtime joined it (not one its caller set up)."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # -- the model --------------------------------------------------------

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` as the training steps should call it (DDP across ranks)."""
        if not self.env.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context: autocast in the amp type, or nothing."""
        if self.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_AMP_DTYPES[self.amp])

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a collated batch; asynchronous from pinned memory on CUDA."""
        nb = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=nb) for k, v in batch.items()}

    def backward_step(
        self,
        loss: torch.Tensor,
        opt: torch.optim.Optimizer,
        params: Iterable[torch.nn.Parameter],
        grad_clip: float,
        after_backward: Callable[[], None] | None = None,
        unclipped: Iterable[torch.nn.Parameter] = (),
    ) -> bool:
        """Backward, clip and optimiser step; False (weights unchanged) when not finite.

        ``after_backward`` runs between the backward pass and the step (when
        there is a backward pass). A loss that is not finite on any rank skips
        the step on all of them. ``unclipped`` are further parameters ``opt``
        updates: their gradients are not clipped but must be finite too.
        Gradients are identical on every rank after DDP's all-reduce, so the
        finite-gradient check agrees by itself.
        """
        if not self.all_true(bool(torch.isfinite(loss))):
            return False
        self.scaler.scale(loss).backward()
        if after_backward is not None:
            after_backward()
        self.scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        ok = bool(torch.isfinite(norm)) and all(
            bool(torch.isfinite(p.grad).all()) for p in unclipped if p.grad is not None
        )
        if self.scaler.is_enabled():
            self.scaler.step(opt)  # skips the update itself when gradients overflowed
            self.scaler.update()
        elif ok:
            opt.step()
        return ok

    # -- agreement between ranks -------------------------------------------

    def all_true(self, flag: bool) -> bool:
        """``flag`` and-ed over all ranks."""
        if not self.env.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def all_sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over all ranks (the values themselves when alone)."""
        if not self.env.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return tuple(t.tolist())

    def tick(self) -> None:
        """Share rank 0's wall-clock time with every rank (a collective: all must call it)."""
        now = time.time()
        if self.env.enabled:
            t = torch.tensor([now], dtype=torch.float64, device=self._comm_device())
            dist.broadcast(t, src=0)
            now = float(t.item())
        self._now = now

    def clock(self) -> float:
        """Seconds since the epoch: live when alone, else rank 0's time at the last :meth:`tick`.

        Time-based decisions made from it are therefore the same on every rank.
        """
        return self._now if self.env.enabled else time.time()

    def barrier(self) -> None:
        if self.env.enabled:
            dist.barrier()

    def check_replicas(self, model: torch.nn.Module) -> str:
        """Digest of ``model``'s weights, verified equal on every rank (a collective).

        Raises ``RuntimeError`` when the replicas have drifted apart, which would
        mean that rank 0's checkpoint is not what the other ranks trained.
        Buffers (batch norm's running statistics) are first copied from rank 0:
        each rank updates them on its own batches, and DDP makes every rank take
        rank 0's at the start of each forward pass, so rank 0's are the model's.
        """
        if self.env.enabled:
            with torch.no_grad():
                for buf in model.buffers():
                    dist.broadcast(buf, src=0)
        digest = weights_digest(model)
        if self.env.enabled:
            seen: list[str | None] = [None] * self.env.world_size
            dist.all_gather_object(seen, digest)
            if len(set(seen)) != 1:
                raise RuntimeError(f"model replicas differ between ranks: {seen}")
        return digest

    def _comm_device(self) -> torch.device:
        # nccl moves CUDA tensors only; gloo moves CPU tensors.
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in ``state_dict`` order."""
    h = hashlib.sha256()
    for name, v in model.state_dict().items():
        h.update(name.encode("utf-8"))
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

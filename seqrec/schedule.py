"""The learning-rate schedule of a training: one cycle, under a step count or a time budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class OneCycle:
    """One-cycle learning-rate factor (for ``LambdaLR``), optionally under a time budget.

    Progress is ``step / total_steps`` or, with ``budget_s > 0``, whichever is
    larger of that and the fraction of the budget used. The factor rises from
    ``1 / start_divisor`` to 1 over the first ``warmup_fraction`` of progress
    (cosine), then falls to ``1 / final_divisor`` at progress 1 (cosine).
    """

    def __init__(
        self,
        total_steps: int,
        warmup_fraction: float,
        start_divisor: float,
        budget_s: float = 0.0,
        final_divisor: float = 1e4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.total_steps, self.warmup = total_steps, warmup_fraction
        self.start, self.final = 1.0 / start_divisor, 1.0 / final_divisor
        self.budget_s = budget_s
        self.elapsed_before = 0.0  # seconds used by earlier runs of a resumed training
        self.clock = clock  # seconds; shared by all ranks in distributed training
        self._t0: float | None = None

    def start_clock(self) -> None:
        self._t0 = self.clock()

    def elapsed(self) -> float:
        return self.elapsed_before + (self.clock() - self._t0 if self._t0 is not None else 0.0)

    def progress(self, step: int) -> float:
        p = step / self.total_steps
        if self.budget_s > 0:
            p = max(p, self.elapsed() / self.budget_s)
        return min(p, 1.0)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    def factor(self, step: int) -> float:
        p = self.progress(step)
        if p < self.warmup:
            lo, hi, q = self.start, 1.0, p / self.warmup
        else:
            lo, hi, q = 1.0, self.final, (p - self.warmup) / max(1e-9, 1.0 - self.warmup)
        return hi + (lo - hi) * (1 + math.cos(math.pi * q)) / 2

"""Learning-curve plot written beside the model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, metric: str) -> None:
    """PNG with training loss and, when there is a dev set, dev error rate (%) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], "b-o", ms=3, label="train CTC loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train CTC loss", color="b")
    key = f"dev_{metric}"
    if all(key in h for h in history):
        ax2 = ax1.twinx()
        ax2.plot(
            epochs, [100 * h[key] for h in history], "r-s", ms=3, label=f"dev {metric.upper()}"
        )
        ax2.set_ylabel(f"dev {metric.upper()} (%)", color="r")
        best = min(h[key] for h in history)
        fig.suptitle(f"learning curves (best dev {metric.upper()} {100 * best:.2f}%)")
    else:
        fig.suptitle("learning curve (no dev set)")
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)

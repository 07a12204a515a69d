"""Print the learning curves of several training runs side by side.

    python tools/compare_runs.py exp/speech_phones/model exp/other/model

Each argument is a model folder (or its ``metrics.jsonl``); the table has one
row per epoch with each run's training loss and dev error rate (%).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_history(path: Path) -> list[dict]:
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    runs = [read_history(p) for p in args.runs]
    metric = next(k for k in runs[0][0] if k.startswith("dev_"))
    print("epoch\t" + "\t".join(f"{p} loss\t{p} {metric} %" for p in args.runs))
    for e in range(max(len(r) for r in runs)):
        cells = []
        for r in runs:
            h = r[e] if e < len(r) else None
            cells += [f"{h['train_loss']:.3f}", f"{100 * h[metric]:.1f}"] if h else ["", ""]
        print(f"{e + 1}\t" + "\t".join(cells))


if __name__ == "__main__":
    main()

"""Score every epoch a training kept, alone and averaged with the epochs before it.

A run with ``train.keep_epochs = true`` leaves each epoch's weights in
``MODEL_DIR/epochs/NNNN.pt``. This decodes a manifest (greedy) with each of
them, and with the average of each window of the last W epochs, and prints
one row per epoch: how much a single run's figure moves from one epoch to the
next, and what averaging more or fewer epochs would have scored. Pick the
window on dev; a test manifest only shows the spread.

    python tools/score_epochs.py exp/speech_phones/model \\
        exp/speech_phones/data/dev.jsonl --windows 1 4 8 16 --from 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from seqrec.checkpoint import load_checkpoint  # noqa: E402
from seqrec.data.manifest import read_manifest  # noqa: E402
from seqrec.decoders.greedy import greedy_decode  # noqa: E402
from seqrec.metrics import UNIT_METRICS  # noqa: E402
from seqrec.recognizer import Recognizer  # noqa: E402
from seqrec.selection import EpochSnapshots, average_states, score  # noqa: E402


def error_rate(rec: Recognizer, feats: list[torch.Tensor], refs: list[str], metric: str) -> float:
    hyps = [
        greedy_decode(lp[None], torch.tensor([lp.shape[0]]))[0][0]
        for lp in rec.log_probs_each(feats)
    ]
    return score(rec.vocab, refs, hyps)[metric]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model_dir", help="the training's out_dir: best.pt and epochs/")
    p.add_argument("manifest", help="the JSONL manifest to score on")
    p.add_argument("--windows", type=int, nargs="+", default=[1, 8], help="epochs per average")
    p.add_argument("--from", dest="first", type=int, default=1, help="first epoch to report")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(w < 1 for w in args.windows):
        p.error("--windows must be 1 or more")
    model_dir = Path(args.model_dir)
    files = EpochSnapshots(model_dir / "epochs", window=max(args.windows)).on_disk()
    if not files:
        p.error(f"{model_dir / 'epochs'}: no epoch weights (train with train.keep_epochs = true)")
    rec = Recognizer.load(model_dir / "best.pt")
    metric = UNIT_METRICS[rec.vocab.unit][0]
    records = read_manifest(args.manifest)
    feats = [rec.frontend(r.path) for r in records]
    refs = [r.text for r in records]
    states: dict[int, dict[str, torch.Tensor]] = {}
    print(f"{len(records)} items, {len(files)} epochs ({min(files)}-{max(files)}), {metric}")
    print("epoch  " + "  ".join(f"{'last ' + str(w):>8}" for w in args.windows))
    for epoch in files:
        if epoch < args.first:
            continue
        cells = []
        for w in args.windows:
            span = range(epoch - w + 1, epoch + 1)
            if any(e not in files for e in span):
                cells.append(f"{'-':>8}")
                continue
            for e in span:
                if e not in states:
                    states[e] = load_checkpoint(files[e])["state_dict"]
            rec.model.load_state_dict(average_states([states[e] for e in span]))
            rec.model.eval()
            cells.append(f"{100 * error_rate(rec, feats, refs, metric):7.2f}%")
        for e in [e for e in states if e <= epoch - max(args.windows) + 1]:
            del states[e]  # no later window reaches back this far
        print(f"{epoch:5d}  " + "  ".join(cells), flush=True)
    print("command: python tools/score_epochs.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()

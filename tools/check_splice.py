"""Check splicing's cut points with a trained model (see ``train.splice_prob``).

The model aligns the utterances of a few of the speakers it trained on, and
greedy PER (or CER) is measured on them as recorded and on spliced items made
from them with each run length asked for. With ``--shift N`` it also moves
every inner cut point N input frames later and earlier: if the cuts sit where
the model hears the label boundaries, moving them makes spliced items harder.

    python tools/check_splice.py exp/speech_phones/model/best.pt \\
        exp/speech_phones/data/train.jsonl --speakers 6 --runs 2-8 4-15 10-30 --shift 8
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import editdistance  # noqa: E402
import torch  # noqa: E402

from seqrec.checkpoint import load_checkpoint  # noqa: E402
from seqrec.data.loader import FeatureDataset  # noqa: E402
from seqrec.data.splice import SplicePool, align_dataset  # noqa: E402
from seqrec.decoders.greedy import greedy_decode  # noqa: E402
from seqrec.recognizer import Recognizer  # noqa: E402
from seqrec.train_data import Featurize, held_out_split  # noqa: E402


def error_rate(model, items) -> float:
    errors = total = 0
    with torch.inference_mode():
        for feats, target in items:
            lp, out_len = model(feats[None], torch.tensor([feats.shape[0]]))
            errors += editdistance.eval(greedy_decode(lp, out_len)[0][0], target)
            total += len(target)
    return errors / max(total, 1)


def spliced(ds: FeatureDataset, pool: SplicePool, seed: int):
    rng = random.Random(seed)
    items = []
    for i in range(len(ds)):
        made = pool.splice(i, 1.0, rng, ds.raw_features, ds.targets, ds.length(i))
        if made is not None:
            items.append((ds.normalize(made[0]), made[1]))
    return items


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("train", help="the training manifest the model trained on")
    p.add_argument("--dev", help="the dev manifest the model was selected on, if any")
    p.add_argument("--speakers", type=int, default=6, help="training speakers to use")
    p.add_argument("--runs", nargs="+", default=["2-8"], help="run lengths MIN-MAX in labels")
    p.add_argument("--shift", type=int, default=0, help="also move the cuts by +-N frames")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = Recognizer.load(args.model)
    rest, _ = held_out_split(load_checkpoint(args.model), args.train, args.dev)
    chosen = sorted({r.speaker for r in rest if r.speaker})[: args.speakers]
    recs = [r for r in rest if r.speaker in chosen]
    ds = FeatureDataset(recs, Featurize(rec.frontend), rec.vocab, rec.frontend.normalize)
    model = rec.model
    cuts = align_dataset(model, ds, range(len(ds)), 8000, torch.device("cpu"))
    speakers = [r.speaker for r in recs]
    as_recorded = [(ds.normalize(ds.raw_features(i)), ds.targets[i]) for i in range(len(ds))]
    aligned = len(cuts) - cuts.count(None)
    print(f"{len(ds)} utterances of {len(chosen)} training speakers, {aligned} aligned")
    print(f"as recorded: {100 * error_rate(model, as_recorded):.1f} %")
    sub = model.cfg.subsample
    for spec in args.runs:
        lo, hi = (int(x) for x in spec.split("-"))
        pool = SplicePool(cuts, speakers, lo, hi, subsample=sub)
        rate = error_rate(model, spliced(ds, pool, args.seed))
        print(f"spliced, runs of {lo}-{hi}: {100 * rate:.1f} %")
        for shift in (args.shift, -args.shift) if args.shift else ():
            moved = [
                None
                if c is None
                else [c[0], *(min(max(x + shift, 0), c[-1]) for x in c[1:-1]), c[-1]]
                for c in cuts
            ]
            pool = SplicePool(moved, speakers, lo, hi, subsample=sub)
            rate = error_rate(model, spliced(ds, pool, args.seed))
            print(f"  cuts moved {shift:+d} frames: {100 * rate:.1f} %")
    print(
        "command: python tools/check_splice.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )


if __name__ == "__main__":
    main()

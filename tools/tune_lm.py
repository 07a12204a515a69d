"""Pick an n-gram LM order, weight and bonus on a dev split cut from train; write the LM.

The dev split is the one training held out (whole speakers or writers cut
with the model file's own ``data.dev_speakers`` and seed, or the separate dev
manifest training named), so the model never saw it. LMs of each order are
trained on the rest of train only, each setting is scored on dev with our beam
search, and the best order is retrained on the whole training manifest:

    python tools/tune_lm.py exp/speech_phones/model/best.pt \\
        exp/speech_phones/data/train.jsonl --out exp/speech_phones/lm --orders 3 4 5

Prints the dev error of every setting and the flags to use with
``seqrec evaluate`` / ``seqrec transcribe``; ``--embed`` also writes a model
file with the LM and the tuned weight and bonus inside.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqrec.checkpoint import load_checkpoint  # noqa: E402
from seqrec.data.manifest import write_manifest  # noqa: E402
from seqrec.decoders.beam import TokenLM, ctc_beam_search  # noqa: E402
from seqrec.decoders.greedy import greedy_decode  # noqa: E402
from seqrec.decoders.lm import NgramLM, arpa_text, train_lm  # noqa: E402
from seqrec.metrics import METRICS, UNIT_METRICS  # noqa: E402
from seqrec.recognizer import Recognizer  # noqa: E402
from seqrec.train_data import held_out_split  # noqa: E402


def dev_log_probs(rec: Recognizer, records):
    """Padded ``(B, T', V)`` log-probs and ``(B,)`` lengths of ``records``."""
    out = rec.log_probs_each([rec.frontend(r.path) for r in records])
    lengths = torch.tensor([x.shape[0] for x in out])
    return torch.nn.utils.rnn.pad_sequence(out, batch_first=True), lengths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("train", help="the training manifest (dev is cut from it)")
    p.add_argument("--out", required=True, help="folder for the LMs and the report")
    p.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5])
    p.add_argument("--weights", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0])
    p.add_argument("--bonuses", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0])
    p.add_argument("--beam", type=int, default=32)
    p.add_argument("--dev", help="a dev manifest to use instead (training's data.dev)")
    p.add_argument(
        "--dev-speakers", type=int, help="as in training (default: the model file's setting)"
    )
    p.add_argument("--seed", type=int, help="as in training (default: the model file's setting)")
    p.add_argument("--embed", help="write a copy of the model with the tuned LM inside here")
    p.add_argument("--reuse", action="store_true", help="keep dev LMs already in --out")
    args = p.parse_args(argv)
    payload = load_checkpoint(args.model)
    try:
        rest, dev = held_out_split(payload, args.train, args.dev, args.dev_speakers, args.seed)
    except ValueError as e:
        p.error(f"{args.model}: {e} (with --dev MANIFEST or --dev-speakers N)")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = Recognizer.from_payload(payload)
    unit = rec.vocab.unit
    metric = METRICS[UNIT_METRICS[unit][0]]
    write_manifest(out / "lm_train_part.jsonl", rest)
    print(
        f"dev: {len(dev)} items held out from {args.dev or args.train}; "
        f"LM data: {len(rest)} transcripts"
    )
    lp, lengths = dev_log_probs(rec, dev)
    refs = [r.text for r in dev]
    ids, _ = greedy_decode(lp, lengths)
    greedy_err = metric(refs, [rec.vocab.decode(h) for h in ids])
    print(f"greedy dev error {100 * greedy_err:.2f} %")
    symbols = rec.vocab.symbols[1:]
    report = {"greedy": greedy_err, "settings": []}
    best = (greedy_err, None)
    for order in args.orders:
        arpa = out / f"dev_order{order}.arpa"
        if not (args.reuse and arpa.exists()):
            train_lm(out / "lm_train_part.jsonl", arpa, order=order, unit=unit, vocab=symbols)
        lm = NgramLM.from_arpa(arpa)
        for w, b in itertools.product(args.weights, args.bonuses):
            t0 = time.perf_counter()
            res = ctc_beam_search(
                lp, lengths, beam=args.beam, lm=TokenLM(lm, rec.vocab.symbols, w, b)
            )
            err = metric(refs, [rec.vocab.decode(r[0].ids) for r in res])
            sec = time.perf_counter() - t0
            print(
                f"order {order} weight {w:.2f} bonus {b:.2f}: dev {100 * err:.2f} % ({sec:.1f} s)"
            )
            report["settings"].append({"order": order, "weight": w, "bonus": b, "error": err})
            if err < best[0]:
                best = (err, (order, w, b))
    if best[1] is None:
        print("no LM setting beat greedy on dev")
        return
    order, w, b = best[1]
    final = out / f"lm_order{order}.arpa"
    model = train_lm(args.train, final, order=order, unit=unit, vocab=symbols)
    report["best"] = {
        "order": order,
        "weight": w,
        "bonus": b,
        "dev_error": best[0],
        "lm": str(final),
    }
    (out / "tune_report.json").write_text(json.dumps(report, indent=1))
    print(
        f"best on dev: order {order}, weight {w}, bonus {b}: {100 * best[0]:.2f} % "
        f"(greedy {100 * greedy_err:.2f} %)"
    )
    print(
        f"LM on all of train: {final}\nuse: --beam {args.beam} --lm {final} --lm-weight {w} "
        f"--word-bonus {b}"
    )
    if args.embed:
        rec.embed_lm(arpa_text(model), w, b)
        rec.save(args.embed)
        print(f"{args.embed}: model with this LM (use --lm model)")


if __name__ == "__main__":
    main()

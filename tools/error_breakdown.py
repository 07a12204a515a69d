"""Substitutions, deletions, insertions and per-speaker error rates of a report.

    python tools/error_breakdown.py exp/speech_phones/test_report.json

Reads the JSON written by ``seqrec evaluate --json`` (a recipe's
``test_report.json``) and prints the share of reference units substituted,
deleted and inserted (they add up to the report's error rate), then the error
rate of each group of items, lowest first. A group is the folder that holds
the item's audio or image (the speaker in speechocean762, whose recordings lie
in one folder per speaker; ``--group none`` turns the table off). Units are
characters when the report's summary has ``cer``, else whitespace-separated
tokens (phones, words); ``--unit`` overrides it. An unreadable input counts as
an empty hypothesis, as in the report's summary. ``--confusions N`` also lists
the N most frequent substitutions (``ref -> hyp``), deleted units and inserted
units, each with its count and its share of all errors.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter, defaultdict
from pathlib import Path

from seqrec.metrics import align
from seqrec.vocab import tokenize


def breakdown(report: dict, unit: str = "auto", group: str = "parent") -> dict:
    """Totals (``ref``, ``sub``, ``del``, ``ins``) overall and per group, and
    ``confusions``: counters of substituted ``(ref, hyp)`` pairs, deleted and
    inserted units."""
    if unit == "auto":
        unit = "char" if "cer" in report.get("summary", {}) else "token"
    split = "char" if unit == "char" else "word"
    total = {"ref": 0, "sub": 0, "del": 0, "ins": 0}
    groups: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(total, 0))
    confusions: dict[str, Counter] = {"sub": Counter(), "del": Counter(), "ins": Counter()}
    for item in report["items"]:
        # An unreadable input has an empty hypothesis, as the report's summary counts it.
        ref, hyp = tokenize(item["ref"], split), tokenize(item.get("hyp", ""), split)
        key = Path(item.get("path", "")).parent.name if group == "parent" else ""
        for counts in (total, groups[key]):
            counts["ref"] += len(ref)
        for op, r, h in align(ref, hyp):
            if op == "ok":
                continue
            for counts in (total, groups[key]):
                counts[op] += 1
            confusions[op][(r, h) if op == "sub" else r if op == "del" else h] += 1
    return {
        "unit": unit,
        "total": total,
        "groups": dict(groups) if group != "none" else {},
        "confusions": confusions,
    }


def rate(counts: dict[str, int]) -> float:
    errors = counts["sub"] + counts["del"] + counts["ins"]
    return 100.0 * errors / counts["ref"] if counts["ref"] else 0.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("report", type=Path)
    ap.add_argument("--unit", choices=["auto", "token", "char"], default="auto")
    ap.add_argument("--group", choices=["parent", "none"], default="parent")
    ap.add_argument("--confusions", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    result = breakdown(json.loads(args.report.read_text()), args.unit, args.group)
    t = result["total"]
    n = max(t["ref"], 1)
    print("command:", shlex.join([sys.executable, *(sys.argv if argv is None else argv)]))
    print(
        f"{t['ref']} reference {result['unit']}s: error {rate(t):.2f} % = "
        f"substituted {100 * t['sub'] / n:.2f} % + deleted {100 * t['del'] / n:.2f} % + "
        f"inserted {100 * t['ins'] / n:.2f} %"
    )
    groups = sorted(result["groups"].items(), key=lambda kv: rate(kv[1]))
    if groups:
        print(f"{len(groups)} groups, error {rate(groups[0][1]):.2f}-{rate(groups[-1][1]):.2f} %")
        for name, counts in groups:
            print(f"  {name or '(none)'}\t{counts['ref']}\t{rate(counts):.2f} %")
    if args.confusions > 0:
        errors = max(1, t["sub"] + t["del"] + t["ins"])
        for op, title in (("sub", "substituted"), ("del", "deleted"), ("ins", "inserted")):
            print(f"most often {title} (count, share of all errors):")
            for what, count in result["confusions"][op].most_common(args.confusions):
                shown = f"{what[0]} -> {what[1]}" if op == "sub" else what
                print(f"  {shown}\t{count}\t{100 * count / errors:.1f} %")


if __name__ == "__main__":
    main()

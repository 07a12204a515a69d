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

``--by-word-count TRAIN_MANIFEST --lexicon LEXICON`` splits the phone errors
by how often the word that each reference phone belongs to occurs in the
training manifest's word transcripts (never, 1-4, 5-19, 20 or more times),
which tells how much a phone model leans on the words it has heard:

    python tools/error_breakdown.py exp/speech_phones/test_report.json \
        --by-word-count exp/speech_phones/data/train.jsonl \
        --lexicon ../shared/data/speechocean762/resource/lexicon.txt

The report's items then need their word transcripts (``ref_words``, which
``seqrec evaluate`` writes for a manifest with words). Each reference is read as
its words, each said with one of its lexicon pronunciations; an item whose
phones no such choice spells out is left out and counted. An inserted phone
counts with the word of the reference phone after it.

``--interval N`` adds a 95 % interval for the error rate from N bootstrap
resamples of the groups (speakers; items with ``--group none``): errors of one
speaker go together, so resampling speakers, not phones, tells how far the
figure would move on another draw of test speakers. ``--compare OTHER_REPORT``
(another model's report on the same items) prints the difference between the
two error rates with its paired interval, resampling the same groups for both,
and the share of resamples in which this report's error is the lower (10000
resamples unless ``--interval`` says otherwise). Both reports are scored in
this report's units, and each item must sit in the same group in both:

    python tools/error_breakdown.py exp/a/test_report.json \
        --compare exp/b/test_report.json --interval 10000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
from collections import Counter, defaultdict
from pathlib import Path

from seqrec.data.manifest import read_manifest
from seqrec.lexicon import Lexicon, read_lexicon
from seqrec.metrics import align
from seqrec.vocab import tokenize

# What each count table holds: reference units, then each kind of edit.
COUNTS = ("ref", "sub", "del", "ins")

# Training counts of a word, as (lowest count, label) from the rarest band up.
WORD_BANDS = ((0, "never"), (1, "1-4 times"), (5, "5-19 times"), (20, "20+ times"))


def group_of(item: dict, group: str) -> str:
    """The item's group: its audio's (or image's) folder for ``parent``, its id
    for ``item``, "" for ``none``."""
    if group == "parent":
        return Path(item.get("path", "")).parent.name
    return str(item["id"]) if group == "item" else ""


def breakdown(report: dict, unit: str = "auto", group: str = "parent") -> dict:
    """Totals (``ref``, ``sub``, ``del``, ``ins``) overall and per group (see
    ``group_of``; none for ``none``), and ``confusions``: counters of
    substituted ``(ref, hyp)`` pairs, deleted and inserted units."""
    if unit == "auto":
        unit = "char" if "cer" in report.get("summary", {}) else "token"
    split = "char" if unit == "char" else "word"
    total = dict.fromkeys(COUNTS, 0)
    groups: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    confusions: dict[str, Counter] = {"sub": Counter(), "del": Counter(), "ins": Counter()}
    for item in report["items"]:
        # An unreadable input has an empty hypothesis, as the report's summary counts it.
        ref, hyp = tokenize(item["ref"], split), tokenize(item.get("hyp", ""), split)
        key = group_of(item, group)
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


def word_of_each_phone(phones: list[str], words: list[str], lexicon: Lexicon) -> list[int] | None:
    """The index in ``words`` of the word each phone belongs to, reading
    ``phones`` as ``words`` said one after the other, each with one of its
    lexicon pronunciations; None when no choice of pronunciations gives
    ``phones`` (a word missing from the lexicon, or another pronunciation)."""
    # ends[k]: phone position after word k -> position after word k - 1 it came from
    ends: list[dict[int, int]] = []
    starts = {0: -1}
    for word in words:
        reached: dict[int, int] = {}
        for i in starts:
            for pron in lexicon.get(word.upper(), []):
                j = i + len(pron)
                if phones[i:j] == pron:
                    reached.setdefault(j, i)
        if not reached:
            return None
        ends.append(reached)
        starts = reached
    if len(phones) not in starts:
        return None
    owner, j = [0] * len(phones), len(phones)
    for k in range(len(words) - 1, -1, -1):
        i = ends[k][j]
        owner[i:j] = [k] * (j - i)
        j = i
    return owner


def band(count: int) -> str:
    return [label for low, label in WORD_BANDS if count >= low][-1]


def by_word_count(
    report: dict, train_counts: Counter, lexicon: Lexicon
) -> tuple[dict[str, dict[str, int]], int]:
    """Reference phones and their edits per band of the training count of
    their word (``WORD_BANDS``), and the number of items left out (no word
    transcript, or one the lexicon cannot split the phones into)."""
    bands = {label: dict.fromkeys(COUNTS, 0) for _, label in WORD_BANDS}
    left_out = 0
    for item in report["items"]:
        ref, words = item["ref"].split(), item.get("ref_words", "").split()
        owner = word_of_each_phone(ref, words, lexicon) if words else None
        if owner is None:
            left_out += 1
            continue
        at = 0  # the next reference phone
        for op, _, _ in align(ref, item.get("hyp", "").split()):
            k = owner[min(at, len(ref) - 1)]
            counts = bands[band(train_counts[words[k].upper()])]
            if op != "ins":
                counts["ref"] += 1
                at += 1
            if op != "ok":
                counts[op] += 1
    return bands, left_out


def edits(counts: dict[str, int]) -> int:
    """Substitutions, deletions and insertions of a count table, together."""
    return counts["sub"] + counts["del"] + counts["ins"]


def rate(counts: dict[str, int]) -> float:
    return 100.0 * edits(counts) / counts["ref"] if counts["ref"] else 0.0


def errors_per_group(groups: dict[str, dict[str, int]]) -> dict[str, tuple[int, int]]:
    """``{group: (reference units, errors)}`` from ``breakdown``'s groups."""
    return {k: (c["ref"], edits(c)) for k, c in groups.items()}


def paired(report: dict, other: dict, group: str = "parent") -> None:
    """Raise ValueError unless both reports score the same items against the
    same references, each item in the same group (see ``group_of``)."""
    a = {str(i["id"]): i for i in report["items"]}
    b = {str(i["id"]): i for i in other["items"]}
    if a.keys() != b.keys():
        missing = len(a.keys() ^ b.keys())
        raise ValueError(f"the reports score different items ({missing} not in both)")
    for k in a:
        if a[k]["ref"] != b[k]["ref"]:
            raise ValueError(f"item {k!r} has another reference in each report")
        mine, theirs = group_of(a[k], group), group_of(b[k], group)
        if mine != theirs:
            raise ValueError(
                f"item {k!r} is in group {mine!r} in one report and {theirs!r} in the other"
            )


def bootstrap(
    counts: dict, other: dict | None = None, resamples: int = 10000, seed: int = 0
) -> list[float]:
    """The error rate (%) of each of ``resamples`` draws of the groups of
    ``counts`` with replacement, sorted. With ``other`` (the same groups,
    another model's errors) each value is the difference of the two rates on
    the same draw, this one's minus the other's. A draw with no reference
    units scores 0, as ``rate`` does."""
    keys = sorted(counts)
    if not keys or resamples < 1:
        raise ValueError("a bootstrap needs at least one group and one resample")
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        draw = [keys[rng.randrange(len(keys))] for _ in keys]
        ref = sum(counts[k][0] for k in draw)
        stat = 100.0 * sum(counts[k][1] for k in draw) / ref if ref else 0.0
        if other is not None and ref:
            stat -= 100.0 * sum(other[k][1] for k in draw) / ref
        stats.append(stat)
    return sorted(stats)


def percentile_interval(stats: list[float], mass: float = 0.95) -> tuple[float, float]:
    """The central ``mass`` of sorted ``stats``, rounded outwards: (low, high)."""
    tail = (1.0 - mass) / 2
    last = len(stats) - 1
    return stats[math.floor(tail * last)], stats[math.ceil((1.0 - tail) * last)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("report", type=Path)
    ap.add_argument("--unit", choices=["auto", "token", "char"], default="auto")
    ap.add_argument("--group", choices=["parent", "none"], default="parent")
    ap.add_argument("--confusions", type=int, default=0, metavar="N")
    ap.add_argument("--by-word-count", type=Path, metavar="TRAIN_MANIFEST")
    ap.add_argument("--lexicon", type=Path)
    ap.add_argument("--interval", type=int, default=0, metavar="N")
    ap.add_argument("--compare", type=Path, metavar="OTHER_REPORT")
    args = ap.parse_args(argv)
    if args.by_word_count and not args.lexicon:
        ap.error("--by-word-count needs --lexicon")
    if args.interval < 0:
        ap.error(f"--interval must be 0 (off) or a number of resamples, got {args.interval}")
    report = json.loads(args.report.read_text())
    result = breakdown(report, args.unit, args.group)
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
        errors = max(1, edits(t))
        for op, title in (("sub", "substituted"), ("del", "deleted"), ("ins", "inserted")):
            print(f"most often {title} (count, share of all errors):")
            for what, count in result["confusions"][op].most_common(args.confusions):
                shown = f"{what[0]} -> {what[1]}" if op == "sub" else what
                print(f"  {shown}\t{count}\t{100 * count / errors:.1f} %")
    if args.interval > 0 or args.compare:
        interval(report, result, args)
    if args.by_word_count:
        train_words = Counter(
            w.upper() for r in read_manifest(args.by_word_count) for w in (r.words or "").split()
        )
        bands, left_out = by_word_count(report, train_words, read_lexicon(args.lexicon))
        kept = len(report["items"]) - left_out
        print(
            f"by the word's count in {args.by_word_count} ({kept} items; {left_out} left out "
            "without word transcripts or a lexicon reading):"
        )
        for label, counts in bands.items():
            print(f"  word seen {label}\t{counts['ref']}\t{rate(counts):.2f} %")


def interval(report: dict, result: dict, args: argparse.Namespace) -> None:
    """Print the bootstrap interval of the error rate, and with ``--compare``
    the paired difference from the other report. ``result`` is ``breakdown``'s
    for ``report``; without groups (``--group none``) items are resampled."""
    resamples = args.interval or 10000
    by = "item" if args.group == "none" else args.group
    if by != args.group:
        result = breakdown(report, args.unit, by)
    mine = errors_per_group(result["groups"])
    what = "items" if by == "item" else "groups"
    if len(mine) < 2:
        also = " (nor a paired comparison)" if args.compare else ""
        print(f"no interval{also}: resampling needs at least 2 {what}, the report has {len(mine)}")
        return
    low, high = percentile_interval(bootstrap(mine, resamples=resamples))
    print(f"95 % interval ({resamples} resamples of {len(mine)} {what}): {low:.2f}-{high:.2f} %")
    if not args.compare:
        return
    other = json.loads(args.compare.read_text())
    try:
        paired(report, other, by)
    except ValueError as e:
        raise SystemExit(f"error: {args.compare}: {e}") from None
    # Scored in this report's units, whatever the other report's summary says.
    other_result = breakdown(other, result["unit"], by)
    theirs = errors_per_group(other_result["groups"])
    rate_mine, rate_theirs = rate(result["total"]), rate(other_result["total"])
    diffs = bootstrap(mine, theirs, resamples)
    low, high = percentile_interval(diffs)
    share = sum(d < 0 for d in diffs) / len(diffs)
    print(
        f"against {args.compare} ({rate_theirs:.2f} %): difference {rate_mine - rate_theirs:+.2f} "
        f"points, 95 % interval {low:+.2f} to {high:+.2f}; this report lower in "
        f"{100 * share:.1f} % of resamples"
    )


if __name__ == "__main__":
    main()

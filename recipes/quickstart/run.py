"""Quickstart: train, evaluate and use a connected-digit recogniser in a few minutes.

    python recipes/quickstart/run.py

Uses only the 400 FSDD recordings shipped in ``fsdd_mini/`` (CC BY-SA 4.0):
strings of 2-7 digits are built from takes 2-7 of four speakers for training;
takes 0-1 of the same speakers (``test_seen``) and every take of ``theo``, a
speaker never heard in training (``test``), are scored. Then a few test files
are transcribed to ``<out>/transcripts.jsonl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqrec.lexicon import DIGIT_LEXICON, DIGIT_WORDS, words_from_phones
from seqrec.recipe import recipe_main
from seqrec.transcribe import transcribe

HERE = Path(__file__).resolve().parent


def main() -> None:
    argv = sys.argv[1:]
    if "--data-dir" not in argv:
        argv = ["--data-dir", str(HERE / "fsdd_mini"), *argv]
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path("exp/quickstart")
    recipe_main(
        description=__doc__,
        corpus="fsdd",
        config=HERE / "config.toml",
        default_out=str(out),
        eval_splits=("test_seen", "test"),
        prepare_options={"seen_takes": 2},
        eval_lexicon="digits",
        argv=argv,
    )
    wavs = sorted((out / "data" / "wav" / "test").glob("*.wav"))[:5]
    summary = transcribe(out / "model" / "best.pt", wavs, out / "transcripts.jsonl")
    print(f"transcribed {summary.num_ok} files -> {out / 'transcripts.jsonl'}")
    for line in (out / "transcripts.jsonl").read_text().splitlines():
        row = json.loads(line)
        digits = " ".join(words_from_phones(row["text"].split(), DIGIT_LEXICON, DIGIT_WORDS))
        print(f"  {Path(row['path']).name}: {row['text']}  ->  {digits}")


if __name__ == "__main__":
    main()

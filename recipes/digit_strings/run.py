"""Handwritten digit strings from MNIST: compose, train, evaluate ``test``.

    python recipes/digit_strings/run.py --data-dir ../shared/data/mnist5k
    python recipes/digit_strings/run.py --data-dir ../shared/data/mnist5k --rows

Strings of 3-8 digits are composed with random spacing, scale and vertical
jitter; the digit samples used in ``test`` strings never appear in training
strings. The digit error rate is the CER.

Columns mode composes 8,000 training strings (``-o num_train=N`` changes it).
``--rows`` stacks the digits top to bottom instead and reads the image row by
row (the image frontend's rows mode, ``rows.toml``), into ``exp/digit_strings_rows``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqrec.recipe import recipe_main


def main() -> None:
    argv = sys.argv[1:]
    rows = "--rows" in argv
    prepare_options = {}
    if rows:
        argv = [a for a in argv if a != "--rows"]
        argv = ["-o", 'layout="vertical"', *argv]
    else:
        prepare_options["num_train"] = 8000
    recipe_main(
        description=__doc__,
        corpus="mnist_strings",
        config=Path(__file__).with_name("rows.toml" if rows else "config.toml"),
        default_out="exp/digit_strings_rows" if rows else "exp/digit_strings",
        eval_splits=("test",),
        prepare_options=prepare_options,
        argv=argv,
    )


if __name__ == "__main__":
    main()

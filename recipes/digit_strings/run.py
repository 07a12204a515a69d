"""Handwritten digit strings from MNIST: compose, train, evaluate ``test``.

    python recipes/digit_strings/run.py --data-dir ../shared/data/mnist5k

Strings of 3-8 digits are composed with random spacing, scale and vertical
jitter; the digit samples used in ``test`` strings never appear in training
strings. The digit error rate is the CER.
"""

from __future__ import annotations

from pathlib import Path

from seqrec.recipe import recipe_main


def main() -> None:
    recipe_main(
        description=__doc__,
        corpus="mnist_strings",
        config=Path(__file__).with_name("config.toml"),
        default_out="exp/digit_strings",
        eval_splits=("test",),
    )


if __name__ == "__main__":
    main()

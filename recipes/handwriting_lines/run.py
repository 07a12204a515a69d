"""Handwritten line recognition on Copiste d'un jour: import, train, evaluate ``test``.

    python recipes/handwriting_lines/run.py --data-dir ../shared/data/copiste

``test`` holds writers never seen in training. Works for any folder in the same
layout (``<split>/lines.tsv`` with ``image<TAB>transcript`` lines).
"""

from __future__ import annotations

from pathlib import Path

from seqrec.recipe import recipe_main


def main() -> None:
    recipe_main(
        description=__doc__,
        corpus="copiste",
        config=Path(__file__).with_name("config.toml"),
        default_out="exp/handwriting_lines",
        eval_splits=("test",),
    )


if __name__ == "__main__":
    main()

"""speechocean762 phone recognition: import, train, evaluate on the test split.

    python recipes/speech_phones/run.py --data-dir ../shared/data/speechocean762

Writes ``<out>/data/*.jsonl``, ``<out>/model/`` (best.pt, curves.png, metrics.jsonl)
and ``<out>/test_report.json``. Extra ``--set section.key=value`` pairs override
the config (values are parsed as TOML, e.g. ``--set train.epochs=5``).
"""

from __future__ import annotations

from pathlib import Path

from seqrec.recipe import recipe_main


def main() -> None:
    recipe_main(
        description=__doc__,
        corpus="speechocean762",
        config=Path(__file__).with_name("config.toml"),
        default_out="exp/speech_phones",
        eval_splits=("test",),
    )


if __name__ == "__main__":
    main()

"""Corpus importers: each reads one layout and writes ``OUT_DIR/<split>.jsonl``.

``IMPORTERS`` maps the names used by ``seqrec prepare`` to functions
``(data_dir, out_dir, **options) -> {split: number_of_records}``.
"""

from __future__ import annotations

from collections.abc import Callable

from seqrec.data.corpora.kaldi import prepare_kaldi, prepare_speechocean762

IMPORTERS: dict[str, Callable[..., dict[str, int]]] = {
    "kaldi": prepare_kaldi,
    "speechocean762": prepare_speechocean762,
}


def register(name: str, fn: Callable[..., dict[str, int]]) -> None:
    IMPORTERS[name] = fn


def _late_imports() -> None:
    # Importers added in their own modules register here to keep this file small.
    import importlib

    for mod in ("fsdd", "timit", "librispeech", "lines", "pagexml", "mnist_strings"):
        try:
            m = importlib.import_module(f"seqrec.data.corpora.{mod}")
        except ModuleNotFoundError:
            continue
        IMPORTERS.update(getattr(m, "IMPORTERS", {}))


_late_imports()

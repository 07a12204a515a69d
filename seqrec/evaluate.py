"""Evaluate a model file on a manifest: per-item hypotheses and a summary."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from seqrec.data.loader import FrameBudgetSampler
from seqrec.data.manifest import read_manifest
from seqrec.io import atomic_write_text
from seqrec.lexicon import DIGIT_LEXICON, DIGIT_WORDS, read_lexicon, words_from_phones
from seqrec.metrics import METRICS, UNIT_METRICS, edit_distance, wer
from seqrec.recognizer import Recognizer
from seqrec.vocab import tokenize

log = logging.getLogger("seqrec.evaluate")


def evaluate(
    model_path: str | os.PathLike,
    manifest: str | os.PathLike,
    report_path: str | os.PathLike | None = None,
    max_frames: int = 40000,
    device: str = "cpu",
    lexicon: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Greedy-decode every item of ``manifest`` and score it.

    Returns the summary: ``num_items``, ``num_errors`` (unreadable inputs, which
    count as empty hypotheses), one key per metric of the model's unit
    (``per``, ``cer``/``wer`` or ``wer``, as fractions) and timing. When
    ``report_path`` is given, writes ``{"summary": ..., "items": [...]}`` there.

    With a ``lexicon`` (a lexicon file, or ``"digits"`` for the built-in digit
    lexicon), phone hypotheses are also parsed into words and scored against
    each record's ``words`` as ``wer`` (the digit error rate for digit strings).
    """
    rec = Recognizer.load(model_path)
    rec.model.to(device)
    records = read_manifest(manifest)
    t0 = time.time()
    feats: dict[int, torch.Tensor] = {}
    errors: dict[int, str] = {}
    for i, r in enumerate(records):
        try:
            feats[i] = rec.frontend(r.path)
        except (ValueError, OSError) as e:
            errors[i] = str(e)
            log.warning("%s", e)
    ok = sorted(feats)
    hyps: dict[int, tuple[str, float]] = {}
    lengths = [feats[i].shape[0] for i in ok]
    sampler = FrameBudgetSampler(lengths, max_frames, shuffle=False)
    for idx in sampler:
        items = [ok[j] for j in idx]
        decoded = rec.decode_features([feats[i] for i in items], device)
        hyps.update(zip(items, decoded, strict=True))
    elapsed = time.time() - t0
    refs = [r.text for r in records]
    texts = [hyps.get(i, ("", 0.0))[0] for i in range(len(records))]
    unit = rec.vocab.unit
    summary: dict[str, Any] = {"num_items": len(records), "num_errors": len(errors)}
    for m in UNIT_METRICS[unit]:
        summary[m] = METRICS[m](refs, texts)
    summary["seconds"] = elapsed
    hyp_words = None
    if lexicon is not None:
        lex, allowed = _lexicon(lexicon)
        hyp_words = [" ".join(words_from_phones(t.split(), lex, allowed)) for t in texts]
        summary["wer"] = wer([r.words or r.text for r in records], hyp_words)
    items = []
    for i, r in enumerate(records):
        item = {
            "id": r.id,
            "path": r.path,
            "ref": r.text,
            "hyp": texts[i],
            "edits": edit_distance(tokenize(r.text, unit), tokenize(texts[i], unit)),
        }
        if hyp_words is not None:
            item["ref_words"] = r.words or r.text
            item["hyp_words"] = hyp_words[i]
        if i in errors:
            item["error"] = errors[i]
        else:
            item["score"] = hyps[i][1]
        items.append(item)
    if report_path is not None:
        atomic_write_text(
            report_path,
            json.dumps(
                {
                    "model": str(Path(model_path)),
                    "manifest": str(manifest),
                    "summary": summary,
                    "items": items,
                },
                ensure_ascii=False,
                indent=1,
            ),
        )
    return summary


def _lexicon(lexicon: str | os.PathLike):
    if str(lexicon) == "digits":
        return DIGIT_LEXICON, DIGIT_WORDS
    return read_lexicon(lexicon), None

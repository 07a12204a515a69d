"""Evaluate a model file on a manifest: per-item hypotheses and a summary."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from seqrec.data.loader import FrameBudgetSampler
from seqrec.data.manifest import read_manifest
from seqrec.decoders.options import EMBEDDED_LM, DecodeOptions
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
    options: DecodeOptions | None = None,
) -> dict[str, Any]:
    """Decode every item of ``manifest`` and score it.

    Decoding is greedy unless ``options`` asks for a beam, an LM (shallow
    fusion), n-best lists or timestamps; the report items then also get
    ``confidence`` and, where asked, ``nbest`` and ``timestamps``.

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
    extra: dict[int, dict[str, Any]] = {}
    lengths = [feats[i].shape[0] for i in ok]
    sampler = FrameBudgetSampler(lengths, max_frames, shuffle=False)
    plain = options is None or (options.greedy and not options.timestamps and options.nbest == 1)
    for idx in sampler:
        items = [ok[j] for j in idx]
        batch = [feats[i] for i in items]
        if plain:
            hyps.update(zip(items, rec.decode_features(batch, device), strict=True))
            continue
        for i, h in zip(items, rec.decode(batch, device, options), strict=True):
            hyps[i] = (h.text, h.score)
            row = h.as_row()
            extra[i] = {k: row[k] for k in ("confidence", "timestamps", "nbest") if k in row}
    elapsed = time.time() - t0
    refs = [r.text for r in records]
    texts = [hyps.get(i, ("", 0.0))[0] for i in range(len(records))]
    unit = rec.vocab.unit
    summary: dict[str, Any] = {"num_items": len(records), "num_errors": len(errors)}
    for m in UNIT_METRICS[unit]:
        summary[m] = METRICS[m](refs, texts)
    summary["seconds"] = elapsed
    if not plain:
        used = asdict(options)  # type: ignore[arg-type]
        if options.lm == EMBEDDED_LM and rec.lm:  # the stored values, unless overridden
            used["lm_weight"] = _first(options.lm_weight, rec.lm.get("weight"))
            used["word_bonus"] = _first(options.word_bonus, rec.lm.get("bonus"))
        summary["decoding"] = {k: v for k, v in used.items() if v is not None}
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
        elif r.words:
            item["ref_words"] = r.words  # for breakdowns by word (tools/error_breakdown.py)
        if i in errors:
            item["error"] = errors[i]
        else:
            item["score"] = hyps[i][1]
            item.update(extra.get(i, {}))
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


def _first(*values):
    return next((v for v in values if v is not None), None)


def _lexicon(lexicon: str | os.PathLike):
    if str(lexicon) == "digits":
        return DIGIT_LEXICON, DIGIT_WORDS
    return read_lexicon(lexicon), None

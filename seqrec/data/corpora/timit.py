"""TIMIT: ``TRAIN|TEST/DR*/SPEAKER/*.WAV|.PHN`` with phone transcripts.

Names are matched case-insensitively; the audio is NIST SPHERE (read by
soundfile), or a RIFF copy named ``*.WAV.wav`` as some distributions ship it,
which is preferred when present.

Phone set: by default the transcripts are the 61 TIMIT phones folded to the 39
classes of Lee & Hon (1989), upper case, so a model is *trained* on 39 phones
and scored on the same 39. Folding can put two silences side by side (``epi
pcl``); they are merged into one ``SIL``. ``phone_set="61"`` keeps the original
61 labels (upper case, ``q`` dropped) for training on 61 and folding with
:func:`fold_timit_phone` when scoring.
"""

from __future__ import annotations

import random
from pathlib import Path

from seqrec.data.corpora.kaldi import _duration
from seqrec.data.manifest import Record, write_manifest

CORE_TEST_SPEAKERS = (
    "MDAB0 MWBT0 FELC0 MTAS1 MWEW0 FPAS0 MJMP0 MLNT0 FPKT0 MLLL0 MTLS0 FJLM0 "
    "MBPM0 MKLT0 FNLP0 MCMJ0 MJDH0 FMGD0 MGRT0 MNJM0 FDHC0 MJLN0 MMDM2 FCAL1"
).split()

_FOLD = {
    "ao": "aa",
    "ax": "ah",
    "ax-h": "ah",
    "axr": "er",
    "hv": "hh",
    "ix": "ih",
    "el": "l",
    "em": "m",
    "en": "n",
    "nx": "n",
    "eng": "ng",
    "zh": "sh",
    "ux": "uw",
    **{p: "sil" for p in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")},
}

TIMIT_61 = (
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl "
    "h# hh hv ih ix iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w "
    "y z zh"
).split()


def fold_timit_phone(phone: str) -> str | None:
    """Fold one TIMIT phone (any case) to its 39-set class, upper case; ``q`` gives ``None``.

    ``fold_timit_phone("ix") == "IH"``, ``fold_timit_phone("pcl") == "SIL"``.
    """
    p = phone.lower()
    if p not in TIMIT_61:
        raise ValueError(f"unknown TIMIT phone {phone!r}")
    if p == "q":
        return None
    return _FOLD.get(p, p).upper()


def read_phn(path: str | Path, phone_set: str = "39") -> str:
    """The transcript of a ``.PHN`` file (``start end phone`` lines) in ``phone_set``."""
    phones = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected 'start end phone', got {line!r}")
            try:
                p = fold_timit_phone(parts[2])
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            if p is None:
                continue
            if phone_set == "61":
                p = parts[2].upper()
            elif p == "SIL" and phones and phones[-1] == "SIL":
                continue
            phones.append(p)
    if not phones:
        raise ValueError(f"{path}: no phones")
    return " ".join(phones)


def _children(folder: Path, name: str) -> list[Path]:
    """The sub-folders of ``folder`` called ``name``, in any case."""
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() == name]


def _find_root(data_dir: Path) -> Path:
    """The folder holding TRAIN and TEST: ``data_dir`` or one level below (``TIMIT/``)."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: TIMIT folder not found")
    for cand in [data_dir, *sorted(p for p in data_dir.iterdir() if p.is_dir())]:
        if _children(cand, "train") or _children(cand, "test"):
            return cand
    raise FileNotFoundError(f"{data_dir}: no TIMIT TRAIN/ or TEST/ folder found")


def _audio_for(phn: Path) -> Path:
    stem = phn.with_suffix("")
    names = {p.name.lower(): p for p in phn.parent.iterdir()}
    for suffix in (".wav.wav", ".wav"):
        hit = names.get(stem.name.lower() + suffix)
        if hit is not None:
            return hit
    raise FileNotFoundError(f"{phn}: no audio file ({stem.name}.WAV) next to it")


def _utterances(split_dirs: list[Path]) -> dict[str, list[Path]]:
    """``.PHN`` files per speaker (upper-case id) under ``split_dirs``; SA sentences skipped."""
    by_speaker: dict[str, list[Path]] = {}
    for phn in sorted(p for d in split_dirs for p in d.rglob("*")):
        if phn.suffix.lower() != ".phn" or phn.stem.lower().startswith("sa"):
            continue
        by_speaker.setdefault(phn.parent.name.upper(), []).append(phn)
    return by_speaker


def _records(phns: list[Path], speaker: str, phone_set: str) -> list[Record]:
    records = []
    for phn in phns:
        wav = _audio_for(phn).resolve()
        utt = f"{speaker}_{phn.stem.upper()}"
        records.append(
            Record(utt, str(wav), read_phn(phn, phone_set), _duration(wav), None, speaker)
        )
    return records


def prepare_timit(
    data_dir: str | Path,
    out_dir: str | Path,
    phone_set: str = "39",
    dev_speakers: int = 50,
    seed: int = 0,
) -> dict[str, int]:
    """Write ``train``, ``dev`` and ``test`` manifests for TIMIT (SA1/SA2 left out).

    ``train`` is every TRAIN speaker; ``test`` the standard 24-speaker core test
    set; ``dev`` approximates the standard 50-speaker dev set by a seeded
    ``dev_speakers`` TEST speakers outside the core test. Transcripts are
    39-phone (default) or 61-phone, see the module docstring.
    """
    if phone_set not in ("39", "61"):
        raise ValueError("phone_set must be '39' or '61'")
    root = _find_root(Path(data_dir))
    train = _utterances(_children(root, "train"))
    test = _utterances(_children(root, "test"))
    core = [s for s in test if s in CORE_TEST_SPEAKERS]
    others = sorted(s for s in test if s not in CORE_TEST_SPEAKERS)
    dev = sorted(random.Random(seed).sample(others, min(dev_speakers, len(others))))
    splits = {
        "train": [(s, train[s]) for s in sorted(train)],
        "dev": [(s, test[s]) for s in dev],
        "test": [(s, test[s]) for s in sorted(core)],
    }
    counts = {}
    for name, speakers in splits.items():
        recs = [r for spk, phns in speakers for r in _records(phns, spk, phone_set)]
        if not recs:
            continue
        write_manifest(Path(out_dir) / f"{name}.jsonl", recs)
        counts[name] = len(recs)
    if not counts:
        raise FileNotFoundError(f"{root}: no TIMIT .PHN transcripts found")
    return counts


IMPORTERS = {"timit": prepare_timit}

"""Kaldi data directories (``wav.scp``, ``text``, ``utt2spk``) and speechocean762."""

from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf

from seqrec.data.manifest import Record, write_manifest


def _read_table(path: Path) -> dict[str, str]:
    """Read a Kaldi two-column table (key, rest of line)."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'key value', got {line!r}")
            table[parts[0]] = parts[1].strip()
    return table


def _duration(path: Path) -> float | None:
    try:
        info = sf.info(str(path))
    except Exception:
        return None
    return info.frames / info.samplerate if info.samplerate else None


def read_kaldi_dir(
    split_dir: Path, root: Path, texts: dict[str, str] | None = None
) -> list[Record]:
    """Records of one Kaldi data dir. ``wav.scp`` paths are resolved against ``root``.

    ``texts`` overrides the ``text`` file (used for phone transcripts); the
    ``text`` file's words, when there is one, then go in ``Record.words``.
    """
    wavs = _read_table(split_dir / "wav.scp")
    words: dict[str, str] = {}
    if texts is None:
        texts = _read_table(split_dir / "text")
    elif (split_dir / "text").exists():
        words = _read_table(split_dir / "text")
    spk = _read_table(split_dir / "utt2spk") if (split_dir / "utt2spk").exists() else {}
    records = []
    for utt in sorted(wavs):
        wav = wavs[utt]
        if wav.endswith("|"):
            raise ValueError(f"{split_dir / 'wav.scp'}: {utt}: piped commands are not supported")
        p = Path(wav)
        if not p.is_absolute():
            p = root / p
        if utt not in texts:
            raise ValueError(f"{split_dir}: utterance {utt} has no transcript")
        records.append(
            Record(
                utt,
                str(p.resolve()),
                texts[utt],
                _duration(p),
                speaker=spk.get(utt),
                words=words.get(utt),
            )
        )
    return records


def prepare_kaldi(data_dir: str | Path, out_dir: str | Path, root: str | None = None) -> dict:
    """Import every Kaldi data dir (a folder holding ``wav.scp``) under ``data_dir``.

    A split is named after its folder; ``data_dir`` itself may be one data dir.
    ``wav.scp`` paths are resolved against ``root`` (default: ``data_dir``).
    """
    data_dir = Path(data_dir)
    base = Path(root) if root else data_dir
    splits = sorted({p.parent for p in data_dir.rglob("wav.scp")})
    if not splits:
        raise FileNotFoundError(f"{data_dir}: no Kaldi data dir (wav.scp) found")
    counts = {}
    for split_dir in splits:
        name = "data" if split_dir == data_dir else split_dir.name
        recs = read_kaldi_dir(split_dir, base)
        write_manifest(Path(out_dir) / f"{name}.jsonl", recs)
        counts[name] = len(recs)
    return counts


_STRESS_POS = re.compile(r"(_[BIES])$", re.IGNORECASE)


def cmu39(phone: str) -> str:
    """Strip word-position suffixes (``_B/_I/_E/_S``) and stress digits: ``AO0_I -> AO``."""
    return re.sub(r"\d$", "", _STRESS_POS.sub("", phone)).upper()


def read_text_phone(path: Path) -> dict[str, str]:
    """Utterance-level 39-phone transcripts from speechocean762's ``resource/text-phone``."""
    words: dict[str, list[tuple[int, str]]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            key, _, phones = line.partition("\t") if "\t" in line else line.partition(" ")
            utt, dot, idx = key.rpartition(".")
            if not dot or not idx.isdigit():
                raise ValueError(f"{path}:{lineno}: expected 'UTT.WORDINDEX phones'")
            words.setdefault(utt, []).append((int(idx), " ".join(map(cmu39, phones.split()))))
    return {u: " ".join(p for _, p in sorted(ws) if p) for u, ws in words.items()}


def prepare_speechocean762(data_dir: str | Path, out_dir: str | Path, units: str = "phone") -> dict:
    """Import speechocean762 (``train``/``test`` Kaldi dirs) with 39-phone or word transcripts."""
    data_dir = Path(data_dir)
    texts = None
    if units == "phone":
        texts = read_text_phone(data_dir / "resource" / "text-phone")
    elif units != "word":
        raise ValueError("units must be 'phone' or 'word'")
    counts = {}
    for split in ("train", "test"):
        split_dir = data_dir / split
        if not (split_dir / "wav.scp").exists():
            continue
        recs = read_kaldi_dir(split_dir, data_dir, texts)
        write_manifest(Path(out_dir) / f"{split}.jsonl", recs)
        counts[split] = len(recs)
    if not counts:
        raise FileNotFoundError(f"{data_dir}: no train/ or test/ Kaldi dir found")
    return counts

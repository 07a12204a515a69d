"""LibriSpeech: ``<split>/<speaker>/<chapter>/<spk>-<chap>.trans.txt`` and ``<utt>.flac``."""

from __future__ import annotations

from pathlib import Path

from seqrec.data.corpora.kaldi import _duration
from seqrec.data.manifest import Record, write_manifest

_AUDIO_SUFFIXES = (".flac", ".wav")


def _audio_for(folder: Path, utt: str, where: str) -> Path:
    for suffix in _AUDIO_SUFFIXES:
        if (folder / f"{utt}{suffix}").is_file():
            return (folder / f"{utt}{suffix}").resolve()
    raise FileNotFoundError(f"{where}: audio {folder / (utt + '.flac')} not found")


def read_transcripts(trans: Path) -> list[Record]:
    """Records of one chapter's ``*.trans.txt`` (``UTTID WORDS...`` lines).

    The audio ``<UTTID>.flac`` (or ``.wav``) must sit next to it; the speaker is
    the first part of the utterance id.
    """
    records = []
    with open(trans, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            utt, _, text = line.strip().partition(" ")
            if not utt:
                continue
            audio = _audio_for(trans.parent, utt, f"{trans}:{lineno}")
            speaker = utt.split("-")[0]
            records.append(
                Record(utt, str(audio), " ".join(text.split()), _duration(audio), None, speaker)
            )
    return records


def prepare_librispeech(data_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write ``OUT_DIR/<split>.jsonl`` for every split folder under ``data_dir``.

    ``data_dir`` holds split folders (``train-clean-100``, ``dev-clean``, ...) or
    is one itself. Transcripts are kept as given (upper-case words).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: LibriSpeech folder not found")
    by_split: dict[str, list[Path]] = {}
    for trans in sorted(data_dir.rglob("*.trans.txt")):
        # <split>/<speaker>/<chapter>/<file>: the split is three folders up
        by_split.setdefault(trans.parents[2].name, []).append(trans)
    if not by_split:
        raise FileNotFoundError(f"{data_dir}: no LibriSpeech transcripts (*.trans.txt) found")
    counts = {}
    for split, files in sorted(by_split.items()):
        recs = [r for trans in files for r in read_transcripts(trans)]
        write_manifest(Path(out_dir) / f"{split}.jsonl", recs)
        counts[split] = len(recs)
    return counts


IMPORTERS = {"librispeech": prepare_librispeech}

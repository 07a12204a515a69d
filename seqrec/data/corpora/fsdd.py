"""Free Spoken Digit Dataset (FSDD) joined into connected digit strings.

FSDD holds isolated digits, ``recordings/{digit}_{speaker}_{take}.wav`` (8 kHz
mono). :func:`prepare_fsdd` joins 2-7 takes of one speaker, with short gaps of
low background noise between them, into TIDIGITS-like strings, writes them as
16-bit WAV files under ``OUT_DIR/wav/<split>/`` and a manifest per split.
Transcripts are digit phones (through a pronunciation lexicon) or digit words.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from seqrec.data.corpora.kaldi import _duration, _read_table, read_kaldi_dir, read_text_phone
from seqrec.data.manifest import Record, write_manifest
from seqrec.lexicon import DIGIT_LEXICON, DIGIT_WORDS, read_lexicon

_NAME = re.compile(r"^(\d)_(.+)_(\d+)\.wav$", re.IGNORECASE)
_EDGE_S = 0.02  # the gap noise matches the level of this much audio at each take's edge

SPLITS = ("train", "dev", "test_seen", "test")

LexiconArg = str | os.PathLike | Mapping[str, Sequence[Sequence[str]]] | None


@dataclass(frozen=True)
class Take:
    """One FSDD recording: a spoken ``digit`` by ``speaker``, take number ``take``."""

    digit: int
    speaker: str
    take: int
    path: Path


def scan_fsdd(data_dir: str | Path) -> dict[str, list[Take]]:
    """Takes per speaker, sorted, from ``data_dir/recordings`` (or ``data_dir`` itself)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: FSDD folder not found")
    rec_dir = data_dir / "recordings" if (data_dir / "recordings").is_dir() else data_dir
    speakers: dict[str, list[Take]] = {}
    for p in sorted(rec_dir.iterdir()):
        m = _NAME.match(p.name)
        if m and p.is_file():
            take = Take(int(m.group(1)), m.group(2), int(m.group(3)), p)
            speakers.setdefault(take.speaker, []).append(take)
    if not speakers:
        raise FileNotFoundError(
            f"{rec_dir}: no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav) found"
        )
    return {s: sorted(t, key=lambda x: (x.take, x.digit)) for s, t in sorted(speakers.items())}


def digit_pronunciations(lexicon: LexiconArg = None) -> dict[str, str]:
    """One pronunciation per digit word (the first listed), as a space-joined phone string.

    ``lexicon`` is a lexicon file, a lexicon mapping, or ``None`` for the built-in
    :data:`~seqrec.lexicon.DIGIT_LEXICON`.
    """
    if lexicon is None:
        lex: Mapping[str, Sequence[Sequence[str]]] = DIGIT_LEXICON
    elif isinstance(lexicon, Mapping):
        lex = lexicon
    else:
        lex = read_lexicon(lexicon)
    missing = [w for w in DIGIT_WORDS if not lex.get(w)]
    if missing:
        raise ValueError(f"the lexicon has no pronunciation for {' '.join(missing)}")
    return {w: " ".join(lex[w][0]) for w in DIGIT_WORDS}


def _chunk_sizes(total: int, lo: int, hi: int, rng: random.Random) -> list[int]:
    """Random string lengths in ``[lo, hi]`` summing to ``total`` where possible.

    A remainder that no length fits (fewer than ``lo`` items) is left unused.
    """
    sizes: list[int] = []
    rest = total
    while rest >= lo:
        n = rng.randint(lo, min(hi, rest))
        if 0 < rest - n < lo:  # would strand a remainder: shrink or grow this string
            if rest - lo >= lo:  # (rest - lo < n <= hi holds here)
                n = rest - lo
            elif rest <= hi:
                n = rest
        sizes.append(n)
        rest -= n
    return sizes


def make_strings(
    takes: Sequence[Take], min_digits: int, max_digits: int, rng: random.Random
) -> list[list[Take]]:
    """Shuffle ``takes`` and cut them into strings; each take is used at most once."""
    order = list(takes)
    rng.shuffle(order)
    strings, start = [], 0
    for n in _chunk_sizes(len(order), min_digits, max_digits, rng):
        strings.append(order[start : start + n])
        start += n
    return strings


def _read_take(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise ValueError(f"{path}: audio has no samples")
    return data.mean(axis=1), sr


def _edge_rms(wave: np.ndarray, n: int, tail: bool) -> float:
    edge = wave[-n:] if tail else wave[:n]
    return float(np.sqrt(np.mean(edge.astype(np.float64) ** 2))) if edge.size else 0.0


def join_takes(
    string: Sequence[Take], rng: random.Random, gap_ms: tuple[float, float] = (50.0, 300.0)
) -> tuple[np.ndarray, int]:
    """Concatenate the takes' audio with a random gap between each pair.

    Each take keeps its own leading and trailing silence. A gap is low Gaussian
    noise at the level of the neighbouring takes' edges (digital silence would be
    an unnatural cue). Returns the waveform and its sample rate.
    """
    pieces, sr0 = [], None
    noise = np.random.default_rng(rng.getrandbits(32))
    prev = None
    for t in string:
        wave, sr = _read_take(t.path)
        if sr0 is None:
            sr0 = sr
        elif sr != sr0:
            raise ValueError(f"{t.path}: sample rate {sr} Hz differs from the other takes' {sr0}")
        if prev is not None:
            n_gap = int(round(rng.uniform(*gap_ms) * sr / 1000))
            edge = max(1, int(_EDGE_S * sr))
            level = min(_edge_rms(prev, edge, True), _edge_rms(wave, edge, False))
            pieces.append((noise.standard_normal(n_gap) * level).astype(np.float32))
        pieces.append(wave)
        prev = wave
    return np.concatenate(pieces), int(sr0)


def _transcript(string: Sequence[Take], prons: Mapping[str, str], units: str) -> tuple[str, str]:
    words = " ".join(DIGIT_WORDS[t.digit] for t in string)
    if units == "word":
        return words, words
    return " ".join(prons[w] for w in words.split()), words


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    """Speaker names from a sequence or a comma-separated string."""
    if isinstance(names, str):
        return tuple(n.strip() for n in names.split(",") if n.strip())
    return tuple(names)


def _split_pools(
    speakers: Mapping[str, list[Take]], test_speakers: Sequence[str], seen_takes: int = 5
) -> dict[str, dict[str, list[Take]]]:
    """Takes per split and speaker: ``trainpool`` (later cut into train/dev), test_seen, test."""
    pools: dict[str, dict[str, list[Take]]] = {"trainpool": {}, "test_seen": {}, "test": {}}
    for spk, takes in speakers.items():
        if spk in test_speakers:
            pools["test"][spk] = list(takes)
        else:
            pools["trainpool"][spk] = [t for t in takes if t.take >= seen_takes]
            pools["test_seen"][spk] = [t for t in takes if t.take < seen_takes]
    return pools


def plan_strings(
    speakers: Mapping[str, list[Take]],
    test_speakers: Sequence[str] = ("theo",),
    min_digits: int = 2,
    max_digits: int = 7,
    seed: int = 0,
    dev_fraction: float = 0.08,
    strings_per_speaker: int | None = None,
    seen_takes: int = 5,
) -> dict[str, list[tuple[str, list[Take]]]]:
    """Which takes make up each string: ``split -> [(speaker, takes in order)]``.

    See :func:`prepare_fsdd` for the splits. Each speaker and split draws from its
    own generator seeded by ``seed`` and the speaker's name.
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    pools = _split_pools(speakers, _names(test_speakers), seen_takes)
    out: dict[str, list[tuple[str, list[Take]]]] = {s: [] for s in SPLITS}
    for pool_name, by_speaker in pools.items():
        for spk, takes in by_speaker.items():
            rng = random.Random(f"fsdd-{seed}-{spk}-{pool_name}")
            strings = make_strings(takes, min_digits, max_digits, rng)
            parts = {pool_name: strings}
            if pool_name == "trainpool":
                dev_idx = set(rng.sample(range(len(strings)), round(dev_fraction * len(strings))))
                parts = {
                    "train": [s for i, s in enumerate(strings) if i not in dev_idx],
                    "dev": [s for i, s in enumerate(strings) if i in dev_idx],
                }
            for split, strs in parts.items():
                out[split].extend((spk, s) for s in strs[:strings_per_speaker])
    return out


def prepare_fsdd(
    data_dir: str | Path,
    out_dir: str | Path,
    test_speakers: Sequence[str] = ("theo",),
    min_digits: int = 2,
    max_digits: int = 7,
    seed: int = 0,
    lexicon: LexiconArg = None,
    units: str = "phone",
    strings_per_speaker: int | None = None,
    speechocean_dir: str | Path | None = None,
    dev_fraction: float = 0.08,
    gap_ms: tuple[float, float] = (50.0, 300.0),
    seen_takes: int = 5,
    speechocean_all: bool = False,
) -> dict[str, int]:
    """Write connected-digit strings and the manifests ``train``, ``dev``, ``test_seen``, ``test``.

    Each string joins ``min_digits``..``max_digits`` takes of one speaker.
    ``train`` uses takes ``seen_takes``-49 of the speakers not in ``test_speakers``;
    ``dev`` is a seeded ``dev_fraction`` of those strings (so its takes are disjoint
    from train's); ``test_seen`` uses takes 0..``seen_takes - 1`` of the same
    speakers (FSDD's own test convention is 0-4); ``test`` uses every take of
    ``test_speakers``. Every take is used in at most one string, and nearly every
    take once;
    ``strings_per_speaker`` caps the strings per speaker and split.

    ``units="phone"`` writes digit phones from ``lexicon`` (default: the built-in
    digit lexicon; a file's first pronunciation wins) with the digit words in
    ``Record.words``; ``units="word"`` writes the words as the text. With
    ``speechocean_dir``, speechocean762's digit-only train utterances are
    appended to ``train`` (see :func:`prepare_speechocean_digits`);
    ``speechocean_all`` (phone units only) appends its other train sentences
    too, with their canonical 39-phone transcripts: about 125 more voices for the
    phones the digits share with English at large. The result does not depend on
    the machine: each speaker's strings come from ``seed``.
    """
    if units not in ("phone", "word"):
        raise ValueError("units must be 'phone' or 'word'")
    if speechocean_all and (speechocean_dir is None or units != "phone"):
        raise ValueError("speechocean_all needs speechocean_dir and units='phone'")
    speakers = scan_fsdd(data_dir)
    test_speakers = _names(test_speakers)
    unknown = [s for s in test_speakers if s not in speakers]
    if unknown:
        raise ValueError(f"test speakers {unknown} not in FSDD (found: {', '.join(speakers)})")
    prons = digit_pronunciations(lexicon)
    strings = plan_strings(
        speakers,
        test_speakers,
        min_digits,
        max_digits,
        seed,
        dev_fraction,
        strings_per_speaker,
        seen_takes,
    )
    out_dir = Path(out_dir)
    counts = {}
    for split in SPLITS:
        recs = _write_split(strings[split], split, out_dir, prons, units, seed, gap_ms)
        if split == "train" and speechocean_dir is not None:
            digits = prepare_speechocean_digits(speechocean_dir, lexicon, units)
            recs += digits
            if speechocean_all:
                recs += _speechocean_sentences(speechocean_dir, skip={r.id for r in digits})
        write_manifest(out_dir / f"{split}.jsonl", recs)
        counts[split] = len(recs)
    return counts


def _write_split(
    strings: Sequence[tuple[str, list[Take]]],
    split: str,
    out_dir: Path,
    prons: Mapping[str, str],
    units: str,
    seed: int,
    gap_ms: tuple[float, float],
) -> list[Record]:
    """Join and write each string's audio; manifest paths are relative to ``out_dir``."""
    wav_dir = out_dir / "wav" / split
    wav_dir.mkdir(parents=True, exist_ok=True)
    records, index = [], {}
    for spk, string in strings:
        index[spk] = index.get(spk, 0) + 1
        digits = "".join(str(t.digit) for t in string)
        utt = f"{spk}-{split}-{index[spk]:04d}-{digits}"
        rng = random.Random(f"fsdd-gaps-{seed}-{utt}")
        wave, sr = join_takes(string, rng, gap_ms)
        sf.write(str(wav_dir / f"{utt}.wav"), np.clip(wave, -1.0, 1.0), sr, subtype="PCM_16")
        text, words = _transcript(string, prons, units)
        rel = f"wav/{split}/{utt}.wav"
        records.append(
            Record(utt, rel, text, len(wave) / sr, speaker=spk, words=_words_field(words, units))
        )
    return records


def _words_field(words: str, units: str) -> str | None:
    """``Record.words``: the digit words beside a phone transcript, else nothing."""
    return words if units == "phone" else None


def prepare_speechocean_digits(
    so_dir: str | Path, lexicon: LexiconArg = None, units: str = "phone"
) -> list[Record]:
    """Records of speechocean762 train utterances whose text is only digit words.

    Reads ``train/text``, ``train/wav.scp`` and ``train/utt2spk`` (paths relative
    to ``so_dir``). Phones come from the same digit lexicon as the FSDD strings
    (``lexicon`` as in :func:`digit_pronunciations`), so the labels agree; in
    phone mode the digit words go in ``Record.words``.
    """
    split_dir = Path(so_dir) / "train"
    for name in ("text", "wav.scp"):
        if not (split_dir / name).is_file():
            raise FileNotFoundError(f"{split_dir / name}: speechocean762 file not found")
    if units not in ("phone", "word"):
        raise ValueError("units must be 'phone' or 'word'")
    prons = digit_pronunciations(lexicon)
    texts = _read_table(split_dir / "text")
    wavs = _read_table(split_dir / "wav.scp")
    spk = _read_table(split_dir / "utt2spk") if (split_dir / "utt2spk").exists() else {}
    records = []
    for utt in sorted(texts):
        words = texts[utt].upper().split()
        if not words or any(w not in DIGIT_WORDS for w in words):
            continue
        if utt not in wavs:
            raise ValueError(f"{split_dir / 'wav.scp'}: utterance {utt} has no audio")
        p = Path(wavs[utt])
        p = (p if p.is_absolute() else Path(so_dir) / p).resolve()
        text = " ".join(words) if units == "word" else " ".join(prons[w] for w in words)
        words_field = _words_field(" ".join(words), units)
        records.append(
            Record(utt, str(p), text, _duration(p), speaker=spk.get(utt), words=words_field)
        )
    return records


def _speechocean_sentences(so_dir: str | Path, skip: set[str]) -> list[Record]:
    """speechocean762 train utterances not in ``skip``, with 39-phone transcripts."""
    so_dir = Path(so_dir)
    phones = read_text_phone(so_dir / "resource" / "text-phone")
    recs = read_kaldi_dir(so_dir / "train", so_dir, phones)
    return [r for r in recs if r.id not in skip]


IMPORTERS = {"fsdd": prepare_fsdd}

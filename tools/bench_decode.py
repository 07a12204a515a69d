"""Decoding benchmark: our CTC beam search against flashlight-text and pyctcdecode.

The log-probs of each test set are computed once from a trained model and
cached as ``.npz`` under ``--cache``; every decoder then decodes the same
arrays in the same run, so the time ratios compare decoders, not machines.

    python tools/bench_decode.py --cache exp/bench \\
        --task speech exp/speech_phones/model/best.pt exp/speech_phones/data/test.jsonl \\
               exp/lm/phones4.arpa \\
        --task handwriting exp/handwriting_lines/model/best.pt \\
               exp/handwriting_lines/data/test.jsonl exp/lm/chars6.arpa

Decoders: ours (batched over utterances), torchaudio's ``ctc_decoder``
(flashlight-text; its defaults and with token pruning ``beam_size_token=10,
beam_threshold=25``) and pyctcdecode (no LM: it fuses word-level KenLM models
only). pyctcdecode pins ``numpy<2``, so it runs in its own virtual environment
(``--pyctc-venv``, created with ``pip install "numpy<2" pyctcdecode`` if
missing) on the cached arrays, through a subprocess. Everything runs with one
thread and is timed in process CPU time (``time.process_time``), so other load
on the machine does not skew the ratios. Prints CPU ms per utterance, each
decoder's time divided by ours at the same beam and LM, and the error rate
(PER or CER).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqrec.decoders.beam import TokenLM, ctc_beam_search  # noqa: E402
from seqrec.decoders.lm import SPACE_WORD, NgramLM  # noqa: E402
from seqrec.metrics import cer, per  # noqa: E402
from seqrec.vocab import Vocabulary  # noqa: E402

PRUNED = {"beam_size_token": 10, "beam_threshold": 25.0}


# ------------------------------------------------------------------ log-prob cache


def cached_log_probs(name: str, model: str, manifest: str, cache: Path) -> dict:
    """``{"lps": [(T_i, V) arrays], "refs": [...], "symbols": [...], "unit": str}``."""
    path = cache / f"{name}_test.npz"
    if not path.exists():
        from seqrec.data.manifest import read_manifest
        from seqrec.recognizer import Recognizer

        rec = Recognizer.load(model)
        records = read_manifest(manifest)
        feats = [rec.frontend(r.path) for r in records]
        order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
        lps: dict[int, np.ndarray] = {}
        for start in range(0, len(order), 16):
            idx = order[start : start + 16]
            lp, lengths = rec.log_probs([feats[i] for i in idx])
            for k, i in enumerate(idx):
                lps[i] = lp[k, : lengths[k]].numpy()
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            **{f"lp{i}": lps[i] for i in range(len(records))},
            refs=np.array([r.text for r in records]),
            symbols=np.array(rec.vocab.symbols),
            unit=np.array(rec.vocab.unit),
        )
    z = np.load(path)
    n = len(z["refs"])
    return {
        "lps": [z[f"lp{i}"] for i in range(n)],
        "refs": [str(r) for r in z["refs"]],
        "symbols": [str(s) for s in z["symbols"]],
        "unit": str(z["unit"]),
        "path": path,
    }


def _padded(lps: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([x.shape[0] for x in lps])
    lp = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(x) for x in lps], batch_first=True)
    return lp.float().contiguous(), lengths


def _score(data: dict, hyps: list[str]) -> float:
    return (cer if data["unit"] == "char" else per)(data["refs"][: len(hyps)], hyps)


# ------------------------------------------------------------------------ decoders


def run_ours(data, beam, lm, weight, bonus, batch) -> tuple[float, list[str]]:
    vocab = Vocabulary(tuple(data["symbols"]), data["unit"])
    fused = TokenLM(lm, vocab.symbols, weight, bonus) if lm is not None else None
    lps = data["lps"]
    order = sorted(range(len(lps)), key=lambda i: lps[i].shape[0])
    texts: dict[int, str] = {}
    t0 = time.process_time()
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        lp, lengths = _padded([lps[i] for i in idx])
        for i, hyps in zip(idx, ctc_beam_search(lp, lengths, beam=beam, lm=fused), strict=True):
            texts[i] = vocab.decode(hyps[0].ids)
    return time.process_time() - t0, [texts[i] for i in range(len(lps))]


def _flashlight_tokens(data) -> tuple[list[str], bool]:
    """Token list with blank and a ``|`` word separator (added if the model has no space)."""
    syms = [SPACE_WORD if s == " " else s for s in data["symbols"]]
    syms[0] = "<blank>"
    has_space = SPACE_WORD in syms
    return (syms if has_space else [*syms, SPACE_WORD]), not has_space


def run_flashlight(data, beam, lm_path, weight, pruned, sil_score=0.0) -> tuple[float, list[str]]:
    from torchaudio.models.decoder import ctc_decoder

    tokens, add_sep = _flashlight_tokens(data)
    dec = ctc_decoder(
        lexicon=None,
        tokens=tokens,
        lm=lm_path,
        lm_weight=weight if lm_path else 0.0,
        sil_score=sil_score if lm_path else 0.0,
        beam_size=beam,
        blank_token="<blank>",
        sil_token=SPACE_WORD,
        **(PRUNED if pruned else {}),
    )
    lps = data["lps"]
    texts: list[str] = [""] * len(lps)
    t0 = time.process_time()
    for start in range(0, len(lps), 128):
        lp, lengths = _padded(lps[start : start + 128])
        if add_sep:  # the model never emits a separator
            lp = torch.cat([lp, torch.full((*lp.shape[:2], 1), -1e4)], 2).contiguous()
        for k, hyps in enumerate(dec(lp, lengths)):
            toks = dec.idxs_to_tokens(hyps[0].tokens)
            texts[start + k] = _flashlight_text(toks, data["unit"])
    return time.process_time() - t0, texts


def _flashlight_text(toks: list[str], unit: str) -> str:
    if unit == "char":
        return " ".join("".join(" " if t == SPACE_WORD else t for t in toks).split())
    return " ".join(t for t in toks if t != SPACE_WORD)


PYCTC_RUNNER = r"""
import json, sys, time
import numpy as np
from pyctcdecode import build_ctcdecoder
npz, beam, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
z = np.load(npz)
syms = [str(s) for s in z["symbols"]]
unit = str(z["unit"])
n = min(len(z["refs"]), limit)
# One character per symbol (phones are multi-letter); blank is "".
labels = [""] + [(" " if s == " " else chr(0x4E00 + i)) for i, s in enumerate(syms) if i]
back = {chr(0x4E00 + i): s for i, s in enumerate(syms) if i}
dec = build_ctcdecoder(labels)
texts = []
t0 = time.process_time()
for i in range(n):
    texts.append(dec.decode(z[f"lp{i}"].astype(np.float32), beam_width=beam))
sec = time.process_time() - t0
out = []
for t in texts:
    if unit == "char":
        out.append("".join(back.get(c, c) for c in t))
    else:
        out.append(" ".join(back[c] for c in t if c in back))
print(json.dumps({"seconds": sec, "texts": out}))
"""


def ensure_pyctc_venv(venv: Path) -> Path | None:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} for pyctcdecode (numpy<2) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "numpy<2", "pyctcdecode"], check=False
        )
    ok = subprocess.run([str(python), "-c", "import pyctcdecode"], capture_output=True)
    return python if ok.returncode == 0 else None


def run_pyctc(python: Path, data, beam, limit) -> tuple[float, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [str(python), "-c", PYCTC_RUNNER, str(data["path"]), str(beam), str(limit)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["seconds"], out["texts"]


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--task",
        nargs=4,
        action="append",
        metavar=("NAME", "MODEL", "MANIFEST", "LM"),
        required=True,
        help="a test set: name, model file, manifest, ARPA LM ('-' for none)",
    )
    p.add_argument("--cache", default="exp/bench", help="folder for the cached log-probs")
    p.add_argument("--beams", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--lm-weight", type=float, nargs="+", help="per task (default 0.5)")
    p.add_argument("--word-bonus", type=float, nargs="+", help="per task (default 0)")
    p.add_argument(
        "--fl-lm-weight",
        type=float,
        nargs="+",
        help="flashlight's LM weight per task, tuned for it (default: --lm-weight); its "
        "lexicon-free decoder has no insertion bonus",
    )
    p.add_argument("--limit", type=int, default=0, help="first N utterances only (0: all)")
    p.add_argument("--batch", type=int, default=128, help="utterances per batch (ours)")
    p.add_argument("--pyctc-venv", default="/tmp/pyctc-venv")
    p.add_argument("--skip", nargs="*", default=[], help="decoders to leave out")
    p.add_argument("--json", help="write all figures here too")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cache = Path(args.cache)
    pyctc = None if "pyctcdecode" in args.skip else ensure_pyctc_venv(Path(args.pyctc_venv))
    results = []
    for t, (name, model, manifest, lm_path) in enumerate(args.task):
        data = cached_log_probs(name, model, manifest, cache)
        if args.limit:
            data = {**data, "lps": data["lps"][: args.limit], "refs": data["refs"][: args.limit]}
        n = len(data["lps"])
        weight = args.lm_weight[t] if args.lm_weight else 0.5
        bonus = args.word_bonus[t] if args.word_bonus else 0.0
        fl_weight = args.fl_lm_weight[t] if args.fl_lm_weight else weight
        lm = NgramLM.from_arpa(lm_path) if lm_path != "-" else None
        frames = sum(x.shape[0] for x in data["lps"])
        print(
            f"\n== {name}: {n} utterances, {frames / n:.0f} frames each, V={len(data['symbols'])}"
        )
        print(f"{'decoder':<28}{'beam':>5} {'LM':>4} {'cpu ms/utt':>11} {'/ ours':>7} {'error':>7}")
        for use_lm in [False, True] if lm is not None else [False]:
            for beam in args.beams:
                rows = []
                sec, hyps = run_ours(data, beam, lm if use_lm else None, weight, bonus, args.batch)
                rows.append(("ours (batched)", sec, hyps))
                for pruned in (False, True):
                    label = "flashlight " + ("pruned" if pruned else "default")
                    if label.split()[0] in args.skip or label in args.skip:
                        continue
                    sec, hyps = run_flashlight(
                        data, beam, lm_path if use_lm else None, fl_weight, pruned
                    )
                    rows.append((label, sec, hyps))
                if pyctc is not None and not use_lm:
                    sec, hyps = run_pyctc(pyctc, data, beam, n)
                    rows.append(("pyctcdecode", sec, hyps))
                base = rows[0][1] / n
                for label, sec, hyps in rows:
                    ms = sec / n * 1e3
                    err = _score(data, hyps)
                    ratio = (sec / n) / base
                    print(
                        f"{label:<28}{beam:>5} {'yes' if use_lm else 'no':>4} "
                        f"{ms:>11.2f} {ratio:>7.2f} {100 * err:>6.2f}%"
                    )
                    results.append(
                        {
                            "task": name,
                            "decoder": label,
                            "beam": beam,
                            "lm": use_lm,
                            "ms_per_utt": ms,
                            "time_vs_ours": ratio,
                            "error_rate": err,
                        }
                    )
                sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

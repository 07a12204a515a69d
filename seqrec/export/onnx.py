"""Export a model file to one self-contained ONNX file, verified against PyTorch.

The graph takes a padded batch and its lengths and gives CTC log-probs and
their lengths, with dynamic batch and time axes::

    features (B, T, F) float32, lengths (B,) int64 -> log_probs (B, T', V), out_lengths (B,)

With ``raw_input`` the frontend is part of the graph (see
:mod:`seqrec.export.graph`): ``audio (B, N)`` float32 PCM at the model's rate +
``num_samples (B,)``, or a height-normalised grayscale ``image (B, H, W)`` +
``widths (B,)`` (``heights`` for row-mode models). Everything an application
needs (vocabulary, blank id, frontend settings and statistics, subsampling,
input names) is stored in the file's ``metadata_props`` as JSON strings; see
:data:`METADATA_KEYS`.

Exporter choice: this uses the TorchScript-based exporter (``dynamo=False``)
with ``dynamic_axes``. With torch 2.14 the ``torch.export`` exporter declares
the example's time length in the output shapes, silently specialises the time
axis for subsampled models (it refines the dynamic shapes to the example's
length when a guard cannot be expressed) and takes minutes to trace the
LSTM stack on a CPU. Whichever exporter runs, every export is checked here:
outputs against PyTorch on variable-length batches whose lengths and batch
sizes differ from the example, batched against one at a time, and the
declared output shapes against the real ones (onnxruntime warnings included).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from seqrec.export import FORMAT, FORMAT_VERSION
from seqrec.export.graph import AudioFeatures, ExportableModel, ImageFeatures, RawInputModel
from seqrec.features.audio import compute_features
from seqrec.features.image import image_features
from seqrec.io import atomic_write_bytes
from seqrec.recognizer import Recognizer
from seqrec.vocab import BLANK_ID

log = logging.getLogger("seqrec.export")

DEFAULT_OPSET = 17  # LayerNormalization is an ONNX op from 17 on
QUANTIZE_CHOICES = ("int8",)
# A sanity floor, not an accuracy claim: below it int8 has broken the model (chance
# is 1/V). Trained models keep about 98 % of frames' best symbols on random inputs.
INT8_MIN_AGREEMENT = 0.5
FRONTEND_SCOPE = "/features/"  # node-name prefix of RawInputModel.features in the traced graph
IMAGE_DTYPES = ("float32", "uint8")
# Largest |log-prob| difference accepted between onnxruntime and PyTorch. Raw audio
# graphs compute the spectrum by a DFT matrix instead of an FFT, in float32.
TOLERANCE = {"features": 1e-4, "raw": 2e-3}

METADATA_KEYS = {
    "format": f"always {FORMAT!r}",
    "format_version": "version of this metadata layout",
    "seqrec_version": "seqrec version that wrote the file",
    "model_version": "source model: format, version, epoch, dev_error, sha256 of the weights",
    "input_kind": "'features' or 'raw'",
    "inputs": "graph inputs: name, dtype, shape (axis names for dynamic axes)",
    "outputs": "graph outputs, likewise",
    "modality": "'audio' or 'image'",
    "vocabulary": "symbols in id order and unit ('char': join without spaces, else with)",
    "blank_id": "CTC blank id (0)",
    "frontend": "modality, config (sample rate, feature kind, mels, image height/mode...), "
    "mean and std (global normalisation) or null",
    "subsampling": "input frames per output frame of the model",
    "frame_seconds": "seconds per feature frame (audio) or null",
    "output_step": "input units (samples for raw audio, else frames/columns) per output frame",
    "model_config": "the model's shape (ModelConfig)",
    "quantization": "null or 'int8'",
    "parity": "max |log-prob| difference to PyTorch measured at export, and its tolerance",
}


class ExportError(ValueError):
    """A model cannot be exported, or its export does not match PyTorch."""


@dataclass(frozen=True)
class ParityReport:
    """Result of comparing an exported graph with PyTorch.

    ``max_abs_diff``: largest |log-prob| difference on valid frames between
    onnxruntime and PyTorch; ``max_batch_diff``: the same between a batch and
    its items run one at a time in onnxruntime; ``argmax_agreement``: fraction
    of valid frames with the same best symbol; ``warnings``: onnxruntime
    warning lines seen while running.
    """

    max_abs_diff: float
    max_batch_diff: float
    argmax_agreement: float
    num_items: int
    warnings: tuple[str, ...] = ()


def export_onnx(
    model_path_or_recognizer: str | os.PathLike | Recognizer,
    out_path: str | os.PathLike,
    raw_input: bool = False,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    *,
    image_dtype: str = "float32",
    tolerance: float | None = None,
    seed: int = 0,
) -> Path:
    """Write a verified ONNX file for a model and return its path.

    Args:
        model_path_or_recognizer: a seqrec model file or a loaded :class:`Recognizer`.
        out_path: the ``.onnx`` file to write (written only once it passed the checks).
        raw_input: put the frontend in the graph (raw PCM or a scaled grayscale image).
        quantize: ``None`` or ``"int8"`` (dynamic int8 weights; checked for
            finite outputs, lengths and a floor of best-symbol agreement with
            PyTorch; its difference to PyTorch is reported and stored).
        opset: ONNX opset (17 or later).
        image_dtype: raw image input type, ``float32`` (``[0, 1]``) or ``uint8``.
        tolerance: largest accepted |log-prob| difference to PyTorch (default
            :data:`TOLERANCE`, by input kind).
        seed: seed of the random check batches.

    Raises:
        ExportError: the trace would not generalise, outputs differ from PyTorch
            beyond ``tolerance``, batched outputs differ from per-item ones, or
            onnxruntime finds declared shapes that do not hold.
    """
    if quantize not in (None, *QUANTIZE_CHOICES):
        raise ValueError(f"unknown quantisation {quantize!r}; expected one of {QUANTIZE_CHOICES}")
    if image_dtype not in IMAGE_DTYPES:
        raise ValueError(f"unknown image dtype {image_dtype!r}; expected one of {IMAGE_DTYPES}")
    if opset < DEFAULT_OPSET:
        raise ValueError(f"opset must be at least {DEFAULT_OPSET}, got {opset}")
    rec = _as_recognizer(model_path_or_recognizer)
    source = None if isinstance(model_path_or_recognizer, Recognizer) else model_path_or_recognizer
    kind = "raw" if raw_input else "features"
    tol = TOLERANCE[kind] if tolerance is None else tolerance
    spec = graph_spec(rec, raw_input, image_dtype)
    module = build_module(rec, raw_input, image_dtype)
    rate = rec.frontend.cfg.sample_rate if rec.modality == "audio" else None
    data = trace_to_onnx(module, spec, example_inputs(spec, rate), opset)
    report = check_parity(rec, data, spec, seed=seed)
    _log_report("fp32", report)
    _raise_if_bad(report, tol)
    parity = {"fp32_max_abs_diff": report.max_abs_diff, "tolerance": tol}
    if quantize == "int8":
        data, q = _quantize_checked(rec, data, spec, seed)
        parity.update(int8_max_abs_diff=q.max_abs_diff, int8_argmax_agreement=q.argmax_agreement)
    proto = onnx.load_from_string(data)
    meta = build_metadata(rec, spec, quantize, parity, _source_info(source, rec))
    set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    out = Path(out_path)
    atomic_write_bytes(out, proto.SerializeToString())
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o666 & ~umask)  # a file to ship: the usual permissions, not a temp file's
    log.info("wrote %s (%.2f MB)", out, out.stat().st_size / 1e6)
    return out


def _quantize_checked(
    rec: Recognizer, data: bytes, spec: GraphSpec, seed: int
) -> tuple[bytes, ParityReport]:
    """Int8 model and its comparison with PyTorch; refused below :data:`INT8_MIN_AGREEMENT`."""
    data = quantize_int8(data)
    # Zero padding, as runtimes pad: dynamic quantisation scales each activation tensor
    # by its batch-wide range, so padding values and batch-mates move int8 outputs a
    # little (reported, not refused).
    report = check_parity(rec, data, spec, seed=seed, pad_garbage=False)
    _log_report("int8", report)
    _raise_if_bad(report, None, batch_tolerance=None)
    if report.argmax_agreement < INT8_MIN_AGREEMENT:
        raise ExportError(
            f"int8 quantisation changes the best symbol on "
            f"{100 * (1 - report.argmax_agreement):.0f} % of frames; export fp32 instead"
        )
    return data, report


def _as_recognizer(model: str | os.PathLike | Recognizer) -> Recognizer:
    if isinstance(model, Recognizer):
        return model
    return Recognizer.load(model)


# ---------------------------------------------------------------------------
# Graph


@dataclass(frozen=True)
class GraphSpec:
    """Names, dtypes and axes of a graph's inputs and outputs."""

    input_kind: str  # "features" or "raw"
    inputs: tuple[tuple[str, str, tuple[str | int, ...]], ...]  # (name, dtype, shape)
    outputs: tuple[tuple[str, str, tuple[str | int, ...]], ...]

    @property
    def input_names(self) -> list[str]:
        return [n for n, _, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _, _ in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {
            name: {i: d for i, d in enumerate(shape) if isinstance(d, str)}
            for name, _, shape in (*self.inputs, *self.outputs)
        }

    def as_json(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        def rows(items):
            return [{"name": n, "dtype": t, "shape": list(s)} for n, t, s in items]

        return rows(self.inputs), rows(self.outputs)


def graph_spec(rec: Recognizer, raw_input: bool, image_dtype: str = "float32") -> GraphSpec:
    """The inputs and outputs of the graph exported for ``rec``."""
    vocab = len(rec.vocab)
    outputs = (
        ("log_probs", "float32", ("batch", "out_frames", vocab)),
        ("out_lengths", "int64", ("batch",)),
    )
    if not raw_input:
        feat = ("features", "float32", ("batch", "frames", rec.frontend.feature_dim))
        return GraphSpec("features", (feat, ("lengths", "int64", ("batch",))), outputs)
    if rec.modality == "audio":
        inputs = (("audio", "float32", ("batch", "samples")), ("num_samples", "int64", ("batch",)))
    else:
        cfg = rec.frontend.cfg
        if cfg.mode == "columns":
            image = ("image", image_dtype, ("batch", cfg.height, "width"))
            inputs = (image, ("widths", "int64", ("batch",)))
        else:
            image = ("image", image_dtype, ("batch", "height", cfg.width))
            inputs = (image, ("heights", "int64", ("batch",)))
    return GraphSpec("raw", inputs, outputs)


def build_module(rec: Recognizer, raw_input: bool, image_dtype: str = "float32") -> torch.nn.Module:
    """The traceable module for ``rec`` (model only, or frontend + model)."""
    model = rec.model.cpu().eval()
    if not raw_input:
        return ExportableModel(model).eval()
    if rec.modality == "audio":
        features: torch.nn.Module = AudioFeatures(rec.frontend)
    elif rec.modality == "image":
        features = ImageFeatures(rec.frontend.cfg, uint8=image_dtype == "uint8")
    else:
        raise ExportError(f"no raw-input graph for modality {rec.modality!r}")
    return RawInputModel(features, model).eval()


def _random_input(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


# Warnings that the TorchScript exporter gives for this model and that the checks
# below make moot; anything else is shown, and other tracer warnings stop the export.
_EXPECTED = (
    # nn.LSTM compares its input size (fixed: the feature dimension) with a Python int.
    (torch.jit.TracerWarning, "torch/nn/modules/rnn.py", ""),
    # h0/c0 are built from the input's batch size in the graph; other batch sizes are checked.
    (UserWarning, "", "batch_size other than 1, with a variable length with LSTM"),
    # F.pad's paddings are reordered by a step -1 Slice that the folder skips; same result.
    (UserWarning, "", "Only steps=1 can be constant folded"),
    # The chosen exporter; see the module docstring.
    (DeprecationWarning, "", "legacy TorchScript-based ONNX export"),
    (DeprecationWarning, "torch/onnx/", "The feature will be removed"),
)


def _expected(w: warnings.WarningMessage) -> bool:
    path = str(w.filename).replace(os.sep, "/")
    return any(
        issubclass(w.category, cat) and where in path and text in str(w.message)
        for cat, where, text in _EXPECTED
    )


def trace_to_onnx(
    module: torch.nn.Module, spec: GraphSpec, args: tuple, opset: int = DEFAULT_OPSET
) -> bytes:
    """Trace ``module`` on the example batch ``args``; the serialised ONNX model."""
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(
            module,
            args,
            buf,
            dynamo=False,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes(),
            opset_version=opset,
            do_constant_folding=True,
        )
    for w in caught:
        if _expected(w):
            continue
        if issubclass(w.category, torch.jit.TracerWarning):
            raise ExportError(
                f"the trace would not generalise to other inputs: {w.message} "
                f"({w.filename}:{w.lineno})"
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return buf.getvalue()


def example_inputs(spec: GraphSpec, sample_rate: int | None = None) -> tuple:
    """A two-item example batch for tracing; the items' lengths differ."""
    name, dtype, shape = spec.inputs[0]
    if name == "audio":
        if sample_rate is None:
            raise ValueError("raw audio examples need the sample rate")
        lengths = [int(0.41 * sample_rate), int(0.23 * sample_rate)]
    else:
        lengths = [37, 23]
    full = [max(lengths) if isinstance(d, str) else d for d in shape[1:]]
    x = _random_input(np.random.default_rng(1234), dtype, (len(lengths), *full))
    return torch.from_numpy(x), torch.tensor(lengths, dtype=torch.long)


# ---------------------------------------------------------------------------
# Checks


def ort_session(data: bytes | str | os.PathLike, threads: int | None = 1) -> Any:
    """An onnxruntime CPU session for a serialised model or a file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 2  # warnings and errors
    src = data if isinstance(data, bytes) else str(data)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def capture_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (onnxruntime's log)."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def check_parity(
    rec: Recognizer,
    data: bytes,
    spec: GraphSpec,
    seed: int = 0,
    num_batches: int = 3,
    pad_garbage: bool = True,
) -> ParityReport:
    """Compare an exported graph with PyTorch on random variable-length batches.

    The batches differ from the trace example in size and lengths (one item of
    length 1 and lengths of every residue modulo the subsampling); with
    ``pad_garbage`` padding is filled with large values so that any leak shows,
    else with zeros. The reference is the
    recogniser itself: ``rec.model`` on features, and for raw inputs the torch
    frontend (:func:`compute_features` / :func:`image_features`) item by item.
    """
    rng = np.random.default_rng(seed)
    sess = ort_session(data)
    diffs, batch_diffs, agree, total, n_items = [0.0], [0.0], 0, 0, 0
    with capture_stderr() as stderr:
        for b in range(num_batches):
            batch_size = (5, 1, 3)[b % 3]
            inputs, lengths, ref = _check_batch(rec, spec, rng, batch_size, pad_garbage)
            out_lp, out_len = sess.run(
                None, {spec.input_names[0]: inputs, spec.input_names[1]: lengths}
            )
            _check_declared_shapes(sess, [out_lp, out_len])
            for i, (r_lp, r_len) in enumerate(ref):
                if int(out_len[i]) != r_len:
                    raise ExportError(
                        f"output length {int(out_len[i])} differs from PyTorch's {r_len} "
                        f"(item {i}, input length {int(lengths[i])})"
                    )
                got = out_lp[i, :r_len]
                if not np.isfinite(got).all():
                    raise ExportError(f"non-finite log-probs for input length {int(lengths[i])}")
                diffs.append(float(np.abs(got - r_lp).max()))
                agree += int((got.argmax(-1) == r_lp.argmax(-1)).sum())
                total += r_len
                one = _slice_item(inputs, lengths, i, spec)
                s_lp, _ = sess.run(None, {spec.input_names[0]: one[0], spec.input_names[1]: one[1]})
                batch_diffs.append(float(np.abs(s_lp[0, :r_len] - got).max()))
            n_items += len(ref)
    warned = tuple(line for line in stderr if "onnxruntime" in line or "[W:" in line)
    return ParityReport(max(diffs), max(batch_diffs), agree / max(total, 1), n_items, warned)


def _slice_item(inputs: np.ndarray, lengths: np.ndarray, i: int, spec: GraphSpec) -> tuple:
    """Item ``i`` alone, cut to its own length along the graph's time axis."""
    n = int(lengths[i])
    shape = spec.inputs[0][2]
    time_axis = next(a for a, d in enumerate(shape) if isinstance(d, str) and a > 0)
    item = np.take(inputs[i : i + 1], np.arange(n), axis=time_axis)
    return np.ascontiguousarray(item), lengths[i : i + 1]


def _check_declared_shapes(sess: Any, outputs: Sequence[np.ndarray]) -> None:
    """Every fixed dimension the graph declares for an output must be the real one."""
    for meta, value in zip(sess.get_outputs(), outputs, strict=True):
        for axis, dim in enumerate(meta.shape):
            if isinstance(dim, int) and dim != value.shape[axis]:
                raise ExportError(
                    f"output {meta.name} declares size {dim} on axis {axis} but has "
                    f"{value.shape[axis]}: the export fixed a dynamic axis"
                )


def _check_lengths(rng: np.random.Generator, batch_size: int, longest: int, sub: int) -> list[int]:
    """Distinct lengths covering 1 and every residue modulo ``sub``, longest first."""
    lengths = [longest - r for r in range(min(batch_size, sub + 1))]
    while len(lengths) < batch_size:
        lengths.append(int(rng.integers(1, longest)))
    if batch_size > 1:
        lengths[-1] = 1
    return lengths


def _check_batch(
    rec: Recognizer, spec: GraphSpec, rng: np.random.Generator, batch_size: int, garbage: bool
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, int]]]:
    """A padded random batch, its lengths and PyTorch's ``(log_probs, length)`` per item."""
    name, dtype, shape = spec.inputs[0]
    sub = rec.model.cfg.subsample
    if name == "features":
        lengths = _check_lengths(rng, batch_size, int(rng.integers(45, 70)), sub)
        x = np.full((batch_size, max(lengths), shape[2]), 1e3 if garbage else 0.0, np.float32)
        items = [rng.standard_normal((n, shape[2])).astype(np.float32) for n in lengths]
        feats = [torch.from_numpy(a) for a in items]
    elif name == "audio":
        cfg = rec.frontend.cfg
        hop, sr = cfg.hop_length, cfg.sample_rate
        frames = _check_lengths(rng, batch_size, int(rng.integers(40, 60)), sub)
        # Whole frames plus odd remainders; the last item is shorter than one window.
        lengths = [cfg.n_fft + (f - 1) * hop + int(rng.integers(0, hop)) for f in frames]
        if batch_size > 1:
            lengths[-1] = int(rng.integers(1, cfg.n_fft))
        x = np.full((batch_size, max(lengths)), 7.0 if garbage else 0.0, np.float32)
        items = [_test_tone(rng, n, sr) for n in lengths]
        feats = [rec.frontend.normalize(compute_features(torch.from_numpy(a), cfg)) for a in items]
    else:
        cfg = rec.frontend.cfg
        columns = cfg.mode == "columns"
        lengths = _check_lengths(rng, batch_size, int(rng.integers(45, 70)), sub)
        fixed = cfg.height if columns else cfg.width
        pad = (255 if dtype == "uint8" else 3.0) if garbage else 0
        full = (batch_size, fixed, max(lengths)) if columns else (batch_size, max(lengths), fixed)
        x = np.full(full, pad, dtype=np.uint8 if dtype == "uint8" else np.float32)
        items = [_test_line(rng, (fixed, n) if columns else (n, fixed), dtype) for n in lengths]
        grays = [a.astype(np.float32) / np.float32(255.0) if dtype == "uint8" else a for a in items]
        feats = [image_features(g, cfg) for g in grays]
    for i, a in enumerate(items):
        x[(i, *(slice(0, s) for s in a.shape))] = a
    ref = []
    with torch.inference_mode():
        for f in feats:
            lp, n = rec.model(f[None], torch.tensor([f.shape[0]]))
            ref.append((lp[0, : int(n[0])].numpy(), int(n[0])))
    return x, np.asarray(lengths, dtype=np.int64), ref


def _test_tone(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A chirp-like tone with noise: energy spread over the mel bands."""
    t = np.arange(n) / sr
    f0 = rng.uniform(100, sr / 8)
    wave = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 2 * t)) + 0.05 * rng.standard_normal(n)
    return wave.astype(np.float32)


def _test_line(rng: np.random.Generator, shape: tuple[int, int], dtype: str) -> np.ndarray:
    """A light page with dark random strokes, as uint8 or float ``[0, 1]``."""
    page = rng.uniform(0.8, 1.0, size=shape)
    ink = rng.random(shape) < 0.25
    page[ink] = rng.uniform(0.0, 0.3, size=int(ink.sum()))
    if dtype == "uint8":
        return np.round(page * 255).astype(np.uint8)
    return page.astype(np.float32)


def _raise_if_bad(
    report: ParityReport, tolerance: float | None, batch_tolerance: float | None = 1e-4
) -> None:
    if report.warnings:
        raise ExportError(
            "onnxruntime warned while running the export on new lengths: "
            + " | ".join(report.warnings[:3])
        )
    if batch_tolerance is not None and report.max_batch_diff > batch_tolerance:
        raise ExportError(
            f"batched outputs differ from per-item outputs by {report.max_batch_diff:.3g}: "
            "padding leaks into valid frames"
        )
    if tolerance is not None and report.max_abs_diff > tolerance:
        raise ExportError(
            f"onnxruntime and PyTorch differ by {report.max_abs_diff:.3g} "
            f"(tolerance {tolerance:.3g})"
        )


def _log_report(label: str, report: ParityReport) -> None:
    log.info(
        "%s parity on %d items: max |log-prob diff| %.3g vs PyTorch, %.3g batched vs "
        "per item, best symbol agrees on %.2f%% of frames",
        label,
        report.num_items,
        report.max_abs_diff,
        report.max_batch_diff,
        100 * report.argmax_agreement,
    )


# ---------------------------------------------------------------------------
# Quantisation


def quantize_int8(data: bytes) -> bytes:
    """Dynamic int8 quantisation of the model part (weights int8, activations on the fly).

    The frontend of a raw-input graph stays float: a power spectrum spans too
    many orders of magnitude for one int8 scale, and its matrices are small.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load_from_string(data)
    frontend = [n.name for n in proto.graph.node if n.name.startswith(FRONTEND_SCOPE)]
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        # The quantiser logs a line per tensor it leaves alone at INFO on the root logger.
        root.setLevel(max(level, logging.WARNING))
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, nodes_to_exclude=frontend)
        finally:
            root.setLevel(level)
        return dst.read_bytes()


# ---------------------------------------------------------------------------
# Metadata


def _source_info(path: str | os.PathLike | None, rec: Recognizer) -> dict[str, Any]:
    info: dict[str, Any] = {"sha256": weights_sha256(rec)}
    if path is not None:
        from seqrec.checkpoint import load_checkpoint

        payload = load_checkpoint(path)
        info.update(
            {k: payload[k] for k in ("format", "version", "epoch", "dev_error") if k in payload}
        )
        info["file"] = Path(path).name
    return info


def weights_sha256(rec: Recognizer) -> str:
    """A digest of the model's weights (names, shapes and values) and of its blank
    shift when it has one (it changes the output but is no weight), as its
    identity."""
    h = hashlib.sha256()
    for name, t in sorted(rec.model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    if rec.model.cfg.blank_shift:
        h.update(f"blank_shift={rec.model.cfg.blank_shift!r}".encode())
    return h.hexdigest()


def _frontend_json(rec: Recognizer) -> dict[str, Any]:
    d = rec.frontend.to_dict()
    for key in ("mean", "std"):
        if d.get(key) is not None:
            d[key] = [float(v) for v in d[key].tolist()]
    return d


def build_metadata(
    rec: Recognizer,
    spec: GraphSpec,
    quantize: str | None,
    parity: dict[str, Any],
    source: dict[str, Any],
) -> dict[str, Any]:
    """Everything an application needs besides the graph, as plain JSON values."""
    frame_s = rec.frontend.frame_seconds()
    sub = rec.model.cfg.subsample
    step = sub * rec.frontend.cfg.hop_length if spec.input_kind == "raw" and frame_s else sub
    inputs, outputs = spec.as_json()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seqrec_version": seqrec_version(),
        "model_version": source,
        "input_kind": spec.input_kind,
        "inputs": inputs,
        "outputs": outputs,
        "modality": rec.modality,
        "vocabulary": rec.vocab.to_dict(),
        "blank_id": BLANK_ID,
        "frontend": _frontend_json(rec),
        "subsampling": sub,
        "frame_seconds": frame_s,
        "output_step": step,
        "model_config": asdict(rec.model.cfg),
        "quantization": quantize,
        "parity": parity,
    }


def seqrec_version() -> str:
    """The installed seqrec's version."""
    try:
        from seqrec import __version__

        return __version__
    except ImportError:  # an editable install seen as a namespace package
        from importlib.metadata import version

        return version("seqrec")


def set_metadata(proto: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Store ``meta`` as ``metadata_props``, each value a JSON string."""
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value, ensure_ascii=False)
    proto.producer_name = "seqrec"
    proto.producer_version = seqrec_version()
    proto.doc_string = (
        f"seqrec {meta['modality']} recogniser ({meta['input_kind']} input); "
        "CTC log-probs, blank id 0; see metadata_props"
    )


def read_metadata(path_or_proto: str | os.PathLike | onnx.ModelProto) -> dict[str, Any]:
    """The JSON-decoded ``metadata_props`` of an exported file."""
    proto = path_or_proto
    if not isinstance(proto, onnx.ModelProto):
        proto = onnx.load(str(path_or_proto), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}

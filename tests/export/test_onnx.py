"""ONNX export: parity with PyTorch on variable-length batches, metadata, checks that fail."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from seqrec.export import graph
from seqrec.export import onnx as ox
from seqrec.export.runtime import OnnxRecognizer
from seqrec.models import blstm


def _garbage_batch(feats: list[torch.Tensor], fill: float = 1e3) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``(T, F)`` items into a batch whose padding holds large values."""
    lengths = np.array([f.shape[0] for f in feats], dtype=np.int64)
    x = np.full((len(feats), lengths.max(), feats[0].shape[1]), fill, dtype=np.float32)
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f.numpy()
    return x, lengths


def test_traceable_stacking_equals_stack_frames():
    x = torch.randn(3, 11, 4)
    for factor in (2, 4):
        for lengths in ([11, 6, 1], [8, 8, 3]):
            lens = torch.tensor(lengths)
            want = blstm.stack_frames(x, lens, factor)
            got = graph.stack_frames_traceable(x, lens, factor)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize(
    "modality,frontend,subsample,input_norm,conv_norm",
    [
        ("audio", "none", 1, False, False),
        ("audio", "stack", 2, True, False),
        ("audio", "conv", 4, False, False),
        ("image", "stack", 4, False, False),
        ("image", "conv", 2, True, False),
        ("image", "conv", 4, True, True),
    ],
)
def test_onnx_matches_torch_on_variable_length_batches(
    tmp_path, tiny, modality, frontend, subsample, input_norm, conv_norm
):
    rec = tiny(modality, frontend, subsample, input_norm=input_norm, conv_norm=conv_norm)
    _assert_parity(rec, ox.export_onnx(rec, tmp_path / "m.onnx"))


def test_onnx_matches_torch_with_self_conditioning(tmp_path, tiny):
    rec = tiny("audio", "conv", 4, self_condition=(1,))
    assert "1" in rec.model.condition
    _assert_parity(rec, ox.export_onnx(rec, tmp_path / "m.onnx"))


def test_onnx_matches_torch_with_a_blank_shift(tmp_path, tiny):
    rec = tiny("audio", "conv", 4, blank_shift=1.5)
    assert rec.model.blank_shift is not None
    _assert_parity(rec, ox.export_onnx(rec, tmp_path / "m.onnx"))


def _assert_parity(rec, path) -> None:
    """The exported graph gives the model's log-probs, batched and item by item."""
    sess = ox.ort_session(path)
    gen = torch.Generator().manual_seed(1)
    # Lengths differ from the trace example's (37, 23), cover every residue, and include 1.
    lengths = [61, 30, 47, 9, 2, 1]
    feats = [torch.randn(n, rec.frontend.feature_dim, generator=gen) for n in lengths]
    x, lens = _garbage_batch(feats)
    lp, out_len = sess.run(None, {"features": x, "lengths": lens})
    for i, f in enumerate(feats):
        with torch.no_grad():
            ref, ref_len = rec.model(f[None], torch.tensor([f.shape[0]]))
        n = int(ref_len[0])
        assert int(out_len[i]) == n
        np.testing.assert_allclose(lp[i, :n], ref[0].numpy(), atol=1e-4, rtol=0)
        alone, _ = sess.run(
            None, {"features": x[i : i + 1, : f.shape[0]], "lengths": lens[i : i + 1]}
        )
        np.testing.assert_allclose(alone[0, :n], lp[i, :n], atol=1e-5, rtol=0)


def test_declared_shapes_are_dynamic_and_onnxruntime_stays_quiet(tmp_path, tiny):
    rec = tiny("audio", "conv", 4)
    path = ox.export_onnx(rec, tmp_path / "m.onnx")
    proto = onnx.load(str(path))

    def dims(values):
        return {
            v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in values
        }

    assert dims(proto.graph.input) == {
        "features": ["batch", "frames", rec.frontend.feature_dim],
        "lengths": ["batch"],
    }
    assert dims(proto.graph.output) == {
        "log_probs": ["batch", "out_frames", len(rec.vocab)],
        "out_lengths": ["batch"],
    }
    spec = ox.graph_spec(rec, raw_input=False)
    report = ox.check_parity(rec, path.read_bytes(), spec, seed=3)
    assert report.warnings == ()
    assert report.num_items == 9 and report.max_abs_diff < 1e-4


def test_check_catches_a_fixed_output_axis(tmp_path, tiny):
    rec = tiny("audio", "none", 1)
    proto = onnx.load(str(ox.export_onnx(rec, tmp_path / "m.onnx")))
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 37  # the example's length
    with pytest.raises(ox.ExportError, match="fixed a dynamic axis|onnxruntime warned"):
        report = ox.check_parity(rec, proto.SerializeToString(), ox.graph_spec(rec, False))
        ox._raise_if_bad(report, 1e-4)


def test_onnxruntime_shape_warnings_are_seen(tmp_path, tiny, monkeypatch):
    rec = tiny("audio", "none", 1)
    proto = onnx.load(str(ox.export_onnx(rec, tmp_path / "m.onnx")))
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 37
    monkeypatch.setattr(ox, "_check_declared_shapes", lambda sess, outputs: None)
    report = ox.check_parity(rec, proto.SerializeToString(), ox.graph_spec(rec, False))
    assert any("VerifyOutputSizes" in line or "Expected shape" in line for line in report.warnings)
    with pytest.raises(ox.ExportError, match="onnxruntime warned"):
        ox._raise_if_bad(report, 1e-4)


def test_check_catches_padding_leaking_into_the_backward_direction(tmp_path, tiny, monkeypatch):
    rec = tiny("audio", "none", 1)
    spec = ox.graph_spec(rec, raw_input=False)
    # A plain flip over the padded length lets padding reach the backward LSTM first.
    monkeypatch.setattr(blstm, "reverse_padded", lambda x, lengths: torch.flip(x, [1]))
    data = ox.trace_to_onnx(ox.build_module(rec, False), spec, ox.example_inputs(spec))
    monkeypatch.undo()
    report = ox.check_parity(rec, data, spec)
    assert report.max_batch_diff > 1e-3
    with pytest.raises(ox.ExportError, match="padding leaks"):
        ox._raise_if_bad(report, 1e-4)


def test_metadata_round_trip(tmp_path, tiny):
    rec = tiny("audio", "stack", 2, normalize="global")
    model_file = tmp_path / "model.pt"
    rec.save(model_file, epoch=3, dev_error=0.25)
    path = ox.export_onnx(model_file, tmp_path / "m.onnx")
    meta = ox.read_metadata(path)
    assert set(meta) == set(ox.METADATA_KEYS)
    assert meta["format"] == "seqrec-onnx" and meta["input_kind"] == "features"
    assert meta["vocabulary"] == {"symbols": list(rec.vocab.symbols), "unit": "char"}
    assert meta["blank_id"] == 0 and meta["subsampling"] == 2 and meta["output_step"] == 2
    assert meta["frontend"]["config"]["sample_rate"] == 8000
    assert meta["frontend"]["config"]["n_mels"] == 12
    np.testing.assert_allclose(meta["frontend"]["mean"], rec.frontend.mean.numpy(), rtol=1e-6)
    assert meta["model_version"]["epoch"] == 3 and meta["model_version"]["dev_error"] == 0.25
    assert meta["model_version"]["sha256"] == ox.weights_sha256(rec)
    assert meta["frame_seconds"] == pytest.approx(0.01)
    assert meta["parity"]["fp32_max_abs_diff"] <= meta["parity"]["tolerance"]
    assert [i["name"] for i in meta["inputs"]] == ["features", "lengths"]

    loaded = OnnxRecognizer.load(path, threads=1)
    assert loaded.vocab == rec.vocab and loaded.modality == "audio"
    assert loaded.frontend.cfg == rec.frontend.cfg
    assert torch.equal(loaded.frontend.std, rec.frontend.std)


def test_int8_export_runs_stays_close_and_is_smaller(tmp_path, tiny):
    rec = tiny("audio", "none", 1, hidden=48)
    fp32 = ox.export_onnx(rec, tmp_path / "fp32.onnx")
    int8 = ox.export_onnx(rec, tmp_path / "int8.onnx", quantize="int8")
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size
    meta = ox.read_metadata(int8)
    assert meta["quantization"] == "int8" and "int8_argmax_agreement" in meta["parity"]
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert ops & {"DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeMatMul"}

    x = torch.randn(4, 80, rec.frontend.feature_dim, generator=torch.Generator().manual_seed(1))
    feed = {"features": x.numpy(), "lengths": np.full(4, 80, dtype=np.int64)}
    a = ox.ort_session(fp32).run(None, feed)[0]
    b = ox.ort_session(int8).run(None, feed)[0]
    assert np.isfinite(b).all()
    # Random weights quantise worse than trained ones; these bounds still catch a broken graph
    # (chance agreement would be 1/6).
    assert np.abs(np.exp(a) - np.exp(b)).mean() < 0.05
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.85


def test_bad_arguments_are_refused(tmp_path, tiny):
    rec = tiny("audio", "none", 1)
    with pytest.raises(ValueError, match="quantisation"):
        ox.export_onnx(rec, tmp_path / "m.onnx", quantize="int4")
    with pytest.raises(ValueError, match="opset"):
        ox.export_onnx(rec, tmp_path / "m.onnx", opset=11)
    with pytest.raises(ValueError, match="no such model file"):
        ox.export_onnx(tmp_path / "missing.pt", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()

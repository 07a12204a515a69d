"""Model ensembles: the mean of several models' output probabilities, as one model."""

import json
import math

import pytest
import torch

from seqrec.checkpoint import load_checkpoint
from seqrec.cli import main as cli
from seqrec.features.audio import AudioFrontendConfig
from seqrec.features.frontend import AudioFrontend
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.models.ensemble import EnsembleCTC
from seqrec.recognizer import Recognizer, combine_model_files
from seqrec.selection import unshifted_recognizer
from seqrec.vocab import Vocabulary


def _recognizer(seed, transcripts=("A B C",), std=1.0, **model):
    torch.manual_seed(seed)
    vocab = Vocabulary.from_transcripts(list(transcripts), "phone")
    fe = AudioFrontend(AudioFrontendConfig(n_mels=8), torch.zeros(8), torch.full((8,), std))
    cfg = ModelConfig(8, len(vocab), **{"hidden": 8, "layers": 1, **model})
    return Recognizer(fe, BiLSTMCTC(cfg).eval(), vocab)


def _inputs():
    torch.manual_seed(5)
    return [torch.randn(13, 8), torch.randn(6, 8), torch.randn(1, 8)]


def test_ensemble_output_is_the_log_of_the_mean_probability():
    # Members of different shapes, subsampling by 2 with other frontends: frames still line up.
    a = _recognizer(0, frontend="stack", subsample=2)
    b = _recognizer(1, frontend="conv", subsample=2, hidden=12, layers=2)
    ens = Recognizer.combine([a, b])
    x = _inputs()
    la, na = a.log_probs(x)
    lb, nb = b.log_probs(x)
    le, ne = ens.log_probs(x)
    assert torch.equal(ne, na) and torch.equal(na, nb) and ne.tolist() == [7, 3, 1]
    expected = torch.log((la.exp() + lb.exp()) / 2)
    torch.testing.assert_close(le, expected, atol=1e-5, rtol=0)
    valid = torch.arange(le.shape[1])[None, :] < ne[:, None]
    torch.testing.assert_close(le.exp().sum(-1)[valid], torch.ones(int(valid.sum())))
    # Neither member's greedy output is forced on it: it differs from both here.
    assert not torch.equal(le, la) and not torch.equal(le, lb)


def test_batched_ensemble_output_equals_per_item_output():
    ens = Recognizer.combine([_recognizer(0), _recognizer(1, layers=2)])
    x = _inputs()
    batched, lengths = ens.log_probs(x)
    for i, item in enumerate(x):
        one, _ = ens.log_probs([item])
        torch.testing.assert_close(batched[i, : lengths[i]], one[0], atol=1e-5, rtol=0)


def test_ensemble_file_round_trip_and_versions(tmp_path):
    a, b = _recognizer(0), _recognizer(1, hidden=6)
    a.save(tmp_path / "a.pt")
    b.save(tmp_path / "b.pt")
    ens = combine_model_files([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "e.pt")
    payload = load_checkpoint(tmp_path / "e.pt")
    # Single-model files keep version 1, readable by versions without ensembles.
    assert payload["version"] == 2 and load_checkpoint(tmp_path / "a.pt")["version"] == 1
    assert [c["hidden"] for c in payload["ensemble"]] == [8, 6]
    assert [s["path"] for s in payload["ensemble_of"]] == [
        str(tmp_path / "a.pt"),
        str(tmp_path / "b.pt"),
    ]
    back = Recognizer.load(tmp_path / "e.pt")
    assert isinstance(back.model, EnsembleCTC) and len(back.model.members) == 2
    x = _inputs()
    assert torch.equal(back.log_probs(x)[0], ens.log_probs(x)[0])
    assert back.decode_features(x) == ens.decode_features(x)


def test_an_ensemble_among_the_models_adds_its_members():
    a, b, c = _recognizer(0), _recognizer(1), _recognizer(2)
    three = Recognizer.combine([Recognizer.combine([a, b]), c])
    assert len(three.model.members) == 3
    x = _inputs()
    probs = [r.log_probs(x)[0].exp() for r in (a, b, c)]
    torch.testing.assert_close(three.log_probs(x)[0], torch.log(sum(probs) / 3), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (lambda: _recognizer(1, transcripts=("A B D",)), "model 2 has another vocabulary"),
        (lambda: _recognizer(1, std=2.0), "model 2 computes other input features"),
        (lambda: _recognizer(1, frontend="stack", subsample=2), "model 2 has subsample 2"),
    ],
)
def test_models_that_do_not_line_up_are_refused(other, message):
    with pytest.raises(ValueError, match=message):
        Recognizer.combine([_recognizer(0), other()])


def test_one_model_is_no_ensemble():
    with pytest.raises(ValueError, match="at least two"):
        Recognizer.combine([_recognizer(0)])


def test_embedded_lm_kept_only_when_every_model_has_it():
    a, b = _recognizer(0), _recognizer(1)
    arpa = "\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3 A\n-0.3 </s>\n\n\\end\\\n"
    a.embed_lm(arpa, 0.5, 1.0)
    assert Recognizer.combine([a, b]).lm is None
    b.embed_lm(arpa, 0.5, 1.0)
    assert Recognizer.combine([a, b]).lm == a.lm


def test_ensemble_has_no_intermediate_outputs():
    ens = Recognizer.combine([_recognizer(0, layers=2), _recognizer(1, layers=2)])
    with pytest.raises(ValueError, match="no intermediate CTC"):
        ens.model(torch.randn(1, 5, 8), torch.tensor([5]), taps=[1])


def test_blank_shift_tuning_refuses_an_ensemble(tmp_path):
    Recognizer.combine([_recognizer(0), _recognizer(1)]).save(tmp_path / "e.pt")
    with pytest.raises(ValueError, match="each model before combining"):
        unshifted_recognizer(load_checkpoint(tmp_path / "e.pt"))


def test_cli_ensemble(tmp_path, capsys):
    _recognizer(0).save(tmp_path / "a.pt")
    _recognizer(1).save(tmp_path / "b.pt")
    out = tmp_path / "e.pt"
    assert cli(["ensemble", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "-o", str(out)]) == 0
    assert "mean of 2 models" in capsys.readouterr().out
    assert len(Recognizer.load(out).model.members) == 2
    _recognizer(2, transcripts=("X Y",)).save(tmp_path / "c.pt")
    assert cli(["ensemble", str(tmp_path / "a.pt"), str(tmp_path / "c.pt"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "c.pt" in err and "another vocabulary" in err
    assert cli(["ensemble", str(tmp_path / "a.pt"), str(tmp_path / "nope.pt"), "-o", "x"]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_ensemble_exports_to_onnx_with_both_models(tmp_path):
    pytest.importorskip("onnxruntime")
    from seqrec.export.onnx import export_onnx, ort_session, read_metadata

    a = _recognizer(0, frontend="stack", subsample=2)
    b = _recognizer(1, frontend="stack", subsample=2, hidden=6)
    ens = Recognizer.combine([a, b])
    ens.save(tmp_path / "e.pt")
    export_onnx(tmp_path / "e.pt", tmp_path / "e.onnx")  # verifies parity itself
    meta = read_metadata(tmp_path / "e.onnx")
    assert [c["hidden"] for c in meta["ensemble"]] == [8, 6] and meta["subsampling"] == 2
    x = _inputs()[0]
    sess = ort_session(tmp_path / "e.onnx")
    (lp, n) = sess.run(None, {"features": x[None].numpy(), "lengths": [13]})
    expected, _ = ens.log_probs([x])
    assert int(n[0]) == 7
    assert math.isclose(float(abs(torch.from_numpy(lp) - expected).max()), 0.0, abs_tol=1e-4)
    json.dumps(meta)  # plain JSON throughout

import pickle

import pytest
import torch

from seqrec.checkpoint import ModelFileError, load_checkpoint, save_checkpoint
from seqrec.features.audio import AudioFrontendConfig
from seqrec.features.frontend import AudioFrontend
from seqrec.models.blstm import BiLSTMCTC, ModelConfig
from seqrec.recognizer import Recognizer
from seqrec.vocab import Vocabulary


def _recognizer():
    torch.manual_seed(0)
    vocab = Vocabulary.from_transcripts(["A B C"], "phone")
    fe = AudioFrontend(AudioFrontendConfig(n_mels=8), torch.zeros(8), torch.ones(8))
    model = BiLSTMCTC(ModelConfig(8, len(vocab), hidden=8, layers=1)).eval()
    return Recognizer(fe, model, vocab)


def test_model_file_round_trip(tmp_path):
    rec = _recognizer()
    rec.save(tmp_path / "m.pt")
    back = Recognizer.load(tmp_path / "m.pt")
    assert back.vocab == rec.vocab and back.model.cfg == rec.model.cfg
    assert back.frontend.cfg == rec.frontend.cfg
    x = [torch.randn(13, 8), torch.randn(5, 8)]
    assert back.decode_features(x) == rec.decode_features(x)


def test_truncated_file(tmp_path):
    _recognizer().save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.pt"):
        Recognizer.load(tmp_path / "cut.pt")


def test_foreign_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a seqrec model"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelFileError):
        load_checkpoint(tmp_path / "text.pt")
    with pytest.raises(ModelFileError, match="no such"):
        load_checkpoint(tmp_path / "absent.pt")


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_loading_never_executes_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"format": "seqrec-model", "x": _Evil()}, f)
    torch.save({"format": "seqrec-model", "version": 1, "x": _Evil()}, "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(ModelFileError):
            load_checkpoint(name)
    assert not (tmp_path / "PWNED").exists()


def test_save_is_atomic_and_tagged(tmp_path):
    save_checkpoint(tmp_path / "x.pt", {"a": 1})
    assert load_checkpoint(tmp_path / "x.pt")["a"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]

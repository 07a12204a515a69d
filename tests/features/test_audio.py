import numpy as np
import pytest
import soundfile as sf
import torch

from seqrec.features.audio import (
    AudioError,
    AudioFrontendConfig,
    FeatureStats,
    compute_features,
    load_audio,
    normalize_features,
    num_frames,
    speed_perturb,
)
from seqrec.features.frontend import AudioFrontend


def _tone(path, sr=16000, seconds=0.5, channels=1, fmt=None, subtype=None):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(str(path), x, sr, format=fmt, subtype=subtype)
    return path


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_load_resamples_to_model_rate(tmp_path, sr):
    wave = load_audio(_tone(tmp_path / "a.wav", sr=sr, seconds=1.0), 16000)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert abs(wave.numel() - 16000) <= 2


def test_stereo_is_mixed_to_mono(tmp_path):
    wave = load_audio(_tone(tmp_path / "s.wav", channels=2), 16000)
    assert wave.ndim == 1 and wave.numel() == 8000


@pytest.mark.parametrize(
    "ext,fmt,subtype",
    [
        ("flac", "FLAC", None),
        ("ogg", "OGG", "VORBIS"),
        ("opus", "OGG", "OPUS"),
        ("sph", "NIST", "PCM_16"),
    ],
)
def test_other_containers(tmp_path, ext, fmt, subtype):
    wave = load_audio(_tone(tmp_path / f"a.{ext}", fmt=fmt, subtype=subtype), 16000)
    assert abs(wave.numel() - 8000) <= 2


def test_bad_files_name_the_file(tmp_path):
    txt = tmp_path / "notes.wav"
    txt.write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav"):
        load_audio(txt, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(empty, 16000)
    with pytest.raises(AudioError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav", 16000)


def test_nan_samples_are_rejected(tmp_path):
    p = tmp_path / "nan.wav"
    x = np.zeros(1600, dtype=np.float32)
    x[5] = np.nan
    sf.write(str(p), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(p, 16000)


@pytest.mark.parametrize("n", [0, 1, 160, 399, 400, 401, 16000])
def test_feature_shapes(n):
    cfg = AudioFrontendConfig()
    f = compute_features(torch.randn(n) * 0.1, cfg)
    assert f.shape == (num_frames(n, cfg), 80)
    assert torch.isfinite(f).all()


def test_mfcc_with_deltas():
    cfg = AudioFrontendConfig(kind="mfcc", deltas=True)
    f = compute_features(torch.randn(16000), cfg)
    assert f.shape == (num_frames(16000, cfg), 39) and cfg.feature_dim == 39


def test_speed_perturb_changes_length():
    w = torch.randn(16000)
    assert abs(speed_perturb(w, 1.1).numel() - 16000 / 1.1) < 3
    assert abs(speed_perturb(w, 0.9).numel() - 16000 / 0.9) < 3


def test_global_normalisation_and_stats_travel_in_dict():
    feats = [torch.randn(50, 4) * 3 + 7, torch.randn(30, 4) * 3 + 7]
    fe = AudioFrontend(AudioFrontendConfig(n_mels=4))
    fe.fit_stats(feats)
    normed = torch.cat([fe.normalize(f) for f in feats])
    assert normed.mean(0).abs().max() < 1e-4
    assert (normed.std(0, unbiased=False) - 1).abs().max() < 1e-3
    fe2 = AudioFrontend.from_dict(fe.to_dict())
    assert torch.equal(fe2.normalize(feats[0]), fe.normalize(feats[0]))


def test_utterance_normalisation_handles_one_frame():
    cfg = AudioFrontendConfig(normalize="utterance")
    out = normalize_features(torch.randn(1, 80), cfg)
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError):
        normalize_features(torch.randn(3, 80), AudioFrontendConfig(), None, None)
    with pytest.raises(ValueError):
        FeatureStats(3).finalize()

"""On-disk feature cache: written once, memory-mapped afterwards, invalidated by what matters."""

import os
import threading

import numpy as np
import pytest
import torch

from seqrec.config import experiment_from_dict
from seqrec.data.cache import (
    FeatureStore,
    attach_disk_cache,
    build_store,
    cache_key,
    open_or_build,
)
from seqrec.data.loader import FeatureDataset
from seqrec.data.manifest import Record, write_manifest
from seqrec.features.frontend import AudioFrontend
from seqrec.training import train
from seqrec.vocab import Vocabulary

SPEC = {"modality": "audio", "config": {"n_mels": 4}}


def _files(tmp_path, n=3):
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(bytes([i]) * (i + 1))
        paths.append(str(p))
    return paths


def _dataset(paths, calls):
    vocab = Vocabulary.from_transcripts(["A B"], "phone")
    recs = [Record(f"r{i}", p, "A B") for i, p in enumerate(paths)]

    def featurize(rec, speed):
        calls.append((rec.id, speed))
        i = int(rec.id[1:])
        t = int((5 + 3 * i) / speed)
        return torch.arange(t * 4, dtype=torch.float32).reshape(t, 4) + 100 * i

    return FeatureDataset(recs, featurize, vocab, speeds=(0.9, 1.0))


def test_second_dataset_reads_the_store_without_computing(tmp_path):
    paths = _files(tmp_path)
    calls = []
    ds = _dataset(paths, calls)
    expected = {(i, s): ds.featurize(ds.records[i], s) for i in range(3) for s in (0.9, 1.0)}
    calls.clear()
    attach_disk_cache(ds, tmp_path / "cache", "train", SPEC, (0.9, 1.0))
    assert len(calls) == 6  # every item at every speed, once
    calls.clear()
    again = _dataset(paths, calls)
    attach_disk_cache(again, tmp_path / "cache", "train", SPEC, (0.9, 1.0))
    for (i, s), x in expected.items():
        assert torch.equal(again.raw_features(i, s), x)
        assert again.cached_length(i, s) == x.shape[0]
    assert calls == []
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one store per speed
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary folder left behind


def test_key_follows_frontend_config_speed_and_files(tmp_path):
    paths = _files(tmp_path)
    k = cache_key(SPEC, paths, 1.0)
    assert k == cache_key(SPEC, list(paths), 1.0)
    assert k != cache_key({"modality": "audio", "config": {"n_mels": 5}}, paths, 1.0)
    assert k != cache_key(SPEC, paths, 1.1)
    assert k != cache_key(SPEC, paths[:2], 1.0)
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert k != cache_key(SPEC, paths, 1.0)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        cache_key(SPEC, [str(tmp_path / "missing.wav")], 1.0)


def test_store_layout_and_bad_stores(tmp_path):
    feats = [torch.randn(3, 2), torch.randn(0, 2), torch.randn(5, 2)]
    store = build_store(tmp_path / "s", 3, lambda i: feats[i])
    assert np.load(tmp_path / "s" / "offsets.npy").tolist() == [0, 3, 3, 8]
    assert np.load(tmp_path / "s" / "feats.npy", mmap_mode="r").shape == (8, 2)
    assert [store.length(i) for i in range(3)] == [3, 0, 5]
    assert all(torch.equal(store[i], feats[i]) for i in range(3))
    with pytest.raises(ValueError, match="b.wav: features of shape"):
        build_store(tmp_path / "t", 2, lambda i: torch.zeros(2, 2 + i), names=["a.wav", "b.wav"])
    assert not (tmp_path / "t").exists()
    np.save(tmp_path / "s" / "offsets.npy", np.array([0, 3, 9]))
    with pytest.raises(ValueError, match="delete the folder"):
        FeatureStore(tmp_path / "s")


def test_a_waiting_process_reads_what_the_builder_wrote(tmp_path):
    paths = _files(tmp_path)
    feats = [torch.full((2 + i, 3), float(i)) for i in range(3)]

    def builder():
        open_or_build(tmp_path / "c", "train", paths, SPEC, 1.0, lambda i: feats[i])

    def never(i):
        raise AssertionError("a waiting process must not compute features")

    t = threading.Timer(0.3, builder)
    t.start()
    store = open_or_build(
        tmp_path / "c", "train", paths, SPEC, 1.0, never, build=False, poll_s=0.05
    )
    t.join()
    assert [store.length(i) for i in range(3)] == [2, 3, 4]
    assert torch.equal(store[2], feats[2])


def _config(tmp_path, manifest, out, n_mels=20):
    return experiment_from_dict(
        {
            "data": {"train": str(manifest), "dev": str(manifest), "unit": "word"},
            "features": {"sample_rate": 8000, "n_mels": n_mels, "normalize": "global"},
            "model": {"hidden": 8, "layers": 1, "dropout": 0.0},
            "train": {
                "out_dir": str(tmp_path / out),
                "epochs": 1,
                "max_frames": 200,
                "speeds": [0.9, 1.0],
                "threads": 1,
                "feature_cache": str(tmp_path / "cache"),
            },
        }
    )


def test_training_runs_reuse_the_cache_until_the_frontend_changes(tmp_path, tone, monkeypatch):
    recs = [
        Record(f"u{i}", str(tone(tmp_path / f"u{i}.wav", 0.3, 8000, 300 + 200 * i)), w)
        for i, w in enumerate(["LOW", "HIGH", "LOW HIGH"])
    ]
    write_manifest(tmp_path / "m.jsonl", recs)
    calls = []
    real = AudioFrontend.raw

    def counting(self, path, speed=1.0):
        calls.append((path, speed))
        return real(self, path, speed)

    monkeypatch.setattr(AudioFrontend, "raw", counting)
    train(_config(tmp_path, tmp_path / "m.jsonl", "a"))
    # 3 train items at 2 speeds and 3 dev items (the same files, a separate store)
    assert len(calls) == 9
    calls.clear()
    train(_config(tmp_path, tmp_path / "m.jsonl", "b"))
    assert calls == []
    train(_config(tmp_path, tmp_path / "m.jsonl", "c", n_mels=24))
    assert len(calls) == 9

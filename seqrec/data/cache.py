"""On-disk feature cache: features computed once, memory-mapped on every later use.

One *store* holds the un-normalised features of one split at one speed:

```
DIR/<split>-s<speed>-<key>/feats.npy    float32 (sum of T over items, F), all items back to back
DIR/<split>-s<speed>-<key>/offsets.npy  int64 (N + 1,): item i is rows offsets[i]:offsets[i+1]
DIR/<split>-s<speed>-<key>/meta.json    what the key was made of, for people
```

``key`` hashes the frontend's modality and config, the speed and every file's
path, size and modification time, so a store is reused across epochs and runs
exactly while none of these change; anything else gets a new store (old ones
are left for the user to delete). Normalisation and SpecAugment apply after
loading, so they never invalidate a store. A store is written into a temporary
folder and renamed into place, so a half-written store is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from seqrec.data.loader import FeatureDataset
    from seqrec.features.base import Frontend

log = logging.getLogger("seqrec.cache")

CACHE_FORMAT = 1  # bump when the layout or the meaning of stored features changes
_COPY_ROWS = 1 << 16  # rows copied at a time when the finished store is assembled


def frontend_spec(frontend: Frontend) -> dict[str, Any]:
    """What of a frontend decides its raw features: modality and config (not statistics)."""
    cfg = asdict(frontend.cfg) if is_dataclass(frontend.cfg) else dict(frontend.cfg)
    return {"modality": frontend.modality, "config": cfg}


def cache_key(spec: dict[str, Any], paths: Sequence[str], speed: float) -> str:
    """Hex digest of the frontend ``spec``, ``speed`` and each file's path, size and mtime.

    Raises ``FileNotFoundError`` naming a file that cannot be examined.
    """
    files = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            why = e.strerror or e
            raise FileNotFoundError(f"{p}: cannot read for the feature cache ({why})") from None
        files.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        {"format": CACHE_FORMAT, "frontend": spec, "speed": float(speed), "files": files},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class FeatureStore:
    """A finished store, memory-mapped read-only; ``store[i]`` is item ``i`` as ``(T, F)``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        try:
            self.feats = np.load(self.directory / "feats.npy", mmap_mode="r")
            self.offsets = np.load(self.directory / "offsets.npy")
        except (OSError, ValueError) as e:
            raise ValueError(
                f"{self.directory}: unreadable feature cache ({e}); delete the folder to rebuild it"
            ) from None
        if (
            self.feats.ndim != 2
            or self.offsets.ndim != 1
            or len(self.offsets) < 1
            or int(self.offsets[-1]) != self.feats.shape[0]
        ):
            raise ValueError(
                f"{self.directory}: inconsistent feature cache (feats {self.feats.shape}, "
                f"offsets {self.offsets.shape}); delete the folder to rebuild it"
            )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def length(self, i: int) -> int:
        """Frames of item ``i``, without reading its features."""
        return int(self.offsets[i + 1] - self.offsets[i])

    def __getitem__(self, i: int) -> torch.Tensor:
        # A private copy: callers may modify it, and the map itself is read-only.
        rows = self.feats[int(self.offsets[i]) : int(self.offsets[i + 1])]
        return torch.from_numpy(np.array(rows, dtype=np.float32))


def build_store(
    directory: str | os.PathLike,
    count: int,
    compute: Callable[[int], torch.Tensor],
    meta: dict[str, Any] | None = None,
    desc: str = "features",
    names: Sequence[str] | None = None,
) -> FeatureStore:
    """Compute items ``0..count-1`` with ``compute(i) -> (T, F)`` and write them as a store.

    Features stream to disk one item at a time (memory stays flat); the store
    appears under ``directory`` only when complete. If another process finished
    the same store first, its copy is kept and this one discarded. ``names``
    (e.g. file paths) name the items in errors.
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        offsets, dim = _write_rows(tmp / "feats.bin", count, compute, desc, names)
        _assemble(tmp, offsets, dim)
        meta = {**(meta or {}), "items": count, "frames": int(offsets[-1])}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "offsets.npy").exists():
                raise
            log.info("%s was written meanwhile by another process; using it", final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return FeatureStore(final)


def _write_rows(
    path: Path,
    count: int,
    compute: Callable[[int], torch.Tensor],
    desc: str,
    names: Sequence[str] | None,
) -> tuple[np.ndarray, int]:
    """Append every item's float32 rows to ``path``; returns offsets ``(count + 1,)`` and F."""
    offsets = np.zeros(count + 1, dtype=np.int64)
    dim = None
    with open(path, "wb") as f:
        for i in tqdm(range(count), desc=desc, leave=False, mininterval=5, disable=None):
            x = compute(i)
            if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
                name = names[i] if names is not None else f"item {i}"
                raise ValueError(
                    f"{name}: features of shape {tuple(x.shape)} do not fit the feature cache "
                    f"(expected (T, {dim if dim is not None else 'F'}))"
                )
            dim = x.shape[1]
            f.write(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32).tobytes())
            offsets[i + 1] = offsets[i] + x.shape[0]
    return offsets, dim or 0


def _assemble(folder: Path, offsets: np.ndarray, dim: int) -> None:
    """Turn ``feats.bin`` (raw rows of width ``dim``) into ``feats.npy`` plus ``offsets.npy``."""
    rows = int(offsets[-1])
    out = np.lib.format.open_memmap(
        folder / "feats.npy", mode="w+", dtype=np.float32, shape=(rows, dim)
    )
    if rows and dim:
        raw = np.memmap(folder / "feats.bin", dtype=np.float32, mode="r", shape=(rows, dim))
        for s in range(0, rows, _COPY_ROWS):
            out[s : s + _COPY_ROWS] = raw[s : s + _COPY_ROWS]
        del raw
    out.flush()
    del out
    np.save(folder / "offsets.npy", offsets)
    (folder / "feats.bin").unlink()


def open_or_build(
    cache_dir: str | os.PathLike,
    split: str,
    paths: Sequence[str],
    spec: dict[str, Any],
    speed: float,
    compute: Callable[[int], torch.Tensor],
    build: bool = True,
    poll_s: float = 2.0,
) -> FeatureStore:
    """The store for these files at ``speed``, computing it first if absent.

    With ``build=False`` the call waits for another process (the one that
    builds) to finish the store instead of computing it.
    """
    key = cache_key(spec, paths, speed)
    folder = Path(cache_dir) / f"{split}-s{speed:g}-{key[:16]}"
    if (folder / "offsets.npy").exists():
        log.info("feature cache: reading %s", folder)
        return FeatureStore(folder)
    if not build:
        log.info("feature cache: waiting for %s", folder)
        while not (folder / "offsets.npy").exists():
            time.sleep(poll_s)
        return FeatureStore(folder)
    log.info("feature cache: writing %s (%d items)", folder, len(paths))
    meta = {"format": CACHE_FORMAT, "key": key, "split": split, "speed": speed, "frontend": spec}
    desc = f"{split} features x{speed:g}"
    return build_store(folder, len(paths), compute, meta, desc, names=paths)


def attach_disk_cache(
    ds: FeatureDataset,
    cache_dir: str | os.PathLike,
    split: str,
    spec: dict[str, Any],
    speeds: Sequence[float] = (1.0,),
    build: bool = True,
) -> None:
    """Give ``ds`` memory-mapped stores for ``speeds``, building those not on disk yet."""
    paths = [r.path for r in ds.records]
    for speed in speeds:

        def compute(i: int, speed: float = speed) -> torch.Tensor:
            return ds.featurize(ds.records[i], speed)

        ds.stores[speed] = open_or_build(cache_dir, split, paths, spec, speed, compute, build)

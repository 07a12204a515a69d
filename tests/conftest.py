"""Shared test helpers: tiny synthetic audio files, the optional real-data folder."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def write_tone(
    path: str | Path,
    seconds: float,
    sample_rate: int = 16000,
    freq: float = 440.0,
    seed: int = 0,
    format: str | None = None,
) -> Path:
    """Write a sine plus a little noise as 16-bit audio (``format`` e.g. ``"NIST"``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, int(round(seconds * sample_rate)))
    t = np.arange(n) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(n)
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * noise
    sf.write(str(path), wave.astype(np.float32), sample_rate, subtype="PCM_16", format=format)
    return path


@pytest.fixture(scope="session")
def tone() -> Callable[..., Path]:
    """:func:`write_tone`, as a fixture."""
    return write_tone


def load_tool(name: str) -> ModuleType:
    """The script ``tools/<name>.py`` imported as a module (``tools`` is no package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tool() -> Callable[[str], ModuleType]:
    """:func:`load_tool`, as a fixture."""
    return load_tool


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder beside the checkout; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when no CUDA device is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

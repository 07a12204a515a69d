"""seqrec: sequence recognition for speech and handwriting with BiLSTM-CTC.

Public API::

    from seqrec import load_model, transcribe, evaluate, train
"""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_model", "train", "transcribe"]


def load_model(path):
    """Load a model file into a :class:`seqrec.recognizer.Recognizer` (never runs code)."""
    from seqrec.recognizer import Recognizer

    return Recognizer.load(path)


def transcribe(model, inputs, output=None, **kwargs):
    """See :func:`seqrec.transcribe.transcribe`."""
    from seqrec.transcribe import transcribe as _t

    return _t(model, inputs, output, **kwargs)


def evaluate(model_path, manifest, report_path=None, **kwargs):
    """See :func:`seqrec.evaluate.evaluate`."""
    from seqrec.evaluate import evaluate as _e

    return _e(model_path, manifest, report_path, **kwargs)


def train(cfg):
    """See :func:`seqrec.training.train`."""
    from seqrec.training import train as _t

    return _t(cfg)


class _Package(types.ModuleType):
    """Keeps ``seqrec.transcribe`` and ``seqrec.evaluate`` the public functions.

    Importing the submodules of the same names would otherwise rebind those
    package attributes to the modules, so ``seqrec.transcribe(...)`` would stop
    working once anything (including the function itself) had imported them.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("evaluate", "transcribe") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

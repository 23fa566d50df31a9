"""The one place that patches third-party behaviour (RecBole 1.2.1 on today's torch/numpy).

Each patch says what breaks without it and names the upstream report. ``apply()`` runs once,
on ``import recbole_ifcdsr``; it is idempotent.
"""
from __future__ import annotations

import os
import types
import warnings
from pathlib import Path
from typing import Any

import torch

_APPLIED = False
_TRUSTED_DIRS: set[Path] = set()


def trust_checkpoint_dir(directory: str | os.PathLike) -> None:
    """Mark a directory as holding checkpoints this program writes (see patch 1)."""
    _TRUSTED_DIRS.add(Path(directory).resolve())


def is_trusted_checkpoint(path: str | os.PathLike) -> bool:
    """True for a file inside a directory registered by :func:`trust_checkpoint_dir`."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(d) for d in _TRUSTED_DIRS)


def load_checkpoint(path: str | os.PathLike, map_location: Any = None) -> Any:
    """Load a checkpoint this program wrote (pickled Config inside), refuse others.

    torch>=2.6 defaults to ``weights_only=True``, which cannot unpickle RecBole's Config. We lift it
    only for files in our own checkpoint directories, never for files from elsewhere.
    """
    if not is_trusted_checkpoint(path):
        return torch.load(path, map_location=map_location, weights_only=True)
    return torch.load(path, map_location=map_location, weights_only=False)


class _TorchWithTrustedLoad(types.ModuleType):
    """Stands in for ``torch`` inside ``recbole.trainer.trainer``: same attributes, own ``load``."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        if isinstance(f, (str, os.PathLike)) and "weights_only" not in kwargs:
            return load_checkpoint(f, map_location=map_location)
        return torch.load(f, map_location=map_location, **kwargs)


def _patch_checkpoint_loading() -> None:
    # Patch 1. torch>=2.6 made torch.load(weights_only=True) the default; RecBole's Trainer pickles the
    # Config into each checkpoint, so Trainer.resume_checkpoint and evaluate(load_best_model=True) fail
    # with UnpicklingError. Upstream: RUCAIBox/RecBole#2212 (same root cause, NeuMF.load_pretrain).
    import recbole.trainer.trainer as recbole_trainer

    if not isinstance(recbole_trainer.torch, _TorchWithTrustedLoad):
        recbole_trainer.torch = _TorchWithTrustedLoad()


def _switch_anomaly_detection_off() -> None:
    # Patch 2. recbole/model/sequential_recommender/sine.py calls torch.autograd.set_detect_anomaly(True)
    # at import time; RecBole's Config imports every model module, so anomaly mode is on for every model
    # and training runs 1.3-4x slower. No upstream issue found; the call is at sine.py module level in
    # RecBole 1.2.1. We import that module first, then switch the mode off.
    import recbole.model.sequential_recommender.sine  # noqa: F401  (its import switches anomaly mode on)

    torch.autograd.set_detect_anomaly(False)


def _quiet_known_pandas_warning() -> None:
    # Patch 4 (cosmetic). RecBole 1.2.1 dataset.py _fill_nan calls feat[field].fillna(..., inplace=True)
    # on a column; pandas 2.x warns that this stops working under copy-on-write (pandas 3). With the
    # pandas<3 pin it still fills in place, so the warning is noise in every run's log. The pin is
    # what keeps it correct; see DESIGN.md. No upstream issue found for RecBole 1.2.1.
    warnings.filterwarnings("ignore", message=".*chained assignment using an inplace method.*",
                            category=FutureWarning, module="recbole.data.dataset.dataset")


class PandasCopyOnWriteError(ImportError):
    """pandas copies on write here, so RecBole 1.2.1's in-place fills would silently do nothing."""


def refuse_pandas_copy_on_write() -> None:
    """Raise PandasCopyOnWriteError where RecBole's ``fillna(inplace=True)`` would fill a copy."""
    # Guard 6 (no patch: a refusal). RecBole 1.2.1 fills missing values with
    # ``feat[field].fillna(..., inplace=True)`` (dataset.py _fill_nan and _load_feat). Under pandas'
    # copy-on-write, the default from pandas 3 and an option in 2.x, that call fills a temporary copy:
    # NaNs stay in token and float fields with no error, and token_seq parsing crashes. setup.cfg pins
    # pandas<3 for pip installs; an image that ships pandas 3 (the lent GPU's package list lacks pytz and
    # tzdata, which pandas 2 requires) must put pandas<3 first on the path (tools/device_round4.sh carries
    # a wheel). Checked on import and again before a dataset loads, since a user's code can switch the
    # option on in between. No upstream issue found for RecBole 1.2.1.
    import pandas as pd

    major = int(pd.__version__.split(".")[0])
    if major >= 3 or pd.get_option("mode.copy_on_write") is True:
        why = f"pandas {pd.__version__}" if major >= 3 else "pandas' copy-on-write mode (mode.copy_on_write=True)"
        raise PandasCopyOnWriteError(
            f"{why}: RecBole 1.2.1 fills missing values with fillna(inplace=True), which copy-on-write turns into a "
            f"no-op, so datasets would keep NaNs silently; install pandas<3 (pip install 'pandas<3') and leave "
            f"copy-on-write off")


def _restore_numpy_aliases_for_recbole() -> None:
    # Patch 5. RecBole 1.2.1's Config.compatibility_settings() runs ``np.float = np.float_`` (and
    # np.complex_, np.unicode_); NumPy 2 removed those three aliases, so every Config() raises
    # AttributeError. Upstream: RUCAIBox/RecBole#2203 ("Fix numpy 2 compat"), not in a release.
    # setup.cfg pins numpy<2 for pip installs; this keeps the package usable where an image ships
    # NumPy 2 (GPU images). Each alias is set only if missing, to the type NumPy 1.x gave it.
    import numpy as np

    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, value)


def apply() -> None:
    """Apply all patches once."""
    global _APPLIED
    if _APPLIED:
        return
    refuse_pandas_copy_on_write()
    _restore_numpy_aliases_for_recbole()
    _patch_checkpoint_loading()
    _switch_anomaly_detection_off()
    # Patch 3 needs no code: recbole.quick_start imports ray at module load (ray 2.6.3 needs
    # pkg_resources and seconds of start-up; RecBole 1.2.1 quick_start.py, no upstream issue found),
    # so this package never imports recbole.quick_start. tests/test_compat.py holds that rule.
    _quiet_known_pandas_warning()
    _APPLIED = True

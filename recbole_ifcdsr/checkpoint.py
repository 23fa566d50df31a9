"""What a ``-last`` checkpoint records about its run, and the checks a resume makes.

A checkpoint knows its run: model, dataset, the settings that change the data, the evaluation or
the model's inputs (:data:`RUN_KEYS`), the model's and optimiser's own settings (:func:`model_keys`:
a changed temperature, loss or learning rate with the same shapes would otherwise resume silently
into another model), a SHA-256 of every atomic file the run read and of every feature store's tokens,
vectors and mask, and the shape of every tensor of the model. A resume whose run differs in any of these is
refused with one line that says which run the checkpoint belongs to; otherwise it would report
another dataset's numbers under this one's name, or fail deep inside ``load_state_dict``.

It also holds the Python, NumPy and torch random states and the training loader's generator (the
data order), so a resumed run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import recbole
import torch

from recbole_ifcdsr import compat
from recbole_ifcdsr.config import model_yaml_files
from recbole_ifcdsr.errors import CheckpointError, CheckpointMismatchError, brief
from recbole_ifcdsr.features.store import FROZEN_STORE_KEYS, feature_path, load_features
from recbole_ifcdsr.yamlfile import read_yaml

FORMAT = 4  # 1: no run record and no random state (before resume was checked); 2: results per domain, not a
# RunResult; 3: no model settings and no stop record. A format-4 checkpoint without 'wall_seconds' (written before
# it was recorded) still resumes; the run's results then say their wall time counts only the last process
#: settings that change which data a run trains and evaluates on, or how it is scored
RUN_KEYS = ("seed", "USER_ID_FIELD", "ITEM_ID_FIELD", "load_col", "unload_col", "benchmark_filename",
            "cdsr_recipe", "MAX_ITEM_LIST_LENGTH", "cdsr_negatives", "cdsr_metrics", "cdsr_tie_tolerance")
#: the optimiser's settings, recorded with every key of the model's YAML files (:func:`model_keys`)
OPTIMISER_KEYS = ("learning_rate", "weight_decay", "train_batch_size", "lr_decay")
#: how the steps are taken and validated (RecBole's training settings beyond the optimiser's): a changed learner,
#: clipping, mixed precision, data order or validation step resumed silently into another run. Checkpoints written
#: before they were recorded lack them and are not checked on them
TRAINING_KEYS = ("learner", "eval_step", "clip_grad_norm", "enable_amp", "enable_scaler", "shuffle",
                 "train_neg_sample_args", "reproducibility")
#: keys of a model's YAML that say how long or how visibly it trains, or how much memory a step holds, not
#: what it learns: a resume may change them (e.g. more epochs, a larger budget)
NOT_MODEL_KEYS = frozenset({"epochs", "max_train_minutes", "max_train_cpu_minutes", "show_progress", "state",
                            "resume", "checkpoint_dir", "results_file", "full_loss_tile"})


def _plain(value):
    """Config values as plain, comparable data (tuples as lists, everything else kept or stringified)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _store_digest(path: Path) -> str:
    """SHA-256 of what a run reads of a feature store (tokens, vectors, mask), not of its file: a rebuild that
    gives the same vectors (the extraction is deterministic) changes the meta's date, not the run."""
    tokens, vectors, mask, _ = load_features(path)
    digest = hashlib.sha256("\n".join(tokens.tolist()).encode("utf-8"))
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(mask, dtype=bool).tobytes())
    return digest.hexdigest()


def model_keys(model_name: str, model_class: type) -> list[str]:
    """The model's own settings: every key of its YAML files (RecBole's for a RecBole model, then the
    plug-in's along the class hierarchy) and the optimiser's, less :data:`NOT_MODEL_KEYS`."""
    files = [Path(recbole.__file__).parent / "properties" / "model" / f"{model_name}.yaml",
             *model_yaml_files(model_name, model_class)]
    keys = dict.fromkeys(OPTIMISER_KEYS)
    for path in files:
        if path.is_file():
            keys.update(dict.fromkeys(read_yaml(path) or {}))
    return sorted(k for k in keys if k not in NOT_MODEL_KEYS)


def run_identity(config, dataset, model: torch.nn.Module) -> dict:
    """The record of this run that every checkpoint carries (see the module docstring)."""
    selection = config["cdsr_selection"] or {}
    features = {}
    for key, switch in FROZEN_STORE_KEYS.items():
        if config[key] is not None and config[switch]:
            path = feature_path(config["data_path"], config["dataset"], config[key])
            if path.is_file():
                features[path.name] = _store_digest(path)
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "data_path": str(config["data_path"]),
        "files": dict(dataset.file_fingerprint),
        "features": features,
        "config": {key: _plain(config[key]) for key in RUN_KEYS},
        "training": {key: _plain(config[key]) for key in TRAINING_KEYS},
        "model_config": {key: _plain(config[key]) for key in model_keys(config["model"], type(model))},
        "selection": {"mode": selection.get("mode"), "metric": selection.get("metric"),
                      "improve": selection.get("improve", "ge"),
                      "warmup_epochs": int(selection.get("warmup_epochs") or 0)},
        "shapes": {name: list(t.shape) for name, t in model.state_dict().items()},
    }


def _short(digest: str | None) -> str:
    return "absent" if digest is None else f"sha256 {digest[:12]}"


def _changed(saved: dict, current: dict, keys) -> tuple | None:
    """(key, saved value, current value) for the first of ``keys`` whose values differ; None when none does."""
    return next(((key, saved.get(key), current.get(key)) for key in keys if saved.get(key) != current.get(key)), None)


def mismatch(saved: dict, current: dict) -> str | None:
    """The first difference between a checkpoint's run and this one, in words; None when they agree."""
    for key in ("model", "dataset"):
        if saved[key] != current[key]:
            return f"its {key} is '{saved[key]}', this run's is '{current[key]}'"
    training = saved.get("training", {})  # only the keys a checkpoint has (see TRAINING_KEYS)
    change = _changed(saved["config"], current["config"], sorted(set(saved["config"]) | set(current["config"]))) \
        or _changed(training, current.get("training", {}), sorted(training))
    if change:
        return "its {} is {!r}, this run's is {!r}".format(*change)
    # the selection's settings that decide which epoch's weights are tested (its patience only says how long training
    # goes on, like epochs, so a resume may change it); checkpoints written before improve and warmup_epochs were
    # recorded lack them, so only the keys a checkpoint has are compared
    change = _changed(saved["selection"], current["selection"], saved["selection"])
    if change:
        return "its model selection's {} is {!r}, this run's is {!r}".format(*change)
    for kind, label in (("files", "data file"), ("features", "feature store")):
        for name in sorted(set(saved[kind]) | set(current[kind])):
            old, new = saved[kind].get(name), current[kind].get(name)
            if old != new:
                return (f"its {label} {name} ({_short(old)}, read from {saved['data_path']}) differs from this "
                        f"run's ({_short(new)}, in {current['data_path']})")
    for name in list(saved["shapes"]) + [n for n in current["shapes"] if n not in saved["shapes"]]:  # model order
        old, new = saved["shapes"].get(name), current["shapes"].get(name)
        if old != new:
            return f"its tensor {name} has shape {old}, this run's model has {new}"
    change = _changed(saved["model_config"], current["model_config"],  # same shapes, other settings
                      sorted(set(saved["model_config"]) | set(current["model_config"])))
    return "its {} is {!r}, this run's is {!r}".format(*change) if change else None


def load(path: str | os.PathLike, map_location=None) -> dict:
    """Read a ``-last`` checkpoint this program wrote; one-line CheckpointError when it cannot be used."""
    try:
        state = compat.load_checkpoint(path, map_location=map_location)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt ({brief(error)}); "
                              f"delete it to start afresh") from error
    if not isinstance(state, dict) or "run" not in state:
        raise CheckpointError(f"{path}: written by an older version (no run record), so it cannot be checked against "
                              f"this run; delete it to start afresh")
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: written by another version (checkpoint format {state.get('format')}, this "
                              f"version reads {FORMAT}); delete it to start afresh")
    return state


def check_belongs(path: str | os.PathLike, state: dict, current: dict) -> None:
    """Refuse a checkpoint of another run, saying which run it belongs to."""
    difference = mismatch(state["run"], current)
    if difference:
        run = state["run"]
        raise CheckpointMismatchError(
            f"{path} belongs to another run ({run['model']} on {run['dataset']} from {run['data_path']}): {difference}. "
            f"Resume refused: delete it, choose another --checkpoint_dir, or run without --resume=True")


def rng_state() -> dict:
    """Every random state a training step draws from (Python, NumPy, torch CPU and CUDA)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

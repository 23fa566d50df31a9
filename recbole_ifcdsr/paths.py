"""Where properties and datasets are found: the user's working directory first, then the plug-in's own.

The plug-in's own ``properties/`` and embedded datasets ship inside the package as
``recbole_ifcdsr/properties`` and ``recbole_ifcdsr/dataset`` (setup.cfg maps the repository's top-level
folders there at build time). Run from a source tree the package folder lacks them, so the top-level
folders beside it are used: they are the same files.

As in RecBole, ``data_path`` is the folder that holds ``<dataset>/`` (default ``./dataset``). A user's
``./properties/dataset/<name>.yaml`` (likewise ``overall.yaml``, ``model/<Model>.yaml``) replaces the
plug-in's file of the same name.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # a source checkout's root; only tests and dev defaults use it
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def _own(folder: str) -> Path:
    inside = PACKAGE_DIR / folder
    return inside if inside.is_dir() else REPO_ROOT / folder


PROPERTIES_DIR = _own("properties")  # the plug-in's own properties
SHIPPED_DATASET_DIR = _own("dataset")  # the embedded datasets (gzipped atomic files)
SHIPPED_DATASETS = ("fk_abxi", "fk_llmcdsr")


def run_checkpoint_stem(model: str, dataset: str, seed: int) -> str:
    """``<model>-<dataset>-seed<N>``, the stem of a run's checkpoint files in its checkpoint_dir (``-last.pth``,
    ``-best_X.pth``): the trainer writes them, and ``compare --plan`` looks for them without importing it."""
    return f"{model}-{dataset}-seed{seed}"


def default_data_path() -> Path:
    """RecBole's default ``data_path``: ``dataset/`` in the working directory."""
    return Path.cwd() / "dataset"


def user_properties_dir() -> Path:
    return Path.cwd() / "properties"


def properties_file(relative: str | os.PathLike) -> Path:
    """``./properties/<relative>`` if the user has one, else the plug-in's (which may not exist)."""
    user = user_properties_dir() / relative
    return user if user.is_file() else PROPERTIES_DIR / relative


def default_properties(model: str, dataset: str, model_names: list[str] | None = None) -> dict[str, Path]:
    """The default YAML files a run of ``model`` on ``dataset`` reads, lowest precedence first,
    keyed by their name under properties/; files that exist only. ``model_names``: the model YAML
    names along the model's class hierarchy, base first (default: the model alone)."""
    names = ("overall.yaml", *(f"model/{n}.yaml" for n in (model_names or [model])), f"dataset/{dataset}.yaml")
    found = {name: properties_file(name) for name in names}
    return {name: path for name, path in found.items() if path.is_file()}


def known_datasets() -> list[str]:
    """Dataset names that have a properties/dataset/<name>.yaml, the user's or the plug-in's."""
    folders = (user_properties_dir() / "dataset", PROPERTIES_DIR / "dataset")
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})

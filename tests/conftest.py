"""Shared fixtures: the shipped real datasets (session-scoped: loading takes seconds), a real slice, a tiny
open_clip config; the test tiers (setup.cfg) are enforced here."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

import recbole_ifcdsr  # noqa: F401  (compat patches before RecBole is used)
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.paths import REPO_ROOT, SHARED_DATA_DIR, default_data_path

QUIET = {"show_progress": False, "state": "WARNING"}
# Config's default data_path (./dataset, as in RecBole): the shipped datasets are unpacked there on first use
DATA_PATH = default_data_path()


TIERS = ("unit", "integration", "e2e")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Every test carries exactly one tier marker (setup.cfg describes them), so ``-m unit`` means something."""
    wrong = [f"{item.nodeid}: {tiers or 'none'}" for item in items
             if len(tiers := [m.name for m in item.iter_markers() if m.name in TIERS]) != 1]
    if wrong:
        raise pytest.UsageError("tests need exactly one of the markers " + ", ".join(TIERS) + ":\n  " + "\n  ".join(wrong))


@pytest.fixture(scope="session", autouse=True)
def no_pytest_options_in_settings():
    """RecBole's Config reads ``--key=value`` options from sys.argv, so pytest's own (``--maxfail=1``) would
    become settings of every run a test starts in process; autouse at session scope, so it precedes the
    session's dataset fixtures."""
    saved = sys.argv[:]
    sys.argv[1:] = []
    yield
    sys.argv[:] = saved


def shared_data_dir() -> Path:
    """../shared/data, or skip (a user's clone) / fail (CI=true) when it is absent."""
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    if os.environ.get("CI") == "true":
        pytest.fail(f"{SHARED_DATA_DIR} is missing under CI")
    pytest.skip(f"{SHARED_DATA_DIR} not present (only in the project workspace)")


def load(model: str, dataset: str, **overrides) -> tuple:
    config = Config(model, dataset, config_dict={**QUIET, **overrides})
    return config, CrossDomainSequentialDataset(config)


def first_users_rows(lines: list[str], n_users: int) -> list[str]:
    """Header plus the rows of the first ``n_users`` users of an .inter file (rows grouped by user)."""
    users, kept = set(), [lines[0]]
    for line in lines[1:]:
        user = line.split("\t", 1)[0]
        if user not in users and len(users) == n_users:
            break
        users.add(user)
        kept.append(line)
    return kept


@pytest.fixture(scope="session")
def abxi():
    return load("SASRec", "fk_abxi")


@pytest.fixture(scope="session")
def llmcdsr():
    return load("SASRec", "fk_llmcdsr")


# a tiny open_clip config (random init): it tests the feature pipeline, not semantics
TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2}}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Path of the tiny open_clip model config (its file name is the model name: tiny-clip)."""
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return str(path)


@pytest.fixture(scope="session")
def abxi_slice_dir(tmp_path_factory) -> Path:
    """A real slice of fk_abxi: the first 300 users' sequences with the full item file."""
    load("SASRec", "fk_abxi")  # makes sure the shipped files are unpacked
    root = tmp_path_factory.mktemp("data")
    out = root / "fk_abxi"
    out.mkdir()
    src = DATA_PATH / "fk_abxi"
    (out / "fk_abxi.item").write_bytes((src / "fk_abxi.item").read_bytes())
    kept = first_users_rows((src / "fk_abxi.inter").read_text().splitlines(keepends=True), 300)
    (out / "fk_abxi.inter").write_text("".join(kept))
    return root


@pytest.fixture(scope="session")
def abxi_slice_with_images(abxi_slice_dir, tmp_path_factory) -> Path:
    """The real slice plus an image sidecar written here (no real item images exist): 16-d vectors for
    60% of the items, so IFCDSR's image fusion and its missing-feature rule are in every score."""
    import numpy as np

    from recbole_ifcdsr.features.store import feature_path, save_features

    root = tmp_path_factory.mktemp("img")
    (root / "fk_abxi").mkdir()
    for f in (abxi_slice_dir / "fk_abxi").iterdir():
        (root / "fk_abxi" / f.name).symlink_to(f)
    tokens = [line.split("\t", 1)[0] for line in (abxi_slice_dir / "fk_abxi" / "fk_abxi.item").read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    mask = rng.random(len(tokens)) < 0.6
    save_features(feature_path(root / "fk_abxi", "fk_abxi", "image"), tokens, rng.normal(size=(len(tokens), 16)), mask,
                  {"encoder": "test-random"})
    return root


def build_ifcdsr(data_path, small: dict, **overrides) -> tuple:
    """(config, dataset, IFCDSR) on ``data_path`` with the test's small settings, seeded."""
    from recbole.utils import init_seed

    from recbole_ifcdsr.model.ifcdsr import IFCDSR

    config = Config("IFCDSR", "fk_abxi", config_dict={"data_path": str(data_path), **small, **overrides})
    data = CrossDomainSequentialDataset(config)
    init_seed(0, True)  # after the dataset, so the weights do not depend on what loading drew
    return config, data, IFCDSR(config, data)


@pytest.fixture(scope="session")
def abxi_small_dir(tmp_path_factory) -> Path:
    """A smaller real slice of fk_abxi for runs that train: the first 60 users' sequences and only the
    items they touch (1,278), so an epoch over every item's score takes a fraction of a second.
    Sampled evaluation on it needs fewer negatives than 999 (see SMALL_RUN)."""
    load("SASRec", "fk_abxi")
    root = tmp_path_factory.mktemp("small")
    out = root / "fk_abxi"
    out.mkdir()
    src = DATA_PATH / "fk_abxi"
    kept = first_users_rows((src / "fk_abxi.inter").read_text().splitlines(keepends=True), 60)
    used = {line.split("\t")[1] for line in kept[1:]}
    items = (src / "fk_abxi.item").read_text().splitlines(keepends=True)
    (out / "fk_abxi.item").write_text("".join([items[0]] + [line for line in items[1:] if line.split("\t", 1)[0] in used]))
    (out / "fk_abxi.inter").write_text("".join(kept))
    return root


#: settings for quick training runs on ``abxi_small_dir``: 50 negatives (its domains have 585 and 693 items),
#: histories of at most 20 items
SMALL_RUN = {"show_progress": False, "state": "WARNING", "train_batch_size": 64, "eval_batch_size": 128,
             "MAX_ITEM_LIST_LENGTH": 20, "num_negatives": 200,  # the sampled loss's default 1,024 > this slice's 585 X items
             "cdsr_negatives": {"num": 50, "replacement": False, "exclude": "sequence", "redraw": "every_pass",
                                "rng": "generator", "seed": 1},
             "cdsr_selection": {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 0, "patience": 61}}


def load_tool(name: str):
    """A script of tools/ as a module (tools/ is not a package: the scripts run from a checkout)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Shared fixtures: the shipped real datasets (session-scoped: loading takes seconds) and a real slice."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import recbole_ifcdsr  # noqa: F401  (compat patches before RecBole is used)
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.paths import DATASET_DIR, SHARED_DATA_DIR

QUIET = {"show_progress": False, "state": "WARNING"}


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


@pytest.fixture(scope="session")
def abxi_slice_dir(tmp_path_factory) -> Path:
    """A real slice of fk_abxi: the first 300 users' sequences with the full item file."""
    load("SASRec", "fk_abxi")  # makes sure the shipped files are unpacked
    root = tmp_path_factory.mktemp("data")
    out = root / "fk_abxi"
    out.mkdir()
    src = DATASET_DIR / "fk_abxi"
    (out / "fk_abxi.item").write_bytes((src / "fk_abxi.item").read_bytes())
    kept = first_users_rows((src / "fk_abxi.inter").read_text().splitlines(keepends=True), 300)
    (out / "fk_abxi.inter").write_text("".join(kept))
    return root


@pytest.fixture(scope="session")
def abxi_small_dir(tmp_path_factory) -> Path:
    """A smaller real slice of fk_abxi for runs that train: the first 60 users' sequences and only the
    items they touch (1,278), so an epoch over every item's score takes a fraction of a second.
    Sampled evaluation on it needs fewer negatives than 999 (see SMALL_RUN)."""
    load("SASRec", "fk_abxi")
    root = tmp_path_factory.mktemp("small")
    out = root / "fk_abxi"
    out.mkdir()
    src = DATASET_DIR / "fk_abxi"
    kept = first_users_rows((src / "fk_abxi.inter").read_text().splitlines(keepends=True), 60)
    used = {line.split("\t")[1] for line in kept[1:]}
    items = (src / "fk_abxi.item").read_text().splitlines(keepends=True)
    (out / "fk_abxi.item").write_text("".join([items[0]] + [line for line in items[1:] if line.split("\t", 1)[0] in used]))
    (out / "fk_abxi.inter").write_text("".join(kept))
    return root


#: settings for quick training runs on ``abxi_small_dir``: 50 negatives (its domains have 585 and 693 items),
#: histories of at most 20 items
SMALL_RUN = {"show_progress": False, "state": "WARNING", "train_batch_size": 64, "eval_batch_size": 128,
             "MAX_ITEM_LIST_LENGTH": 20,
             "cdsr_negatives": {"num": 50, "replacement": False, "exclude": "sequence", "redraw": "every_pass",
                                "rng": "generator", "seed": 1},
             "cdsr_selection": {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 0, "patience": 61}}

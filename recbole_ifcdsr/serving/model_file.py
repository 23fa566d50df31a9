"""The self-contained model file that ``run`` writes next to its selected checkpoints.

Why a file of its own: a checkpoint pickles RecBole's Config and needs the dataset folder to rebuild
the model. A serving machine has neither, so the model file carries everything serving needs as plain
values and tensors (loadable with ``torch.load(weights_only=True)``, no code runs on load): item tokens,
domains, titles, training counts, the frozen tables' rows, the settings the model reads, and the
selected weights of each domain (one entry when both domains selected the same epoch).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from recbole_ifcdsr import compat, io
from recbole_ifcdsr.data.dataset import DOMAINS
from recbole_ifcdsr.errors import CheckpointError, brief
from recbole_ifcdsr.features.store import feature_path, load_features
from recbole_ifcdsr.registry import USER_EMBEDDING_MODELS, get_model

FORMAT = "recbole_ifcdsr model file 1"

_USERS = "it reads the training users (a user embedding or the user count), and a live history has no trained user"
_FEATURES = "it reads item or user feature fields besides the item id, which a model file does not carry"
#: RecBole's sequential models that a model file cannot serve, and why: each one's constructor reads more of the
#: dataset than the item side a model file holds (checked against RecBole's code by tests/test_serving.py).
UNSERVABLE: dict[str, str] = {
    **dict.fromkeys(USER_EMBEDDING_MODELS, _USERS),
    **dict.fromkeys(("DIEN", "DIN", "FDSA", "GRU4RecF", "S3Rec", "SASRecF"), _FEATURES),
    **dict.fromkeys(("GRU4RecKG", "KSR"), "it reads a knowledge graph, which a model file does not carry"),
    "FEARec": "it reads the training interactions when it is built, which a model file does not carry",
    "CORE": "it reads the dataset's sequence field lengths when it is built, which a model file does not carry",
}


class UnservableModelError(CheckpointError):
    """A model that cannot answer live histories from a model file (see :data:`UNSERVABLE`)."""


def check_servable(model: str) -> None:
    """Refuse a model that needs more than a model file holds, before a file is written or read for it."""
    if model in UNSERVABLE:
        raise UnservableModelError(f"{model} cannot serve live histories: {UNSERVABLE[model]}")


def model_file_path(best_file: str | os.PathLike) -> Path:
    """``<stem>-model.pth`` next to ``<stem>-best_<D>.pth``."""
    best = Path(best_file)
    return best.with_name(best.name.rsplit("-best_", 1)[0] + "-model.pth")


def _plain(value):
    """A setting as a value ``weights_only`` loading accepts (devices, enums and the like as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):  # numpy's subclasses of these pickle as numpy objects
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def _titles(dataset) -> list[str]:
    """Title of each internal item id ('' where none; index 0 is padding), read from the .item file
    (RecBole remaps token_seq titles word by word, so the raw line is the only faithful copy)."""
    titles = [""] * dataset.item_num
    token2id = dataset.field2token_id[dataset.iid_field]
    for item in io.read_item_table(os.path.join(dataset.dataset_path, f"{dataset.dataset_name}.item")):
        if item.token in token2id:
            titles[token2id[item.token]] = item.title
    return titles


def build_payload(config, dataset, model, best_states: dict) -> dict:
    """What the model file holds, from a finished run; ``best_states``: domain -> selected state dict.
    An :class:`UnservableModelError` for a model in :data:`UNSERVABLE` (it could not be loaded)."""
    check_servable(config["model"])
    declared = type(model)._declared_tables() if hasattr(type(model), "_declared_tables") else []
    prefix_of = {key: prefix for tables in declared for key, prefix in tables.items()}
    feature_rows = {}
    for key, table in getattr(model, "frozen", {}).items():
        prefix = prefix_of[key]
        feature = config[f"{prefix}_feature"]
        store = feature_path(config["data_path"], config["dataset"], feature)
        feature_rows[prefix] = {
            "key": key, "vectors": table.table.detach().cpu().clone(), "mask": table.mask.detach().cpu().clone(),
            # how the store was encoded, so cold-start titles go through the same encoder
            "feature": str(feature), "spec": _plain((config["item_features"] or {}).get(feature)),
            "meta": _plain(load_features(store)[3]) if store.is_file() else None,
        }
    weights, shared = {}, None
    for d in DOMAINS:
        state = {k: v.detach().cpu() for k, v in best_states[d].items()}
        if shared is not None and all(torch.equal(state[k], shared[1][k]) for k in state):
            weights[d] = shared[0]  # the same selected weights: stored once
        else:
            weights[d] = d
            shared = (d, state)
    states = {d: {k: v.detach().cpu() for k, v in best_states[d].items()} for d in DOMAINS if weights[d] == d}
    return {
        "format": FORMAT,
        "model": config["model"],
        "dataset": config["dataset"],
        "config": _plain(dict(config.final_config_dict)),
        "item_field": dataset.iid_field,
        "tokens": [str(t) for t in dataset.field2id_token[dataset.iid_field]],
        "item_domain": torch.as_tensor(dataset.item_domain.astype(np.int64)),
        "domain_items": [torch.as_tensor(np.asarray(items, dtype=np.int64)) for items in dataset.domain_items],
        "titles": _titles(dataset),
        "train_counts": torch.as_tensor(np.asarray(dataset.train_item_counts(), dtype=np.int64)),
        "feature_rows": feature_rows,
        "weights_of": weights,  # domain -> key in "states"
        "states": states,
    }


def save_model_file(path: str | os.PathLike, payload: dict) -> Path:
    """Write atomically (a crash leaves the old file or none, never half of one)."""
    path = Path(path)
    with io.atomic_file(path) as handle:
        torch.save(payload, handle)
    return path


def write_for_run(config, dataset, model, best_files: dict) -> Path:
    """The model file of a finished run, from its selected checkpoints ``best_files`` (domain -> path)."""
    states = {d: compat.load_checkpoint(best_files[d], map_location="cpu")["state_dict"] for d in DOMAINS}
    return save_model_file(model_file_path(best_files[DOMAINS[0]]), build_payload(config, dataset, model, states))


def read_model_file(path: str | os.PathLike) -> dict:
    """The payload of a model file; a missing, unreadable or foreign file is one CheckpointError line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file (run writes <model>-<dataset>-seed<N>-model.pth "
                              f"next to its checkpoints)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, corrupt, or a pickle that needs code to load
        raise CheckpointError(f"{path}: not a readable model file ({brief(error)})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a model file of this version (expected format '{FORMAT}'); "
                              f"a '-last.pth' or '-best_X.pth' checkpoint is not a model file")
    try:  # a file written before build_payload refused these models
        check_servable(payload.get("model"))
    except UnservableModelError as error:
        raise UnservableModelError(f"{path}: {error}") from None
    return payload


class NotInCatalog(KeyError):
    """A field other than the item id asked of a :class:`ServingCatalog` (a user id, an item feature)."""


class ServingSettings(dict):
    """A run's settings as the model classes read them: ``settings[key]``, None for an unset key (as
    RecBole's Config), always on the CPU unless told otherwise."""

    def __getitem__(self, key):
        return self.get(key)


class ServingCatalog:
    """The item side of a dataset, rebuilt from a model file: what a model's constructor reads from a
    dataset (item count, token map, domains, training counts) and the frozen tables' rows."""

    def __init__(self, payload: dict):
        self.iid_field = payload["item_field"]
        self.tokens: list[str] = list(payload["tokens"])
        self.titles: list[str] = list(payload["titles"])
        self.item_domain = payload["item_domain"].numpy().astype(np.int8)
        self.domain_items = [items.numpy() for items in payload["domain_items"]]
        self.counts = payload["train_counts"].numpy()
        self.field2token_id = {self.iid_field: {t: i for i, t in enumerate(self.tokens)}}
        self.tables = dict(payload["feature_rows"])  # prefix -> rows, key, encoder spec and store meta
        self.feature_rows = {p: (rows["vectors"], rows["mask"]) for p, rows in self.tables.items()}

    @property
    def item_num(self) -> int:
        return len(self.tokens)

    def num(self, field: str) -> int:
        if field != self.iid_field:
            raise NotInCatalog(field)
        return self.item_num

    def train_item_counts(self) -> np.ndarray:
        return self.counts

    def append(self, items: list, domains: list, ids: list) -> None:
        """Items a model has just added (cold start): tokens, titles and domains at their new ids."""
        if ids != list(range(self.item_num, self.item_num + len(items))):
            raise RuntimeError(f"new item ids {ids[:3]}... do not follow the catalog's {self.item_num} items")
        token2id = self.field2token_id[self.iid_field]
        for item, item_id in zip(items, ids):
            self.tokens.append(item["item"])
            self.titles.append(item.get("title") or "")
            token2id[item["item"]] = item_id
        self.item_domain = np.concatenate([self.item_domain, np.asarray(domains, dtype=np.int8)])
        for d in range(len(self.domain_items)):
            added = [i for i, dom in zip(ids, domains) if dom == d]
            self.domain_items[d] = np.concatenate([self.domain_items[d], np.asarray(added, dtype=np.int64)])


def construct(model_class: type, settings: ServingSettings, catalog: ServingCatalog, name: str):
    """``model_class(settings, catalog)``; a model that reads a part of the dataset the catalog lacks (one not in
    :data:`UNSERVABLE` yet) is an :class:`UnservableModelError` naming that part, not an AttributeError."""
    try:
        return model_class(settings, catalog)
    except (AttributeError, NotInCatalog) as error:
        if isinstance(error, AttributeError) and getattr(error, "obj", None) is not catalog:
            raise  # some other bug: keep its traceback
        part = f"dataset.{error.name}" if isinstance(error, AttributeError) else f"the field '{error.args[0]}'"
        raise UnservableModelError(f"{name} cannot serve live histories: building it reads {part}, which a model "
                                   f"file does not carry") from error


def build_models(payload: dict, device: str = "cpu") -> tuple[dict, ServingCatalog]:
    """(domain -> the model with that domain's selected weights in eval mode, shared when equal; the catalog)."""
    check_servable(payload["model"])
    settings = ServingSettings(payload["config"])
    settings["device"] = device
    catalog = ServingCatalog(payload)
    model_class = get_model(payload["model"])
    built = {}
    for key, state in payload["states"].items():
        model = construct(model_class, settings, catalog, payload["model"])
        model.load_state_dict(state)
        built[key] = model.to(device).eval()
    return {d: built[payload["weights_of"][d]] for d in DOMAINS}, catalog

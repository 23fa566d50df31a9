"""Item feature sidecars: ``<data_path>/<dataset>/<dataset>.<feature>.npz`` next to the atomic files.

One file per (dataset, feature): ``tokens`` (item tokens, as in the .item file), ``vectors``
(float32 [n, dim]), ``mask`` (bool [n]: the item has a real feature; rows with False are ignored)
and ``meta`` (JSON: encoder, weights, dim, preprocessing, date, and ``inputs``: what it was built from,
features/inputs.py). Stored uncompressed so loading is
a memory copy (100k x 512 loads in well under 2 s; ``bench/feature_throughput.py`` measures it).
Items missing from the file, or masked, simply have no feature: that is normal.

Every row is checked, masked ones included: a NaN anywhere is an error naming the store and the
item (one NaN in a masked row used to reach the model and poison every encoder), and masked rows
are stored and returned as zeros. A truncated or malformed file is a one-line FeatureStoreError.

RecBole's own ``float_seq`` item field is supported for interoperability on small data
(``export_float_seq`` / ``import_float_seq``); it is text, so it is slow and large at scale.
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from recbole_ifcdsr import io
from recbole_ifcdsr.errors import DataError, brief
from recbole_ifcdsr.features.inputs import records_inputs, stale_reason

logger = logging.getLogger(__name__)


class FeatureStoreError(DataError):
    """A sidecar that does not fit the dataset; the message names the file and the problem."""


def feature_path(dataset_dir: str | os.PathLike, dataset: str, feature: str) -> Path:
    """The store of ``feature`` in the dataset's own folder (``<data_path>/<dataset>``, which is what
    RecBole's ``config["data_path"]`` holds once the config is loaded)."""
    return Path(dataset_dir) / f"{dataset}.{feature}.npz"


def _check_finite(path, tokens, vectors: np.ndarray) -> None:
    """Every row, masked or not, must be finite; the error names the first bad item."""
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise FeatureStoreError(f"{path}: NaN or inf in {len(bad)} of {len(vectors)} rows, e.g. item '{tokens[bad[0]]}' "
                                f"(row {bad[0]}); rebuild the store")


def _check_shapes(path, tokens, vectors: np.ndarray, mask: np.ndarray) -> None:
    if vectors.ndim != 2:
        raise FeatureStoreError(f"{path}: vectors have shape {vectors.shape}; a store holds one row per item ([n, dim])")
    if vectors.shape[1] == 0:
        raise FeatureStoreError(f"{path}: vectors have width 0")
    if mask.ndim != 1 or tokens.ndim != 1 or len(vectors) != len(tokens) or len(mask) != len(tokens):
        raise FeatureStoreError(f"{path}: tokens {tokens.shape}, vectors {vectors.shape}, mask {mask.shape} disagree")


def save_features(path: str | os.PathLike, tokens, vectors: np.ndarray, mask: np.ndarray, meta: dict) -> None:
    """Write a sidecar atomically (a crash never leaves a half-written store); masked rows are stored as zeros."""
    vectors = np.array(vectors, dtype=np.float32)  # a copy: masked rows are zeroed below
    mask = np.asarray(mask, dtype=bool)
    tokens = np.asarray(tokens, dtype=str)
    if len(np.unique(tokens)) != len(tokens):
        raise FeatureStoreError(f"{path}: duplicate item tokens")
    _check_shapes(path, tokens, vectors, mask)
    vectors[~mask] = 0.0
    _check_finite(path, tokens, vectors)
    io.write_npz(path, tokens=tokens, vectors=vectors, mask=mask, meta=np.array(json.dumps({**meta, "dim": vectors.shape[1]})))


def load_features(path: str | os.PathLike) -> tuple:
    """(tokens, vectors, mask, meta) as stored, in file order; a missing or unreadable file is a FeatureStoreError."""
    path = Path(path)
    if not path.is_file():
        raise FeatureStoreError(f"{path}: no such feature store")
    try:
        with np.load(path, allow_pickle=False) as f:
            tokens, vectors, mask, meta = f["tokens"], f["vectors"], f["mask"], json.loads(str(f["meta"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:  # BadZipFile: a truncated file
        raise FeatureStoreError(f"{path}: not a feature store, or a truncated or corrupt one "
                                f"({brief(e)}); rebuild it") from e
    if mask.dtype != bool or not np.issubdtype(vectors.dtype, np.floating):
        raise FeatureStoreError(f"{path}: vectors {vectors.dtype} / mask {mask.dtype}; expected float vectors and a bool mask")
    _check_shapes(path, tokens, vectors, mask)
    if isinstance(meta, dict) and "dim" in meta and meta["dim"] != vectors.shape[1]:
        raise FeatureStoreError(f"{path}: vectors have width {vectors.shape[1]} but its meta says dim {meta['dim']}")
    return tokens, vectors, mask, meta


def load_aligned(path: str | os.PathLike, token2id: dict, n_items: int, dim: int | None = None) -> tuple:
    """(vectors [n_items, dim] float32, mask [n_items] bool, meta) aligned to internal item ids;
    masked and absent items get zero rows."""
    path = Path(path)
    tokens, vectors, mask, meta = load_features(path)
    if dim is not None and vectors.shape[1] != dim:
        raise FeatureStoreError(f"{path}: dimension {vectors.shape[1]}, expected {dim}")
    unknown = [t for t in tokens[:1000] if t not in token2id] or [t for t in tokens if t not in token2id]
    if unknown:
        raise FeatureStoreError(f"{path}: {len(unknown)} unknown item tokens, e.g. {unknown[:3]}")
    _check_finite(path, tokens, vectors)
    ids = np.fromiter((token2id[t] for t in tokens), dtype=np.int64, count=len(tokens))
    if len(ids) and ids.max() >= n_items:
        raise FeatureStoreError(f"{path}: item id {int(ids.max())} but the dataset has {n_items} ids (with padding)")
    aligned = np.zeros((n_items, vectors.shape[1]), dtype=np.float32)
    aligned_mask = np.zeros(n_items, dtype=bool)
    aligned[ids] = np.where(mask[:, None], vectors, 0.0)
    aligned_mask[ids] = mask
    aligned_mask[0] = False  # padding
    return aligned, aligned_mask, meta


def export_float_seq(store: str | os.PathLike, out: str | os.PathLike, field: str, item_field: str = "item_id") -> int:
    """Write the unmasked vectors as a RecBole atomic ``.item`` file with one ``float_seq`` column
    (merge it into a dataset's .item file to use RecBole's own feature loading); returns the rows written."""
    tokens, vectors, mask, _ = load_features(store)
    with io.atomic_file(out, "w") as f:
        f.write(f"{item_field}:token\t{field}:float_seq\n")
        for token, row in zip(tokens[mask], vectors[mask]):
            f.write(token + "\t" + " ".join(repr(float(v)) for v in row) + "\n")
    return int(mask.sum())


def import_float_seq(item_file: str | os.PathLike, field: str, item_field: str = "item_id") -> tuple:
    """(tokens, vectors, mask) from a RecBole ``.item`` file's ``float_seq`` column; empty cells are masked."""
    item_file = Path(item_file)
    with open(item_file, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        for name, kind in ((item_field, "token"), (field, "float_seq")):
            if f"{name}:{kind}" not in header:
                raise FeatureStoreError(f"{item_file}: no column '{name}:{kind}' (header: {header})")
        ti, fi = names.index(item_field), names.index(field)
        tokens, rows = [], []
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue  # a blank line holds no item (RecBole's reader skips it too)
            cells = line.rstrip("\r\n").split("\t")
            tokens.append(cells[ti])
            cell = cells[fi].strip() if fi < len(cells) else ""
            try:
                rows.append(np.array(cell.split(), dtype=np.float32) if cell else None)
            except ValueError as e:
                raise FeatureStoreError(f"{item_file}:{lineno}: bad float_seq value ({e})") from e
    dims = {len(r) for r in rows if r is not None}
    if len(dims) > 1:
        raise FeatureStoreError(f"{item_file}: '{field}' rows have different lengths {sorted(dims)}")
    dim = dims.pop() if dims else 0
    vectors = np.zeros((len(tokens), dim), dtype=np.float32)
    mask = np.array([r is not None for r in rows], dtype=bool)
    for i, r in enumerate(rows):
        if r is not None:
            vectors[i] = r
    return tokens, vectors, mask


#: config keys naming a frozen feature store (IFCDSR, LLMEMF), with the switch that turns each on
FROZEN_STORE_KEYS = {"image_feature": "image_fusion", "text_feature": "text_fusion"}


def check_stores_fit(config, token2id: dict, n_items: int) -> list[Path]:
    """Before the model is built: every store its config switches on loads cleanly, was built from the item
    file's items and texts as they are now (features/inputs.py), and has a width the model's encoders accept
    (they keep the table's width, so it must be a multiple of ``n_heads``). A bad store then fails naming the
    store, not deep inside the model. Returns the stores checked."""
    checked = []
    for key, switch in FROZEN_STORE_KEYS.items():
        if config[key] is None or not config[switch]:
            continue
        path = feature_path(config["data_path"], config["dataset"], config[key])
        if not path.is_file():
            continue  # the model runs without it and says so
        vectors, _, meta = load_aligned(path, token2id, n_items)
        rebuild = (f"python -m recbole_ifcdsr features extract --dataset={config['dataset']} --feature={config[key]} "
                   f"... --overwrite")
        spec = (config["item_features"] or {}).get(config[key])
        reason = stale_reason(meta, config["data_path"], config["dataset"], None if spec is None else dict(spec))
        if reason:
            raise FeatureStoreError(f"{path}: {reason}; rebuild it ({rebuild})")
        unchecked = records_inputs(meta, config["data_path"])
        if unchecked:
            logger.warning(f"{path}: {unchecked}; it is used as it is ({rebuild} rebuilds it with that record)")
        heads = config["n_heads"]
        if heads and vectors.shape[1] % int(heads):
            raise FeatureStoreError(
                f"{path}: width {vectors.shape[1]} does not fit {config['model']}: its encoders over this table keep "
                f"the table's width, which must be a multiple of n_heads={heads} (set by {key}: {config[key]})")
        checked.append(path)
    return checked

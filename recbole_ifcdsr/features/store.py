"""Item feature sidecars: ``<data_path>/<dataset>.<feature>.npz`` next to the atomic files.

One file per (dataset, feature): ``tokens`` (item tokens, as in the .item file), ``vectors``
(float32 [n, dim]), ``mask`` (bool [n]: the item has a real feature; rows with False are ignored)
and ``meta`` (JSON: encoder, weights, dim, preprocessing, date). Stored uncompressed so loading is
a memory copy. Items missing from the file, or masked, simply have no feature: that is normal.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


class FeatureStoreError(ValueError):
    """A sidecar that does not fit the dataset; the message names the file and the problem."""


def feature_path(data_path: str | os.PathLike, dataset: str, feature: str) -> Path:
    return Path(data_path) / f"{dataset}.{feature}.npz"


def save_features(path: str | os.PathLike, tokens, vectors: np.ndarray, mask: np.ndarray, meta: dict) -> None:
    """Write a sidecar atomically (a crash never leaves a half-written store)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    tokens = np.asarray(tokens, dtype=str)
    if vectors.ndim != 2 or len(vectors) != len(tokens) or len(mask) != len(tokens):
        raise FeatureStoreError(f"{path}: tokens {len(tokens)}, vectors {vectors.shape}, mask {mask.shape} disagree")
    if not np.isfinite(vectors[mask]).all():
        raise FeatureStoreError(f"{path}: NaN or inf in unmasked vectors")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, tokens=tokens, vectors=vectors, mask=mask, meta=np.array(json.dumps({**meta, "dim": vectors.shape[1]})))
    os.replace(tmp, path)


def load_aligned(path: str | os.PathLike, token2id: dict, n_items: int, dim: int | None = None) -> tuple:
    """(vectors [n_items, dim] float32, mask [n_items] bool, meta) aligned to internal item ids."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as f:
        tokens, vectors, mask, meta = f["tokens"], f["vectors"], f["mask"], json.loads(str(f["meta"]))
    if dim is not None and vectors.shape[1] != dim:
        raise FeatureStoreError(f"{path}: dimension {vectors.shape[1]}, expected {dim}")
    if len(tokens) != len(vectors) or len(mask) != len(vectors):
        raise FeatureStoreError(f"{path}: {len(tokens)} tokens but {len(vectors)} vectors and {len(mask)} mask entries")
    unknown = [t for t in tokens[:1000] if t not in token2id] or [t for t in tokens if t not in token2id]
    if unknown:
        raise FeatureStoreError(f"{path}: {len(unknown)} unknown item tokens, e.g. {unknown[:3]}")
    if not np.isfinite(vectors[mask]).all():
        raise FeatureStoreError(f"{path}: NaN or inf in unmasked vectors")
    ids = np.fromiter((token2id[t] for t in tokens), dtype=np.int64, count=len(tokens))
    aligned = np.zeros((n_items, vectors.shape[1]), dtype=np.float32)
    aligned_mask = np.zeros(n_items, dtype=bool)
    aligned[ids] = vectors
    aligned_mask[ids] = mask
    aligned_mask[0] = False  # padding
    return aligned, aligned_mask, meta

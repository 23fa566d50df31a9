"""What a feature store was built from, kept in its meta so that a run can tell when the store is stale.

A run reuses a store whenever its file exists. Without this record, a store built before the item file's
items or titles (or the enriched text file) changed would be read as it is: items added since would get no
vector, and renamed items would keep the vector of their old title. The meta's ``inputs`` holds a SHA-256
of the item tokens, and for a text store the text file it read (None: the titles alone) and a SHA-256 of
every item's text. A run recomputes both from the files as they are now (one read of the ``.item`` file)
and refuses a store whose inputs differ, or one built from another text file than its spec names. Image
files are not hashed, because a run would have to read every image; an image store checks its items only.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from recbole_ifcdsr.features.sources import TextSource, read_item_file

TITLES = "the titles alone"  # how a message names a text store built without a text file


def _sha256(lines) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def recorded_path(text_file: str | os.PathLike | None, dataset_dir: str | os.PathLike) -> str | None:
    """How a store records its text file: relative to the dataset folder when the file lies inside it (so a
    copied dataset folder checks its own copy), else absolute (so a run from another folder finds it)."""
    if not text_file:
        return None
    path, folder = Path(os.path.abspath(text_file)), Path(os.path.abspath(dataset_dir))
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _located(recorded: str | None, dataset_dir: str | os.PathLike) -> Path | None:
    return None if recorded is None else Path(dataset_dir) / recorded  # an absolute path stays itself


def _texts_sha256(tokens: list[str], texts: dict[str, str]) -> str:
    return _sha256(f"{token}\t{texts.get(token, '')}" for token in sorted(tokens))


def inputs_record(tokens: list[str], texts: dict[str, str] | None = None, text_file: str | None = None) -> dict:
    """The ``inputs`` meta of a store built over ``tokens`` (the .item file's), from ``texts`` for a text store;
    ``text_file`` as :func:`recorded_path` gives it."""
    record = {"n_items": len(tokens), "items_sha256": _sha256(sorted(tokens))}
    if texts is not None:
        record["texts_sha256"] = _texts_sha256(tokens, texts)
        record["text_file"] = text_file
    return record


def _checkable(meta) -> dict | None:
    recorded = meta.get("inputs") if isinstance(meta, dict) else None
    return recorded if isinstance(recorded, dict) and "items_sha256" in recorded else None


def stale_reason(meta: dict, dataset_dir: str | os.PathLike, dataset: str, spec: dict | None = None) -> str | None:
    """Why a store with this meta no longer fits the dataset's files, in words; None when it fits or when its
    meta records no inputs (see :func:`records_inputs`). ``spec``: the feature's spec where the caller has one
    (an extraction job, a run's ``item_features``); a text store must then come from the text file it names."""
    recorded = _checkable(meta)
    if recorded is None:
        return None
    tokens, titles = read_item_file(dataset_dir, dataset)
    item_file = Path(dataset_dir) / f"{dataset}.item"
    if _sha256(sorted(tokens)) != recorded["items_sha256"]:
        return (f"it was built for another item list ({recorded.get('n_items', '?')} items; {item_file} lists "
                f"{len(tokens)} now, or other ones)")
    if "texts_sha256" not in recorded:
        return None
    text_file = recorded.get("text_file")
    if spec is not None and spec.get("modality", "text") == "text":
        wanted = recorded_path(spec.get("text_file"), dataset_dir)
        if wanted != text_file:
            return f"it was built from {text_file or TITLES}, and its spec names {wanted or TITLES}"
    located = _located(text_file, dataset_dir)
    if located is not None and not located.is_file():
        return None  # the file it was built from is gone: nothing to compare with (records_inputs warns)
    if _texts_sha256(tokens, TextSource(titles, located and str(located)).texts) != recorded["texts_sha256"]:
        origin = f"{item_file}'s titles" + (f" and {located}" if located else "")
        return f"its item texts differ from the ones {origin} give now"
    return None


def records_inputs(meta: dict, dataset_dir: str | os.PathLike) -> str | None:
    """None when the store's inputs can be checked; else why not (built before inputs were recorded, or its
    text file is gone), for a warning."""
    recorded = meta.get("inputs") if isinstance(meta, dict) else None
    if isinstance(recorded, dict) and "imported_from" in recorded:
        return None  # vectors a user brought (features import_item): their own tokens, checked by load_aligned
    recorded = _checkable(meta)
    if recorded is None:
        return "it records no inputs (built before stores recorded them), so it cannot be checked against the item file"
    located = _located(recorded.get("text_file"), dataset_dir)
    if located is not None and not located.is_file():
        return f"the text file it was built from, {located}, is gone, so its texts cannot be checked"
    return None

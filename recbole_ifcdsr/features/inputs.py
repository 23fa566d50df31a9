"""What a feature store was built from, kept in its meta so that a run can tell when the store is stale.

A run reuses a store whenever its file exists. Without this record, a store built before the item file's
items or titles (or the enriched text file) changed would be read as it is: items added since would get no
vector, and renamed items would keep the vector of their old title. The meta's ``inputs`` holds a SHA-256
of the item tokens, and for a text store a SHA-256 of every item's text. A run recomputes both from the
files as they are now (one read of the ``.item`` file) and refuses a store whose inputs differ. Image files
are not hashed, because a run would have to read every image; an image store checks its items only.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from recbole_ifcdsr.features.sources import TextSource, read_item_file


def _sha256(lines) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def inputs_record(tokens: list[str], texts: dict[str, str] | None = None, text_file: str | None = None) -> dict:
    """The ``inputs`` meta of a store built over ``tokens`` (the .item file's), from ``texts`` for a text store."""
    record = {"n_items": len(tokens), "items_sha256": _sha256(sorted(tokens))}
    if texts is not None:
        record["texts_sha256"] = _sha256(f"{token}\t{texts.get(token, '')}" for token in sorted(tokens))
        record["text_file"] = None if text_file is None else str(text_file)
    return record


def stale_reason(meta: dict, dataset_dir: str | os.PathLike, dataset: str) -> str | None:
    """Why a store with this meta no longer fits the dataset's files, in words; None when it fits or when its
    meta records no inputs (see :func:`records_inputs`)."""
    recorded = meta.get("inputs") if isinstance(meta, dict) else None
    if not isinstance(recorded, dict) or "items_sha256" not in recorded:
        return None
    tokens, titles = read_item_file(dataset_dir, dataset)
    item_file = Path(dataset_dir) / f"{dataset}.item"
    if _sha256(sorted(tokens)) != recorded["items_sha256"]:
        return (f"it was built for another item list ({recorded['n_items']} items; {item_file} lists {len(tokens)} "
                f"now, or other ones)")
    if "texts_sha256" not in recorded:
        return None
    text_file = recorded.get("text_file")
    if text_file is not None and not Path(text_file).is_file():
        return None  # the file it was built from is gone: nothing to compare with (records_inputs warns)
    now = inputs_record(tokens, TextSource(titles, text_file).texts, text_file)
    if now["texts_sha256"] != recorded["texts_sha256"]:
        origin = f"{item_file}'s titles" + (f" and {text_file}" if text_file else "")
        return f"its item texts differ from the ones {origin} give now"
    return None


def records_inputs(meta: dict) -> str | None:
    """None when the store's inputs can be checked; else why not (built before inputs were recorded, or its
    text file is gone), for a warning."""
    recorded = meta.get("inputs") if isinstance(meta, dict) else None
    if not isinstance(recorded, dict):
        return "it was built before stores recorded their inputs, so it cannot be checked against the item file"
    if "imported_from" in recorded:
        return None  # vectors a user brought (features import_item): their own tokens, checked by load_aligned
    text_file = recorded.get("text_file")
    if text_file is not None and not Path(text_file).is_file():
        return f"the text file it was built from, {text_file}, is gone, so its texts cannot be checked"
    return None

"""The items to enrich: token, domain name and title from a dataset's ``.item`` atomic file (io.py reads it)."""
from __future__ import annotations

import os
from pathlib import Path

from recbole_ifcdsr.data.packing import dataset_file
from recbole_ifcdsr.io import Item, read_item_table

__all__ = ["Item", "item_file", "read_items"]


def item_file(data_path: str | os.PathLike, dataset: str) -> Path:
    """``<data_path>/<dataset>/<dataset>.item``, unpacked from its shipped .gz if needed."""
    return dataset_file(Path(data_path) / dataset, dataset, "item")


def read_items(path: str | os.PathLike) -> tuple[list[Item], int]:
    """(titled items in file order, number of items without a title: nothing to enrich for those)."""
    items = read_item_table(path, required=("item_id", "title"))
    titled = [item for item in items if item.title]
    return titled, len(items) - len(titled)

"""The items to enrich: token, domain name and title from a dataset's ``.item`` atomic file."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recbole_ifcdsr.data.packing import prepare_dataset_dir
from recbole_ifcdsr.errors import DataError

TOKEN_COLUMN = "item_id:token"
TITLE_COLUMN = "title:token_seq"
DOMAIN_COLUMNS = ("domain_name:token", "domain:token")


@dataclass(frozen=True)
class Item:
    token: str
    domain: str
    title: str


def item_file(data_path: str | os.PathLike, dataset: str) -> Path:
    """``<data_path>/<dataset>/<dataset>.item``, unpacked from its shipped .gz if needed."""
    directory = Path(data_path) / dataset
    prepare_dataset_dir(directory)
    path = directory / f"{dataset}.item"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no item file for dataset '{dataset}'")
    return path


def read_items(path: str | os.PathLike) -> tuple[list[Item], int]:
    """(titled items in file order, number of items without a title: nothing to enrich for those)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        missing = [c for c in (TOKEN_COLUMN, TITLE_COLUMN) if c not in header]
        if missing:
            raise DataError(f"{path}: header lacks {missing}; found {header}")
        domain_column = next((c for c in DOMAIN_COLUMNS if c in header), None)
        token_at, title_at = header.index(TOKEN_COLUMN), header.index(TITLE_COLUMN)
        domain_at = header.index(domain_column) if domain_column else None
        items, untitled, seen = [], 0, set()
        for number, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise DataError(f"{path}:{number}: {len(fields)} fields, header has {len(header)}")
            token, title = fields[token_at], fields[title_at].strip()
            if token in seen:
                raise DataError(f"{path}:{number}: item token {token!r} appears twice")
            seen.add(token)
            if not title:
                untitled += 1
                continue
            items.append(Item(token, fields[domain_at] if domain_at is not None else "", title))
    return items, untitled

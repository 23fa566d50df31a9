"""The hand-over file for text feature extractors: ``item_id:token<TAB>text:token_seq`` per item.

Whitespace (tabs, newlines) in a text collapses to single spaces so each item stays one TSV row.
Written atomically (temp file in the same folder, then ``os.replace``).
"""
from __future__ import annotations

import os
from pathlib import Path

from recbole_ifcdsr.enrich.items import Item
from recbole_ifcdsr.errors import DataError

HEADER = "item_id:token\ttext:token_seq"


def export_path(data_path: str | os.PathLike, dataset: str, backend: str) -> Path:
    return Path(data_path) / dataset / f"{dataset}.enrich.{backend}.tsv"


def one_line(text: str) -> str:
    return " ".join(text.split())


def export_tsv(path: str | os.PathLike, items: list[Item], texts: dict[str, str], include_title: bool = True) -> int:
    """Write one row per item that has a text (``title. text`` when include_title); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows = 0
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        for item in items:
            text = texts.get(item.token)
            if not text:
                continue
            text = one_line(text)
            if include_title and text != one_line(item.title):
                text = f"{one_line(item.title).rstrip('.')}. {text}"
            f.write(f"{item.token}\t{text}\n")
            rows += 1
    os.replace(tmp, path)
    return rows


def read_tsv(path: str | os.PathLike) -> dict[str, str]:
    """token -> text from an exported file (what an extractor reads)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != HEADER:
            raise DataError(f"{path}: header {header!r}, expected {HEADER!r}")
        return dict(line.rstrip("\n").split("\t", 1) for line in f if line.strip())

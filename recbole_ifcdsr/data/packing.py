"""Shipped datasets travel as deterministic gzip files (<file>.gz) and are unpacked on first use.

The plain atomic files are 6-10 MB each (every row carries an ASIN and a reviewer id); gzipped they
are small enough for git. RecBole reads plain files, so the dataset unpacks them next to the .gz
when the plain file is missing or older than its .gz.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

PACKED_SUFFIXES = (".inter", ".item")


def pack(directory: str | os.PathLike) -> list[Path]:
    """Write <file>.gz for every atomic file in ``directory`` (no name, mtime 0: byte-deterministic)."""
    written = []
    for path in sorted(Path(directory).iterdir()):
        if path.suffix in PACKED_SUFFIXES:
            target = path.with_name(path.name + ".gz")
            tmp = target.with_name(target.name + ".tmp")
            with open(path, "rb") as src, open(tmp, "wb") as raw:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
                    shutil.copyfileobj(src, gz)
            os.replace(tmp, target)
            written.append(target)
    return written


def unpack_if_needed(directory: str | os.PathLike) -> list[Path]:
    """Unpack every <file>.gz whose plain file is missing or older; returns the files written."""
    written = []
    directory = Path(directory)
    if not directory.is_dir():
        return written
    for packed in sorted(directory.glob("*.gz")):
        plain = packed.with_suffix("")
        if plain.suffix not in PACKED_SUFFIXES:
            continue
        if plain.exists() and plain.stat().st_mtime >= packed.stat().st_mtime:
            continue
        # A temp name of its own per process: grid cells started together all unpack on first use;
        # each writes a complete copy and renames it into place (same bytes, atomic).
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=plain.name + ".", suffix=".tmp")
        try:
            with gzip.open(packed, "rb") as src, os.fdopen(handle, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, plain)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(plain)
    return written

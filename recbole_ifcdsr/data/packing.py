"""Shipped datasets travel as deterministic gzip files (<file>.gz) and are unpacked on first use.

The plain atomic files are 6-10 MB each (every row carries an ASIN and a reviewer id); gzipped they
are small enough for git. RecBole reads plain files, so a dataset folder's own .gz files are unpacked
next to them when the plain file is missing or older than its .gz. An embedded dataset the folder
does not hold is unpacked from the package into ``<data_path>/<name>/`` (the working directory's
``dataset/`` by default), the way RecBole downloads its datasets into ``data_path``: the package
folder is never written to, so it may be read-only.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

from recbole_ifcdsr.paths import SHIPPED_DATASET_DIR, SHIPPED_DATASETS

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


def prepare_dataset_dir(directory: str | os.PathLike) -> list[Path]:
    """Make ``directory`` (``<data_path>/<name>``) hold plain atomic files; returns the files written.

    An embedded dataset's files the folder lacks come from the package (a file the user already has
    is left alone, as RecBole does not download again); .gz files in the folder itself are unpacked
    in place when newer than their plain file.
    """
    directory = Path(directory)
    written = []
    shipped = SHIPPED_DATASET_DIR / directory.name
    if directory.name in SHIPPED_DATASETS and shipped.is_dir() and shipped.resolve() != directory.resolve():
        written += _unpack_shipped(shipped, directory)
    return written + unpack_if_needed(directory)


def _unpack_shipped(shipped: Path, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for packed in sorted(shipped.glob("*.gz")):
        target = directory / packed.stem
        if target.suffix in PACKED_SUFFIXES and not target.exists():
            _write_atomically(packed, target, gzip.open)
            written.append(target)
    if written:  # provenance goes with the shipped files, not into a folder of the user's own files
        for name in (f"{directory.name}.meta.json", "README.md"):
            if (shipped / name).is_file() and not (directory / name).exists():
                _write_atomically(shipped / name, directory / name, open)
                written.append(directory / name)
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
        _write_atomically(packed, plain, gzip.open)
        written.append(plain)
    return written


def _write_atomically(source: Path, target: Path, opener) -> None:
    """``opener(source)``'s bytes to ``target``. A temp name of its own per process: grid cells started
    together all unpack on first use; each writes a complete copy and renames it into place."""
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with opener(source, "rb") as src, os.fdopen(handle, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

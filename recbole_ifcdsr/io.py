"""Files written whole or not at all, and the one reader of a dataset's ``.item`` file.

Every file the plug-in writes (results and summaries, feature stores and their resumable parts,
checkpoints, exports, unpacked datasets) goes through :func:`atomic_file`: the bytes go to a temporary
file beside the target, are flushed and fsynced, and ``os.replace`` puts the file in place. A crash at
any moment leaves the old file or the new one, never a torn one. The temporary name is unique per call
(``<name>.<pid>-<random>.tmp``), so processes writing the same target at once each write a whole copy
and the last one wins; it never matches the target's own pattern (a ``part-*.npz`` glob skips it).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np

from recbole_ifcdsr.errors import DataError


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", encoding: str = "utf-8") -> Iterator[IO]:
    """A handle to write ``path`` through: the file appears, complete, when the block ends without an
    exception; on an exception the temporary file is removed and ``path`` is untouched. Text mode writes
    ``\\n`` line ends. The folder is created if needed."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_file writes a whole file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    # O_EXCL: a name of our own; mode 0o666 minus the umask, as open() would give the target
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": encoding, "newline": "\n"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, payload, indent: int | None = 2) -> None:
    write_text(path, json.dumps(payload, indent=indent))


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed: loading is a memory copy) of ``arrays``, written atomically."""
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a closed file's bytes to disk (for a staged file that is renamed into place later)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_file(source: str | os.PathLike, target: str | os.PathLike, opener: Callable = open) -> None:
    """``opener(source, "rb")``'s bytes to ``target`` (``gzip.open`` unpacks), written atomically."""
    with opener(source, "rb") as src, atomic_file(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


# ---- the .item file --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One row of a ``.item`` file: its token, its domain (the domain's name where the file has
    ``domain_name``, else the ``domain`` code, else empty) and its title (empty when it has none)."""

    token: str
    domain: str
    title: str


DOMAIN_COLUMNS = ("domain_name", "domain")  # the first the file has names an item's domain


def read_item_table(path: str | os.PathLike, required: tuple[str, ...] = ("item_id",)) -> list[Item]:
    """Every item of a RecBole ``.item`` file, in file order; columns are found by name (``item_id``,
    ``title``, ``domain_name`` / ``domain``), ``required`` ones must be in the header. Blank lines are
    skipped, as RecBole's reader does; a row with another number of fields, an empty or repeated token is
    a :class:`DataError` that names ``file:line``."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        names = [cell.partition(":")[0] for cell in header]
        missing = [name for name in required if name not in names]
        if missing:
            raise DataError(f"{path}:1: header lacks {', '.join(missing)} (found {', '.join(header)})")
        if "item_id" not in names:
            raise DataError(f"{path}:1: header lacks item_id (found {', '.join(header)})")
        token_at = names.index("item_id")
        title_at = names.index("title") if "title" in names else None
        domain_at = next((names.index(c) for c in DOMAIN_COLUMNS if c in names), None)
        items, seen = [], set()
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != len(header):
                raise DataError(f"{path}:{number}: {len(cells)} fields, the header has {len(header)}")
            token = cells[token_at]
            if not token.strip():
                raise DataError(f"{path}:{number}: item_id: empty value")
            if token in seen:
                raise DataError(f"{path}:{number}: item token {token!r} appears twice")
            seen.add(token)
            items.append(Item(token, cells[domain_at].strip() if domain_at is not None else "",
                              cells[title_at].strip() if title_at is not None else ""))
    return items

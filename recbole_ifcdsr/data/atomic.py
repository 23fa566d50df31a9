"""Check the atomic files before RecBole reads them, and fingerprint them.

RecBole reads atomic files with pandas, which hides five kinds of damage: a line with missing fields
gets NaN and RecBole's NaN filter drops it (a user's sequence shrinks and the metrics move), extra
fields are ignored, a bad number fails without the file or line, a cell that starts with a double
quote without being one quoted cell is misread or swallows the lines after it, and a repeated item (or
user) row is dropped, keeping the first (an item listed in X and then Y stays in X). So every line of
every file the dataset will load is checked here first: the header (``name:type`` with a type RecBole
knows), the number of fields on every line, quotes, unique ids in .item and .user files, and in the
loaded columns non-empty tokens and finite numbers. A file must end with a newline (a file cut in the
middle of a line otherwise passes as shorter data). Every error reads ``file:line: field: problem``.

The same pass hashes the files: the fingerprint a checkpoint records, so a resume can tell that
the data under the same dataset name changed.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

from recbole_ifcdsr.errors import DataError

FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")
SOURCES = ("inter", "item", "user")
_QUOTED_CELL = re.compile(r'^"(?:[^"]|"")*"$')  # what pandas reads as one quoted field
_checked: dict = {}  # (path, size, mtime_ns, columns) -> digest: each file is read once per process


def loaded_files(config, dataset_path: str | os.PathLike, dataset: str) -> list[tuple[Path, str]]:
    """(path, source) of every atomic file RecBole will load for this config, in load order."""
    dataset_path = Path(dataset_path)
    benchmark = config["benchmark_filename"]
    inter = [dataset_path / f"{dataset}.{part}.inter" for part in benchmark] if benchmark else [dataset_path / f"{dataset}.inter"]
    files = [(path, "inter") for path in inter]
    load_col = config["load_col"]
    for source in ("item", "user"):
        path = dataset_path / f"{dataset}.{source}"
        if path.is_file() and (load_col is None or source in load_col):
            files.append((path, source))
    return files


def _columns(config, source: str) -> set | None:
    """The columns RecBole loads from ``source`` (None: all of them)."""
    load_col, unload_col = config["load_col"], config["unload_col"] or {}
    columns = None if load_col is None else set(load_col.get(source) or ())
    if columns is not None and unload_col.get(source):
        columns -= set(unload_col[source])
    return columns


def _parse_header(path: Path, text: str, separator: str) -> list[tuple[str, str]]:
    fields = []
    for cell in text.split(separator):
        name, colon, kind = cell.partition(":")
        if not colon or not name:
            raise DataError(f"{path}:1: header: '{cell}' is not name:type")
        if kind not in FEATURE_TYPES:
            raise DataError(f"{path}:1: {name}: type '{kind}' unknown; valid: {', '.join(FEATURE_TYPES)}")
        fields.append((name, kind))
    names = [name for name, _ in fields]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise DataError(f"{path}:1: {duplicate}: column appears twice in the header")
    return fields


def _number_problem(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"'{value}' is not a number"
    return None if math.isfinite(number) else f"'{value}' is not finite"


def quote_problem(value: str) -> str | None:
    """Why RecBole's reader (pandas) would misread this cell (one that starts with a double quote), or None."""
    if value.startswith('"') and not _QUOTED_CELL.match(value):
        return ("starts with a double quote but is not one quoted cell (\"...\" with inner quotes doubled), so "
                "RecBole's reader (pandas) would misread it or read the lines after it into it; remove the quote")
    return None


def quote_problems(line: str, names: list[str], cells: list[str]) -> list[tuple[str, str]]:
    """(column, problem) for each cell of a line that RecBole's reader would misread (:func:`quote_problem`)."""
    if '"' not in line:  # most lines hold no quote at all
        return []
    return [(name, problem) for name, value in zip(names, cells) if (problem := quote_problem(value))]


def check_atomic_file(path: str | os.PathLike, columns: set | None, required: tuple = (),
                      separator: str = "\t", seq_separator: str = " ", unique: str | None = None) -> str:
    """Check one atomic file (see the module docstring); returns the sha256 of its bytes.

    ``columns``: the loaded columns (None = all), whose values are checked; ``required``: columns the
    header must have; ``unique``: a column no two rows may share (the id of a .item or .user file). A
    file already checked unchanged in this process is not read again."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, None if columns is None else tuple(sorted(columns)),
           tuple(required), separator, seq_separator, unique)
    if key in _checked:
        return _checked[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        raw_header = handle.readline()
        digest.update(raw_header)
        fields = _parse_header(path, raw_header.decode("utf-8", errors="replace").rstrip("\r\n"), separator)
        names = [name for name, _ in fields]
        for name in required:
            if name not in names:
                raise DataError(f"{path}:1: {name}: no such column in the header (found {', '.join(names)})")
        missing = sorted(columns - set(names)) if columns is not None else []
        if missing:
            raise DataError(f"{path}:1: {missing[0]}: load_col lists it but the header has no such column")
        checked = [(i, name, kind) for i, (name, kind) in enumerate(fields) if columns is None or name in columns]
        id_column = names.index(unique) if unique in names else None
        first_line: dict[str, int] = {}
        n_fields, lineno, last = len(fields), 1, raw_header
        for lineno, raw in enumerate(handle, start=2):
            digest.update(raw)
            last = raw
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataError(f"{path}:{lineno}: not valid UTF-8") from None
            if not line:
                continue  # a blank line holds no row (pandas skips it too)
            cells = line.split(separator)
            if len(cells) != n_fields:
                raise DataError(f"{path}:{lineno}: {len(cells)} fields, the header has {n_fields} ({', '.join(names)})")
            quoted = quote_problems(line, names, cells)
            if quoted:
                raise DataError(f"{path}:{lineno}: {quoted[0][0]}: {quoted[0][1]}")
            if id_column is not None:
                earlier = first_line.setdefault(cells[id_column], lineno)
                if earlier != lineno:
                    raise DataError(f"{path}:{lineno}: {unique}: '{cells[id_column]}' repeats line {earlier} (RecBole "
                                    f"would keep line {earlier} and drop this one); give each id one row")
            for i, name, kind in checked:
                value = cells[i]
                if kind == "token":
                    if not value.strip():
                        raise DataError(f"{path}:{lineno}: {name}: empty value")
                elif kind == "float":
                    problem = "empty value" if not value.strip() else _number_problem(value.strip())
                    if problem:
                        raise DataError(f"{path}:{lineno}: {name}: {problem}")
                elif kind == "float_seq":
                    for part in filter(None, value.split(seq_separator)):
                        problem = _number_problem(part)
                        if problem:
                            raise DataError(f"{path}:{lineno}: {name}: {problem}")
        if not last.endswith(b"\n"):
            raise DataError(f"{path}:{lineno}: no newline at the end of the file: it looks truncated "
                            f"(last line {last.decode('utf-8', errors='replace')[:60]!r})")
    _checked[key] = digest.hexdigest()
    return _checked[key]


def check_dataset_files(config, dataset_path: str | os.PathLike, dataset: str) -> dict[str, str]:
    """Check every atomic file the dataset loads; returns {file name: sha256} (the data fingerprint)."""
    separator, seq_separator = config["field_separator"] or "\t", config["seq_separator"] or " "
    required = {"inter": (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]), "item": (config["ITEM_ID_FIELD"],),
                "user": (config["USER_ID_FIELD"],)}
    unique = {"inter": None, "item": config["ITEM_ID_FIELD"], "user": config["USER_ID_FIELD"]}
    fingerprint = {}
    for path, source in loaded_files(config, dataset_path, dataset):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: atomic file not found (dataset '{dataset}' needs it)")
        fingerprint[path.name] = check_atomic_file(path, _columns(config, source), required[source], separator,
                                                   seq_separator, unique[source])
    return fingerprint

"""Shared helpers for the dataset converters.

Every converter turns an upstream CDSR release into RecBole atomic files. The
helpers here keep the converters honest: one error type with ``file:line``
messages, streaming line readers with a progress bar, and an output writer that
never leaves a half-written dataset behind.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import IO, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from tqdm import tqdm

from recbole_ifcdsr.errors import DataError
from recbole_ifcdsr.io import fsync_file

ITEM_HEADER = "item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq"
INTER_HEADER = "user_id:token\titem_id:token"
INTER_HEADER_TS = "user_id:token\titem_id:token\ttimestamp:float"

_WS_RUN = re.compile(r"[ \t\r\n\v\f]+")


class ConversionError(DataError):
    """Raised when a source file is missing or malformed; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split("\n")))


def require_files(paths: Iterable[Path]) -> None:
    """Fail before any output exists if a required source file is missing."""
    for path in paths:
        if not Path(path).is_file():
            raise ConversionError(f"missing source file: {path}")


def clean_title(title: str) -> str:
    """Make a title safe for one TSV cell: tabs/newlines/CRs become one space, stripped, and each double
    quote two single ones.

    Runs of ASCII whitespace are collapsed so RecBole's space-split ``token_seq``
    gets no empty tokens (the derived TSVs were written the same way). RecBole's reader (pandas) takes a
    cell that starts with ``"`` as a quoted field, which swallows the rows up to the next ``"``.
    """
    return _WS_RUN.sub(" ", title).strip().replace('"', "''")


def check_token(value: str, where: str, what: str) -> str:
    """Tokens end up in TSV cells; reject ones that would break the format."""
    if not value or value != value.strip() or any(c in value for c in "\t\r\n"):
        raise ConversionError(f"{where}: bad {what} {value!r}")
    return value


def parse_int(token: str, where: str, what: str) -> int:
    """Strict integer parse (no floats, no blanks) with a located error."""
    try:
        if token.strip() != token or not token:
            raise ValueError
        return int(token)
    except ValueError:
        raise ConversionError(f"{where}: non-integer {what} {token!r}") from None


def iter_lines(path: Path, desc: Optional[str] = None,
               final_newline: bool = True) -> Iterator[Tuple[int, str]]:
    """Stream ``(line_number, text)`` pairs (1-based, newline stripped) with a byte progress bar.

    Blank lines are skipped (upstream files end with one); everything else is yielded. With
    ``final_newline`` (every release's data files have one) a last line without a newline is an
    error: a file cut in the middle of a number still parses, as shorter data.
    """
    path = Path(path)
    total = path.stat().st_size
    with open(path, "rb") as fh, tqdm(
        total=total, desc=desc or path.name, unit="B", unit_scale=True,
        file=sys.stderr, leave=False, mininterval=0.5,
    ) as bar:
        for lineno, raw in enumerate(fh, start=1):
            bar.update(len(raw))
            if final_newline and not raw.endswith(b"\n"):
                shown = raw.decode("utf-8", errors="replace")
                shown = shown if len(shown) <= 40 else "..." + shown[-40:]
                raise ConversionError(f"{path}:{lineno}: no newline at the end of the file: it looks truncated "
                                      f"(last line ends {shown!r}); fetch the file again")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConversionError(f"{path}:{lineno}: not valid UTF-8") from None
            text = text.rstrip("\r\n")
            if text.strip():
                yield lineno, text


def check_complete(path: Path, found: int, expected: int, map_name: str, what: str) -> None:
    """A release's map lists every user (item) its sequences hold: fewer means a cut file."""
    if found != expected:
        raise ConversionError(f"{path}: {found:,} {what} but {map_name} lists {expected:,}: "
                              f"the file is incomplete (truncated?) or not from this release")


def load_titles(paths: Sequence[Path], key: str = "asin", value: str = "title") -> Dict[str, str]:
    """Read ``ASIN -> title`` from header-ed TSVs; the first file that knows an ASIN wins.

    Empty titles are dropped so that a later file can still provide one. Missing files
    are reported with a warning (titles are optional metadata, not part of the split).
    """
    titles: Dict[str, str] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            warnings.warn(f"title file not found, titles from it are skipped: {path}")
            continue
        titles_from_tsv(path, key, value, titles)
    return titles


def titles_from_tsv(path: Path, key: str, value: str, into: Dict[str, str]) -> None:
    """Add one TSV's non-empty titles to ``into`` without overwriting earlier ones."""
    lines = iter_lines(path, desc=path.name)
    try:
        _, header = next(lines)
    except StopIteration:
        raise ConversionError(f"{path}:1: empty title file") from None
    cols = header.split("\t")
    if key not in cols or value not in cols:
        raise ConversionError(f"{path}:1: header lacks '{key}'/'{value}' columns")
    ki, vi = cols.index(key), cols.index(value)
    for lineno, text in lines:
        parts = text.split("\t")
        if len(parts) != len(cols):
            raise ConversionError(f"{path}:{lineno}: expected {len(cols)} fields, got {len(parts)}")
        title = clean_title(parts[vi])
        if title:
            into.setdefault(parts[ki], title)


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global, so only plain containers/str/int load."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def load_plain_pickle(path: Path) -> object:
    """Load a pickle of builtin data only (dict/list/str/int); anything else is refused."""
    path = Path(path)
    require_files([path])
    try:
        with open(path, "rb") as fh:
            return _NoGlobalsUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ConversionError(f"{path}: cannot load as plain-data pickle ({exc})") from None


def dense_id_list(mapping: Mapping[str, int], where: str, start: int = 0) -> List[str]:
    """Turn ``key -> id`` (ids must be exactly start..start+n-1) into a list indexed by id-start."""
    ids = sorted(mapping.values())
    if ids != list(range(start, start + len(ids))):
        gap = min(set(range(start, start + len(ids))) - set(ids), default=None)
        what = f"first missing id: {gap}" if gap is not None else "an id is used twice"
        raise ConversionError(f"{where}: ids are not a bijection onto {start}..{start + len(ids) - 1} ({what}); "
                              f"the map must number every item once without gaps: use the release's own file")
    out: List[str] = [""] * len(ids)
    for key, idx in mapping.items():
        out[idx - start] = key
    return out


def check_unique_items(x_items: Sequence[str], y_items: Sequence[str], where: str) -> None:
    """Item ids (ASINs) become RecBole tokens and must identify one item of one domain."""
    if not x_items or not y_items:
        side = "X" if not x_items else "Y"
        raise ConversionError(f"{where}: domain {side} has no items")
    seen = set()
    for asin in list(x_items) + list(y_items):
        if asin in seen:
            raise ConversionError(f"{where}: item id {asin!r} appears more than once across domains")
        seen.add(asin)


def write_items(fh: IO[str], items: Sequence[str], domain: str, domain_name: str,
                titles: Mapping[str, str]) -> int:
    """Write item rows of one domain; returns how many got a non-empty title."""
    n_titled = 0
    for asin in items:
        title = titles.get(asin, "")
        n_titled += bool(title)
        fh.write(f"{asin}\t{domain}\t{domain_name}\t{title}\n")
    return n_titled


def make_meta(name: str, source: str, commit: str, domains: Tuple[str, str],
              n_items: Tuple[int, int], n_sequences: Dict[str, int],
              n_interactions: Dict[str, int], n_titled: Tuple[int, int], module: str) -> dict:
    """Build the ``<name>.meta.json`` payload (no dates, so output stays byte-deterministic)."""
    return {
        "name": name,
        "source": source,
        "source_commit": commit,
        "domains": {"X": domains[0], "Y": domains[1]},
        "n_items": {"X": n_items[0], "Y": n_items[1]},
        "n_sequences": n_sequences,
        "n_interactions": n_interactions,
        "n_titled_items": {"X": n_titled[0], "Y": n_titled[1]},
        "converter": f"recbole_ifcdsr.data.converters.{module}",
    }


class AtomicOutput:
    """Collect output files in a temp dir beside ``out`` and move them in only on success.

    Use as a context manager; ``open(filename)`` gives a text handle ('\\n' line ends,
    UTF-8). On an exception the temp dir is removed and ``out`` is left untouched.
    Files already in ``out`` that this conversion does not produce (e.g. README.md)
    are kept.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.tmp: Optional[Path] = None
        self._handles: List[IO[str]] = []
        self._names: List[str] = []

    def __enter__(self) -> "AtomicOutput":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        return self

    def open(self, filename: str) -> IO[str]:
        """Open a new output file inside the temp dir for writing."""
        assert self.tmp is not None, "use AtomicOutput as a context manager"
        fh = open(self.tmp / filename, "w", encoding="utf-8", newline="\n")
        self._handles.append(fh)
        self._names.append(filename)
        return fh

    def write_json(self, filename: str, payload: dict) -> None:
        """Write a small JSON file with stable formatting."""
        with self.open(filename) as fh:
            fh.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        for fh in self._handles:
            fh.close()
        try:
            if exc_type is None:
                self.out.mkdir(parents=True, exist_ok=True)
                for name in self._names:
                    fsync_file(self.tmp / name)  # on disk before it replaces a good file (io.atomic_file does so too)
                    os.replace(self.tmp / name, self.out / name)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

"""``convert check``: every problem of a dataset (or of a release folder before converting it), at once.

A run stops at the first bad line it meets, possibly after minutes of loading; ``check`` reads the whole
dataset against the contract in docs/data.md and lists each problem as ``file:line: field: problem``,
so one pass fixes them all. It only reads: nothing is written, whatever it finds.
"""
from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from recbole_ifcdsr.data.atomic import _parse_header as parse_header, quote_problems
from recbole_ifcdsr.errors import ConfigError, DataError, one_line
from recbole_ifcdsr.paths import default_data_path, properties_file
from recbole_ifcdsr.yamlfile import read_yaml

RECIPES = ("leave_one_out", "user_split")
SPLITS = ("train", "valid", "test")
SHOWN_PER_KIND = 20  # problems of one kind in one file shown one by one; the rest are counted


class Problems:
    """Collects problems; after ``SHOWN_PER_KIND`` of one (file, kind) only their number is kept."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.hidden: Counter = Counter()
        self._count: Counter = Counter()

    def add(self, message: str, kind: Optional[Tuple[str, str]] = None) -> None:
        if kind is not None:
            self._count[kind] += 1
            if self._count[kind] > SHOWN_PER_KIND:
                self.hidden[kind] += 1
                return
        self.lines.append(message)

    def report(self) -> List[str]:
        more = [f"{path}: ... and {n:,} more problems like the above ({what})" for (path, what), n in self.hidden.items()]
        return self.lines + more

    def __len__(self) -> int:
        return len(self.lines) + sum(self.hidden.values())


def _header(path: Path, text: str, separator: str, problems: Problems) -> Optional[List[str]]:
    """Column names of a header, parsed as a run parses it (atomic.py); a bad header is one problem."""
    try:
        return [name for name, _ in parse_header(path, text, separator)]
    except DataError as error:
        problems.add(str(error))
        return None


def _existing(path: Path) -> Optional[Path]:
    """``path``, or the shipped gzipped copy ``path.gz`` (read as is: check unpacks nothing), or None."""
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def _rows(path: Path, separator: str, problems: Problems, required: Tuple[str, ...]):
    """Yield (line, {column: value}) of every well-formed row; malformed ones become problems."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as handle:
        raw_header = handle.readline()
        names = _header(path, raw_header.decode("utf-8", errors="replace").rstrip("\r\n"), separator, problems)
        if names is None:
            return
        absent = [c for c in required if c not in names]
        for column in absent:
            problems.add(f"{path}:1: {column}: no such column in the header (found {', '.join(names)})")
        if absent:
            return
        last = raw_header
        for lineno, raw in enumerate(handle, start=2):
            last = raw
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                problems.add(f"{path}:{lineno}: not valid UTF-8", (str(path), "utf-8"))
                continue
            if not line:
                continue
            cells = line.split(separator)
            if len(cells) != len(names):
                problems.add(f"{path}:{lineno}: {len(cells)} fields, the header has {len(names)} ({', '.join(names)})",
                             (str(path), "field count"))
                continue
            row = dict(zip(names, cells))
            for column, problem in quote_problems(line, names, cells):
                problems.add(f"{path}:{lineno}: {column}: {problem}", (str(path), "quote"))
            empty = [c for c in required if not row[c].strip()]
            for column in empty:
                problems.add(f"{path}:{lineno}: {column}: empty value", (str(path), f"empty {column}"))
            if not empty:
                yield lineno, row
        if not last.endswith(b"\n"):
            problems.add(f"{path}: no newline at the end of the file: it looks truncated")


def _check_items(path: Path, iid: str, separator: str, problems: Problems) -> Dict[str, str]:
    domains: Dict[str, str] = {}
    for lineno, row in _rows(path, separator, problems, (iid, "domain")):
        item, domain = row[iid], row["domain"]
        if domain not in ("X", "Y"):
            problems.add(f"{path}:{lineno}: domain: '{domain}' is not X or Y", (str(path), "domain"))
        elif item in domains:
            problems.add(f"{path}:{lineno}: {iid}: '{item}' listed twice", (str(path), "duplicate item"))
        else:
            domains[item] = domain
    for side in ("X", "Y"):
        if domains and side not in domains.values():
            problems.add(f"{path}: domain: no item of domain {side}; a cross-domain dataset needs both")
    return domains


def _check_inter(path: Path, split: str, cfg: dict, items: Optional[Dict[str, str]], problems: Problems,
                 seen_users: Dict[str, str]) -> List[Tuple[int, str, List[str]]]:
    """Rows of one .inter file as (first line, user, items) sequences, with row-level problems added."""
    uid, iid, time = cfg["uid"], cfg["iid"], cfg["time"]
    required = (uid, iid) + ((time,) if time else ())
    sequences: List[Tuple[int, str, List[str]]] = []
    finished = set()
    for lineno, row in _rows(path, cfg["separator"], problems, required):
        user, item = row[uid], row[iid]
        if items is not None and item not in items:
            problems.add(f"{path}:{lineno}: {iid}: '{item}' is not in the .item file", (str(path), "unknown item"))
        if time:
            try:
                value = float(row[time])
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
            except ValueError:
                problems.add(f"{path}:{lineno}: {time}: '{row[time]}' is not a finite number", (str(path), "time"))
        if sequences and sequences[-1][1] == user:
            sequences[-1][2].append(item)
            continue
        if user in finished:
            problems.add(f"{path}:{lineno}: {uid}: rows of '{user}' are not contiguous; write each sequence in one block",
                         (str(path), "contiguous"))
        elif user in seen_users and seen_users[user] != split:
            problems.add(f"{path}:{lineno}: {uid}: '{user}' is also a user of the {seen_users[user]} file; "
                         f"each split needs its own user tokens", (str(path), "user in two splits"))
        finished.add(user)
        seen_users.setdefault(user, split)
        sequences.append((lineno, user, [item]))
    return sequences


def _config(name: str, problems: Problems) -> Tuple[Optional[Path], dict]:
    path = properties_file(Path("dataset") / f"{name}.yaml")
    if not path.is_file():
        problems.add(f"{path}: missing: a dataset needs properties/dataset/{name}.yaml with its recipe (docs/data.md)")
        return None, {}
    try:
        return path, read_yaml(path)
    except ConfigError as error:
        problems.add(one_line(error))
        return path, {}


def dataset_problems(name: str, data_path: Optional[Path] = None) -> Tuple[List[str], int]:
    """Every problem of dataset ``name`` (its YAML and atomic files); returns (report lines, problem count)."""
    problems = Problems()
    yaml_path, raw = _config(name, problems)
    recipe = raw.get("cdsr_recipe")
    if yaml_path is not None and recipe not in RECIPES:
        problems.add(f"{yaml_path}: cdsr_recipe: {recipe!r} unknown; valid: {', '.join(RECIPES)}")
    domains = raw.get("domains")
    if yaml_path is not None and not (isinstance(domains, dict) and set(domains) == {"X", "Y"}):
        problems.add(f"{yaml_path}: domains: {domains!r}; expected {{X: X_NAME, Y: Y_NAME}}")
    bench = raw.get("benchmark_filename")
    if recipe == "leave_one_out" and bench:
        problems.add(f"{yaml_path}: benchmark_filename: leave_one_out reads one .inter file; remove the key")
    if recipe == "user_split" and list(bench or []) != list(SPLITS):
        problems.add(f"{yaml_path}: benchmark_filename: {bench!r}; user_split needs [train, valid, test]")
    cfg = {"uid": raw.get("USER_ID_FIELD") or "user_id", "iid": raw.get("ITEM_ID_FIELD") or "item_id",
           "time": raw.get("TIME_FIELD", "timestamp"), "separator": raw.get("field_separator") or "\t"}
    folder = Path(data_path or default_data_path()) / name
    item_path = folder / f"{name}.item"
    items = None
    if _existing(item_path) is None:
        problems.add(f"{item_path}: missing: the .item file gives every item's domain (X/Y)")
    else:
        items = _check_items(_existing(item_path), cfg["iid"], cfg["separator"], problems)
    splits = ("all",) if recipe == "leave_one_out" else SPLITS if recipe == "user_split" else ()
    seen_users: Dict[str, str] = {}
    for split in splits:
        path = folder / (f"{name}.inter" if split == "all" else f"{name}.{split}.inter")
        if _existing(path) is None:
            problems.add(f"{path}: missing: recipe {recipe} reads it")
            continue
        path = _existing(path)
        sequences = _check_inter(path, split, cfg, items, problems, seen_users)
        least = 3 if recipe == "leave_one_out" else 2 if split != "train" else 1
        for lineno, user, seq in sequences:
            if len(seq) < least:
                problems.add(f"{path}:{lineno}: {cfg['uid']}: sequence '{user}' has {len(seq)} item(s); recipe "
                             f"{recipe} needs at least {least}", (str(path), "short"))
        if items is not None and split != "train":
            evals = [("valid", -2), ("test", -1)] if split == "all" else [(split, -1)]
            for eval_split, pos in evals:
                targets = Counter(items.get(seq[pos]) for _, _, seq in sequences if len(seq) >= least)
                for side in ("X", "Y"):
                    if sequences and not targets.get(side):
                        problems.add(f"{path}: no {eval_split} case targets domain {side}; recipe {recipe} "
                                     f"evaluates both domains")
    return problems.report(), len(problems)


def run_check(args: argparse.Namespace) -> int:
    """Print every problem (exit 2) or a one-line OK (exit 0); writes nothing."""
    if args.dataset is not None:
        lines, count = dataset_problems(args.dataset, args.data_path)
        subject = f"dataset {args.dataset}"
    else:
        from .formats import source_problems

        lines = source_problems(args.src, args.format, args.name, args.domains)
        count, subject = len(lines), f"source folder {args.src}"
    for line in lines:
        print(line)
    if count:
        print(f"error: {count:,} problem{'s' if count != 1 else ''} in {subject}; nothing was written", file=sys.stderr)
        return 2
    print(f"{subject}: ok")
    return 0

"""LLMCDSR's food-kitchen release -> RecBole atomic files (``fk_llmcdsr``).

Source: xhran2010/LLMCDSR data/food-kitchen (PROTOCOLS.md section B). The split
is user-level and fixed upstream, so it is kept as three benchmark files
(train = train_A + train_B + train_overlap; valid; test). There are no
timestamps: file order is time order and the last item of a valid/test line is
its target. Source ids are global and 0-based: A = item_set_A local id,
B = nA + item_set_B local id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .common import (
    INTER_HEADER, ITEM_HEADER, AtomicOutput, ConversionError, check_complete, check_token,
    check_unique_items, clean_title, dense_id_list, iter_lines, load_plain_pickle,
    load_titles, make_meta, parse_int, require_files, write_items,
)

NAME = "fk_llmcdsr"
SOURCE = "xhran2010/LLMCDSR data/food-kitchen"
SOURCE_COMMIT = "5825e999d87c4b7f90448df17d05c5f9cea047ba"
DOMAINS = ("Food", "Kitchen")
TITLE_TSVS = ("llmcdsr_titles_food.tsv", "llmcdsr_titles_kitchen.tsv")
TITLE_PKLS = ("text_A.pkl", "text_B.pkl")
# (split, source file, user-token prefix); train parts are concatenated in this order.
SPLIT_FILES: Tuple[Tuple[str, str, str], ...] = (
    ("train", "train_A.txt", "trainA"),
    ("train", "train_B.txt", "trainB"),
    ("train", "train_overlap.txt", "overlap"),
    ("valid", "valid.txt", "valid"),
    ("test", "test.txt", "test"),
)
# every file of an LLMCDSR scenario folder; without the essential ones no split can be built
RELEASE_FILES = ("num.txt", "instance_num.txt", "item_set_A.pkl", "item_set_B.pkl", "train_A.txt", "train_B.txt",
                 "train_overlap.txt", "valid.txt", "test.txt", "text_A.pkl", "text_B.pkl")
ESSENTIAL_FILES = ("num.txt", "item_set_A.pkl", "item_set_B.pkl", "train_overlap.txt", "valid.txt", "test.txt")


def read_counts(path: Path, expected: int) -> List[int]:
    """Read a file of integers, one per line (num.txt / instance_num.txt)."""
    # LLMCDSR's instance_num.txt has no final newline; a cut count fails to match the files anyway
    values = [parse_int(text.strip(), f"{path}:{ln}", "count") for ln, text in iter_lines(path, final_newline=False)]
    if len(values) != expected:
        raise ConversionError(f"{path}: expected {expected} integers, found {len(values)}")
    return values


def load_item_sets(src: Path) -> Tuple[List[str], List[str]]:
    """Return (A ASINs, B ASINs) by local id, checked against num.txt.

    Checking both the bijection and num.txt guards the ``B = nA + local`` offset.
    """
    n_a, n_b = read_counts(src / "num.txt", 2)
    for dom, n in (("A", n_a), ("B", n_b)):
        if n <= 0:
            raise ConversionError(f"{src / 'num.txt'}: domain {dom} has {n} items (empty domain)")
    lists = []
    for dom, n in (("A", n_a), ("B", n_b)):
        path = src / f"item_set_{dom}.pkl"
        mapping = load_plain_pickle(path)
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and type(v) is int for k, v in mapping.items()):
            raise ConversionError(f"{path}: expected a dict ASIN -> local id")
        items = dense_id_list(mapping, str(path))
        if len(items) != n:
            raise ConversionError(f"{path}: {len(items)} items but num.txt says {n}")
        lists.append([check_token(a, f"{path}: field {a!r}", "ASIN") for a in items])
    check_unique_items(lists[0], lists[1], f"{src / 'item_set_A.pkl'} + item_set_B.pkl")
    return lists[0], lists[1]


def load_llmcdsr_titles(src: Path, derived: Path) -> Dict[str, str]:
    """Titles per domain: derived TSV if present, else the upstream text_*.pkl."""
    titles: Dict[str, str] = {}
    for tsv, pkl in zip(TITLE_TSVS, TITLE_PKLS):
        if (derived / tsv).is_file() or not (src / pkl).is_file():
            for asin, title in load_titles([derived / tsv]).items():
                titles.setdefault(asin, title)
            continue
        _add_pickled_titles(src / pkl, titles)
    return titles


def parse_llmcdsr_sequences(path: Path, n_items: int, is_eval: bool = False
                            ) -> Iterator[Tuple[int, List[int]]]:
    """Yield ``(uid, global 0-based item ids)`` per line; ids must lie in ``0..n_items-1``, and user ids
    increase line by line (as in every LLMCDSR file).

    ``is_eval`` only changes the wording: the last item of a valid/test line is a target.
    """
    seen = set()
    previous = None
    for lineno, text in iter_lines(path):
        where = f"{path}:{lineno}"
        parts = text.rstrip().split("\t")
        if len(parts) != 2 or not parts[1].strip():
            raise ConversionError(f"{where}: expected 'uid<TAB>id,id,...', got an empty or malformed line")
        uid = parse_int(parts[0].strip(), where, "user id")
        if uid in seen:
            raise ConversionError(f"{where}: user id {uid} repeated in this file")
        if previous is not None and uid < previous:
            raise ConversionError(f"{where}: user id {uid} after {previous}: LLMCDSR's files list users in "
                                  f"increasing id order")
        previous = uid
        seen.add(uid)
        tokens = parts[1].strip().split(",")
        items = [parse_int(tok, where, "item id") for tok in tokens]
        for pos, item in enumerate(items):
            if not 0 <= item < n_items:
                what = "target item id" if is_eval and pos == len(items) - 1 else "item id"
                raise ConversionError(f"{where}: {what} {item} outside both domains (0..{n_items - 1})")
        yield uid, items


def _check_instance_num(src: Path, train_lines: Sequence[Optional[int]]) -> None:
    """instance_num.txt counts train_A / train_B / train_overlap lines; a missing file's count is skipped."""
    path = src / "instance_num.txt"
    if path.is_file():
        expected = read_counts(path, 3)
        pairs = [(e, n) for e, n in zip(expected, train_lines) if n is not None]
        if any(e != n for e, n in pairs):
            raise ConversionError(f"{path}: says {expected} train lines, files have {list(train_lines)}")


def missing_release_files(src: Path) -> List[str]:
    """Release files absent from ``src``, in release order (see RELEASE_FILES)."""
    return [name for name in RELEASE_FILES if not (Path(src) / name).is_file()]


def check_missing(src: Path, allow_missing: bool) -> List[str]:
    """Stop on missing release files unless ``allow_missing`` (never for the files no split can do without)."""
    missing = missing_release_files(src)
    essential = [name for name in missing if name in ESSENTIAL_FILES]
    if essential:
        raise ConversionError(f"{src}: missing {', '.join(essential)}: an LLMCDSR folder cannot be converted "
                              f"without them; fetch them from the release")
    if missing and not allow_missing:
        raise ConversionError(f"{src}: missing {', '.join(missing)}; fetch them from the release, or pass "
                              f"--allow_missing to convert the rest (recorded in the dataset's README and meta)")
    return missing


def convert_fk_llmcdsr(src: Path, out: Path, derived: Optional[Path] = None) -> dict:
    """Convert LLMCDSR food-kitchen into ``out`` (item file, train/valid/test inter, meta)."""
    src = Path(src)
    derived = Path(derived) if derived is not None else src.parent / "derived"
    require_files([src / "num.txt", src / "item_set_A.pkl", src / "item_set_B.pkl"]
                  + [src / f for _, f, _ in SPLIT_FILES])
    titles = load_llmcdsr_titles(src, derived)
    return convert_llmcdsr(src, out, NAME, DOMAINS, titles)


def llmcdsr_titles(src: Path, title_files: Sequence[Path]) -> Dict[str, str]:
    """Titles from ``title_files`` (TSVs with asin/title columns) first, then the release's text_*.pkl."""
    titles = load_titles(list(title_files))
    for pkl in TITLE_PKLS:
        if (src / pkl).is_file():
            _add_pickled_titles(src / pkl, titles)
    return titles


def _add_pickled_titles(path: Path, titles: Dict[str, str]) -> None:
    """The release's text_*.pkl (ASIN -> title) into ``titles``; titles already there win."""
    raw = load_plain_pickle(path)
    if not isinstance(raw, dict):
        raise ConversionError(f"{path}: expected a dict ASIN -> title")
    for asin, title in raw.items():
        if isinstance(asin, str) and isinstance(title, str) and clean_title(title):
            titles.setdefault(asin, clean_title(title))


def convert_llmcdsr(src: Path, out: Path, name: str, domains: Tuple[str, str], titles: Dict[str, str],
                    missing: Sequence[str] = (), provenance: Optional[dict] = None) -> dict:
    """Convert an LLMCDSR-format folder into ``out/<name>.*``; returns the meta.

    ``missing``: train files known to be absent (``--allow_missing``): they are skipped, and the check that
    every item occurs in some sequence is skipped with them. ``provenance`` is added to the meta of
    conversions that are not the shipped preset.
    """
    src, out = Path(src), Path(out)
    x_items, y_items = load_item_sets(src)
    asin_of = x_items + y_items
    n_x = len(x_items)
    n_seq: Dict[str, int] = {"train": 0, "valid": 0, "test": 0}
    n_inter: Dict[str, int] = {"train": 0, "valid": 0, "test": 0}
    cases = {"valid": {"X": 0, "Y": 0}, "test": {"X": 0, "Y": 0}}
    train_lines: List[Optional[int]] = []
    items_seen: set = set()
    with AtomicOutput(out) as dst:
        with dst.open(f"{name}.item") as fh:
            fh.write(ITEM_HEADER + "\n")
            titled = (write_items(fh, x_items, "X", domains[0], titles),
                      write_items(fh, y_items, "Y", domains[1], titles))
        handles = {}
        for split, fname, prefix in SPLIT_FILES:
            if split not in handles:
                handles[split] = dst.open(f"{name}.{split}.inter")
                handles[split].write(INTER_HEADER + "\n")
            if fname in missing:
                train_lines.append(None)
                continue
            fh, before = handles[split], n_seq[split]
            for uid, items in parse_llmcdsr_sequences(src / fname, len(asin_of), split != "train"):
                items_seen.update(items)
                for item in items:
                    fh.write(f"{prefix}_{uid}\t{asin_of[item]}\n")
                if split != "train":
                    cases[split]["X" if items[-1] < n_x else "Y"] += 1
                n_seq[split] += 1
                n_inter[split] += len(items)
            if split == "train":
                train_lines.append(n_seq[split] - before)
        _check_instance_num(src, train_lines)
        if not any(f.startswith("train_") for f in missing):
            check_complete(src, len(items_seen), len(asin_of), "num.txt", "items in the sequence files")
        meta = make_meta(name, SOURCE, SOURCE_COMMIT, domains, (len(x_items), len(y_items)),
                         n_seq, n_inter, titled, "llmcdsr")
        if provenance is not None:
            meta.update(provenance, n_eval_cases=cases, missing_files=list(missing),
                        n_items_in_no_sequence=len(asin_of) - len(items_seen))
        dst.write_json(f"{name}.meta.json", meta)
    return meta

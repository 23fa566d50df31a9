"""C2DSR Food-Kitchen / Movie-Book releases -> RecBole atomic files.

This is the split the IFCDSR paper evaluates on (PROTOCOLS.md section 0). Events
inside a line are not always in time order, so each line is stable-sorted by
unix timestamp (ties keep file order) before writing: any other order changes
44-62% of the valid/test targets. Only the ``*_new.txt`` files are used; the old
``validdata.txt`` leaks test information. ``traindata_new.txt`` is not in the
public snapshots and must be supplied by the user.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .common import (
    INTER_HEADER_TS, ITEM_HEADER, AtomicOutput, ConversionError, check_token,
    check_unique_items, iter_lines, load_titles, make_meta, parse_int, require_files,
    write_items,
)

SOURCE_COMMIT = "33744dedf4fb9793fbb824e02dadd9b4c4fe7bae"
# name -> (source folder, (X name, Y name))
DATASETS: Dict[str, Tuple[str, Tuple[str, str]]] = {
    "food_kitchen": ("Food-Kitchen", ("Food", "Kitchen")),
    "movie_book": ("Movie-Book", ("Movie", "Book")),
}
TRAIN_FILE = "traindata_new.txt"
EVAL_FILES = (("valid", "validdata_new.txt"), ("test", "testdata_new.txt"))
USER_LIST = "userlist.txt"  # reviewerID<TAB>user_idx; valid and test together hold each user once


def load_c2dsr_items(path: Path) -> List[str]:
    """Read ``orig_idx<TAB>ASIN<TAB>local_id`` and return ASINs indexed by local id."""
    by_local: Dict[int, str] = {}
    for lineno, text in iter_lines(path):
        where = f"{path}:{lineno}"
        parts = text.rstrip().split("\t")
        if len(parts) != 3:
            raise ConversionError(f"{where}: expected orig_idx<TAB>ASIN<TAB>local_id")
        local = parse_int(parts[2], where, "local_id")
        if local in by_local:
            raise ConversionError(f"{where}: local_id {local} repeated")
        by_local[local] = check_token(parts[1], where, "ASIN")
    if not by_local:
        raise ConversionError(f"{path}: item list is empty (empty domain)")
    if sorted(by_local) != list(range(len(by_local))):
        raise ConversionError(f"{path}: local ids are not contiguous 0..{len(by_local) - 1}")
    return [by_local[i] for i in range(len(by_local))]


def load_c2dsr_users(path: Path) -> set:
    """The user indices of ``userlist.txt`` (``reviewerID<TAB>user_idx``)."""
    users = set()
    for lineno, text in iter_lines(path):
        parts = text.rstrip().split("\t")
        if len(parts) != 2:
            raise ConversionError(f"{path}:{lineno}: expected reviewerID<TAB>user_idx")
        users.add(parse_int(parts[1], f"{path}:{lineno}", "user_idx"))
    return users


def _check_eval_users(src: Path, eval_users: List[int]) -> None:
    """C2DSR's valid and test files together hold every user of userlist.txt exactly once: anything
    else is a cut or mixed-up file (checked when the release's userlist.txt is there)."""
    path = src / USER_LIST
    if not path.is_file():
        return
    expected = load_c2dsr_users(path)
    found = set(eval_users)
    if len(found) != len(eval_users):
        raise ConversionError(f"{src}: {len(eval_users) - len(found)} users appear in both valid and test; "
                              f"C2DSR holds each user in one of them")
    if found != expected:
        raise ConversionError(f"{src}: valid and test hold {len(found):,} users, {USER_LIST} lists {len(expected):,} "
                              f"({len(expected - found):,} missing, e.g. {sorted(expected - found)[:3]}): the files "
                              f"are incomplete (truncated?) or not from this release")


def _parse_event(token: str, where: str) -> Tuple[int, int]:
    parts = token.split("|")
    if len(parts) < 2 or any(p.strip() for p in parts[3:]):
        raise ConversionError(f"{where}: bad event {token!r}, expected item|unix_ts|date|")
    return parse_int(parts[0], where, "item id"), parse_int(parts[1], where, "timestamp")


def _parse_line(text: str, where: str, split: str) -> Tuple[str, List[int], List[int]]:
    fields = text.rstrip().split("\t")
    if len(fields) < 3:
        raise ConversionError(f"{where}: empty sequence (need user_idx, seq_id and >= 1 event)")
    user = parse_int(fields[0], where, "user_idx")
    seq = parse_int(fields[1], where, "seq_id")
    events = [_parse_event(tok, where) for tok in fields[2:]]
    events.sort(key=lambda ev: ev[1])  # list.sort is stable: ties keep file order
    return f"{split}_{user}_{seq}", [e[0] for e in events], [e[1] for e in events]


def parse_c2dsr_sequences(path: Path, n_x: int, n_y: int, split: str
                          ) -> Iterator[Tuple[str, List[int], List[int]]]:
    """Yield ``(user_token, global item ids, timestamps)`` per line, stable-sorted by time.

    Global ids: X = 0..n_x-1, Y = n_x..n_x+n_y-1. For valid/test the last item is the
    target (domain X iff id < n_x). ``split`` prefixes the user token.
    """
    seen = set()
    for lineno, text in iter_lines(path):
        where = f"{path}:{lineno}"
        token, items, stamps = _parse_line(text, where, split)
        if token in seen:
            raise ConversionError(f"{where}: sequence {token} repeated")
        seen.add(token)
        for pos, item in enumerate(items):
            if not 0 <= item < n_x + n_y:
                what = "target item id" if split != "train" and pos == len(items) - 1 else "item id"
                raise ConversionError(f"{where}: {what} {item} outside both domains (0..{n_x + n_y - 1})")
        yield token, items, stamps


def missing_train_error(path: Path, folder: str) -> ConversionError:
    """The one file users must fetch themselves; say exactly where it comes from."""
    return ConversionError(
        f"missing C2DSR train file: {path} -- it is not in the public snapshots; download "
        f"{TRAIN_FILE} from the Google Drive folder linked in the cjx96/C2DSR README and place "
        f"it as {folder}/{TRAIN_FILE} (or pass --train FILE)")


def convert_c2dsr(name: str, src: Path, out: Path, train: Optional[Path] = None,
                  derived: Optional[Path] = None) -> dict:
    """Convert a C2DSR dataset (``food_kitchen``/``movie_book``) into ``out``; returns the meta.

    Fails before writing anything if ``traindata_new.txt`` (or ``train``) is absent.
    """
    if name not in DATASETS:
        raise ConversionError(f"unknown C2DSR dataset {name!r}; expected one of {sorted(DATASETS)}")
    folder, domains = DATASETS[name]
    src, out = Path(src), Path(out)
    derived = Path(derived) if derived is not None else src.parent / "derived"
    train_path = Path(train) if train is not None else src / TRAIN_FILE
    if not train_path.is_file():
        raise missing_train_error(train_path, folder)
    split_files = [("train", train_path)] + [(s, src / f) for s, f in EVAL_FILES]
    require_files([src / "Alist.txt", src / "Blist.txt"] + [p for _, p in split_files])
    x_items, y_items = load_c2dsr_items(src / "Alist.txt"), load_c2dsr_items(src / "Blist.txt")
    check_unique_items(x_items, y_items, f"{src / 'Alist.txt'} + Blist.txt")
    titles = load_titles([derived / f"{folder}_items_with_titles.tsv"])
    asin_of = x_items + y_items
    n_seq: Dict[str, int] = {}
    n_inter: Dict[str, int] = {}
    eval_users: List[int] = []
    with AtomicOutput(out) as dst:
        with dst.open(f"{name}.item") as fh:
            fh.write(ITEM_HEADER + "\n")
            titled = (write_items(fh, x_items, "X", domains[0], titles),
                      write_items(fh, y_items, "Y", domains[1], titles))
        for split, path in split_files:
            n_seq[split] = n_inter[split] = 0
            with dst.open(f"{name}.{split}.inter") as fh:
                fh.write(INTER_HEADER_TS + "\n")
                for token, items, stamps in parse_c2dsr_sequences(path, len(x_items), len(y_items), split):
                    if split != "train":
                        eval_users.append(int(token.split("_")[1]))
                    for item, ts in zip(items, stamps):
                        fh.write(f"{token}\t{asin_of[item]}\t{ts}\n")
                    n_seq[split] += 1
                    n_inter[split] += len(items)
        _check_eval_users(src, eval_users)
        source = (f"zhengdongyi-sysu/FedCSR dataset/{folder} (C2DSR split; {TRAIN_FILE} from "
                  f"the cjx96/C2DSR Google Drive)")
        meta = make_meta(name, source, SOURCE_COMMIT, domains, (len(x_items), len(y_items)),
                         n_seq, n_inter, titled, "c2dsr")
        dst.write_json(f"{name}.meta.json", meta)
    return meta


def convert_food_kitchen(src: Path, out: Path, train: Optional[Path] = None,
                         derived: Optional[Path] = None) -> dict:
    """C2DSR Food(X)-Kitchen(Y); see :func:`convert_c2dsr`."""
    return convert_c2dsr("food_kitchen", src, out, train=train, derived=derived)


def convert_movie_book(src: Path, out: Path, train: Optional[Path] = None,
                       derived: Optional[Path] = None) -> dict:
    """C2DSR Movie(X)-Book(Y); see :func:`convert_c2dsr`."""
    return convert_c2dsr("movie_book", src, out, train=train, derived=derived)

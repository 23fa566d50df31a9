"""ABXI's Amazon Food-Kitchen ("afk") release -> RecBole atomic files (``fk_abxi``).

Source: DiMarzioBian/ABXI data/afk (PROTOCOLS.md section A). One interaction file
holds every user's full sequence in file order; the leave-one-out split
(valid target ``s[-2]``, test target ``s[-1]``) is derived downstream, so the
rows must not be re-sorted here (2,275 users tie on their last two timestamps).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .common import (
    INTER_HEADER_TS, ITEM_HEADER, AtomicOutput, ConversionError, check_complete, check_token,
    check_unique_items, iter_lines, load_titles, make_meta, parse_int, require_files,
    write_items,
)

NAME = "fk_abxi"
SOURCE = "DiMarzioBian/ABXI data/afk"
SOURCE_COMMIT = "72e52c9f85c740cb5dbdab11f7e5a70eb28ae00d"
DOMAINS = ("Grocery", "Kitchen")
SEQ_FILE = "afk_50_preprocessed.txt"
ITEM_MAP = "map_item_50.txt"
USER_MAP = "map_user_50.txt"
TITLE_FILES = ("llmcdsr_titles_food.tsv", "llmcdsr_titles_kitchen.tsv",
               "Food-Kitchen_items_with_titles.tsv")


def _load_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: invalid JSON ({exc})") from None


def load_item_map(path: Path) -> Tuple[List[str], List[str]]:
    """Return (X ASINs, Y ASINs) in ABXI id order; checks ids are 1..nA (A), nA+1..n (B).

    ABXI decides an item's domain by ``id <= nA``, so the map must agree with that.
    """
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise ConversionError(f"{path}: expected a JSON object {{ASIN: [id, domain]}}")
    by_id: Dict[int, Tuple[str, int]] = {}
    for asin, val in raw.items():
        ok = isinstance(val, list) and len(val) == 2 and all(type(v) is int for v in val)
        if not ok or val[1] not in (0, 1):
            raise ConversionError(f"{path}: field {asin!r}: expected [item_id, 0|1], got {val!r}")
        if val[0] in by_id:
            raise ConversionError(f"{path}: field {asin!r}: item id {val[0]} used twice")
        by_id[val[0]] = (check_token(asin, f"{path}: field {asin!r}", "ASIN"), val[1])
    n = len(by_id)
    if sorted(by_id) != list(range(1, n + 1)):
        raise ConversionError(f"{path}: item ids are not contiguous 1..{n}")
    n_a = sum(1 for _, dom in by_id.values() if dom == 0)
    for idx, (asin, dom) in by_id.items():
        if (idx <= n_a) != (dom == 0):
            raise ConversionError(f"{path}: field {asin!r}: id {idx} contradicts domain {dom} (nA={n_a})")
    x_items = [by_id[i][0] for i in range(1, n_a + 1)]
    y_items = [by_id[i][0] for i in range(n_a + 1, n + 1)]
    check_unique_items(x_items, y_items, str(path))
    return x_items, y_items


def load_user_map(path: Path) -> Dict[int, str]:
    """Invert ``{reviewerID: user_id}`` so sequence lines can be named by reviewer."""
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise ConversionError(f"{path}: expected a JSON object {{reviewerID: user_id}}")
    users: Dict[int, str] = {}
    for reviewer, uid in raw.items():
        if type(uid) is not int or uid in users:
            raise ConversionError(f"{path}: field {reviewer!r}: bad or duplicate user id {uid!r}")
        users[uid] = check_token(reviewer, f"{path}: field {reviewer!r}", "reviewerID")
    return users


def parse_abxi_sequences(path: Path, n_items: int) -> Iterator[Tuple[int, List[int], List[int]]]:
    """Yield ``(user_id, item ids, timestamps)`` per line, in file order (never re-sorted)."""
    for _, user, items, stamps in _parse_lines(path, n_items):
        yield user, items, stamps


def _parse_lines(path: Path, n_items: int) -> Iterator[Tuple[int, int, List[int], List[int]]]:
    for lineno, text in iter_lines(path):
        where = f"{path}:{lineno}"
        tokens = text.split()
        user = parse_int(tokens[0], where, "user id")
        if len(tokens) < 2:
            raise ConversionError(f"{where}: empty sequence for user {user}")
        items, stamps = [], []
        for tok in tokens[1:]:
            parts = tok.split("|")
            if len(parts) != 2:
                raise ConversionError(f"{where}: bad event {tok!r}, expected item|timestamp")
            item = parse_int(parts[0], where, "item id")
            if not 1 <= item <= n_items:
                raise ConversionError(f"{where}: item id {item} outside both domains (1..{n_items})")
            items.append(item)
            stamps.append(parse_int(parts[1], where, "timestamp"))
        yield lineno, user, items, stamps


def convert_fk_abxi(src: Path, out: Path, derived: Optional[Path] = None) -> dict:
    """Convert ABXI afk into ``out`` (``fk_abxi.item``, ``fk_abxi.inter``, meta); returns the meta.

    ``derived`` holds the title TSVs (default ``src/../derived``); titles are joined by ASIN.
    """
    src, out = Path(src), Path(out)
    derived = Path(derived) if derived is not None else src.parent / "derived"
    seq_path = src / SEQ_FILE
    require_files([seq_path, src / ITEM_MAP, src / USER_MAP])
    x_items, y_items = load_item_map(src / ITEM_MAP)
    users = load_user_map(src / USER_MAP)
    titles = load_titles([derived / f for f in TITLE_FILES])
    asin_of = [""] + x_items + y_items  # ABXI ids are 1-based
    n_seq = n_inter = 0
    seen = set()
    items_seen = set()
    with AtomicOutput(out) as dst:
        with dst.open(f"{NAME}.item") as fh:
            fh.write(ITEM_HEADER + "\n")
            titled = (write_items(fh, x_items, "X", DOMAINS[0], titles),
                      write_items(fh, y_items, "Y", DOMAINS[1], titles))
        with dst.open(f"{NAME}.inter") as fh:
            fh.write(INTER_HEADER_TS + "\n")
            previous = None
            for lineno, user, items, stamps in _parse_lines(seq_path, len(asin_of) - 1):
                if user not in users or user in seen:
                    raise ConversionError(
                        f"{seq_path}:{lineno}: user {user} unknown to {USER_MAP} or repeated")
                if previous is not None and user < previous:
                    raise ConversionError(f"{seq_path}:{lineno}: user id {user} after {previous}: ABXI's file "
                                          f"lists users in increasing id order")
                previous = user
                seen.add(user)
                items_seen.update(items)
                token = users[user]
                for item, ts in zip(items, stamps):
                    fh.write(f"{token}\t{asin_of[item]}\t{ts}\n")
                n_seq += 1
                n_inter += len(items)
        check_complete(seq_path, len(seen), len(users), USER_MAP, "users")
        check_complete(seq_path, len(items_seen), len(asin_of) - 1, ITEM_MAP, "items")
        meta = make_meta(NAME, SOURCE, SOURCE_COMMIT, DOMAINS, (len(x_items), len(y_items)),
                         {"all": n_seq}, {"all": n_inter}, titled, "abxi")
        dst.write_json(f"{NAME}.meta.json", meta)
    return meta

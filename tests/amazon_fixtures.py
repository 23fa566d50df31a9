"""Small raw Amazon files in each release's real schema, all holding the same interactions.

The population is built so that every count after filtering is known by hand:

- 12 mixed-domain reviewers ``A0GOOD00..A0GOOD11`` rate X items ``X0..X9`` and Y items
  ``Y0..Y9``: X0-4/Y0-4 on days 0-9 (one window), X5-9/Y5-9 on days 400-409 (a second window).
  Even reviewers end their second window on an X item, odd ones on a Y item.
- ``XRARE`` is rated by three good reviewers (3 < 10 interactions: dropped).
- ``A0ONLYX`` rates 12 X items only (no Y: dropped).
- ``A0FEW`` rates 5 X and 4 Y items (9 < 10: dropped) and is the 10th rater of ``XCASC``, whose
  other 9 raters are good reviewers: ``XCASC`` survives one filter round and falls in the second.
- ``BOTH1`` appears in both categories (dropped from both).
- ``A0GOOD00`` rates ``X0`` twice at the same second (an exact duplicate: collapsed).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Dict, List, Tuple

DAY = 86_400
T0 = 1_300_000_000  # 2011-03-13
GOOD = [f"A0GOOD{k:02d}" for k in range(12)]
X_ITEMS = [f"X{k}" for k in range(10)]
Y_ITEMS = [f"Y{k}" for k in range(10)]

Row = Tuple[str, str, int]  # user, item, unix seconds


def interactions() -> Tuple[List[Row], List[Row]]:
    """(X rows, Y rows) in an arbitrary but fixed order."""
    xs: List[Row] = []
    ys: List[Row] = []
    for k, user in enumerate(GOOD):
        for j in range(5):  # first window: days 0..9
            xs.append((user, f"X{j}", T0 + (2 * j) * DAY))
            ys.append((user, f"Y{j}", T0 + (2 * j + 1) * DAY))
        for j in range(5):  # second window: days 400..409, last event X for even k, Y for odd k
            x_day, y_day = (401 + 2 * j, 400 + 2 * j) if k % 2 == 0 else (400 + 2 * j, 401 + 2 * j)
            xs.append((user, f"X{5 + j}", T0 + x_day * DAY))
            ys.append((user, f"Y{5 + j}", T0 + y_day * DAY))
    for user in GOOD[:3]:
        xs.append((user, "XRARE", T0 + 3 * DAY + 3600))
    for user in GOOD[:9]:
        xs.append((user, "XCASC", T0 + 5 * DAY + 3600))
    xs.append((GOOD[0], "X0", T0))  # exact duplicate of GOOD00's first X row
    for j in range(12):
        xs.append(("A0ONLYX", X_ITEMS[j % 10] if j < 10 else "XRARE", T0 + j * DAY))
    for j in range(5):
        xs.append(("A0FEW", "XCASC" if j == 0 else f"X{j}", T0 + 700 * DAY + j * DAY))
    for j in range(4):
        ys.append(("A0FEW", f"Y{j}", T0 + 700 * DAY + (j + 5) * DAY))
    xs.append((GOOD[1], "BOTH1", T0 + 2 * DAY + 60))
    ys.append((GOOD[2], "BOTH1", T0 + 2 * DAY + 60))
    return xs, ys


def image_url(asin: str) -> str:
    return f"http://ecx.images-amazon.com/images/I/{asin}img.jpg"


def items_of(rows: List[Row]) -> List[str]:
    return sorted({r[1] for r in rows})


def _write(path: Path, lines: List[str], gz: bool) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def review_2014(user: str, item: str, ts: int) -> str:
    return json.dumps({"reviewerID": user, "asin": item, "reviewerName": "J. Doe", "helpful": [0, 0],
                       "reviewText": "Great\tproduct, \"really\".", "overall": 5.0, "summary": "ok",
                       "unixReviewTime": ts, "reviewTime": "03 13, 2011"})


def meta_2014(item: str) -> str:
    # 2014 metadata lines are Python literals (single quotes), not JSON
    return repr({"asin": item, "title": f"Title of {item}'s box", "price": 3.5, "imUrl": image_url(item),
                 "related": {"also_bought": ["B000000001"]}, "salesRank": {"Grocery": 5},
                 "categories": [["Grocery & Gourmet Food"]]})


def review_2018(user: str, item: str, ts: int) -> str:
    return json.dumps({"overall": 4.0, "verified": True, "reviewTime": "03 13, 2011", "reviewerID": user,
                       "asin": item, "style": {"Size:": " 1 Pack"}, "reviewerName": "J. Doe",
                       "reviewText": "Fine.", "summary": "Fine", "unixReviewTime": ts})


def meta_2018(item: str) -> str:
    return json.dumps({"category": ["Grocery & Gourmet Food"], "tech1": "", "description": ["d"],
                       "fit": "", "title": f"Title of {item}'s box", "also_buy": ["B000000001"],
                       "image": [image_url(item)], "brand": "B", "feature": [], "rank": "1 in Grocery",
                       "also_view": [], "main_cat": "Grocery", "price": "$3.50", "asin": item})


def review_2023(user: str, item: str, ts: int) -> str:
    return json.dumps({"rating": 5.0, "title": "Nice", "text": "Nice.", "images": [], "asin": item + "V",
                       "parent_asin": item, "user_id": user, "timestamp": ts * 1000,
                       "helpful_vote": 0, "verified_purchase": True})


def meta_2023(item: str) -> str:
    return json.dumps({"main_category": "Grocery", "title": f"Title of {item}'s box", "average_rating": 4.5,
                       "rating_number": 10, "features": [], "description": [], "price": None,
                       "images": [{"thumb": image_url(item) + ".thumb", "large": image_url(item),
                                   "variant": "MAIN", "hi_res": None}],
                       "videos": [], "store": "S", "categories": [], "details": {}, "parent_asin": item,
                       "bought_together": None})


def write_release(folder: Path, release: str, x_cat: str = "Grocery_and_Gourmet_Food",
                  y_cat: str = "Home_and_Kitchen") -> Dict[str, List[Path]]:
    """Write the population as ``release`` ('2014', '2014-csv', '2018', '2023') files; returns X/Y paths."""
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = interactions()
    files: Dict[str, List[Path]] = {}
    for side, cat, rows in (("x", x_cat, xs), ("y", y_cat, ys)):
        items = items_of(rows)
        if release == "2014":
            inter = _write(folder / f"reviews_{cat}.json.gz", [review_2014(*r) for r in rows], gz=True)
            meta = _write(folder / f"meta_{cat}.json.gz", [meta_2014(i) for i in items], gz=True)
        elif release == "2014-csv":
            inter = _write(folder / f"ratings_{cat}.csv", [f"{u},{i},5.0,{t}" for u, i, t in rows], gz=False)
            meta = _write(folder / f"meta_{cat}.json.gz", [meta_2014(i) for i in items], gz=True)
        elif release == "2018":
            inter = _write(folder / f"{cat}.json.gz", [review_2018(*r) for r in rows], gz=True)
            meta = _write(folder / f"meta_{cat}.json.gz", [meta_2018(i) for i in items], gz=True)
        elif release == "2023":
            inter = _write(folder / f"{cat}.jsonl", [review_2023(*r) for r in rows], gz=False)
            meta = _write(folder / f"meta_{cat}.jsonl.gz", [meta_2023(i) for i in items], gz=True)
        else:
            raise ValueError(release)
        files[side] = [inter, meta]
    return files

"""Streaming readers for the public Amazon review releases (2014, 2018, 2023).

Every reader yields one record per line and holds nothing but the current line, so memory does not
depend on file size; gzip is detected from the file's magic bytes, not its name. Which schema a file
has is decided by its name (the releases' own naming), see :func:`classify`. A line that cannot be
parsed raises :class:`ConversionError` with ``file:line``; with ``on_error='skip'`` it is reported
through :class:`ErrorPolicy` and skipped instead.
"""
from __future__ import annotations

import ast
import gzip
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, List, Optional, Tuple

from tqdm import tqdm

from recbole_ifcdsr.data.converters.common import ConversionError, clean_title

# kind of a source file, from its name
REVIEWS_JSON = "reviews_json"      # 2014 reviews_<Cat>.json(.gz), 2018 <Cat>.json(.gz), 2023 <Cat>.jsonl(.gz)
RATINGS_UIRT = "ratings_csv_uirt"  # 2014 ratings_<Cat>.csv: user,item,rating,unix seconds
RATINGS_IURT = "ratings_csv_iurt"  # 2018 <Cat>.csv: item,user,rating,unix seconds
META = "meta"                      # meta_<Cat>.json(.gz) (2014 Python literals / 2018 JSON), meta_<Cat>.jsonl(.gz)

_SUFFIXES = (".jsonl.gz", ".json.gz", ".csv.gz", ".jsonl", ".json", ".csv")
# the id of a metadata line, found without parsing the line (2023: parent_asin; older: asin)
_META_IDS = tuple(re.compile(r"""['"]%s['"]\s*:\s*['"]([^'"\\]+)['"]""" % key) for key in ("parent_asin", "asin"))
_PROGRESS_EVERY = 4096  # lines between progress-bar updates (tqdm per line would dominate the run time)


@dataclass(frozen=True)
class SourceFile:
    """One input file: its path, its kind and the category named in it (e.g. ``Books``)."""

    path: Path
    kind: str
    category: str


def classify(path: Path) -> SourceFile:
    """Tell reviews / ratings / metadata apart by the releases' file names; one-line error otherwise."""
    path = Path(path)
    name = path.name
    suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise ConversionError(f"{path}: unknown Amazon file name; expected reviews_<Cat>.json(.gz), "
                              f"ratings_<Cat>.csv, <Cat>.json(.gz), <Cat>.jsonl(.gz) or meta_<Cat>.*")
    stem = name[: -len(suffix)]
    if stem.endswith("_5"):  # 5-core variants keep the schema of their release
        stem = stem[:-2]
    if stem.startswith("meta_"):
        if suffix.startswith(".csv"):
            raise ConversionError(f"{path}: metadata must be JSON lines, not CSV")
        return SourceFile(path, META, stem[len("meta_"):])
    if suffix.startswith(".csv"):
        if stem.startswith("ratings_"):
            return SourceFile(path, RATINGS_UIRT, stem[len("ratings_"):])
        return SourceFile(path, RATINGS_IURT, stem)
    if stem.startswith("reviews_"):
        stem = stem[len("reviews_"):]
    return SourceFile(path, REVIEWS_JSON, stem)


@dataclass
class ErrorPolicy:
    """What to do with a malformed line: ``fail`` (raise) or ``skip`` (report and go on)."""

    mode: str = "fail"
    report_first: int = 10  # skipped lines printed one by one; the rest are only counted
    skipped: int = 0
    examples: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ("fail", "skip"):
            raise ConversionError(f"on_error must be 'fail' or 'skip', not {self.mode!r}")

    def bad(self, where: str, why: str) -> None:
        """Raise, or record and print one skipped line."""
        message = f"{where}: {why}"
        if self.mode == "fail":
            raise ConversionError(message + " (pass --on_error=skip to skip malformed lines)")
        self.skipped += 1
        if self.skipped <= self.report_first:
            self.examples.append(message)
            print(f"skipped malformed line {message}", file=sys.stderr)


def _open_binary(path: Path) -> Tuple[IO[bytes], IO[bytes]]:
    """(raw handle for progress, decoded byte stream): gzip when the file starts with its magic."""
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return raw, gzip.GzipFile(fileobj=raw, mode="rb")
    return raw, raw


def iter_text_lines(path: Path, policy: ErrorPolicy, desc: Optional[str] = None
                    ) -> Iterator[Tuple[int, str]]:
    """Stream ``(line number, text)`` of a plain or gzipped file; progress over the bytes on disk.

    Blank lines are skipped; a line that is not UTF-8, or a last line without a newline (a cut file:
    ``1,2,5.0,13815`` still parses), goes to ``policy``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"missing source file: {path}")
    raw, stream = _open_binary(path)
    bar = tqdm(total=path.stat().st_size, desc=desc or path.name, unit="B", unit_scale=True,
               file=sys.stderr, leave=False, mininterval=0.5)
    done = 0
    try:
        for lineno, line in enumerate(stream, start=1):
            if lineno % _PROGRESS_EVERY == 0:
                pos = raw.tell()
                bar.update(pos - done)
                done = pos
            if not line.endswith(b"\n") and line.strip():  # only a file's last line can lack it
                policy.bad(f"{path}:{lineno}", "no newline at the end of the file: it looks truncated")
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                policy.bad(f"{path}:{lineno}", "not valid UTF-8")
                continue
            text = text.strip()
            if text:
                yield lineno, text
    except (OSError, EOFError) as exc:  # truncated or corrupt gzip
        raise ConversionError(f"{path}: cannot read ({exc})") from None
    finally:
        bar.update(path.stat().st_size - done)
        bar.close()
        stream.close()
        raw.close()


def _token(value: object) -> Optional[str]:
    """A user/item id usable as a TSV token, or None."""
    if not isinstance(value, str):
        return None
    if not value or value != value.strip() or any(c in value for c in "\t\r\n "):
        return None
    return value


def parse_review_json(text: str) -> Tuple[str, str, int]:
    """``(user, item, time in ms)`` from one review line of any release; ValueError if malformed.

    2014/2018: ``reviewerID``, ``asin``, ``unixReviewTime`` (s). 2023: ``user_id``, ``parent_asin``
    (the id its metadata uses; variants of one product become one item), ``timestamp`` (ms).
    """
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError("not a JSON object") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if "reviewerID" in obj:
        user, item, stamp, scale = obj.get("reviewerID"), obj.get("asin"), obj.get("unixReviewTime"), 1000
        names = "reviewerID/asin/unixReviewTime"
    else:
        user, item, stamp, scale = obj.get("user_id"), obj.get("parent_asin"), obj.get("timestamp"), 1
        names = "user_id/parent_asin/timestamp"
    user, item = _token(user), _token(item)
    if user is None or item is None or type(stamp) is not int or stamp < 0:
        raise ValueError(f"missing or bad {names}")
    return user, item, stamp * scale


def parse_rating_csv(text: str, item_first: bool) -> Tuple[str, str, int]:
    """``(user, item, time in ms)`` from ``user,item,rating,ts`` (2014) or ``item,user,rating,ts`` (2018)."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError(f"expected 4 comma-separated fields, got {len(parts)}")
    first, second, _, stamp = parts
    user, item = (second, first) if item_first else (first, second)
    user, item = _token(user), _token(item)
    try:
        seconds = int(float(stamp)) if "." in stamp else int(stamp)
    except ValueError:
        seconds = -1
    if user is None or item is None or seconds < 0:
        raise ValueError("bad user, item or timestamp field")
    return user, item, seconds * 1000


def _is_csv_header(text: str) -> bool:
    """Whether a ratings CSV's first line names columns: neither its rating nor its time is a number."""
    parts = text.split(",")
    if len(parts) < 4:
        return False
    try:
        float(parts[2])
        float(parts[3])
    except ValueError:
        return True
    return False


def iter_interactions(source: SourceFile, policy: ErrorPolicy) -> Iterator[Tuple[str, str, int]]:
    """Stream ``(user, item, time in ms)`` from a reviews or ratings file."""
    if source.kind == REVIEWS_JSON:
        parse = parse_review_json
    elif source.kind in (RATINGS_UIRT, RATINGS_IURT):
        item_first = source.kind == RATINGS_IURT

        def parse(text: str) -> Tuple[str, str, int]:
            return parse_rating_csv(text, item_first)
    else:
        raise ConversionError(f"{source.path}: is metadata, not reviews or ratings")
    for lineno, text in iter_text_lines(source.path, policy):
        if lineno == 1 and source.kind != REVIEWS_JSON and _is_csv_header(text):
            raise ConversionError(f"{source.path}:1: a header line ({text[:80]!r}): the 2014 and 2018 ratings CSVs "
                                  f"have none, so this is another release's CSV (2023's are user,parent_asin,rating,"
                                  f"ms) that would be read with user and item swapped; use its <Cat>.jsonl reviews")
        try:
            yield parse(text)
        except ValueError as exc:
            policy.bad(f"{source.path}:{lineno}", str(exc))


def _load_meta_object(text: str) -> dict:
    """JSON (2018, 2023) or a Python literal (2014: single quotes); never ``eval``."""
    try:
        obj = json.loads(text)
    except ValueError:
        try:
            obj = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError("neither JSON nor a Python literal") from None
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    return obj


def _clean_url(url: object) -> Optional[str]:
    if not isinstance(url, str):
        return None
    url = url.strip().replace(" ", "%20")
    if not url or any(c in url for c in "\t\r\n"):
        return None
    return url


def image_urls(obj: dict) -> List[str]:
    """Image URLs of one metadata record, main image first, duplicates removed.

    2014: ``imUrl`` (one string). 2018: ``image`` (list; ``imageURLHighRes``/``imageURL`` in
    some dumps). 2023: ``images``, a list of dicts; the ``large`` URL of each (``hi_res`` or
    ``thumb`` when it is missing).
    """
    found: List[object] = []
    if "images" in obj and isinstance(obj["images"], list):
        for entry in obj["images"]:
            if isinstance(entry, dict):
                found.append(entry.get("large") or entry.get("hi_res") or entry.get("thumb"))
    for key in ("image", "imageURLHighRes", "imageURL"):
        if not found and isinstance(obj.get(key), list):
            found.extend(obj[key])
    if not found and "imUrl" in obj:
        found.append(obj["imUrl"])
    urls: List[str] = []
    for url in map(_clean_url, found):
        if url and url not in urls:
            urls.append(url)
    return urls


def iter_metadata(source: SourceFile, wanted: "set[str]", policy: ErrorPolicy
                  ) -> Iterator[Tuple[str, str, List[str]]]:
    """Stream ``(item, title, image URLs)`` for the items in ``wanted``.

    The id is found with a regex first and only lines of wanted items are parsed: 2014 metadata
    are Python literals and ``ast.literal_eval`` is slow, while the kept items are a small part of
    a category. A line with no recognisable id goes to ``policy``.
    """
    if source.kind != META:
        raise ConversionError(f"{source.path}: is not a metadata file")
    for lineno, text in iter_text_lines(source.path, policy):
        match = _META_IDS[0].search(text) or _META_IDS[1].search(text)
        if match is None:
            policy.bad(f"{source.path}:{lineno}", "no asin/parent_asin field")
            continue
        if match.group(1) not in wanted:
            continue
        try:
            obj = _load_meta_object(text)
        except ValueError as exc:
            policy.bad(f"{source.path}:{lineno}", str(exc))
            continue
        item = obj.get("parent_asin") or obj.get("asin")
        if item not in wanted:
            continue
        title = obj.get("title")
        title = clean_title(title) if isinstance(title, str) else ""
        yield item, title, image_urls(obj)

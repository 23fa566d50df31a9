"""Command line: python -m recbole_ifcdsr recommend --checkpoint MODEL_FILE --domain X|Y|<name>
[--k 10] [--include_seen] (--history T1,T2,... | --input histories.jsonl [--output recs.jsonl])

(Today also ``python -m recbole_ifcdsr.serving``.) One history prints one JSON object
``{"items": [{"item", "score", "domain", "title"}, ...], "unknown": [...]}``; ``--input`` reads one JSON
object per line (``{"history": [...]}``, optionally ``"domain"`` and ``"k"``, else the command's) and
writes one result per line, in input order, to stdout or atomically to ``--output``. Unknown tokens are
listed and skipped. ``items`` holds fewer than k when the domain has fewer items outside the history.
Exit 2 with one ``error: ...`` line: a history without a known item or with an element that is not a
string, a bad domain or k, any other key (each with its line number under --input, every line checked
before any is scored), an unreadable input or model file, a model that cannot serve live histories,
--output with --history.
"""
from __future__ import annotations

import argparse
import json

from recbole_ifcdsr import io
from recbole_ifcdsr.cli import CommandParser
from recbole_ifcdsr.data.dataset import DOMAINS
from recbole_ifcdsr.errors import DataError, run_cli
from recbole_ifcdsr.serving.recommender import Recommender, RecommendError


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m recbole_ifcdsr recommend", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="model file written by run (<stem>-model.pth)")
    parser.add_argument("--domain", required=True, help="X, Y or the domain's name")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--new_items", help="TSV with header item, domain[, title][, text]: items added before "
                        "recommending (titles, or texts for a store built from enriched texts, encoded with the "
                        "text store's encoder)")
    parser.add_argument("--include_seen", action="store_true", help="keep history items among the results")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--history", help="comma-separated item tokens, oldest first")
    source.add_argument("--input", help="JSONL file, one {\"history\": [...]} per line")
    parser.add_argument("--output", help="JSONL file for --input's results (default: stdout); not with --history")
    return parser


#: What a line of --input may hold.
REQUEST_KEYS = ("history", "domain", "k")
#: The columns of a --new_items TSV (item and domain required).
NEW_ITEM_COLUMNS = ("item", "domain", "title", "text")


def _read_lines(path: str) -> list[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file's lines, without their line ends; a directory, an unreadable file
    or a line that is not UTF-8 is one DataError line (a missing file stays FileNotFoundError, which names it)."""
    try:
        with open(path, "rb") as f:
            raw_lines = f.read().split(b"\n")
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    lines = []
    for number, raw in enumerate(raw_lines, 1):
        try:
            lines.append((number, raw.decode("utf-8").rstrip("\r")))
        except UnicodeDecodeError:
            raise DataError(f"{path}:{number}: not valid UTF-8") from None
    return lines


def _read_requests(path: str) -> list[dict]:
    requests = []
    for number, line in _read_lines(path):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not JSON ({error.msg})") from error
        if not isinstance(request, dict) or not isinstance(request.get("history"), list):
            raise DataError(f"{path}:{number}: history: expected a list of item tokens")
        extra = [key for key in request if key not in REQUEST_KEYS]
        if extra:  # a misspelt "domian" would otherwise be scored with the command's domain
            raise DataError(f"{path}:{number}: unknown key {', '.join(map(repr, extra))}; a line holds "
                            f"{', '.join(REQUEST_KEYS)}")
        requests.append({**request, "line": number})
    return requests


def read_new_items(path: str) -> list[dict]:
    """Rows of a new-items TSV (header ``item``, ``domain`` and optionally ``title``, ``text``) as add_items
    dicts; an unknown column or an empty item or domain cell is an error naming its line."""
    lines = [(number, line) for number, line in _read_lines(path) if number == 1 or line.strip()]
    header = [name.split(":")[0] for name in lines[0][1].split("\t")] if lines else []
    missing = {"item", "domain"} - set(header)
    if missing:
        raise DataError(f"{path}:1: header needs columns item and domain (and optionally title, text); missing {sorted(missing)}")
    unknown = [name for name in header if name not in NEW_ITEM_COLUMNS]
    if unknown:
        raise DataError(f"{path}:1: unknown column {', '.join(map(repr, unknown))}; columns: {', '.join(NEW_ITEM_COLUMNS)}")
    items = []
    for number, line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}")
        item = dict(zip(header, fields))
        for column in ("item", "domain"):
            if not item[column].strip():
                raise DataError(f"{path}:{number}: {column} is empty")
        items.append(item)
    if not items:
        raise DataError(f"{path}: no new items")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is not None and args.history is not None:  # it used to be ignored without a word
        parser.error("--output goes with --input; --history prints its one result on stdout")

    def serve() -> int:
        recommender = Recommender.load(args.checkpoint)
        if args.new_items:
            recommender.add_items(read_new_items(args.new_items))
        exclude = not args.include_seen
        if args.history is not None:
            history = [t.strip() for t in args.history.split(",") if t.strip()]
            print(json.dumps(recommender.recommend(history, args.domain, args.k, exclude).as_dict()))
            return 0
        requests = _read_requests(args.input)
        results: list = [None] * len(requests)
        groups: dict = {}  # (domain index, k) -> request indexes: one forward pass per group
        for i, request in enumerate(requests):
            try:  # name the line of a bad request before anything is scored
                d = recommender.domain_index(request.get("domain", args.domain))
                k = recommender.check_k(request.get("k", args.k), d)
                recommender.split_history(request["history"])
            except RecommendError as error:
                raise RecommendError(f"{args.input}:{request['line']}: {error}") from error
            groups.setdefault((d, k), []).append(i)
        for (d, k), indexes in groups.items():
            recs = recommender.recommend_batch([requests[i]["history"] for i in indexes], DOMAINS[d], k, exclude)
            for i, rec in zip(indexes, recs):
                results[i] = json.dumps(rec.as_dict())
        if args.output:
            io.write_text(args.output, "".join(line + "\n" for line in results))
        else:
            print("\n".join(results))
        return 0

    return run_cli(serve)

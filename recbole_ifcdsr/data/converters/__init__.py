"""Converters from upstream CDSR releases to RecBole atomic files.

``CONVERTERS`` maps a dataset name to ``fn(src, out, derived=None, train=None) -> meta``.
CLI: ``python -m recbole_ifcdsr convert <name> [--src DIR] [--data_path DIR] [--train FILE]`` for the
presets and ``python -m recbole_ifcdsr convert abxi|llmcdsr|c2dsr|check ...`` for any folder of a release
format (``formats.py``; docs/data.md); the options live in data/convert.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional

from recbole_ifcdsr.paths import SHARED_DATA_DIR, default_data_path

from .abxi import convert_fk_abxi, parse_abxi_sequences
from .c2dsr import (
    convert_c2dsr, convert_food_kitchen, convert_movie_book, load_c2dsr_items,
    parse_c2dsr_sequences,
)
from .common import ConversionError, clean_title, load_titles
from .llmcdsr import convert_fk_llmcdsr, parse_llmcdsr_sequences
from .mb_llmcdsr import convert_mb_llmcdsr


__all__ = [
    "CONVERTERS", "SOURCE_FOLDERS", "ConversionError", "clean_title", "convert",
    "convert_c2dsr", "convert_fk_abxi", "convert_fk_llmcdsr", "convert_food_kitchen",
    "convert_mb_llmcdsr", "convert_movie_book", "default_out", "default_src", "load_c2dsr_items", "load_titles",
    "main", "parse_abxi_sequences", "parse_c2dsr_sequences", "parse_llmcdsr_sequences",
]

# Folder under ../shared/data holding each dataset's upstream files.
SOURCE_FOLDERS: Dict[str, str] = {
    "fk_abxi": "abxi-afk",
    "fk_llmcdsr": "llmcdsr-food-kitchen",
    "mb_llmcdsr": "llmcdsr-movie-book",
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
    "mb_llmcdsr": _no_train(convert_mb_llmcdsr),
}


def default_src(name: str) -> Path:
    """``<repo>/../shared/data/<source folder>``, where the project keeps the real upstream files. That
    folder exists only beside a source checkout; elsewhere (an installed package) ``--src`` is required."""
    if not SHARED_DATA_DIR.is_dir():
        raise ConversionError(f"convert {name}: give --src DIR, the folder of the release's files (the default "
                              f"{SHARED_DATA_DIR} exists only beside a source checkout)")
    return SHARED_DATA_DIR / SOURCE_FOLDERS[name]


def default_out(name: str) -> Path:
    """``./dataset/<name>``, RecBole's data_path layout."""
    return default_data_path() / name


def convert(name: str, src: Optional[Path] = None, out: Optional[Path] = None,
            train: Optional[Path] = None, derived: Optional[Path] = None, allow_missing: bool = False) -> dict:
    """Run converter ``name`` with default paths filled in; returns the meta dict."""
    if name not in CONVERTERS:
        raise ConversionError(f"unknown dataset {name!r}; expected one of {sorted(CONVERTERS)}")
    src = Path(src) if src is not None else default_src(name)
    out = Path(out) if out is not None else default_out(name)
    if name == "mb_llmcdsr":
        if train is not None:
            raise ConversionError("--train is only for C2DSR datasets, not mb_llmcdsr")
        return convert_mb_llmcdsr(src, out, derived=derived, allow_missing=allow_missing)
    if allow_missing:
        raise ConversionError(f"--allow_missing is only for mb_llmcdsr, not {name}")
    return CONVERTERS[name](src, out, derived=derived, train=train)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m recbole_ifcdsr.data.converters <name> ...``: an alias of ``python -m recbole_ifcdsr convert
    <name> ...`` (recbole_ifcdsr/data/convert.py holds the options)."""
    from recbole_ifcdsr.data.convert import main as convert_main

    return convert_main(argv)

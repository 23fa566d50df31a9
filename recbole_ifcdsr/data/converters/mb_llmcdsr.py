"""LLMCDSR's Movie-Book as far as its public files allow (``mb_llmcdsr``).

Every reachable copy of xhran2010/LLMCDSR data/movie-book lacks ``train_B.txt`` (the Book-only
training users) and ``text_B.pkl`` (Book titles) (../shared/data/SOURCES.md). With ``allow_missing``
the rest converts: train = train_A (Movie-only) + train_overlap, valid and test complete; Book titles
come from C2DSR's Movie-Book title TSV where the ASINs match. What is missing is recorded in the meta
and the generated README, and a run on the dataset logs it once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from recbole_ifcdsr import io

from .formats import dataset_readme
from .llmcdsr import SOURCE_COMMIT, check_missing, convert_llmcdsr, llmcdsr_titles

NAME = "mb_llmcdsr"
SOURCE = "xhran2010/LLMCDSR data/movie-book"
DOMAINS = ("Movie", "Book")
TITLE_FILES = ("llmcdsr_titles_movie.tsv", "Movie-Book_items_with_titles.tsv")
COMMAND = "python -m recbole_ifcdsr.data.converters mb_llmcdsr --allow_missing"


def convert_mb_llmcdsr(src: Path, out: Path, derived: Optional[Path] = None, allow_missing: bool = False) -> dict:
    """Convert LLMCDSR movie-book into ``out`` with a README; stops on missing files unless ``allow_missing``."""
    src, out = Path(src), Path(out)
    derived = Path(derived) if derived is not None else src.parent / "derived"
    missing = check_missing(src, allow_missing)
    titles = llmcdsr_titles(src, [derived / name for name in TITLE_FILES])
    provenance = {"format": "llmcdsr", "source": SOURCE, "source_commit": SOURCE_COMMIT,
                  "domains_from": "the mb_llmcdsr preset (LLMCDSR's folder movie-book: A = Movie, B = Book)",
                  "command": COMMAND, "converter": "recbole_ifcdsr.data.converters.mb_llmcdsr"}
    book_tsv = derived / TITLE_FILES[1]
    if book_tsv.is_file():
        from .llmcdsr import load_item_sets

        listed = {line.split("\t", 4)[3] for line in book_tsv.read_text(encoding="utf-8").splitlines()[1:]}
        books = load_item_sets(src)[1]
        provenance["notes"] = [f"{sum(asin in listed for asin in books):,} of {len(books):,} Book ASINs are listed in "
                               f"{book_tsv.name}; titled Book items are the ones it gives a non-empty title"]
    meta = convert_llmcdsr(src, out, NAME, DOMAINS, titles, missing, provenance)
    io.write_text(out / "README.md", dataset_readme(meta, COMMAND))
    return meta

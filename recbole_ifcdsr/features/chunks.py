"""The unit of resumable extraction: a fixed chunk of items, encoded and written as one part file.

Both engines (the local loop in extract.py and the Ray actors in ray_engine.py) process a chunk with
:func:`process_chunk`, so their parts are byte-identical. A part is written atomically as
``<store>.partial/part-<n>.npz`` (vectors, status per item, reason per masked item); a part on disk is
finished. Batches are formed inside a chunk, so a resumed run encodes exactly the batches an
uninterrupted one does.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from recbole_ifcdsr import io
from recbole_ifcdsr.features.encoders import ItemUnreadable
from recbole_ifcdsr.features.sources import ItemMissing

OK, MISSING, CORRUPT = 0, 1, 2
STATUS_NAMES = {OK: "ok", MISSING: "missing", CORRUPT: "corrupt"}


def chunk_bounds(n_items: int, chunk_size: int) -> list[tuple[int, int]]:
    """(start, stop) of every chunk of ``n_items`` items in file order; chunk ``i`` is the i-th."""
    return [(start, min(start + chunk_size, n_items)) for start in range(0, n_items, chunk_size)]


def encode_chunk(encoder, source, tokens: list, batch_size: int, workers: int) -> tuple:
    """(vectors [n, dim] float32, status int8 [n], reasons [n]) for one chunk of item tokens."""

    def load(token):
        try:
            return OK, encoder.prepare(source.get(token)), ""
        except ItemMissing as e:
            return MISSING, None, str(e)
        except ItemUnreadable as e:
            return CORRUPT, None, str(e)

    if workers > 1 and encoder.modality == "image":
        with ThreadPoolExecutor(max_workers=workers) as pool:
            loaded = list(pool.map(load, tokens))
    else:
        loaded = [load(t) for t in tokens]
    status = np.array([s for s, _, _ in loaded], dtype=np.int8)
    reasons = [r for _, _, r in loaded]
    vectors = np.zeros((len(tokens), encoder.dim), dtype=np.float32)
    ok = np.flatnonzero(status == OK)
    for start in range(0, len(ok), batch_size):
        rows = ok[start:start + batch_size]
        vectors[rows] = encoder.encode([loaded[i][1] for i in rows])
    bad = ~np.isfinite(vectors).all(axis=1) & (status == OK)
    if bad.any():  # an encoder that returns NaN for an input: mask it as corrupt rather than store it
        status[bad] = CORRUPT
        for i in np.flatnonzero(bad):
            reasons[i] = "encoder returned NaN/inf"
        vectors[bad] = 0.0
    return vectors, status, reasons


def part_path(partial_dir: Path, index: int) -> Path:
    return partial_dir / f"part-{index:06d}.npz"


def write_part(partial_dir: Path, index: int, vectors, status, reasons) -> None:
    io.write_npz(part_path(partial_dir, index), vectors=vectors, status=status,
                 reasons=np.asarray(reasons, dtype=str))


def finished_parts(partial_dir: Path, n_chunks: int) -> set:
    """Indexes of the chunks whose part file is on disk and readable in full."""
    done = set()
    for i in range(n_chunks):
        path = part_path(partial_dir, i)
        if path.is_file():
            try:
                with np.load(path) as f:
                    f["vectors"], f["status"]  # noqa: B018  (readable in full)
                done.add(i)
            except (OSError, ValueError, KeyError):
                path.unlink()  # cannot happen with atomic writes; recompute rather than trust it
    return done


def process_chunk(job, encoder, source, tokens: list, index: int) -> int:
    """Encode chunk ``index`` of ``tokens`` (the dataset's items) per ``job`` (an ExtractionJob) and write
    its part; returns the number of items in it."""
    start, stop = chunk_bounds(len(tokens), job.chunk_size)[index]
    vectors, status, reasons = encode_chunk(encoder, source, tokens[start:stop], job.batch_size, job.workers)
    write_part(job.partial_dir, index, vectors, status, reasons)
    return stop - start

"""One process per grid cell: two ``compare`` commands over one ``--out`` (two terminals, two lanes of a
long grid) must not train the same cell at once, or both would write, and resume from, the same
checkpoint files and results JSON.

The lock is an advisory ``flock`` on ``<cell>.lock`` beside the cell's checkpoints. The kernel drops it
when its holder exits, however it exits (a killed session included), so no stale lock outlives a
crash and nothing has to be cleaned up by hand. The file stays (it is a few bytes); its text names the
current holder for the message a second process gets. Where ``fcntl`` is missing (Windows) cells are
not locked: run one ``compare`` per ``--out`` there.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class CellBusy(RuntimeError):
    """Another process holds the cell."""


@contextlib.contextmanager
def hold_cell(path: Path) -> Iterator[None]:
    """Hold the lock file ``path`` for the ``with`` block; ``CellBusy`` at once if another process holds
    it (never waits: the caller goes on with other cells)."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise CellBusy(f"running in {holder} ({path}); run the command again when that ends") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def holder(path: Path) -> str | None:
    """Who holds the lock file ``path`` (its text), or None when no process does: a look that never takes
    the cell. A shared lock is tried and dropped at once, so only a holder that starts in that instant
    would be told the cell is busy (and skip it, as for any holder)."""
    if fcntl is None or not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        return None
    finally:
        os.close(fd)

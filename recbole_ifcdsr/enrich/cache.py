"""Append-only JSONL cache of enrichment attempts: one record per attempt, never rewritten.

A record is ``{token, backend, model, prompt_hash, input_hash, text | error, tokens, prompt_tokens,
seconds, attempts, params, time}`` (tokens = completion tokens; input_hash: the item's title and domain,
``Prompt.input_hash``).
Each line is flushed and fsynced before the next item is written, so a crash loses at most the
items in flight; a torn last line (crash mid-write) is ignored on read and cut off before the next
append, so it never glues onto a new record. An item is done for a (backend, model, prompt_hash)
key once it has a record with text for its current title and domain (an item whose title changed is
generated again); items whose attempts all failed are attempted again next run. Records written before
input hashes were recorded have none and count for their token whatever its title.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from recbole_ifcdsr.errors import DataError


class CacheError(DataError):
    """A cache file damaged somewhere other than its last line."""


def cache_path(data_path: str | os.PathLike, dataset: str, backend: str) -> Path:
    return Path(data_path) / dataset / f"{dataset}.enrich.{backend}.jsonl"


def _same_input(record: dict, input_hashes: dict[str, str] | None) -> bool:
    """A record counts for its item's current inputs; one without an input hash (older) counts as it is."""
    if input_hashes is None or "input_hash" not in record:
        return True
    return record["input_hash"] == input_hashes.get(record["token"])


class EnrichCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None

    def records(self) -> Iterator[dict]:
        """Every complete record in file order (a torn last line is skipped)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        # the chunk after the last newline is empty, or a record torn by a crash mid-write
        for number, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CacheError(f"{self.path}:{number}: not a JSON record ({err}); only the last line may be torn") from None
            yield record

    def texts(self, backend: str, model: str, prompt_hash: str,
              input_hashes: dict[str, str] | None = None) -> dict[str, str]:
        """token -> generated text for one (backend, model, prompt) key; the first success wins. With
        ``input_hashes`` (token -> ``Prompt.input_hash`` of the item now), a record generated from other
        inputs does not count."""
        done: dict[str, str] = {}
        for r in self.records():
            if (r.get("backend"), r.get("model"), r.get("prompt_hash")) == (backend, model, prompt_hash) \
                    and r.get("text") and r["token"] not in done and _same_input(r, input_hashes):
                done[r["token"]] = r["text"]
        return done

    def open(self) -> "EnrichCache":
        """Open for appending, first cutting off a torn last line left by a crash."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._file = open(self.path, "a", encoding="utf-8")
        return self

    def append(self, record: dict) -> None:
        """Write one record durably (flush + fsync) before returning."""
        if self._file is None:
            raise RuntimeError("EnrichCache.append before open()")
        if bool(record.get("text")) == bool(record.get("error")):
            raise ValueError(f"record for {record.get('token')!r} needs exactly one of non-empty text or error")
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EnrichCache":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

"""Build a two-domain scenario from raw interactions: the paper's filtering, sequences and split.

Out-of-core by design: interactions are interned to integer ids and spooled to bucket files on
disk (16 bytes a row), so memory holds the id tables (one entry per distinct user and item), a
fixed-size write buffer and one bucket at a time; it does not grow with the number of lines.

Steps (defaults are the paper's / C2DSR's values; every one is an option of
:class:`ScenarioOptions`):

1. Exact duplicate rows (same user, item and time) are collapsed into one; repeated
   interactions with the same item at different times are kept. An ASIN found in both
   categories is dropped from both (an item must have one domain).
2. Users need at least ``min_user_inter`` interactions and at least one in each domain; items
   need at least ``min_item_inter``. Applied together and repeated until nothing changes
   (``filter_rounds=0``; ``1`` applies them once to the raw counts).
3. Each user's merged X+Y history is ordered by time; ties by domain (X first), then ASIN, so
   the order does not depend on the input's line order. It is cut into sequences: a sequence
   ends when the next event is more than ``window_days`` after its first event or it holds
   ``max_seq_len`` events. This is our reading of C2DSR's released files, whose sequences span
   at most 365 days and hold 6 to 15 events. Sequences with fewer than ``min_per_domain``
   items of either domain are dropped.
4. A user's latest kept sequence is an evaluation sequence (its last event is the target), the
   earlier ones are training sequences, as in C2DSR's files, where valid and test together hold
   each user exactly once. Evaluation users are split into valid and test in equal halves
   (valid gets ``floor(n/2)``) by a permutation seeded with ``split_seed`` over users in token
   order.
5. Items are those in at least one kept sequence, X first, each domain in ASIN order.
"""
from __future__ import annotations

import array
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from recbole_ifcdsr.data.converters.common import ConversionError

ROW = np.dtype([("u", "<u4"), ("i", "<u4"), ("t", "<i8")])
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class ScenarioOptions:
    """Filtering and splitting knobs; the defaults reproduce the paper's recipe."""

    min_user_inter: int = 10
    min_item_inter: int = 10
    filter_rounds: int = 0          # 0: repeat until stable
    min_per_domain: int = 3
    window_days: float = 365.0
    max_seq_len: int = 15
    split_seed: int = 0
    buckets: int = 64

    def check(self) -> None:
        for name in ("min_user_inter", "min_item_inter", "filter_rounds", "min_per_domain", "split_seed"):
            if getattr(self, name) < 0:
                raise ConversionError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.max_seq_len < 2 or self.window_days <= 0 or self.buckets < 1:
            raise ConversionError("max_seq_len must be >= 2, window_days > 0 and buckets >= 1")
        if 2 * self.min_per_domain > self.max_seq_len:
            raise ConversionError(f"max_seq_len {self.max_seq_len} cannot hold {self.min_per_domain} items of each domain")


class Spool:
    """Rows ``(user, item, ms)`` appended to ``n`` bucket files chosen by ``key % n``."""

    def __init__(self, folder: Path, prefix: str, n: int, chunk: int = 1 << 20) -> None:
        self.paths = [Path(folder) / f"{prefix}{k:04d}.bin" for k in range(n)]
        for path in self.paths:
            path.write_bytes(b"")
        self.n, self.chunk = n, chunk
        self._u, self._i, self._t, self._key = (array.array("I"), array.array("I"),
                                                array.array("q"), array.array("I"))

    def add(self, user: int, item: int, ms: int, key: Optional[int] = None) -> None:
        self._u.append(user), self._i.append(item), self._t.append(ms)
        self._key.append(user if key is None else key)
        if len(self._u) >= self.chunk:
            self.flush()

    def add_rows(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Append a whole array of rows (already in ROW layout) by bucket key."""
        self._write(rows, keys)

    def flush(self) -> None:
        if not self._u:
            return
        rows = np.empty(len(self._u), dtype=ROW)
        rows["u"], rows["i"], rows["t"] = self._u, self._i, self._t
        self._write(rows, np.frombuffer(self._key, dtype=np.uint32))
        for buf in (self._u, self._i, self._t, self._key):
            del buf[:]

    def _write(self, rows: np.ndarray, keys: np.ndarray) -> None:
        bucket = (keys % self.n).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        rows = rows[order]
        bounds = np.r_[0, np.cumsum(np.bincount(bucket, minlength=self.n))]
        for k in np.flatnonzero(np.diff(bounds)):
            with open(self.paths[k], "ab") as fh:
                fh.write(rows[bounds[k]:bounds[k + 1]].tobytes())

    def read(self, k: int) -> np.ndarray:
        return np.fromfile(self.paths[k], dtype=ROW)


@dataclass
class Interner:
    """String ids -> dense ints in first-seen order (users shared; items per domain, X first)."""

    users: Dict[str, int] = field(default_factory=dict)
    items: List[Dict[str, int]] = field(default_factory=lambda: [{}, {}])

    def user(self, token: str) -> int:
        uid = self.users.get(token)
        if uid is None:
            uid = self.users[token] = len(self.users)
        return uid

    def item(self, domain: int, token: str) -> int:
        table = self.items[domain]
        iid = table.get(token)
        if iid is None:
            iid = table[token] = len(table)
        return iid


@dataclass
class ScenarioResult:
    """What :func:`build_scenario` wrote and the counts along the way (for the summary)."""

    items: List[List[str]]                       # kept item tokens per domain, ASIN order
    n_sequences: Dict[str, int]
    n_interactions: Dict[str, int]
    targets: Dict[str, Dict[str, int]]           # split -> domain X/Y -> count
    funnel: Dict[str, int]


def _bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, mininterval=0.5)


def ingest(domains: Sequence[Iterable[Tuple[str, str, int]]], spool: Spool, interner: Interner) -> int:
    """Intern and spool every interaction; items of domain Y get ids after all of X's.

    Returns the number of X items (the id offset of Y). Domain X must be fully read before Y.
    """
    n_rows = 0
    for domain, rows in enumerate(domains):
        for user, item, ms in rows:
            uid = interner.user(user)
            iid = interner.item(domain, item)
            if domain == 0:
                spool.add(uid, iid, ms)
            else:
                spool.add(uid, iid | 0x80000000, ms)  # marked Y; re-based once |X| is known
            n_rows += 1
    spool.flush()
    return n_rows


def _rebase_and_dedupe(spool: Spool, n_x: int) -> int:
    """Give Y items ids n_x.., sort each bucket by (user, item, time), drop exact duplicates."""
    dropped = 0
    for k in range(spool.n):
        rows = spool.read(k)
        if not len(rows):
            continue
        is_y = rows["i"] >= 0x80000000
        rows["i"][is_y] = (rows["i"][is_y] & 0x7FFFFFFF) + n_x
        rows = rows[np.lexsort((rows["t"], rows["i"], rows["u"]))]
        keep = np.ones(len(rows), dtype=bool)
        keep[1:] = ((rows["u"][1:] != rows["u"][:-1]) | (rows["i"][1:] != rows["i"][:-1])
                    | (rows["t"][1:] != rows["t"][:-1]))
        dropped += int(len(rows) - keep.sum())
        rows[keep].tofile(spool.paths[k])
    return dropped


def _filter(spool: Spool, n_users: int, n_x: int, item_ok: np.ndarray, opts: ScenarioOptions
            ) -> Tuple[np.ndarray, np.ndarray, int]:
    """Masks of kept users and items after the count filters; also the rounds run."""
    user_ok = np.ones(n_users, dtype=bool)
    n_items = len(item_ok)
    rounds = 0
    while True:
        rounds += 1
        per_user = np.zeros(n_users, np.int64)
        per_user_x = np.zeros(n_users, np.int64)
        per_item = np.zeros(n_items, np.int64)
        for k in range(spool.n):
            rows = spool.read(k)
            m = user_ok[rows["u"]] & item_ok[rows["i"]]
            u, i = rows["u"][m], rows["i"][m]
            per_user += np.bincount(u, minlength=n_users)
            per_user_x += np.bincount(u[i < n_x], minlength=n_users)
            per_item += np.bincount(i, minlength=n_items)
        new_user = user_ok & (per_user >= opts.min_user_inter) & (per_user_x >= 1) & (per_user - per_user_x >= 1)
        new_item = item_ok & (per_item >= opts.min_item_inter)
        changed = not (np.array_equal(new_user, user_ok) and np.array_equal(new_item, item_ok))
        user_ok, item_ok = new_user, new_item
        if not changed or rounds == opts.filter_rounds:
            return user_ok, item_ok, rounds


def _ranks(ok: np.ndarray, tokens: Callable[[int], str], order_key=None) -> Tuple[np.ndarray, List[int]]:
    """rank[id] = position of id among kept ids sorted by ``order_key`` (default: its token); -1 if dropped."""
    kept = sorted(np.flatnonzero(ok).tolist(), key=order_key or tokens)
    rank = np.full(len(ok), -1, dtype=np.int64)
    rank[kept] = np.arange(len(kept))
    return rank, kept


def cut_sequences(times: Sequence[int], in_x: Sequence[bool], window_ms: int, max_len: int,
                  min_per_domain: int) -> List[Tuple[int, int]]:
    """``(start, end)`` slices of one time-ordered history that form kept sequences."""
    kept: List[Tuple[int, int]] = []
    start, n = 0, len(times)
    while start < n:
        end = start + 1
        while end < n and end - start < max_len and times[end] - times[start] <= window_ms:
            end += 1
        n_x = sum(in_x[start:end])
        if n_x >= min_per_domain and (end - start) - n_x >= min_per_domain:
            kept.append((start, end))
        start = end
    return kept


def _format_ms(ms: int) -> str:
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms // 1000}.{ms % 1000:03d}"


def build_scenario(domains: Sequence[Iterable[Tuple[str, str, int]]], work: Path,
                   open_out: Callable[[str], IO[str]], name: str, opts: ScenarioOptions,
                   inter_header: str) -> ScenarioResult:
    """Run steps 1-4 (module docstring) and write ``<name>.{train,valid,test}.inter`` via ``open_out``.

    ``domains`` = (X rows, Y rows), each an iterable of ``(user, item, time in ms)``; ``work``
    is an empty scratch folder for the bucket files.
    """
    opts.check()
    interner = Interner()
    raw = Spool(work, "raw", opts.buckets)
    n_lines = ingest(domains, raw, interner)
    x_tokens, y_tokens = list(interner.items[0]), list(interner.items[1])
    n_x, n_items = len(x_tokens), len(x_tokens) + len(y_tokens)
    if n_x == 0 or not y_tokens:
        raise ConversionError(f"domain {'X' if n_x == 0 else 'Y'} has no interactions")
    duplicates = _rebase_and_dedupe(raw, n_x)
    both = set(interner.items[0]).intersection(interner.items[1])
    item_ok = np.ones(n_items, dtype=bool)
    for asin in both:
        item_ok[interner.items[0][asin]] = item_ok[n_x + interner.items[1][asin]] = False
    user_tokens = list(interner.users)
    del interner  # the dicts are the largest objects; ids now live in the token lists
    user_ok, item_ok, rounds = _filter(raw, len(user_tokens), n_x, item_ok, opts)
    if not user_ok.any():
        raise ConversionError(
            f"no user has >= {opts.min_user_inter} interactions in both domains after filtering "
            f"(items >= {opts.min_item_inter}); lower --min_user_inter/--min_item_inter?")
    item_token = lambda i: x_tokens[i] if i < n_x else y_tokens[i - n_x]  # noqa: E731
    user_rank, kept_users = _ranks(user_ok, user_tokens.__getitem__)
    item_rank, kept_items = _ranks(item_ok, item_token, order_key=lambda i: (i >= n_x, item_token(i)))
    n_kept_x = int(item_ok[:n_x].sum())

    # re-bucket kept rows by user rank so that bucket k holds a contiguous range of sorted users
    final = Spool(work, "user", opts.buckets)
    n_kept = len(kept_users)
    for k in range(raw.n):
        rows = raw.read(k)
        rows = rows[user_ok[rows["u"]] & item_ok[rows["i"]]]
        rows["u"] = user_rank[rows["u"]]
        rows["i"] = item_rank[rows["i"]]
        final.add_rows(rows, (rows["u"].astype(np.int64) * opts.buckets // n_kept).astype(np.uint32))
        os.remove(raw.paths[k])

    window_ms = int(round(opts.window_days * MS_PER_DAY))
    used = np.zeros(len(kept_items), dtype=bool)
    n_seq = {"train": 0, "valid": 0, "test": 0}
    n_inter = {"train": 0, "valid": 0, "test": 0}
    eval_users: List[int] = []
    eval_sizes: List[int] = []
    eval_target_x: List[bool] = []
    eval_path = Path(work) / "eval.tsv"
    with open_out(f"{name}.train.inter") as train, open(eval_path, "w", encoding="utf-8", newline="\n") as ev:
        train.write(inter_header + "\n")
        for k in tqdm(range(final.n), desc="sequences", file=sys.stderr, leave=False):
            rows = final.read(k)
            if not len(rows):
                continue
            rows = rows[np.lexsort((rows["i"], rows["t"], rows["u"]))]
            starts = np.flatnonzero(np.r_[True, rows["u"][1:] != rows["u"][:-1]])
            ends = np.r_[starts[1:], len(rows)]
            users, items, times = rows["u"].tolist(), rows["i"].tolist(), rows["t"].tolist()
            for s, e in zip(starts.tolist(), ends.tolist()):
                its, ts = items[s:e], times[s:e]
                in_x = [i < n_kept_x for i in its]
                cuts = cut_sequences(ts, in_x, window_ms, opts.max_seq_len, opts.min_per_domain)
                if not cuts:
                    continue
                token = user_tokens[kept_users[users[s]]]
                for w, (a, b) in enumerate(cuts):
                    out = ev if w == len(cuts) - 1 else train
                    for j in range(a, b):
                        out.write(f"{token}_{w}\t{item_token(kept_items[its[j]])}\t{_format_ms(ts[j])}\n")
                    used[its[a:b]] = True
                    if out is train:
                        n_seq["train"] += 1
                        n_inter["train"] += b - a
                eval_users.append(users[s])
                eval_sizes.append(cuts[-1][1] - cuts[-1][0])
                eval_target_x.append(in_x[cuts[-1][1] - 1])
            os.remove(final.paths[k])
    if not eval_users:
        raise ConversionError(
            f"no sequence has >= {opts.min_per_domain} items of each domain within {opts.window_days:g} "
            f"days and {opts.max_seq_len} events; nothing to evaluate")

    # valid / test: equal halves of the evaluation users, seeded, independent of input order
    perm = np.random.default_rng(opts.split_seed).permutation(len(eval_users))
    is_valid = np.zeros(len(eval_users), dtype=bool)
    is_valid[perm[: len(eval_users) // 2]] = True
    targets = {"valid": {"X": 0, "Y": 0}, "test": {"X": 0, "Y": 0}}
    with open_out(f"{name}.valid.inter") as valid, open_out(f"{name}.test.inter") as test, \
            open(eval_path, encoding="utf-8") as ev:
        valid.write(inter_header + "\n"), test.write(inter_header + "\n")
        for n, valid_user, target_x in zip(eval_sizes, is_valid.tolist(), eval_target_x):
            split = "valid" if valid_user else "test"
            (valid if valid_user else test).writelines(ev.readline() for _ in range(n))
            n_seq[split] += 1
            n_inter[split] += n
            targets[split]["X" if target_x else "Y"] += 1
    os.remove(eval_path)

    kept_item_tokens = [item_token(kept_items[r]) for r in np.flatnonzero(used).tolist()]
    n_used_x = int(used[:n_kept_x].sum())
    funnel = {
        "lines": n_lines, "duplicates_dropped": duplicates, "items_in_both_domains_dropped": len(both),
        "users_raw": len(user_tokens), "items_raw": n_items, "filter_rounds": rounds,
        "users_after_filter": n_kept, "items_after_filter": len(kept_items),
        "users_with_sequences": len(eval_users),
    }
    return ScenarioResult([kept_item_tokens[:n_used_x], kept_item_tokens[n_used_x:]],
                          n_seq, n_inter, targets, funnel)

"""Negative candidates for the sampled protocol, exactly per dataset recipe (``cdsr_negatives``).

Keys: ``num`` (999), ``replacement``, ``exclude`` (``target`` or ``sequence``: same-domain items of
the user's sequence up to and including the target), ``redraw`` (``once``: drawn for valid then
test when first needed, reused by every epoch and model; ``every_pass``: a fresh draw per
evaluation pass, seeded by (seed, split, pass) so runs are reproducible), ``rng`` (``legacy``:
``np.random.RandomState(seed)`` with ``choice(sorted(pool - {target}), num, replace=False)``, as
LLMCDSR draws; ``generator``: numpy Generator) and ``seed``.

Pools are the target's own domain in the source's id order (the .item file order), so the legacy
draw reproduces LLMCDSR's lists bit for bit.
"""
from __future__ import annotations

import numpy as np

from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset, EvalCases
from recbole_ifcdsr.errors import ConfigError, DataError

SPLIT_CODE = {"valid": 1, "test": 2}


class NegativeSampler:
    """Draws ``num`` negatives per eval case from the target's domain; see module docstring."""

    def __init__(self, dataset: CrossDomainSequentialDataset, args: dict):
        self.dataset = dataset
        self.num = int(args.get("num", 999))
        self.replacement = bool(args.get("replacement", False))
        self.exclude = args.get("exclude", "target")
        self.redraw = args.get("redraw", "once")
        self.rng_kind = args.get("rng", "generator")
        self.seed = int(args.get("seed", 0))
        for key, value, valid in (
            ("exclude", self.exclude, ("target", "sequence")),
            ("redraw", self.redraw, ("once", "every_pass")),
            ("rng", self.rng_kind, ("legacy", "generator")),
        ):
            if value not in valid:
                raise ConfigError(f"cdsr_negatives.{key} '{value}' unknown; valid: {', '.join(valid)}")
        if self.replacement and self.exclude == "sequence":  # the draw with replacement skips only the target
            raise ConfigError("cdsr_negatives: exclude sequence needs replacement False (a draw with replacement "
                              "excludes only the target)")
        if self.rng_kind == "legacy" and (self.replacement or self.exclude != "target" or self.redraw != "once"):
            raise ConfigError("cdsr_negatives.rng legacy reproduces LLMCDSR only: replacement False, exclude target, redraw once")
        self._fixed: dict[str, np.ndarray] = {}

    def negatives(self, split: str, pass_index: int = 0) -> np.ndarray:
        """[n_cases, num] int64 internal item ids for the cases of ``split``."""
        if self.redraw == "every_pass":
            rng = np.random.default_rng([self.seed, SPLIT_CODE[split], pass_index])
            return self._draw_generator(self.dataset.eval_cases(split), rng)
        if not self._fixed:
            if self.rng_kind == "legacy":
                state = np.random.RandomState(self.seed)
                for name in ("valid", "test"):  # valid first, then test, as LLMCDSR does
                    self._fixed[name] = self._draw_legacy(self.dataset.eval_cases(name), state)
            else:
                rng = np.random.default_rng([self.seed, 0])
                for name in ("valid", "test"):
                    self._fixed[name] = self._draw_generator(self.dataset.eval_cases(name), rng)
        return self._fixed[split]

    def _draw_generator(self, cases: EvalCases, rng: np.random.Generator) -> np.ndarray:
        """All cases of one domain at once (vectorised over cases), in blocks of 2,048 cases."""
        out = np.empty((len(cases), self.num), dtype=np.int64)
        for domain, pool in enumerate(self.dataset.domain_items):
            rows = np.flatnonzero(cases.target_domains == domain)
            if len(rows) == 0:
                continue
            position = np.full(self.dataset.item_num, -1, dtype=np.int64)
            position[pool] = np.arange(len(pool))
            target_pos = position[cases.targets[rows]]
            if self.replacement:  # uniform over the pool minus the target: draw from n-1, skip the target
                picks = rng.integers(0, len(pool) - 1, size=(len(rows), self.num))
                out[rows] = pool[picks + (picks >= target_pos[:, None])]
                continue
            for block in np.array_split(rows, max(1, len(rows) // 2048)):
                banned = [position[cases.seen[r]] for r in block] if self.exclude == "sequence" \
                    else [position[cases.targets[r : r + 1]] for r in block]
                out[block] = pool[self._without_replacement(banned, len(pool), rng)]
        return out

    def _without_replacement(self, banned: list, pool_size: int, rng: np.random.Generator) -> np.ndarray:
        """[len(banned), num] pool positions: per row, uniform draws that skip banned and already
        drawn positions, i.e. a uniform sample without replacement of the allowed positions."""
        rows = len(banned)
        if pool_size - max(len(np.unique(b[b >= 0])) for b in banned) < self.num:
            raise DataError(f"domain pool of {pool_size} items is too small for {self.num} negatives")
        taken = np.zeros((rows, pool_size), dtype=bool)
        for i, b in enumerate(banned):
            taken[i, b[b >= 0]] = True
        picks = np.empty((rows, self.num), dtype=np.int64)
        count = np.zeros(rows, dtype=np.int64)
        active = np.arange(rows)
        while len(active):
            candidate = rng.integers(0, pool_size, size=len(active))
            fresh = ~taken[active, candidate]
            chosen, candidate = active[fresh], candidate[fresh]
            taken[chosen, candidate] = True
            picks[chosen, count[chosen]] = candidate
            count[chosen] += 1
            active = active[count[active] < self.num]
        return picks

    def _draw_legacy(self, cases: EvalCases, state: np.random.RandomState) -> np.ndarray:
        """LLMCDSR's draw, case by case: choice(sorted(domain - {target}), num, replace=False)."""
        out = np.empty((len(cases), self.num), dtype=np.int64)
        for i in range(len(cases)):
            pool = self.dataset.domain_items[cases.target_domains[i]]
            allowed = pool[pool != cases.targets[i]]
            if len(allowed) < self.num:
                raise DataError(f"domain pool of {len(allowed)} items is smaller than {self.num} negatives")
            out[i] = state.choice(allowed, self.num, replace=False)
        return out

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

from typing import Callable

import numpy as np

from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset, EvalCases

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
                raise ValueError(f"cdsr_negatives.{key} '{value}' unknown; valid: {', '.join(valid)}")
        if self.rng_kind == "legacy" and (self.replacement or self.exclude != "target" or self.redraw != "once"):
            raise ValueError("cdsr_negatives.rng legacy reproduces LLMCDSR only: replacement False, exclude target, redraw once")
        self._fixed: dict[str, np.ndarray] = {}

    def negatives(self, split: str, pass_index: int = 0) -> np.ndarray:
        """[n_cases, num] int64 internal item ids for the cases of ``split``."""
        if self.redraw == "every_pass":
            rng = np.random.default_rng([self.seed, SPLIT_CODE[split], pass_index])
            return self._draw(self.dataset.eval_cases(split), self._generator_draw(rng))
        if not self._fixed:
            if self.rng_kind == "legacy":
                state = np.random.RandomState(self.seed)
                draw = self._legacy_draw(state)
            else:
                draw = self._generator_draw(np.random.default_rng([self.seed, 0]))
            for name in ("valid", "test"):  # valid first, then test, as the sources do
                self._fixed[name] = self._draw(self.dataset.eval_cases(name), draw)
        return self._fixed[split]

    def _draw(self, cases: EvalCases, draw: Callable) -> np.ndarray:
        out = np.empty((len(cases), self.num), dtype=np.int64)
        for i in range(len(cases)):
            pool = self.dataset.domain_items[cases.target_domains[i]]
            banned = cases.seen[i] if self.exclude == "sequence" else cases.targets[i : i + 1]
            out[i] = draw(pool, banned, cases.targets[i])
        return out

    def _legacy_draw(self, state: np.random.RandomState) -> Callable:
        def draw(pool: np.ndarray, banned: np.ndarray, target: int) -> np.ndarray:
            allowed = pool[pool != target]
            if len(allowed) < self.num:
                raise ValueError(f"domain pool of {len(allowed)} items is smaller than {self.num} negatives")
            return state.choice(allowed, self.num, replace=False)

        return draw

    def _generator_draw(self, rng: np.random.Generator) -> Callable:
        def draw(pool: np.ndarray, banned: np.ndarray, target: int) -> np.ndarray:
            banned_in_pool = np.intersect1d(banned, pool)
            n_allowed = len(pool) - len(banned_in_pool)
            if self.replacement:
                picks = np.empty(0, dtype=np.int64)
                while len(picks) < self.num:  # reject banned items, keep draws uniform over the rest
                    more = pool[rng.integers(0, len(pool), size=self.num + len(banned_in_pool) + 8)]
                    picks = np.concatenate([picks, more[~np.isin(more, banned_in_pool)]])
                return picks[: self.num]
            if n_allowed < self.num:
                raise ValueError(f"domain pool of {n_allowed} allowed items is smaller than {self.num} negatives")
            # A uniform random ordering of the pool, filtered, is a uniform ordering of the allowed items.
            picks = pool[rng.choice(len(pool), size=min(len(pool), self.num + len(banned_in_pool)), replace=False)]
            return picks[~np.isin(picks, banned_in_pool)][: self.num]

        return draw

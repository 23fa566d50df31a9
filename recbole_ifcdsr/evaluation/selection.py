"""Model selection per dataset recipe (``cdsr_selection``), always on the sampled protocol.

``mode: joint``: one criterion, the metric summed over both domains (ABXI: MRR_X + MRR_Y); an
improvement updates both domains' reported numbers. ``mode: per_domain``: each domain keeps its
own best (LLMCDSR: HR@10, C2DSR: MRR) and stops on its own patience; training stops when every
domain has stopped. ``improve``: ``ge`` (>= best counts) or ``gt`` (strict). ``patience`` counts
evaluations without improvement (None = never stop early). ``warmup_epochs``: no validation before.
"""
from __future__ import annotations

import math

from recbole_ifcdsr.constants import DOMAINS, SELECTION_FIELDS
from recbole_ifcdsr.errors import ConfigError, NonFiniteError


def is_count(value, least: int) -> bool:
    """Whether ``value`` is a whole number (not a bool, float or text) of at least ``least``."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= least


def selection_problem(spec, metrics: list | None) -> str | None:
    """Why ``cdsr_selection`` cannot select (None when it can), before any data loads: an unknown field, mode or
    comparison, a metric the evaluation does not compute (``metrics``: ``cdsr_metrics``), or a count that is
    not a whole number (each was accepted or failed only at the first validation, hours into a run)."""
    if not isinstance(spec, dict):
        return f"cdsr_selection {spec!r} is not a mapping of {', '.join(SELECTION_FIELDS)}"
    unknown = [key for key in spec if key not in SELECTION_FIELDS]
    if unknown:
        return f"cdsr_selection: unknown field {', '.join(map(repr, unknown))}; fields: {', '.join(SELECTION_FIELDS)}"
    checks = (("mode", ("joint", "per_domain")), ("improve", ("ge", "gt")))
    for key, valid in checks:
        if spec.get(key) is not None and spec[key] not in valid:
            return f"cdsr_selection.{key} '{spec[key]}' unknown; valid: {', '.join(valid)}"
    metric = spec.get("metric", "MRR")
    if metrics is not None and metric not in metrics:
        return f"cdsr_selection.metric '{metric}' is not among the evaluated cdsr_metrics ({', '.join(map(str, metrics))})"
    for key, least in (("warmup_epochs", 0), ("patience", 1)):
        value = spec.get(key)
        if value is not None and not is_count(value, least):
            return f"cdsr_selection.{key} {value!r} invalid; valid: an integer >= {least}" + \
                (" or ~ (never stop early)" if key == "patience" else "")
    return None


class ModelSelector:
    """Tracks the best validation score(s) and says which domains improved and when to stop."""

    def __init__(self, args: dict):
        self.mode = args.get("mode", "joint")
        self.metric = args.get("metric", "MRR")
        self.improve = args.get("improve", "ge")
        self.patience = args.get("patience")
        self.warmup_epochs = int(args.get("warmup_epochs") or 0)
        problem = selection_problem(args, None)
        if problem:
            raise ConfigError(problem)
        keys = ["joint"] if self.mode == "joint" else list(DOMAINS)
        self.best = {k: float("-inf") for k in keys}
        self.bad_evals = {k: 0 for k in keys}
        self.stopped = {k: False for k in keys}

    def wants_validation(self, epoch: int) -> bool:
        """Epochs are 0-based; validation starts after ``warmup_epochs`` epochs."""
        return epoch + 1 > self.warmup_epochs

    def _better(self, score: float, best: float) -> bool:
        return score >= best if self.improve == "ge" else score > best

    def update(self, valid_sampled: dict) -> list[str]:
        """Feed one validation result {domain: {metric: v}}; return the domains whose best improved."""
        if self.mode == "joint":
            scores = {"joint": sum(valid_sampled[d][self.metric] for d in DOMAINS)}
        else:
            scores = {d: valid_sampled[d][self.metric] for d in DOMAINS}
        for key, score in scores.items():  # a NaN is never better nor worse: it would freeze selection
            if not math.isfinite(score):
                raise NonFiniteError(f"model selection: validation {self.metric} of '{key}' is {score}")
        improved = []
        for key, score in scores.items():
            if self.stopped[key]:
                continue
            if self._better(score, self.best[key]):
                self.best[key] = score
                self.bad_evals[key] = 0
                improved += list(DOMAINS) if key == "joint" else [key]
            else:
                self.bad_evals[key] += 1
                if self.patience is not None and self.bad_evals[key] >= int(self.patience):
                    self.stopped[key] = True
        return improved

    @property
    def should_stop(self) -> bool:
        return all(self.stopped.values())

    def state_dict(self) -> dict:
        return {"best": dict(self.best), "bad_evals": dict(self.bad_evals), "stopped": dict(self.stopped)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_evals, self.stopped = dict(state["best"]), dict(state["bad_evals"]), dict(state["stopped"])

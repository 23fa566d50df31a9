"""Ranks with each recipe's tie rule, and the ranking metrics computed from them.

All ranks are 1-based: rank 1 = the target scores highest among its candidates. A NaN or infinite
target or competitor score is an error, never a rank: NaN compares False both ways, so it would
rank its target first and give perfect metrics.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from recbole_ifcdsr.errors import ConfigError, EmptyRunError, NonFiniteError

_METRIC = re.compile(r"^(MRR|NDCG@(\d+)|HR@(\d+))$")


def check_metric_names(names: list[str]) -> None:
    """Raise on a metric name we do not compute (MRR, NDCG@k, HR@k)."""
    for name in names:
        if not _METRIC.match(name):
            raise ConfigError(f"Unknown metric '{name}'. Valid: MRR, NDCG@k, HR@k (k a positive integer)")


def nonfinite_cases(target_scores: torch.Tensor, other_scores: torch.Tensor,
                    valid: torch.Tensor | None = None) -> torch.Tensor:
    """[B] bool: the case's target score or one of its counted competitor scores is NaN or infinite."""
    bad_other = ~torch.isfinite(other_scores)
    if valid is not None:
        bad_other &= valid
    return ~torch.isfinite(target_scores) | bad_other.any(dim=1)


def ranks_against(target_scores: torch.Tensor, other_scores: torch.Tensor, valid: torch.Tensor | None = None,
                  tolerance: float = 0.0) -> torch.Tensor:
    """1-based rank of each row's target among ``other_scores`` (shape [B, N]).

    rank = 1 + #(other > target + tolerance): ties (within ``tolerance``) go to the target, as ABXI
    and C2DSR rank. ``valid`` masks which columns count (e.g. only the target's domain, never the
    target itself). Guard: a case whose counted scores are all equal to the target's (a constant
    model) gets the worst rank, 1 + #counted, instead of rank 1. A non-finite target or counted
    score raises :class:`NonFiniteError` (uncounted columns may hold anything, e.g. -inf padding).
    """
    bad = nonfinite_cases(target_scores, other_scores, valid)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise NonFiniteError(f"non-finite scores in {int(bad.sum())} of {len(bad)} cases (first: row {first}, "
                             f"target score {float(target_scores[first])}); a rank against NaN or inf means nothing")
    target = target_scores.unsqueeze(1)
    higher = other_scores > target + tolerance
    tied = (other_scores - target).abs() <= tolerance
    if valid is not None:
        higher &= valid
        tied &= valid
        n_counted = valid.sum(dim=1)
    else:
        n_counted = torch.full_like(target_scores, other_scores.shape[1], dtype=torch.long)
    rank = 1 + higher.sum(dim=1)
    degenerate = tied.sum(dim=1) == n_counted
    return torch.where(degenerate, 1 + n_counted, rank).to(torch.float64)


def metrics_from_ranks(ranks: np.ndarray, names: list[str]) -> dict[str, float]:
    """Mean of each metric over the given 1-based ranks (no cutoff for MRR); no ranks is an error
    (a mean over nothing is NaN, and a NaN metric breaks model selection silently)."""
    check_metric_names(names)
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        raise EmptyRunError("no ranks to average: no evaluation case")
    out = {}
    for name in names:
        if name == "MRR":
            values = 1.0 / ranks
        else:
            kind, k = name.split("@")
            hit = ranks <= int(k)
            values = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0) if kind == "NDCG" else hit.astype(np.float64)
        out[name] = float(values.mean())
    return out

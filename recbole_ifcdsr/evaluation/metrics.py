"""Ranks with each recipe's tie rule, and the ranking metrics computed from them.

All ranks are 1-based: rank 1 = the target scores highest among its candidates. A NaN or infinite
target or competitor score is an error, never a rank: NaN compares False both ways, so it would
rank its target first and give perfect metrics.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch

from recbole_ifcdsr.errors import ConfigError, EmptyRunError, NonFiniteError

_METRIC = re.compile(r"^(MRR|NDCG@([1-9]\d*)|HR@([1-9]\d*))$")


def check_metric_names(names: list[str]) -> None:
    """Raise on a metric name we do not compute (MRR, NDCG@k, HR@k)."""
    for name in names:
        if not _METRIC.match(name):
            raise ConfigError(f"Unknown metric '{name}'. Valid: MRR, NDCG@k, HR@k (k a positive integer)")


def nonfinite_cases(target_scores: torch.Tensor, other_scores: torch.Tensor,
                    valid: torch.Tensor | None = None) -> torch.Tensor:
    """[B] bool: the case's target score or one of its counted competitor scores is NaN or infinite.

    A row's sum is finite only when every term is, so one sum per row clears almost every row; only
    rows whose sum is not finite (a non-finite term, or finite terms that overflow) are checked term
    by term. One reduction instead of an elementwise test over [B, N] (N can be a whole catalog).
    """
    counted = other_scores if valid is None else torch.where(valid, other_scores, 0.0)
    bad = ~torch.isfinite(target_scores)
    suspect = (~torch.isfinite(counted.sum(dim=1))).nonzero().squeeze(1)
    if suspect.numel():
        bad[suspect] |= (~torch.isfinite(counted[suspect])).any(dim=1)
    return bad


def count_true(flags: torch.Tensor) -> torch.Tensor:
    """[B] int32: True entries per row (summing bytes: a bool sum widens every entry to int64 first)."""
    return flags.view(torch.uint8).sum(dim=1, dtype=torch.int32)


def ranks_against(target_scores: torch.Tensor, other_scores: torch.Tensor, valid: torch.Tensor | None = None,
                  tolerance: float = 0.0, checked: bool = False, relative: bool = False) -> torch.Tensor:
    """1-based rank of each row's target among ``other_scores`` (shape [B, N]).

    rank = 1 + #(other > target + tolerance): ties (within ``tolerance``) go to the target, as ABXI and
    C2DSR rank. ``relative``: the scores are probabilities and the margin is on their log scale, rank = 1 +
    #(other > target * e^tolerance) (C2DSR's margin is on logits; a softmax probability's log is its logit
    plus a constant); with tolerance 0 both are the strict comparison. ``valid`` masks which columns count
    (e.g. only the target's domain, never the target itself). Guard: a case whose counted scores are all
    equal to the target's (a constant model) gets the worst rank, 1 + #counted, instead of rank 1. A
    non-finite target or counted score raises :class:`NonFiniteError` (uncounted columns may hold anything,
    e.g. -inf padding); ``checked``: the caller has already ruled that out for these very scores.
    """
    if not checked:
        bad = nonfinite_cases(target_scores, other_scores, valid)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise NonFiniteError(f"non-finite scores in {int(bad.sum())} of {len(bad)} cases (first: row {first}, "
                                 f"target score {float(target_scores[first])}); a rank against NaN or inf means nothing")
    if relative:
        factor = math.exp(tolerance)
        bound = target_scores.unsqueeze(1) * factor
        margin = target_scores * (factor - 1.0)  # [B]: how far a tie may lie
    else:
        bound, margin = target_scores.unsqueeze(1) + tolerance, None
    higher = other_scores > bound
    if valid is not None:
        higher &= valid
    rank = 1 + count_true(higher)
    top = (rank == 1).nonzero().squeeze(1)  # the guard can only apply where no score is higher
    if top.numel():
        within = tolerance if margin is None else margin[top].unsqueeze(1)
        tied = (other_scores[top] - target_scores[top].unsqueeze(1)).abs() <= within
        if valid is None:
            n_counted = torch.full_like(top, other_scores.shape[1], dtype=torch.int32)
        else:
            tied &= valid[top]
            n_counted = count_true(valid[top])
        rank[top] = torch.where(count_true(tied) == n_counted, 1 + n_counted, rank[top])
    return rank.to(torch.float64)


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

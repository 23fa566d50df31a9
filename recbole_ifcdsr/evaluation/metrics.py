"""Ranks with each recipe's tie rule, and the ranking metrics computed from them.

All ranks are 1-based: rank 1 = the target scores highest among its candidates.
"""
from __future__ import annotations

import re

import numpy as np
import torch

_METRIC = re.compile(r"^(MRR|NDCG@(\d+)|HR@(\d+))$")


def check_metric_names(names: list[str]) -> None:
    """Raise on a metric name we do not compute (MRR, NDCG@k, HR@k)."""
    for name in names:
        if not _METRIC.match(name):
            raise ValueError(f"Unknown metric '{name}'. Valid: MRR, NDCG@k, HR@k (k a positive integer)")


def ranks_against(target_scores: torch.Tensor, other_scores: torch.Tensor, valid: torch.Tensor | None = None,
                  tolerance: float = 0.0) -> torch.Tensor:
    """1-based rank of each row's target among ``other_scores`` (shape [B, N]).

    rank = 1 + #(other > target + tolerance): ties (within ``tolerance``) go to the target, as ABXI
    and C2DSR rank. ``valid`` masks which columns count (e.g. only the target's domain, never the
    target itself). Guard: a case whose counted scores are all equal to the target's (a constant
    model) gets the worst rank, 1 + #counted, instead of rank 1.
    """
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
    """Mean of each metric over the given 1-based ranks (no cutoff for MRR)."""
    check_metric_names(names)
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for name in names:
        if len(ranks) == 0:
            out[name] = float("nan")
            continue
        if name == "MRR":
            values = 1.0 / ranks
        else:
            kind, k = name.split("@")
            hit = ranks <= int(k)
            values = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0) if kind == "NDCG" else hit.astype(np.float64)
        out[name] = float(values.mean())
    return out

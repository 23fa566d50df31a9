"""The fused next-item probability of IFCDSR / LLMEMF and its two training losses.

``fused_log_probs`` is the model's probability over a set of candidate items: a softmax per table
(ID and each frozen table), mixed with fixed weights. Items without a feature in a frozen table keep
their ID probability in that table's slot, and the table's softmax only redistributes the ID mass of
the items that have one (the neutral rule). The same function serves three candidate sets: all of a
branch's items (evaluation, ``loss_type: full``) and, per position, the target plus negatives drawn for
the batch (``loss_type: sampled``).

- ``full``: the exact softmax over every item of the branch, computed in chunks of positions; each
  chunk's gradient is taken during the forward pass and kept (a [positions, d] and an [items, d]
  tensor), so no [positions x items] matrix outlives its chunk and nothing is recomputed.
- ``sampled``: ``num_negatives`` items drawn once per batch and branch, shared by every position; the
  logits are corrected by the log expected count of each candidate in the draw (logQ), so the sampled
  softmax estimates the full one for any ``negative_distribution``. A negative equal to the position's
  target is removed from that position's candidates.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

LOSS_TYPES = ("full", "sampled")
NEGATIVE_DISTRIBUTIONS = ("uniform", "popularity")
# Logit of a candidate that is not in the set. Finite so that a row with no candidate of a table gives
# no NaN (its entries are never selected); exp(MASKED - max) is exactly 0 in float32.
MASKED = -1.0e30


def fused_log_probs(logits: dict, featured: dict, weights: dict, present: torch.Tensor | None = None) -> torch.Tensor:
    """log P over the candidates (last dimension) from per-table logits.

    ``logits``: table -> [..., C] (cosine / temperature, logQ-corrected when sampled); ``featured``:
    frozen table -> bool, broadcastable to the logits (item has a feature); ``weights``: table -> weight
    (renormalised, > 0); ``present``: bool like the logits, False for a candidate not in the set.
    """
    id_logits = logits["id"] if present is None else logits["id"].masked_fill(~present, MASKED)
    log_p_id = torch.log_softmax(id_logits, dim=-1)  # eqs. (3), (4), (8): softmax of the cosine per branch

    def table_log_probs(table: str) -> torch.Tensor:
        if table == "id":
            return log_p_id
        has = featured[table] if present is None else featured[table] & present
        table_logits = logits[table].masked_fill(~has, MASKED)
        featured_mass = torch.logsumexp(log_p_id.masked_fill(~has, MASKED), dim=-1, keepdim=True)
        return torch.where(has, torch.log_softmax(table_logits, dim=-1) + featured_mass, log_p_id)  # eq. (5)

    if len(weights) == 1:
        return table_log_probs(next(iter(weights)))
    terms = [math.log(w) + table_log_probs(t) for t, w in weights.items()]
    return torch.logsumexp(torch.stack(terms), dim=0)  # eq. (6): P = sum_t w_t P_t


class _ChunkedSum(torch.autograd.Function):
    """sum_k fn(rows[k], shared) over chunks k of the row inputs, with each chunk's gradient taken in the
    forward pass: peak memory is one chunk's graph, and the backward pass only scales stored gradients."""

    @staticmethod
    def forward(ctx, fn: Callable, chunk_rows: int, n_rows: int, *tensors):
        rows, shared = tensors[:n_rows], tensors[n_rows:]
        wants = ctx.needs_input_grad[3:]
        shared_leaves = [t.detach().requires_grad_(w) for t, w in zip(shared, wants[n_rows:])]
        grads = [torch.zeros_like(t) if w else None for t, w in zip(tensors, wants)]
        total, dtype = torch.zeros((), dtype=torch.float64, device=rows[0].device), torch.get_default_dtype()
        for start in range(0, rows[0].size(0), chunk_rows):
            chunk = [t[start: start + chunk_rows].detach().requires_grad_(w) for t, w in zip(rows, wants[:n_rows])]
            leaves = chunk + shared_leaves
            with torch.enable_grad():
                value = fn(*leaves)
            if any(wants):
                needed = [(i, leaf) for i, leaf in enumerate(leaves) if wants[i]]
                chunk_grads = torch.autograd.grad(value, [leaf for _, leaf in needed], allow_unused=True)
                for (i, _), g in zip(needed, chunk_grads):
                    if g is None:
                        continue
                    if i < n_rows:
                        grads[i][start: start + chunk_rows] = g
                    else:
                        grads[i] += g
            total += value.detach()
            dtype = value.dtype
        ctx.grads = grads
        return total.to(dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return (None, None, None, *[None if g is None else g * grad_output for g in ctx.grads])


def chunked_sum(fn: Callable, rows: list[torch.Tensor], shared: list[torch.Tensor], chunk_rows: int) -> torch.Tensor:
    """``fn(*rows_chunk, *shared)`` (a scalar per chunk) summed over chunks of ``chunk_rows`` rows."""
    return _ChunkedSum.apply(fn, max(1, int(chunk_rows)), len(rows), *rows, *shared)


def full_nll(vectors: dict, targets: torch.Tensor, rows: dict, featured: dict, weights: dict,
             temperature: float, chunk_scores: int) -> torch.Tensor:
    """Exact -sum log P(target) over all of a branch's items, ``chunk_scores`` positions x items at a time.

    ``vectors``: table -> [N, d] per position; ``targets``: [N] column of each target; ``rows``: table ->
    [C, d] item rows; ``featured``: frozen table -> [C] bool.
    """
    tables = logits_tables(weights)
    k = len(tables)

    def chunk_nll(chunk_targets, *tensors):
        logits = {t: v @ r.T / temperature for t, v, r in zip(tables, tensors[:k], tensors[k:])}
        log_p = fused_log_probs(logits, featured, weights)
        return -log_p.gather(1, chunk_targets.unsqueeze(1)).sum()

    return chunked_sum(chunk_nll, [targets, *[vectors[t] for t in tables]], [rows[t] for t in tables],
                       chunk_scores // rows["id"].size(0))


def logits_tables(weights) -> list[str]:
    """Tables whose logits the fused probability reads: the ID table always (the neutral rule needs its
    probabilities), then the weighted frozen tables."""
    return ["id", *[t for t in weights if t != "id"]]


def sampled_nll(vectors: dict, target_rows: dict, negative_rows: dict, target_featured: dict,
                negative_featured: dict, accidental: torch.Tensor, log_expected: tuple, weights: dict,
                temperature: float) -> torch.Tensor:
    """-sum log P(target) over each position's candidates: its target (column 0) and the batch's negatives.

    ``target_rows``/``negative_rows``: table -> [N, d] / [K, d]; ``accidental``: [N, K], a negative equal
    to the position's target; ``log_expected``: (target [N], negatives [K]) log expected counts in the draw.
    """
    target_log_q, negative_log_q = log_expected
    logits = {}
    for t in logits_tables(weights):
        positive = (vectors[t] * target_rows[t]).sum(-1, keepdim=True)
        negative = vectors[t] @ negative_rows[t].T
        logits[t] = torch.cat([positive, negative], dim=1) / temperature \
            - torch.cat([target_log_q.unsqueeze(1), negative_log_q.expand(len(target_log_q), -1)], dim=1)
    present = torch.cat([torch.ones_like(accidental[:, :1]), ~accidental], dim=1)
    featured = {t: torch.cat([target_featured[t].unsqueeze(1), negative_featured[t].expand(len(accidental), -1)], dim=1)
                for t in negative_featured}
    log_p = fused_log_probs(logits, featured, weights, present)
    return -log_p[:, 0].sum()


class NegativeSampler(nn.Module):
    """Draws the shared negatives of each branch and knows each item's log expected count in a draw.

    ``uniform``: every item of the branch alike; ``popularity``: in proportion to the item's training
    count + 1 (so every item can be drawn). Draws are with replacement from torch's global generator,
    which ``init_seed`` seeds.
    """

    def __init__(self, distribution: str, num: int, branch_items: dict, item_counts: torch.Tensor | None):
        super().__init__()
        self.distribution, self.num = distribution, int(num)
        self.branches = list(branch_items)
        for branch, items in branch_items.items():
            if distribution == "uniform":
                log_q = torch.full((len(items),), -math.log(len(items)))
            else:
                weight = item_counts[items].double() + 1.0
                log_q = (weight / weight.sum()).log().float()
            self.register_buffer(f"log_q_{branch}", log_q, persistent=False)

    def log_q(self, branch: str) -> torch.Tensor:
        return self.get_buffer(f"log_q_{branch}")

    def draw(self, branch: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (within the branch's item list) of ``num`` negatives, and their log expected counts."""
        log_q = self.log_q(branch)
        if self.distribution == "uniform":
            positions = torch.randint(len(log_q), (self.num,), device=log_q.device)
        else:
            positions = torch.multinomial(log_q.exp(), self.num, replacement=True)
        return positions, self.log_expected(branch, positions)

    def log_expected(self, branch: str, positions: torch.Tensor) -> torch.Tensor:
        return self.log_q(branch)[positions] + math.log(self.num)


def check_loss_config(config, branch_sizes: dict) -> tuple[str, int, str, int]:
    """(loss_type, num_negatives, negative_distribution, full_loss_chunk), or a one-line ValueError
    naming the key and its valid values."""
    loss_type = config["loss_type"]
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type '{loss_type}' unknown; valid: {', '.join(LOSS_TYPES)}")
    distribution = config["negative_distribution"]
    if distribution not in NEGATIVE_DISTRIBUTIONS:
        raise ValueError(f"negative_distribution '{distribution}' unknown; valid: {', '.join(NEGATIVE_DISTRIBUTIONS)}")
    smallest = min(branch_sizes, key=branch_sizes.get)
    largest_valid = branch_sizes[smallest]
    num = config["num_negatives"]
    if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= largest_valid:
        raise ValueError(f"num_negatives {num!r} invalid; valid: an integer from 1 to {largest_valid} "
                         f"(branch {smallest} has {largest_valid} items)")
    chunk = config["full_loss_chunk"]
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"full_loss_chunk {chunk!r} invalid; valid: a positive integer (scores held at once)")
    return loss_type, num, distribution, chunk

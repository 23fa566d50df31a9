"""The fused next-item probability of IFCDSR / LLMEMF and its two training losses.

``fused_log_probs`` is the model's probability over a set of candidate items: a softmax per table
(ID and each frozen table), mixed with fixed weights. Items without a feature in a frozen table keep
their ID probability in that table's slot, and the table's softmax only redistributes the ID mass of
the items that have one (the neutral rule). The same function serves three candidate sets: all of a
branch's items (evaluation, ``loss_type: full``) and, per position, the target plus negatives drawn for
the batch (``loss_type: sampled``).

- ``full``: the exact softmax over every item of the branch. It needs, per position, only a few
  log-sum-exps over the items, which ``tiled_softmax`` computes in blocks of positions, turning each
  block's logits into its gradients at once, so no [positions x items] matrix is ever held.
- ``sampled``: ``num_negatives`` items drawn once per batch and branch, shared by every position; the
  logits are corrected by the log expected count of each candidate in the draw (logQ), so the sampled
  softmax estimates the full one for any ``negative_distribution``. A negative equal to the position's
  target is removed from that position's candidates.
"""
from __future__ import annotations

import math
import torch
from torch import nn

from recbole_ifcdsr.model.tiled_softmax import MASKED, exact_nll

LOSS_TYPES = ("full", "sampled")
NEGATIVE_DISTRIBUTIONS = ("uniform", "popularity")


def fused_log_probs(logits: dict, featured: dict, weights: dict, present: torch.Tensor | None = None,
                    untrained: torch.Tensor | None = None) -> torch.Tensor:
    """log P over the candidates (last dimension) from per-table logits.

    ``logits``: table -> [..., C] (cosine / temperature, logQ-corrected when sampled); ``featured``:
    frozen table -> bool, broadcastable to the logits (item has a feature); ``weights``: table -> weight
    (renormalised, > 0); ``present``: bool like the logits, False for a candidate not in the set;
    ``untrained``: bool [C], items added after training (serving's cold start), see ``_untrained_id_slot``.
    """
    id_logits = logits["id"] if present is None else logits["id"].masked_fill(~present, MASKED)
    if untrained is not None:
        id_logits = id_logits.masked_fill(untrained, MASKED)  # an untrained ID row is never read
    log_p_id = torch.log_softmax(id_logits, dim=-1)  # eqs. (3), (4), (8): softmax of the cosine per branch

    def table_log_probs(table: str, base: torch.Tensor) -> torch.Tensor:
        if table == "id":
            return base
        has = featured[table] if present is None else featured[table] & present
        table_logits = logits[table].masked_fill(~has, MASKED)
        featured_mass = torch.logsumexp(base.masked_fill(~has, MASKED), dim=-1, keepdim=True)
        return torch.where(has, torch.log_softmax(table_logits, dim=-1) + featured_mass, base)  # eq. (5)

    if untrained is not None and bool(untrained.any()):
        log_p_id = _untrained_id_slot(log_p_id, table_log_probs, weights, untrained)
    if len(weights) == 1:
        return table_log_probs(next(iter(weights)), log_p_id)
    terms = [math.log(w) + table_log_probs(t, log_p_id) for t, w in weights.items()]
    return torch.logsumexp(torch.stack(terms), dim=0)  # eq. (6): P = sum_t w_t P_t


#: fixed-point iterations of the untrained rule; each shrinks the error by at most the frozen tables' share
#: of the untrained items times the ID mass outside the featured items (tiny for a few new items)
UNTRAINED_ITERATIONS = 50


def _untrained_id_slot(log_p_known: torch.Tensor, table_log_probs, weights: dict, untrained: torch.Tensor) -> torch.Tensor:
    """The ID slot of items without a trained ID row: the neutral rule the other way round.

    A frozen table's slot gives an item without a feature its ID probability; here an item without a
    trained ID row gets the frozen tables' probability in the ID slot (their mix, weights renormalised
    over the frozen tables), and the ID softmax only redistributes the rest among trained items. The
    frozen tables' probabilities depend on the ID slot's mass of their featured items, so the slot is
    the fixed point of ``slot(n) = content(n)``, ``slot(i) = softmax_trained(i) * (1 - sum_n slot(n))``.
    """
    content = {t: w for t, w in weights.items() if t != "id"}
    if not content:
        raise ValueError("items without a trained ID row need a frozen table with fusion weight > 0")
    total = sum(content.values())
    slot = log_p_known
    for _ in range(UNTRAINED_ITERATIONS):
        mix = torch.logsumexp(torch.stack([math.log(w / total) + table_log_probs(t, slot) for t, w in content.items()]), 0)
        new_mass = torch.logsumexp(mix.masked_fill(~untrained, MASKED), dim=-1, keepdim=True).clamp(max=0.0)
        slot = torch.where(untrained, mix, log_p_known + torch.log1p(-new_mass.exp()))
    return slot


def full_nll(vectors: dict, targets: torch.Tensor, rows: dict, featured: dict, weights: dict,
             temperature: float, tile_scores: int) -> torch.Tensor:
    """Exact -sum log P(target) over all of a branch's items, never more than ``tile_scores`` scores (positions
    x items x tables) in one tile (``tiled_softmax``).

    ``vectors``: table -> [N, d] per position; ``targets``: [N] column of each target; ``rows``: table ->
    [C, d] item rows; ``featured``: frozen table -> [C] bool.
    """
    tables = logits_tables(weights)
    frozen = tables[1:]
    target_featured = [featured[m][targets] for m in frozen]

    def row_nll(block: slice, a, b, c, *target_logits):
        """-log P(target) of the positions ``block`` from their log-sum-exps (see tiled_softmax)."""
        log_p = {"id": target_logits[0] - a}  # eqs. (3), (4), (8) at the target
        for k, m in enumerate(frozen):  # eq. (5) and the neutral rule at the target
            log_p[m] = torch.where(target_featured[k][block], target_logits[1 + k] - c[:, k] + b[:, k] - a, log_p["id"])
        if len(weights) == 1:
            return -log_p[next(iter(weights))]
        return -torch.logsumexp(torch.stack([math.log(w) + log_p[t] for t, w in weights.items()]), dim=0)  # eq. (6)

    target_logits = [(vectors[t] * rows[t][targets]).sum(-1) / temperature for t in tables]
    return exact_nll(row_nll, vectors["id"], rows["id"], [(vectors[m], rows[m], featured[m]) for m in frozen],
                     target_logits, temperature, tile_scores)


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


class ItemDistribution(nn.Module):
    """log q of each item of one branch's item list (a buffer: it moves with the model, is not saved)."""

    def __init__(self, log_q: torch.Tensor):
        super().__init__()
        self.register_buffer("log_q", log_q, persistent=False)


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
        self.distributions = nn.ModuleDict()
        for branch, items in branch_items.items():
            if distribution == "uniform":
                log_q = torch.full((len(items),), -math.log(len(items)))
            else:
                weight = item_counts[items].double() + 1.0
                log_q = (weight / weight.sum()).log().float()
            self.distributions[branch] = ItemDistribution(log_q)

    def log_q(self, branch: str) -> torch.Tensor:
        return self.distributions[branch].log_q

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
    """(loss_type, num_negatives, negative_distribution, full_loss_tile), or a one-line ValueError
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
    # only the sampled loss draws negatives: a full-loss run on a small catalog must not fail on it
    if loss_type == "sampled" and (isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= largest_valid):
        too_many = isinstance(num, int) and num > largest_valid
        hint = " (or loss_type=full: exact, and cheap on a catalog this small)" if too_many else ""
        raise ValueError(f"num_negatives {num!r} invalid; valid: an integer from 1 to {largest_valid} "
                         f"(branch {smallest} has {largest_valid} items){hint}")
    chunk = config["full_loss_tile"]
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"full_loss_tile {chunk!r} invalid; valid: a positive integer (scores held at once)")
    return loss_type, num, distribution, chunk

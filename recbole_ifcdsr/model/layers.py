"""Layers of IFCDSR-style models: a causal sequence encoder, a frozen item feature table, and length
bucketing so that encoders only work on real items, not on padding.

Why bucketing: a batch pads every sub-sequence to the longest one, and on fk_abxi only 20-45% of the
padded positions of S^X, S^Y and S^{X+Y} hold an item. Rows are grouped by their own length and each
group is encoded at its own width; causal attention never looks past a row's last item, so the outputs
at real positions are the same as with padding (up to float rounding).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from recbole.model.layers import TransformerEncoder
from torch import nn

# A group of rows costs its rows x its width in encoder positions, plus this much for launching the
# group (a few ms of small-kernel overhead on a CPU, about 32 positions of a 256-wide encoder).
GROUP_OVERHEAD_POSITIONS = 32


class SequenceEncoder(nn.Module):
    """Position embedding + LayerNorm + dropout + RecBole's TransformerEncoder; all positions out."""

    def __init__(self, config, hidden_size: int, max_len: int):
        super().__init__()
        self.position_embedding = nn.Embedding(max_len, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.encoder = TransformerEncoder(
            n_layers=config["n_layers"], n_heads=config["n_heads"], hidden_size=hidden_size,
            inner_size=config["inner_size_factor"] * hidden_size, hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"], hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )

    def forward(self, embedded: torch.Tensor, attention_mask: torch.Tensor,
                last: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L, d] at every position; with ``last`` ([B] positions), [B, d] at those positions only."""
        positions = torch.arange(embedded.size(1), device=embedded.device)
        hidden = self.dropout(self.layer_norm(embedded + self.position_embedding(positions)))
        if last is None:
            return self.encoder(hidden, attention_mask, output_all_encoded_layers=False)[-1]
        *below, top = self.encoder.layer
        for layer in below:
            hidden = layer(hidden, attention_mask)
        return layer_output_at(top, hidden, attention_mask, last)


def layer_output_at(layer: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
                    positions: torch.Tensor) -> torch.Tensor:
    """[B, d]: RecBole's ``TransformerLayer`` output at one position per row, with its own weights.

    Why: scoring needs a sequence's vector after its last item only, and a layer's output at one
    position depends on the other positions only through their keys and values. Querying that one
    position skips the query, attention-output and feed-forward work of every other position (most
    of an evaluation pass's encoder cost); the values equal the full layer's at that position up to
    float rounding (tests/test_ifcdsr.py).
    """
    attention, rows = layer.multi_head_attention, torch.arange(hidden.size(0), device=hidden.device)
    at = hidden[rows, positions].unsqueeze(1)  # [B, 1, d]: the queried position's input
    query = attention.transpose_for_scores(attention.query(at)).permute(0, 2, 1, 3)  # [B, h, 1, d_h]
    key = attention.transpose_for_scores(attention.key(hidden)).permute(0, 2, 3, 1)  # [B, h, d_h, L]
    value = attention.transpose_for_scores(attention.value(hidden)).permute(0, 2, 1, 3)  # [B, h, L, d_h]
    scores = torch.matmul(query, key) / attention.sqrt_attention_head_size
    scores = scores + attention_mask[rows, :, positions].unsqueeze(2)  # the queried position's mask row
    probs = attention.attn_dropout(attention.softmax(scores))
    context = torch.matmul(probs, value).permute(0, 2, 1, 3).reshape(at.shape)
    attended = attention.LayerNorm(attention.out_dropout(attention.dense(context)) + at)
    return layer.feed_forward(attended).squeeze(1)


def branch_encoders(config, hidden_size: int, max_len: int, branches: list[str]) -> nn.ModuleDict:
    """One encoder per branch (S^X, S^Y, S^{X+Y}), in ``branches`` order."""
    return nn.ModuleDict({b: SequenceEncoder(config, hidden_size, max_len) for b in branches})


class FrozenTable(nn.Module):
    """A frozen item feature table (never trained) and its encoders.

    ``table`` holds L2-normalised rows, zero for items without a feature; ``mask`` says which items have
    one. Both are buffers: they move with the model and never reach the optimiser.
    """

    def __init__(self, table: torch.Tensor, mask: torch.Tensor, encoders: nn.ModuleDict):
        super().__init__()
        self.register_buffer("table", table)
        self.register_buffer("mask", mask)
        self.encoders = encoders

    @property
    def dim(self) -> int:
        return self.table.size(1)

    @classmethod
    def from_vectors(cls, vectors, mask, encoders_for_dim) -> "FrozenTable":
        mask = torch.as_tensor(mask)
        table = F.normalize(torch.as_tensor(vectors), dim=1) * mask.unsqueeze(1)
        return cls(table, mask, encoders_for_dim(table.size(1)))


class RowLookup(NamedTuple):
    """Rows of a table for the items a batch uses, looked up once.

    Indexing the table itself once per group of rows would make every lookup's backward pass write a
    table-sized gradient; gathering the batch's distinct items once makes that one table-sized write
    per batch, whatever the catalog size.
    """

    ids: torch.Tensor  # sorted distinct item ids
    rows: torch.Tensor  # [len(ids), d]: the table's rows of ``ids``

    @classmethod
    def of(cls, embedding: nn.Embedding, items: torch.Tensor) -> "RowLookup":
        ids = torch.unique(items)
        return cls(ids, embedding(ids))

    def __call__(self, items: torch.Tensor) -> torch.Tensor:
        return self.rows[torch.searchsorted(self.ids, items)]


def length_groups(lengths: list[int], overhead: int = GROUP_OVERHEAD_POSITIONS) -> list[tuple[int, list[int]]]:
    """Rows grouped for encoding as ``[(width, rows)]``, rows of length 0 left out.

    Groups are runs of the distinct lengths in order; the split minimises the padded positions plus
    ``overhead`` per group (exact dynamic programme over at most max-length distinct values).
    """
    by_length: dict[int, list[int]] = {}
    for row, n in enumerate(lengths):
        if n > 0:
            by_length.setdefault(n, []).append(row)
    values = sorted(by_length)
    if not values:
        return []
    counts = [len(by_length[v]) for v in values]
    best = [0.0] * (len(values) + 1)  # best[j]: cost of grouping values[:j]
    cut = [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        rows, best[j] = 0, float("inf")
        for i in range(j, 0, -1):  # group values[i-1 : j], padded to values[j-1]
            rows += counts[i - 1]
            cost = best[i - 1] + rows * values[j - 1] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    groups, j = [], len(values)
    while j > 0:
        i = cut[j]
        groups.append((values[j - 1], [r for v in values[i:j] for r in by_length[v]]))
        j = i
    return groups[::-1]


def scatter_rows(parts: list[torch.Tensor], destinations: list[torch.Tensor], total: int) -> torch.Tensor:
    """Rows of ``parts`` placed at ``destinations`` of a [total, d] tensor (zeros where none lands)."""
    values = torch.cat(parts)
    out = values.new_zeros(total, values.size(1))
    return out.index_copy(0, torch.cat(destinations), values)

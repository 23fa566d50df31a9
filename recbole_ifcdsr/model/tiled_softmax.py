"""Normalisers of the fused softmax over a large item set, computed tile by tile.

The exact loss of a branch needs, per position n, only a few log-sum-exps over the branch's items:

- ``A[n] = logsumexp_j z_id[n, j]`` (ID softmax over every item),
- ``B[n, m] = logsumexp_{j featured in m} z_id[n, j]`` (ID mass on the items table m has a feature for),
- ``C[n, m] = logsumexp_{j featured in m} z_m[n, j]`` (table m's softmax over those items),

with ``z_t = vectors_t @ rows_t.T / temperature``. Everything else in the loss is per position
(``losses.full_nll``). This function computes them over tiles of at most ``tile_scores`` positions x
items and never holds a [positions x items] matrix; the backward pass recomputes each tile's logits
once and adds its share to the gradients of the vectors and the item rows. Memory is a few tiles,
whatever the catalog and the batch; work is one extra logits product over a plain softmax.
"""
from __future__ import annotations

import torch

# Logit of an item outside a sum. Finite, so that an empty sum gives no NaN (such entries are never
# selected); exp(MASKED - max) is exactly 0 in float32.
MASKED = -1.0e30


def _tiles(n_rows: int, n_items: int, tile_scores: int) -> tuple[int, int]:
    rows = max(1, min(n_rows, 1024))
    return rows, max(1, min(n_items, tile_scores // rows))


class _TiledLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tile_scores: int, temperature: float, masks: list, v_id, r_id, *frozen):
        k = len(masks)
        v_frozen, r_frozen = frozen[:k], frozen[k:]
        n, c = v_id.size(0), r_id.size(0)
        row_tile, item_tile = _tiles(n, c, tile_scores)
        a = v_id.new_full((n,), MASKED)
        b = v_id.new_full((n, k), MASKED)
        cc = v_id.new_full((n, k), MASKED)
        for i in range(0, n, row_tile):
            rows = slice(i, i + row_tile)
            for j in range(0, c, item_tile):
                items = slice(j, j + item_tile)
                z_id = v_id[rows] @ r_id[items].T / temperature
                a[rows] = torch.logaddexp(a[rows], torch.logsumexp(z_id, dim=1))
                for m in range(k):
                    has = masks[m][items]
                    z_m = v_frozen[m][rows] @ r_frozen[m][items].T / temperature
                    b[rows, m] = torch.logaddexp(b[rows, m], torch.logsumexp(z_id.masked_fill(~has, MASKED), dim=1))
                    cc[rows, m] = torch.logaddexp(cc[rows, m], torch.logsumexp(z_m.masked_fill(~has, MASKED), dim=1))
        ctx.save_for_backward(v_id, r_id, *v_frozen, *r_frozen, a, b, cc)
        ctx.tile_scores, ctx.temperature, ctx.masks = tile_scores, temperature, masks
        return a, b, cc

    @staticmethod
    def backward(ctx, grad_a, grad_b, grad_c):
        k = len(ctx.masks)
        v_id, r_id, *rest = ctx.saved_tensors
        v_frozen, r_frozen, (a, b, cc) = rest[:k], rest[k: 2 * k], rest[2 * k:]
        needs = ctx.needs_input_grad[3:]
        t = ctx.temperature
        n, c = v_id.size(0), r_id.size(0)
        row_tile, item_tile = _tiles(n, c, ctx.tile_scores)
        grads = [torch.zeros_like(x) if need else None for x, need in zip((v_id, r_id, *v_frozen, *r_frozen), needs)]
        for i in range(0, n, row_tile):
            rows = slice(i, i + row_tile)
            for j in range(0, c, item_tile):
                items = slice(j, j + item_tile)
                z_id = v_id[rows] @ r_id[items].T / t
                g_id = grad_a[rows, None] * torch.exp(z_id - a[rows, None])  # d A / d z_id: the softmax
                for m in range(k):
                    has = ctx.masks[m][items]
                    g_id += torch.where(has, grad_b[rows, m, None] * torch.exp(z_id - b[rows, m, None]), 0.0)
                    z_m = v_frozen[m][rows] @ r_frozen[m][items].T / t
                    g_m = torch.where(has, grad_c[rows, m, None] * torch.exp(z_m - cc[rows, m, None]), 0.0) / t
                    if grads[2 + m] is not None:
                        grads[2 + m][rows] += g_m @ r_frozen[m][items]
                    if grads[2 + k + m] is not None:
                        grads[2 + k + m][items] += g_m.T @ v_frozen[m][rows]
                g_id /= t
                if grads[0] is not None:
                    grads[0][rows] += g_id @ r_id[items]
                if grads[1] is not None:
                    grads[1][items] += g_id.T @ v_id[rows]
        return (None, None, None, *grads)


def tiled_log_sum_exps(v_id: torch.Tensor, r_id: torch.Tensor, frozen: list, temperature: float,
                       tile_scores: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A [N]``, ``B [N, M]``, ``C [N, M]`` of the module docstring. ``frozen``: one
    ``(vectors [N, d_m], rows [C, d_m], featured [C] bool)`` per frozen table m."""
    masks = [f for _, _, f in frozen]
    return _TiledLogSumExp.apply(int(tile_scores), float(temperature), masks, v_id, r_id,
                                 *[v for v, _, _ in frozen], *[r for _, r, _ in frozen])

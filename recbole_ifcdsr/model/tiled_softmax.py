"""The exact loss over a large item set, its gradients computed block by block in the forward pass.

The exact loss of a branch needs, per position n, only a few log-sum-exps over the branch's items:

- ``A[n] = logsumexp_j z_id[n, j]`` (ID softmax over every item),
- ``B[n, m] = logsumexp_{j featured in m} z_id[n, j]`` (ID mass on the items table m has a feature for),
- ``C[n, m] = logsumexp_{j featured in m} z_m[n, j]`` (table m's softmax over those items),

with ``z_t = vectors_t @ rows_t.T / temperature``. The loss of position n is a function of those and of its
target's logits alone (``losses.full_nll`` gives it as ``row_nll``), so once a block of positions has its
log-sum-exps, its share of every gradient is known. :func:`exact_nll` therefore takes each block of
positions through two passes over the items: the first accumulates the log-sum-exps, the second turns
the same logits into gradients (the softmax weighted by the loss's derivatives). When a block's logits over
all items fit in ``tile_scores`` (a block of at least :data:`MIN_KEPT_ROWS` positions), the first pass keeps
them and the second reuses them: three logits-sized products per table (logits, and the gradients of the
position vectors and of the item rows) instead of four when backward recomputes each tile's logits (the
implementation before, 25% fewer multiplications, where nearly all of the loss's time goes;
``bench/exact_loss.py``). Otherwise, on a catalog too large for that, the second pass recomputes them tile
by tile. Either way no [positions x items] matrix is held: the loss's working memory is about three times
``tile_scores`` scores (a block's logits, their gradients, one temporary), plus one gradient the size of each
input, held from the forward pass to backward (for every branch of a batch at once; one item-rows gradient
per branch is what a 1M-item catalog feels). Backward only scales the stored gradients by the loss's upstream
gradient.
"""
from __future__ import annotations

from typing import Callable

import torch

# Logit of an item outside a sum. Finite, so that an empty sum gives no NaN (such entries are never
# selected); exp(MASKED - max) is exactly 0 in float32.
MASKED = -1.0e30
#: the fewest positions per block whose logits over all items are kept between the two passes; with fewer,
#: the products are too thin to run fast, and blocks of up to 1,024 positions recompute their tiles instead
MIN_KEPT_ROWS = 64


def plan_tiles(n_rows: int, n_items: int, n_tables: int, tile_scores: int) -> tuple[int, int, bool]:
    """(positions per block, items per tile, whether a block's logits are kept between its passes), so that
    one tile of every table holds at most ``tile_scores`` scores."""
    kept_rows = tile_scores // max(1, n_items * n_tables)
    if kept_rows >= MIN_KEPT_ROWS or kept_rows >= n_rows:
        return max(1, min(n_rows, kept_rows)), max(1, n_items), True
    rows = max(1, min(n_rows, 1024))
    return rows, max(1, min(n_items, tile_scores // (rows * n_tables))), False


def _log_sum_exps(logits, outside: list, c: int, item_tile: int, like: torch.Tensor, keep: bool):
    """Pass 1 over one block (``like``: its scaled ID vectors): its ``A``, ``B``, ``C`` and, with ``keep``,
    every tile's logits for pass 2."""
    k, size = len(outside), like.size(0)
    a = like.new_full((size,), MASKED)
    b, cc = like.new_full((size, k), MASKED), like.new_full((size, k), MASKED)
    kept = []
    for j in range(0, c, item_tile):
        items = slice(j, j + item_tile)
        z = logits(items)
        a = torch.logaddexp(a, torch.logsumexp(z[0], dim=1))
        for m in range(k):
            b[:, m] = torch.logaddexp(b[:, m], torch.logsumexp(z[0].masked_fill(outside[m][items], MASKED), dim=1))
            featured_only = z[1 + m].masked_fill(outside[m][items], MASKED)
            cc[:, m] = torch.logaddexp(cc[:, m], torch.logsumexp(featured_only, dim=1))
        if keep:
            kept.append(z)
    return a, b, cc, kept


def _logits_gradients(z: list, outside: list, a, b, cc, d_a, d_b, d_c) -> list:
    """d loss / d logits of one tile, per table: the softmaxes weighted by the loss's derivatives in A, B, C
    (masked after the product: exp(z - B) is inf where B is MASKED)."""
    g_z = [(z[0] - a[:, None]).exp_().mul_(d_a)]
    for m, out in enumerate(outside):
        g_z[0].add_((z[0] - b[:, m, None]).exp_().mul_(d_b[:, m, None]).masked_fill_(out, 0.0))
        g_z.append((z[1 + m] - cc[:, m, None]).exp_().mul_(d_c[:, m, None]).masked_fill_(out, 0.0))
    return g_z


class _ExactNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, row_nll: Callable, tile_scores: int, temperature: float, masks: list, need_grad: bool,
                v_id, r_id, *rest):
        k = len(masks)
        vectors, item_rows, targets = (v_id, *rest[:k]), (r_id, *rest[k: 2 * k]), rest[2 * k:]
        n, c = v_id.size(0), r_id.size(0)
        rows_per_block, item_tile, kept = plan_tiles(n, c, 1 + k, tile_scores)
        kept = kept and need_grad
        outside = [~m for m in masks]  # items without a feature in each frozen table

        def zeros_if_needed(xs):
            return [torch.zeros_like(x) if need_grad and x.requires_grad else None for x in xs]

        g_vectors, g_rows, g_targets = zeros_if_needed(vectors), zeros_if_needed(item_rows), zeros_if_needed(targets)
        total = v_id.new_zeros(())
        for i in range(0, n, rows_per_block):
            block = slice(i, i + rows_per_block)
            scaled = [v[block] / temperature for v in vectors]  # 1/temperature once per position, not per score

            def logits(items: slice) -> list:
                return [s @ r[items].T for s, r in zip(scaled, item_rows)]

            a, b, cc, kept_tiles = _log_sum_exps(logits, outside, c, item_tile, scaled[0], kept)
            with torch.enable_grad():  # the block's loss, and its derivatives in A, B, C and the target logits
                leaves = [x.detach().requires_grad_() for x in (a, b, cc, *(t[block] for t in targets))]
                loss = row_nll(block, *leaves).sum()
                derivatives = torch.autograd.grad(loss, leaves, allow_unused=True) if need_grad else None
            total = total + loss.detach()
            if not need_grad:
                continue
            d_a, d_b, d_c, *d_targets = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, derivatives)]
            for g_target, d_target in zip(g_targets, d_targets):
                if g_target is not None:
                    g_target[block] = d_target
            # the logits' 1/temperature, once per position
            d_a, d_b, d_c = d_a[:, None] / temperature, d_b / temperature, d_c / temperature
            for tile_index, j in enumerate(range(0, c, item_tile)):  # pass 2: the gradients
                items = slice(j, j + item_tile)
                z = kept_tiles[tile_index] if kept else logits(items)
                if kept:
                    kept_tiles[tile_index] = None  # freed once used
                g_z = _logits_gradients(z, [out[items] for out in outside], a, b, cc, d_a, d_b, d_c)
                for t, g in enumerate(g_z):
                    if g_vectors[t] is not None:
                        g_vectors[t][block] += g @ item_rows[t][items]
                    if g_rows[t] is not None:
                        g_rows[t][items] += g.T @ vectors[t][block]
        ctx.grads = [g_vectors[0], g_rows[0], *g_vectors[1:], *g_rows[1:], *g_targets]  # in apply's order
        return total

    @staticmethod
    def backward(ctx, grad_total):
        if torch.is_grad_enabled():  # create_graph=True: a derivative of the stored constants would be silently wrong
            raise RuntimeError("the exact loss (loss_type: full) finds its gradients in its forward pass, so it has no "
                               "second derivative (create_graph=True)")
        return (None, None, None, None, None, *(None if g is None else g * grad_total for g in ctx.grads))


def exact_nll(row_nll: Callable, v_id: torch.Tensor, r_id: torch.Tensor, frozen: list, targets: list,
              temperature: float, tile_scores: int) -> torch.Tensor:
    """``sum_n row_nll(...)[n]``, the exact loss over every item, with gradients for every input that needs them.

    ``v_id [N, d]``, ``r_id [C, d]``: the ID vectors of the positions and rows of the items; ``frozen``: one
    ``(vectors [N, d_m], rows [C, d_m], featured [C] bool)`` per frozen table m; ``targets``: tensors [N] (the
    targets' logits, one per table) that ``row_nll`` reads and whose gradients flow back through them;
    ``row_nll(block, A, B, C, *targets)``: the loss of the positions ``block`` (a slice) from their
    ``A [R]``, ``B [R, M]``, ``C [R, M]`` of the module docstring and their slices of ``targets``, [R].
    """
    masks = [f for _, _, f in frozen]
    inputs = (v_id, r_id, *[v for v, _, _ in frozen], *[r for _, r, _ in frozen], *targets)
    need_grad = torch.is_grad_enabled() and any(x.requires_grad for x in inputs)
    return _ExactNLL.apply(row_nll, int(tile_scores), float(temperature), masks, need_grad, *inputs)

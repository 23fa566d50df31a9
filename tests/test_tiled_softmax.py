"""The exact loss computed block by block (model/tiled_softmax.py) equals the plain softmax loss, in value and
in every gradient, whichever way its tiles are planned: a block's logits kept between its two passes or
recomputed, one block or many, a frozen table with some, all or none of the items featured."""
import math

import pytest
import torch

from recbole_ifcdsr.model.losses import full_nll, fused_log_probs
from recbole_ifcdsr.model.tiled_softmax import MIN_KEPT_ROWS, plan_tiles

pytestmark = pytest.mark.unit

N, C, D, D_TEXT = 150, 97, 8, 5
WEIGHTS = {"id": 0.6, "text": 0.4}
TEMPERATURE = 0.1


def inputs(featured_share: float, seed: int = 0):
    """Unit vectors as the model gives them (cosine logits), float64 so that orders of summation do not show."""
    g = torch.Generator().manual_seed(seed)

    def unit(*shape):
        return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)

    featured = torch.rand(C, generator=g) < featured_share
    vectors = {"id": unit(N, D).requires_grad_(), "text": unit(N, D_TEXT).requires_grad_()}
    rows = {"id": unit(C, D).requires_grad_(), "text": unit(C, D_TEXT) * featured[:, None]}
    targets = torch.randint(C, (N,), generator=g)
    return vectors, rows, {"text": featured}, targets


def plain_loss(vectors, rows, featured, targets):
    logits = {t: vectors[t] @ rows[t].T / TEMPERATURE for t in rows}
    return -fused_log_probs(logits, featured, WEIGHTS).gather(1, targets[:, None]).sum()


def value_and_grads(loss_fn, vectors, rows):
    leaves = [vectors["id"], vectors["text"], rows["id"]]
    loss = loss_fn()
    return loss.item(), torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("tile", [10 ** 9, 2 * C * 40, 2 * C * 70, 5_000])
@pytest.mark.parametrize("share", [0.6, 1.0, 0.0])
def test_exact_loss_and_gradients_equal_the_plain_softmax(tile, share):
    """tile 10^9: one block, logits kept; 2C x 40: 40 rows fit but fewer than MIN_KEPT_ROWS, so blocks of
    up to 1,024 rows recompute tiles of 25 items; 2C x 70: three blocks of 70 rows, kept; 5,000: tiles of
    16 items, recomputed. share 0.0: no item has text, the table's log-sum-exps stay MASKED (no NaN)."""
    vectors, rows, featured, targets = inputs(share)
    plain, plain_grads = value_and_grads(lambda: plain_loss(vectors, rows, featured, targets), vectors, rows)
    exact, exact_grads = value_and_grads(
        lambda: full_nll(vectors, targets, rows, featured, WEIGHTS, TEMPERATURE, tile), vectors, rows)
    assert math.isfinite(exact) and exact == pytest.approx(plain, rel=1e-12)
    for got, want in zip(exact_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_the_plans_keep_a_blocks_logits_only_when_enough_rows_fit():
    assert plan_tiles(150, 97, 2, 10 ** 9) == (150, 97, True)
    assert plan_tiles(150, 97, 2, 2 * 97 * 70) == (70, 97, True)
    assert plan_tiles(150, 97, 2, 2 * 97 * 40) == (150, 25, False)  # 40 < MIN_KEPT_ROWS rows would fit
    assert plan_tiles(10, 97, 2, 2 * 97 * 40) == (10, 97, True)  # every row fits: one block, however thin
    assert plan_tiles(5000, 1_000_000, 1, 4_194_304) == (1024, 4096, False)  # a 1M catalog: tiles, recomputed
    assert MIN_KEPT_ROWS == 64


def test_without_gradients_the_loss_is_the_same_and_nothing_is_kept():
    vectors, rows, featured, targets = inputs(0.6)
    with torch.no_grad():
        loss = full_nll(vectors, targets, rows, featured, WEIGHTS, TEMPERATURE, 10 ** 9)
    assert not loss.requires_grad
    assert loss.item() == pytest.approx(plain_loss(vectors, rows, featured, targets).item(), rel=1e-12)


def test_the_upstream_gradient_scales_every_gradient():
    """Backward multiplies the gradients found in the forward pass by the loss's own upstream gradient (the
    branch weights and the loss scaler)."""
    vectors, rows, featured, targets = inputs(0.6)
    loss = full_nll(vectors, targets, rows, featured, WEIGHTS, TEMPERATURE, 10 ** 9)
    once = torch.autograd.grad(loss, [vectors["id"], rows["id"]], retain_graph=True)
    thrice = torch.autograd.grad(3.0 * loss, [vectors["id"], rows["id"]])
    for a, b in zip(once, thrice):
        torch.testing.assert_close(b, 3.0 * a, rtol=1e-12, atol=0)

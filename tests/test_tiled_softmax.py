"""The exact loss computed block by block (model/tiled_softmax.py) equals the plain softmax loss, in value and
in every gradient, whichever way its tiles are planned: a block's logits kept between its two passes or
recomputed, one block or many, a frozen table with some, all or none of the items featured."""
import math

import pytest
import torch

from recbole_ifcdsr.model.losses import full_nll, fused_log_probs
from recbole_ifcdsr.model.tiled_softmax import MIN_KEPT_ROWS, plan_tiles

pytestmark = pytest.mark.unit

N, C = 150, 97
DIMS = {"id": 8, "text": 5, "image": 6}
WEIGHTS = {"id": 0.6, "text": 0.4}
TEMPERATURE = 0.1


def inputs(featured_share: float, tables=("id", "text"), frozen_rows_learn: bool = False, seed: int = 0):
    """Unit vectors as the model gives them (cosine logits), float64 so that orders of summation do not show.
    Each frozen table has its own featured items; ``frozen_rows_learn``: its rows require gradients too."""
    g = torch.Generator().manual_seed(seed)

    def unit(*shape):
        return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)

    featured = {t: torch.rand(C, generator=g) < featured_share for t in tables if t != "id"}
    vectors = {t: unit(N, DIMS[t]).requires_grad_() for t in tables}
    rows = {"id": unit(C, DIMS["id"]).requires_grad_()}
    for t in featured:
        rows[t] = (unit(C, DIMS[t]) * featured[t][:, None]).requires_grad_(frozen_rows_learn)
    targets = torch.randint(C, (N,), generator=g)
    return vectors, rows, featured, targets


def plain_loss(vectors, rows, featured, targets, weights):
    logits = {t: vectors[t] @ rows[t].T / TEMPERATURE for t in rows}
    return -fused_log_probs(logits, featured, weights).gather(1, targets[:, None]).sum()


def value_and_grads(loss_fn, vectors, rows):
    leaves = [*vectors.values(), *(r for r in rows.values() if r.requires_grad)]
    loss = loss_fn()
    return loss.item(), torch.autograd.grad(loss, leaves)


def assert_exact_equals_plain(vectors, rows, featured, targets, weights, tile):
    plain, plain_grads = value_and_grads(lambda: plain_loss(vectors, rows, featured, targets, weights), vectors, rows)
    exact, exact_grads = value_and_grads(
        lambda: full_nll(vectors, targets, rows, featured, weights, TEMPERATURE, tile), vectors, rows)
    assert math.isfinite(exact) and exact == pytest.approx(plain, rel=1e-12)
    assert len(exact_grads) == len(plain_grads)
    for got, want in zip(exact_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tile", [10 ** 9, 2 * C * 40, 2 * C * 70, 5_000])
@pytest.mark.parametrize("share", [0.6, 1.0, 0.0])
def test_exact_loss_and_gradients_equal_the_plain_softmax(tile, share):
    """tile 10^9: one block, logits kept; 2C x 40: 40 rows fit but fewer than MIN_KEPT_ROWS, so blocks of
    up to 1,024 rows recompute tiles of 25 items; 2C x 70: three blocks of 70 rows, kept; 5,000: tiles of
    16 items, recomputed. share 0.0: no item has text, the table's log-sum-exps stay MASKED (no NaN)."""
    assert_exact_equals_plain(*inputs(share), WEIGHTS, tile)


@pytest.mark.parametrize("tile", [10 ** 9, 3 * C * 40])
def test_two_frozen_tables_whose_rows_learn_get_their_own_gradients(tile):
    """Every input of the loss has its own gradient, returned in the order the inputs were given (an ID
    table, then each frozen table's vectors, then their rows): two frozen tables with other widths and other
    featured items tell them apart."""
    vectors, rows, featured, targets = inputs(0.6, ("id", "text", "image"), frozen_rows_learn=True)
    assert_exact_equals_plain(vectors, rows, featured, targets, {"id": 0.5, "text": 0.3, "image": 0.2}, tile)


@pytest.mark.parametrize("weights", [{"id": 1.0}, {"text": 1.0}])
def test_a_single_weighted_table_is_its_own_softmax(weights):
    """One table weighted: the loss is that table's log-probability alone (the ID table's, or a frozen
    table's with the neutral rule), no mixture."""
    tables = ("id",) if "text" not in weights else ("id", "text")
    vectors, rows, featured, targets = inputs(0.6, tables)
    assert_exact_equals_plain(vectors, rows, featured, targets, weights, 2 * C * 70)


def test_the_plans_keep_a_blocks_logits_only_when_enough_rows_fit():
    assert plan_tiles(150, 97, 2, 10 ** 9) == (150, 97, True)
    assert plan_tiles(150, 97, 2, 2 * 97 * 70) == (70, 97, True)
    assert plan_tiles(150, 97, 2, 2 * 97 * 40) == (150, 25, False)  # 40 < MIN_KEPT_ROWS rows would fit
    assert plan_tiles(10, 97, 2, 2 * 97 * 40) == (10, 97, True)  # every row fits: one block, however thin
    assert plan_tiles(5000, 1_000_000, 1, 4_194_304) == (1024, 4096, False)  # a 1M catalog: tiles, recomputed
    assert MIN_KEPT_ROWS == 64


def test_without_gradients_the_loss_is_the_same_and_no_derivative_is_taken(monkeypatch):
    vectors, rows, featured, targets = inputs(0.6)

    def no_derivatives(*args, **kwargs):
        raise AssertionError("a derivative was taken under torch.no_grad")

    with torch.no_grad(), monkeypatch.context() as patch:
        patch.setattr(torch.autograd, "grad", no_derivatives)
        loss = full_nll(vectors, targets, rows, featured, WEIGHTS, TEMPERATURE, 10 ** 9)
    assert not loss.requires_grad
    assert loss.item() == pytest.approx(plain_loss(vectors, rows, featured, targets, WEIGHTS).item(), rel=1e-12)


def test_the_upstream_gradient_scales_every_gradient():
    """Backward multiplies the gradients found in the forward pass by the loss's own upstream gradient (the
    branch weights and the loss scaler)."""
    vectors, rows, featured, targets = inputs(0.6)
    loss = full_nll(vectors, targets, rows, featured, WEIGHTS, TEMPERATURE, 10 ** 9)
    once = torch.autograd.grad(loss, [vectors["id"], rows["id"]], retain_graph=True)
    thrice = torch.autograd.grad(3.0 * loss, [vectors["id"], rows["id"]])
    for a, b in zip(once, thrice):
        torch.testing.assert_close(b, 3.0 * a, rtol=1e-12, atol=0)


def test_a_second_derivative_is_refused_not_wrong():
    """The stored gradients are constants of the forward pass, so a graph of the gradient (create_graph) would
    give silently wrong second derivatives; it is refused in one line instead."""
    vectors, rows, featured, targets = inputs(0.6)
    loss = full_nll(vectors, targets, rows, featured, WEIGHTS, TEMPERATURE, 10 ** 9)
    with pytest.raises(RuntimeError, match=r"finds its gradients in its forward pass, so it has no second derivative"):
        torch.autograd.grad(loss, [vectors["id"]], create_graph=True)

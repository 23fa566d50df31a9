"""The two training losses of IFCDSR / LLMEMF on a real slice of fk_abxi: the tiled exact loss is the
plain softmax loss, the sampled loss over every item is the exact loss, sampling touches only its
candidates, evaluation never samples, and bad settings are one-line errors."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from conftest import build_ifcdsr
from recbole_ifcdsr.model.layers import length_groups
from recbole_ifcdsr.model.losses import full_nll, fused_log_probs, sampled_nll

pytestmark = pytest.mark.integration

SMALL = {"id_embedding_size": 32, "show_progress": False, "state": "WARNING", "train_batch_size": 48,
         "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
REPO = Path(__file__).resolve().parents[1]


def build(data_path, **overrides):
    return build_ifcdsr(data_path, SMALL, **overrides)


def first_batch(config, data):
    return next(iter(TrainDataLoader(config, data.sequence_train_dataset(), None, shuffle=False)))


def loss_and_grads(model, batch):
    model.zero_grad()
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def plain_full_loss(model, batch):
    """The exact loss the plain way: every [positions x items] matrix held, autograd through it."""
    sequences = batch[model.ITEM_SEQ]
    branches = model.forward(sequences, batch[model.ITEM_SEQ_LEN], every_position=True)
    weights, total = model.active_weights(), 0.0
    for branch, weight in model._loss_weights().items():
        out = branches[branch]
        rows, featured = model._item_rows(model.branch_items(branch))
        logits = {t: out.vectors[t] @ rows[t].T / model.temperature for t in rows}
        log_p = fused_log_probs(logits, featured, weights)
        nll = -log_p.gather(1, model._target_index(branch, out.targets).unsqueeze(1)).sum()
        total = total + weight * nll / sequences.size(0)
    return total


@pytest.mark.parametrize("tile, kept, blocks", [(10 ** 9, True, 1), (4_000_000, True, 2), (400_000, False, 1)])
def test_tiled_full_loss_and_gradients_equal_the_plain_softmax(abxi_slice_with_images, tile, kept, blocks, monkeypatch):
    """10^9: each branch in one block, its logits kept between the two passes; 4,000,000 (the default): the
    merged branch in blocks of a few hundred positions, kept; 400,000: fewer than MIN_KEPT_ROWS positions
    would fit, so the tiles (a few hundred items) are recomputed."""
    from recbole_ifcdsr.model import tiled_softmax
    plans = []
    plan = tiled_softmax.plan_tiles
    monkeypatch.setattr(tiled_softmax, "plan_tiles", lambda *a: plans.append((a[0], plan(*a))) or plans[-1][1])
    config, data, model = build(abxi_slice_with_images, loss_type="full", full_loss_tile=tile)
    batch = first_batch(config, data)
    assert model.loss_type == "full" and len(model.frozen) == 1
    tiled, tiled_grads = loss_and_grads(model, batch)
    assert len(plans) == 3 and all(p[2] == kept for _, p in plans)  # one plan per branch
    assert max(-(-n // p[0]) for n, p in plans) >= blocks  # positions / positions per block, rounded up
    model.zero_grad()
    plain = plain_full_loss(model, batch)
    plain.backward()
    plain_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert tiled == pytest.approx(plain.item(), rel=1e-6)
    assert tiled_grads.keys() == plain_grads.keys() and len(plain_grads) > 0
    scale = max(float(g.abs().max()) for g in plain_grads.values())
    for name, grad in plain_grads.items():
        # float32 sums in another order: equal up to 1e-5 of the largest gradient entry
        torch.testing.assert_close(tiled_grads[name], grad, rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")


def test_sampled_loss_with_every_item_as_a_candidate_is_the_exact_loss(abxi_slice_with_images):
    """Fusion and the missing-feature rule over the candidate set are those over the full set: with each
    of the branch's items drawn once (equal expected counts), the sampled loss equals the exact one."""
    config, data, model = build(abxi_slice_with_images)
    sequences = first_batch(config, data)[model.ITEM_SEQ]
    branches = model.forward(sequences, (sequences > 0).sum(1), every_position=True)
    weights = model.active_weights()
    assert set(weights) == {"id", "img"}
    for branch, out in branches.items():
        items = model.branch_items(branch)
        rows, featured = model._item_rows(items)
        exact = full_nll(out.vectors, model._target_index(branch, out.targets), rows, featured, weights,
                         model.temperature, 10 ** 9)
        target_rows, target_featured = model._item_rows(out.targets)
        accidental = out.targets.unsqueeze(1) == items.unsqueeze(0)
        assert (accidental.sum(1) == 1).all()  # each target is among the negatives once, and is removed there
        log_expected = (torch.zeros(len(out.targets)), torch.zeros(len(items)))
        sampled = sampled_nll(out.vectors, target_rows, rows, target_featured, featured, accidental, log_expected,
                              weights, model.temperature)
        assert sampled.item() == pytest.approx(exact.item(), rel=1e-5), branch


def test_sampled_training_touches_only_its_candidates_and_lowers_the_loss(abxi_slice_with_images):
    config, data, model = build(abxi_slice_with_images, loss_type="sampled", num_negatives=8)
    batch = first_batch(config, data)
    drawn = []
    draw = model.sampler.draw
    model.sampler.draw = lambda branch: drawn.append((branch, draw(branch))) or drawn[-1][1]
    model.calculate_loss(batch).backward()
    candidates = set(batch[model.ITEM_SEQ].unique().tolist()) - {0}
    for branch, (positions, _) in drawn:
        candidates |= set(model.branch_items(branch)[positions].tolist())
    touched = set(torch.nonzero(model.item_embedding.weight.grad.abs().sum(1)).flatten().tolist())
    assert len(drawn) == 3 and touched and touched <= candidates
    del model.sampler.draw

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        init_seed(1, True)  # the same negatives every step, so the losses are comparable
        optimiser.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_evaluation_never_samples(abxi_slice_with_images):
    histories = []
    for loss_type in ("full", "sampled"):
        config, data, model = build(abxi_slice_with_images, loss_type=loss_type, num_negatives=4)
        model.eval()
        cases = data.eval_cases("test")
        seq = torch.zeros(6, config["MAX_ITEM_LIST_LENGTH"], dtype=torch.long)
        for i in range(6):
            h = torch.as_tensor(cases.histories[i][-config["MAX_ITEM_LIST_LENGTH"]:])
            seq[i, : len(h)] = h
        with torch.no_grad():
            histories.append(model.full_sort_predict(Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: (seq > 0).sum(1)})))
    assert torch.equal(histories[0], histories[1])


def test_popularity_negatives_are_drawn_by_training_count_plus_one(abxi_slice_dir):
    config, data, model = build(abxi_slice_dir, loss_type="sampled", negative_distribution="popularity", num_negatives=64)
    counts = torch.as_tensor(data.train_item_counts(), dtype=torch.float64)
    for branch in ("x", "y", "xy"):
        items = model.branch_items(branch)
        q = (counts[items] + 1) / (counts[items] + 1).sum()
        torch.testing.assert_close(model.sampler.log_q(branch).exp().double(), q, rtol=1e-5, atol=0)
        positions, log_expected = model.sampler.draw(branch)
        assert positions.shape == (64,) and positions.max() < len(items)
        torch.testing.assert_close(log_expected.double(), (q[positions] * 64).log(), rtol=1e-5, atol=1e-6)
    _, _, uniform = build(abxi_slice_dir, loss_type="sampled", num_negatives=64)
    assert torch.allclose(uniform.sampler.log_q("x"), torch.full((len(uniform.branch_items("x")),), -np.log(11837.0)))


@pytest.mark.parametrize("overrides, message", [
    ({"loss_type": "foo"}, "loss_type 'foo' unknown; valid: full, sampled"),
    ({"negative_distribution": "zipf"}, "negative_distribution 'zipf' unknown; valid: uniform, popularity"),
    ({"num_negatives": 0, "loss_type": "sampled"}, "num_negatives 0 invalid; valid: an integer from 1 to 11837 (branch S^X has 11837 items)"),
    ({"num_negatives": -5, "loss_type": "sampled"}, "num_negatives -5 invalid; valid: an integer from 1 to 11837"),
    ({"num_negatives": 11838, "loss_type": "sampled"}, "num_negatives 11838 invalid; valid: an integer from 1 to 11837 "
                                                       "(branch S^X has 11837 items) (or loss_type=full: exact, and cheap "
                                                       "on a catalog this small)"),
    ({"num_negatives": 28096, "multiple_attention": False, "loss_type": "sampled"},
     "num_negatives 28096 invalid; valid: an integer from 1 to 28095 (branch S^{X+Y} has 28095 items)"),
    ({"num_negatives": "many", "loss_type": "sampled"}, "config_dict num_negatives='many': num_negatives must be an integer"),  # Config's type check
    ({"full_loss_tile": 0}, "full_loss_tile 0 invalid; valid: a positive integer"),
    ({"alpha": 1.5}, "alpha 1.5 invalid; valid: a number from 0 to 1 (the ID table's weight"),
    ({"alpha": -0.1}, "alpha -0.1 invalid; valid: a number from 0 to 1"),
    # the slice has no image store, so alpha=0 leaves no table to score with (was a traceback in the loss)
    ({"alpha": 0.0}, "IFCDSR: no table keeps a positive fusion weight (tables loaded: id; weights {'id': 0.0, 'img': 1.0})"),
])
def test_bad_loss_settings_are_one_line_errors_naming_key_and_valid_values(abxi_slice_dir, overrides, message):
    with pytest.raises(ValueError) as error:
        build(abxi_slice_dir, **overrides)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_full_loss_ignores_num_negatives(abxi_slice_dir):
    """num_negatives is only the sampled loss's: a full-loss run on a small catalog does not fail on it."""
    _, _, model = build(abxi_slice_dir, loss_type="full", num_negatives=10 ** 6)
    assert model.loss_type == "full"


def test_one_branch_takes_as_many_negatives_as_all_items(abxi_slice_dir):
    _, _, model = build(abxi_slice_dir, multiple_attention=False, loss_type="sampled", num_negatives=28095)
    assert model.sampler.num == 28095 and model.sampler.branches == ["xy"]


def test_the_cli_prints_a_bad_loss_type_as_one_error_line(abxi_slice_dir):
    done = subprocess.run([sys.executable, str(REPO / "run_recbole_ifcdsr.py"), "--model=IFCDSR", "--dataset=fk_abxi",
                           f"--data_path={abxi_slice_dir}", "--loss_type=foo", "--show_progress=False", "--state=WARNING"],
                          capture_output=True, text=True, cwd=abxi_slice_dir, timeout=3600)  # a hang guard only
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: IFCDSR cannot be built with these settings: loss_type 'foo' unknown; valid: full, sampled")


def test_length_groups_cover_every_row_once_and_pad_little(abxi_slice_dir):
    config, data, model = build(abxi_slice_dir)
    sequences = first_batch(config, data)[model.ITEM_SEQ]
    for domain in (0, 1, None):
        _, lengths = model.sub_sequence(sequences, domain)
        lengths = (lengths - 1).clamp(min=0).tolist()
        groups = length_groups(lengths)
        rows = [r for _, group in groups for r in group]
        assert sorted(rows) == [r for r, n in enumerate(lengths) if n > 0]
        assert all(width >= lengths[r] for width, group in groups for r in group)
        padded = sum(width * len(group) for width, group in groups)
        assert padded <= 1.25 * sum(lengths)  # trimming to the longest row: 2-4x here


def test_popularity_sampled_loss_estimates_the_exact_loss_and_a_flipped_correction_does_not(abxi_slice_with_images):
    """The logQ correction's sign: with popularity negatives (1,024 of S^X's 11,837 items), the sampled
    loss averaged over 20 seeded draws, less the target column's own correction (a constant, sum of log
    K q(target), that does not depend on the weights), is the exact loss within 1% (measured: 0.16%);
    the same estimate with the correction added instead of subtracted is far off (measured: 41% low),
    as popular negatives then count too much. Equal corrections (uniform, or every item once) cancel in
    the softmax and could not tell the two apart."""
    config, data, model = build(abxi_slice_with_images, loss_type="sampled", negative_distribution="popularity",
                                num_negatives=1024)
    model.eval()
    sequences = first_batch(config, data)[model.ITEM_SEQ]
    weights = model.active_weights()
    with torch.no_grad():
        out = model.forward(sequences, (sequences > 0).sum(1), every_position=True)["x"]
        items = model.branch_items("x")
        rows, featured = model._item_rows(items)
        targets = model._target_index("x", out.targets)
        exact = full_nll(out.vectors, targets, rows, featured, weights, model.temperature, 10 ** 9).item()
        target_rows, target_featured = model._item_rows(out.targets)
        target_log_q = model.sampler.log_expected("x", targets)
        corrected, flipped = [], []
        for seed in range(20):
            torch.manual_seed(seed)
            positions, negative_log_q = model.sampler.draw("x")
            negatives = items[positions]
            negative_rows, negative_featured = model._item_rows(negatives)
            accidental = out.targets.unsqueeze(1) == negatives.unsqueeze(0)
            corrected.append(sampled_nll(out.vectors, target_rows, negative_rows, target_featured, negative_featured,
                                         accidental, (target_log_q, negative_log_q), weights, model.temperature).item())
            # by hand: the same logits with log expected counts added, not subtracted
            log_q = torch.cat([target_log_q.unsqueeze(1), negative_log_q.expand(len(targets), -1)], dim=1)
            logits = {t: torch.cat([(out.vectors[t] * target_rows[t]).sum(-1, keepdim=True),
                                    out.vectors[t] @ negative_rows[t].T], dim=1) / model.temperature + log_q
                      for t in ("id", "img")}
            present = torch.cat([torch.ones_like(accidental[:, :1]), ~accidental], dim=1)
            both = {"img": torch.cat([target_featured["img"].unsqueeze(1),
                                      negative_featured["img"].expand(len(targets), -1)], dim=1)}
            flipped.append(-fused_log_probs(logits, both, weights, present)[:, 0].sum().item())
    offset = target_log_q.sum().item()  # the target column's correction, which the estimate carries as a constant
    gap = abs(np.mean(corrected) - offset - exact) / exact
    flipped_gap = abs(np.mean(flipped) + offset - exact) / exact
    assert set(weights) == {"id", "img"} and len(targets) > 400
    assert gap < 0.01, (gap, flipped_gap)
    assert flipped_gap > 0.1 and flipped_gap > 10 * gap, (gap, flipped_gap)

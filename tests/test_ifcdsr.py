"""IFCDSR on a real slice of fk_abxi: gradients, frozen image table, ablations, the missing-image rule."""
import logging

import numpy as np
import pytest
import torch
from recbole.data.dataloader import TrainDataLoader

from conftest import build_ifcdsr
from recbole_ifcdsr.features.store import FeatureStoreError, load_aligned, save_features
from recbole_ifcdsr.model.losses import fused_log_probs

SMALL = {"id_embedding_size": 32, "show_progress": False, "state": "WARNING", "train_batch_size": 64}


def build(data_path, **overrides):
    return build_ifcdsr(data_path, SMALL, **overrides)


def a_batch(config, data, size=32):
    loader = TrainDataLoader(config, data.sequence_train_dataset(), None, shuffle=False)
    return next(iter(loader))


@pytest.mark.integration
def test_gradients_reach_ids_and_encoders_never_the_image_table(abxi_slice_with_images):
    config, data, model = build(abxi_slice_with_images)
    image = model.frozen["img"]
    assert model.n_encoders == 6
    assert not any(p is image.table for p in model.parameters())  # a buffer: never in the optimiser
    model.calculate_loss(a_batch(config, data)).backward()
    assert model.item_embedding.weight.grad.abs().sum() > 0
    for name in ("x", "y", "xy"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.id_encoders[name].parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in image.encoders[name].parameters())
    assert not image.table.requires_grad and image.table.grad is None


@pytest.mark.integration
def test_loss_is_finite_and_falls_on_real_sequences(abxi_slice_dir):
    config, data, model = build(abxi_slice_dir, temperature=0.1)
    batch = a_batch(config, data)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = model.calculate_loss(batch)
        assert torch.isfinite(loss)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("image_fusion, multiple_attention, encoders", [
    (False, False, 1), (True, False, 2), (True, True, 6), (False, True, 3),
])
@pytest.mark.integration
def test_ablation_switches_set_the_number_of_encoders(abxi_slice_with_images, image_fusion, multiple_attention, encoders):
    _, _, model = build(abxi_slice_with_images, image_fusion=image_fusion, multiple_attention=multiple_attention)
    assert model.n_encoders == encoders


@pytest.mark.integration
def test_items_without_image_are_neither_rewarded_nor_punished(abxi_slice_with_images):
    config, data, model = build(abxi_slice_with_images)
    image, items = model.frozen["img"], model.all_items
    vectors = {"id": torch.nn.functional.normalize(torch.randn(5, 32), dim=-1),
               "img": torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)}
    id_rows = torch.nn.functional.normalize(model.item_embedding.weight[items], dim=-1)
    logits = {"id": vectors["id"] @ id_rows.T / model.temperature, "img": vectors["img"] @ image.table[items].T / model.temperature}
    assert model.active_weights() == pytest.approx({"id": 0.7, "img": 0.3})
    fused_p = fused_log_probs(logits, {"img": image.mask[items]}, model.active_weights()).exp()
    id_p = torch.softmax(logits["id"], dim=-1)
    no_image = ~image.mask[items]
    assert 0 < no_image.sum() < len(items)
    # each item without an image keeps exactly its ID probability; imaged items share the same total mass
    assert torch.allclose(fused_p[:, no_image], id_p[:, no_image], atol=1e-7)
    assert torch.allclose(fused_p[:, ~no_image].sum(1), id_p[:, ~no_image].sum(1), atol=1e-5)
    assert torch.allclose(fused_p.sum(1), torch.ones(5), atol=1e-5)


@pytest.mark.integration
def test_no_images_runs_id_only_with_one_warning(abxi_slice_dir, caplog):
    with caplog.at_level(logging.WARNING):
        _, _, model = build(abxi_slice_dir)
    assert "img" not in model.frozen and model.n_encoders == 3
    assert sum("image branch off" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.integration
def test_scores_rank_only_within_each_items_domain(abxi_slice_dir):
    config, data, model = build(abxi_slice_dir)
    model.eval()
    seq_field, len_field = data.iid_field + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    from recbole.data.interaction import Interaction
    cases = data.eval_cases("test")
    seq = torch.zeros(4, config["MAX_ITEM_LIST_LENGTH"], dtype=torch.long)
    for i in range(4):
        h = torch.as_tensor(cases.histories[i][-47:])
        seq[i, : len(h)] = h
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({seq_field: seq, len_field: (seq > 0).sum(1)}))
    assert torch.isinf(scores[:, 0]).all()
    # per target domain: own-domain branch + l1 * other branch (both softmaxes over that domain's items)
    # + l2 * the merged branch's all-item softmax restricted to the domain
    for d in (0, 1):
        items = model.domain_items(d)
        total = scores[:, items].sum(1)
        assert ((total > 1 + model.lambda1 - 1e-4) & (total < 1 + model.lambda1 + model.lambda2 + 1e-4)).all()


@pytest.mark.integration
@pytest.mark.parametrize("multiple_attention", [True, False])
def test_a_batch_that_names_its_target_domains_gets_the_same_scores_for_them(abxi_slice_with_images,
                                                                             multiple_attention):
    from recbole.data.interaction import Interaction

    from recbole_ifcdsr.constants import TARGET_DOMAIN_FIELD

    config, data, model = build(abxi_slice_with_images, multiple_attention=multiple_attention)
    model.eval()
    seq_field, len_field = data.iid_field + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    cases = data.eval_cases("test")
    n = 40
    seq = torch.zeros(n, config["MAX_ITEM_LIST_LENGTH"], dtype=torch.long)
    for i in range(n):
        h = torch.as_tensor(cases.histories[i][-47:])
        seq[i, : len(h)] = h
    domains = torch.as_tensor(cases.target_domains[:n], dtype=torch.long)
    assert set(domains.tolist()) == {0, 1}
    with torch.no_grad():
        every = model.full_sort_predict(Interaction({seq_field: seq, len_field: (seq > 0).sum(1)}))
        named = model.full_sort_predict(Interaction({seq_field: seq, len_field: (seq > 0).sum(1),
                                                     TARGET_DOMAIN_FIELD: domains}))
    in_target = model.item_domain.unsqueeze(0) == domains.unsqueeze(1)
    in_target[:, 0] = False
    torch.testing.assert_close(named[in_target], every[in_target], rtol=1e-6, atol=0)
    if multiple_attention:  # the other domain is not scored
        assert torch.isinf(named[~in_target]).all() and (named[~in_target] < 0).all()
    else:  # one merged branch scores every item in one softmax anyway
        torch.testing.assert_close(named, every, rtol=0, atol=0)


@pytest.mark.unit
def test_feature_store_rejects_bad_files(tmp_path):
    path = tmp_path / "d.image.npz"
    save_features(path, ["a", "b"], np.ones((2, 4)), np.array([True, False]), {})
    token2id = {"[PAD]": 0, "a": 1, "b": 2}
    vectors, mask, meta = load_aligned(path, token2id, 3)
    assert mask.tolist() == [False, True, False] and meta["dim"] == 4
    with pytest.raises(FeatureStoreError, match="dimension 4, expected 8"):
        load_aligned(path, token2id, 3, dim=8)
    with pytest.raises(FeatureStoreError, match="unknown item tokens"):
        load_aligned(path, {"[PAD]": 0, "a": 1}, 2)
    with pytest.raises(FeatureStoreError, match="NaN or inf"):
        save_features(path, ["a"], np.array([[np.nan, 0, 0, 0]]), np.array([True]), {})


def _compare_devices(abxi_slice_with_images, device: str) -> None:
    """Same weights on CPU and ``device``: same loss and scores; steps on ``device`` lower the loss and
    leave the image table as it was."""
    from recbole.data.interaction import Interaction

    config, data, model = build(abxi_slice_with_images, temperature=0.1, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    batch = a_batch(config, data)
    sequences = batch[model.ITEM_SEQ][:, :-1]  # training rows are one wider than the model's input
    histories = Interaction({model.ITEM_SEQ: sequences, model.ITEM_SEQ_LEN: (sequences > 0).sum(1)})
    cpu_loss = model.calculate_loss(batch).item()
    model.eval()
    with torch.no_grad():
        cpu_scores = model.full_sort_predict(histories)
    model = model.to(device)
    image_before = model.frozen["img"].table.clone()
    with torch.no_grad():
        device_scores = model.full_sort_predict(histories.to(device)).cpu()
    finite = torch.isfinite(cpu_scores)
    assert torch.equal(finite, torch.isfinite(device_scores))
    assert torch.allclose(cpu_scores[finite], device_scores[finite], atol=1e-4)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        optimiser.zero_grad()
        loss = model.calculate_loss(batch.to(device))
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert abs(losses[0] - cpu_loss) < 1e-3 * max(1.0, abs(cpu_loss))
    assert losses[-1] < losses[0]
    assert torch.equal(model.frozen["img"].table, image_before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
@pytest.mark.gpu
@pytest.mark.integration
def test_cuda_matches_cpu_and_trains(abxi_slice_with_images):
    _compare_devices(abxi_slice_with_images, "cuda")


@pytest.mark.integration
@pytest.mark.parametrize("n_layers", [1, 2])
def test_last_item_vectors_equal_the_full_encoders_at_that_position(abxi_slice_with_images, n_layers):
    """Scoring encodes only the position after each sub-sequence's last item (layers.layer_output_at);
    on real sequences that equals running every encoder over every position and reading that one."""
    config, data, model = build(abxi_slice_with_images, n_layers=n_layers)
    model.eval()
    batch = a_batch(config, data)
    # training rows are whole sequences (one item longer than a history): keep each one's first histories' worth
    item_seq = batch[model.ITEM_SEQ][:, : model.max_seq_length]
    item_seq_len = batch[model.ITEM_SEQ_LEN].clamp(max=model.max_seq_length)
    with torch.no_grad():
        got = model.forward(item_seq, item_seq_len)
        for branch, domain in (("x", 0), ("y", 1), ("xy", None)):
            sub, lengths = model.sub_sequence(item_seq, domain)
            present = lengths > 0
            assert torch.equal(got[branch].present, present)
            rows, last = present.nonzero().squeeze(1), lengths[present] - 1
            mask = model.get_attention_mask(sub[rows])
            tables = {"id": (model.item_embedding, model.id_encoders[branch]),
                      "img": (lambda items: model.frozen["img"].table[items], model.frozen["img"].encoders[branch])}
            for table, (embed, encoder) in tables.items():
                every = encoder(embed(sub[rows]), mask)[torch.arange(len(rows)), last]
                want = torch.nn.functional.normalize(every, dim=-1)
                torch.testing.assert_close(got[branch].vectors[table][rows], want, rtol=1e-5, atol=1e-6)
                assert not got[branch].vectors[table][~present].any()  # an empty sub-sequence: zeros

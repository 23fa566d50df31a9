"""LLMEMF on a real slice of fk_abxi: a third, frozen text table on IFCDSR's structure."""
import numpy as np
import pytest
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.utils import init_seed

from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.features.store import feature_path, save_features
from recbole_ifcdsr.model.llmemf import LLMEMF
from recbole_ifcdsr.model.losses import fused_log_probs
from recbole_ifcdsr.registry import get_model

pytestmark = pytest.mark.integration

SMALL = {"id_embedding_size": 32, "show_progress": False, "state": "WARNING", "train_batch_size": 64, "temperature": 0.1,
         "text_feature": "text"}


@pytest.fixture(scope="module")
def with_features(abxi_slice_dir, tmp_path_factory):
    """The real slice plus text (items with a title, 12-d) and image (half the items, 16-d) sidecars."""
    root = tmp_path_factory.mktemp("mm")
    (root / "fk_abxi").mkdir()
    for f in (abxi_slice_dir / "fk_abxi").iterdir():
        (root / "fk_abxi" / f.name).symlink_to(f)
    rows = [line.split("\t") for line in (abxi_slice_dir / "fk_abxi" / "fk_abxi.item").read_text().splitlines()[1:]]
    tokens = [r[0] for r in rows]
    titled = np.array([len(r) > 3 and r[3].strip() != "" for r in rows])
    rng = np.random.default_rng(1)
    save_features(feature_path(root / "fk_abxi", "fk_abxi", "text"), tokens, rng.normal(size=(len(tokens), 12)), titled,
                  {"encoder": "test-random"})
    return root, titled


def build(data_path, **overrides):
    config = Config("LLMEMF", "fk_abxi", config_dict={"data_path": str(data_path), **SMALL, **overrides})
    init_seed(0, True)
    data = CrossDomainSequentialDataset(config)
    return config, data, LLMEMF(config, data)


def test_found_by_name_and_text_table_is_frozen(with_features):
    root, titled = with_features
    assert get_model("LLMEMF") is LLMEMF
    config, data, model = build(root, fusion_weights={"id": 0.7, "img": 0.15, "txt": 0.15})
    assert list(model.frozen) == ["txt"] and model.n_encoders == 6
    text = model.frozen["txt"]
    assert not any(p is text.table for p in model.parameters())
    # no image store: the image weight drops out and ID / text keep their 0.7 : 0.15 ratio
    assert model.active_weights() == pytest.approx({"id": 0.7 / 0.85, "txt": 0.15 / 0.85})
    batch = next(iter(TrainDataLoader(config, data.sequence_train_dataset(), None, shuffle=False)))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    table = text.table.clone()
    losses = []
    for _ in range(5):
        optimiser.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in text.encoders["xy"].parameters())
        optimiser.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert torch.equal(text.table, table) and text.table.grad is None


def test_items_without_text_keep_their_id_probability(with_features):
    root, titled = with_features
    _, _, model = build(root)
    text, items = model.frozen["txt"], model.all_items
    vectors = {"id": torch.nn.functional.normalize(torch.randn(3, 32), dim=-1),
               "txt": torch.nn.functional.normalize(torch.randn(3, 12), dim=-1)}
    id_rows = torch.nn.functional.normalize(model.item_embedding.weight[items], dim=-1)
    logits = {"id": vectors["id"] @ id_rows.T / model.temperature, "txt": vectors["txt"] @ text.table[items].T / model.temperature}
    fused = fused_log_probs(logits, {"txt": text.mask[items]}, model.active_weights()).exp()
    id_only = torch.softmax(logits["id"], dim=-1)
    no_text = ~text.mask[items]
    assert 0 < no_text.sum() < len(items)
    assert torch.allclose(fused[:, no_text], id_only[:, no_text], atol=1e-7)
    assert torch.allclose(fused.sum(1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("weights, message", [
    ({"id": 0.5, "audio": 0.5}, "keys id, img, txt"),
    ({"id": -0.1, "txt": 1.0}, "weights >= 0"),
    ({"id": 0.0, "img": 1.0}, r"LLMEMF: no table keeps a positive fusion weight \(tables loaded: id, txt;"),
])
def test_bad_fusion_weights_are_named(with_features, weights, message):
    root, _ = with_features
    with pytest.raises(ValueError, match=message):
        build(root, fusion_weights=weights)

"""Serving from the self-contained model file: trained on a real slice of fk_abxi, loaded after the
dataset folder is gone, answers match the trained model's own scores."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from recbole.utils import init_seed

from conftest import SMALL_RUN
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.features.store import feature_path, save_features
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr
from recbole_ifcdsr.registry import get_model
from recbole_ifcdsr import compat
from recbole_ifcdsr.serving.recommender import Recommender, RecommendError

TINY = {**SMALL_RUN, "epochs": 1, "id_embedding_size": 16, "text_feature": "text", "item_features": {}}


def train(model: str, source, tmp_path_factory, text: bool = False):
    """Copy the slice, train one epoch there, return (data_path, model file, a real user history)."""
    root = tmp_path_factory.mktemp(model)
    shutil.copytree(source / "fk_abxi", root / "data" / "fk_abxi")
    rows = [line.split("\t") for line in (root / "data/fk_abxi/fk_abxi.item").read_text().splitlines()[1:]]
    if text:
        tokens = [r[0] for r in rows]
        titled = np.array([len(r) > 3 and r[3].strip() != "" for r in rows])
        vectors = np.random.default_rng(1).normal(size=(len(tokens), 12))
        save_features(feature_path(root / "data/fk_abxi", "fk_abxi", "text"), tokens, vectors, titled, {"encoder": "test-random"})
    settings = {**TINY, "data_path": str(root / "data"), "checkpoint_dir": str(root / "saved")}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        run_recbole_ifcdsr(model, "fk_abxi", config_dict=settings)
    inter = (root / "data/fk_abxi/fk_abxi.inter").read_text().splitlines()[1:]
    first_user = inter[0].split("\t")[0]
    history = [line.split("\t")[1] for line in inter if line.split("\t")[0] == first_user]
    return root, root / "saved" / f"{model}-fk_abxi-seed{settings.get('seed', 2020)}-model.pth", history, settings


@pytest.fixture(scope="module", params=["IFCDSR", "LLMEMF", "SASRec"])
def trained(request, abxi_small_dir, tmp_path_factory):
    return (request.param, *train(request.param, abxi_small_dir, tmp_path_factory, text=request.param == "LLMEMF"))


def expected_scores(model: str, settings: dict, best_file, history_ids: list, domain: int):
    """The trained model's own scores (built from the dataset, selected weights) of the domain's items."""
    config = Config(model, "fk_abxi", config_dict=settings)
    data = CrossDomainSequentialDataset(config)
    init_seed(0, True)
    net = get_model(model)(config, data)
    net.load_state_dict(compat.load_checkpoint(best_file)["state_dict"])
    net.eval()
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    kept = history_ids[-max_len:]
    seq = torch.zeros((1, max_len), dtype=torch.long)
    seq[0, : len(kept)] = torch.as_tensor(kept)
    with torch.no_grad():
        scores = net.full_sort_predict({net.ITEM_SEQ: seq, net.ITEM_SEQ_LEN: torch.tensor([len(kept)])})[0]
    items = data.domain_items[domain]
    token = data.field2id_token[data.iid_field]
    return {token[i]: float(scores[i]) for i in items}


@pytest.mark.integration
def test_model_file_serves_without_the_dataset_folder(trained):
    """The issue's Done-when: k items of the asked domain, none from the history, after the data is gone;
    the scores are the trained model's own (selected weights of that domain)."""
    model, root, path, history, settings = trained
    config = Config(model, "fk_abxi", config_dict=settings)
    data = CrossDomainSequentialDataset(config)
    token2id = data.field2token_id[data.iid_field]
    ids = [token2id[t] for t in history]
    domain_of = {t: "XY"[data.item_domain[token2id[t]]] for t in history}
    expected = {name: expected_scores(model, settings, root / "saved" / f"{model}-fk_abxi-seed2020-best_{name}.pth", ids, d)
                for d, name in enumerate("XY")}
    titles = {line.split("\t")[0]: (line.split("\t") + [""] * 4)[3]
              for line in (root / "data/fk_abxi/fk_abxi.item").read_text().splitlines()[1:]}
    x_items = {t for t, i in token2id.items() if i and data.item_domain[i] == 0}
    del data
    shutil.rmtree(root / "data")

    recommender = Recommender.load(path)
    for name, domain_name in (("X", "Grocery"), ("Y", "Kitchen")):
        rec = recommender.recommend(history + ["NOT-AN-ITEM"], name, k=10)
        assert rec.unknown == ["NOT-AN-ITEM"]
        assert len(rec.items) == 10
        assert all(r["domain"] == domain_name for r in rec.items)
        assert all((r["item"] in x_items) == (name == "X") for r in rec.items)
        assert not {r["item"] for r in rec.items} & set(history)
        assert all(r["title"] == titles[r["item"]] for r in rec.items)
        want = sorted(((s, t) for t, s in expected[name].items() if t not in history), reverse=True)[:10]
        assert [r["score"] for r in rec.items] == pytest.approx([s for s, _ in want], rel=1e-5)
    # seen items come back when asked for, by the domain's name too
    seen = recommender.recommend(history, "kitchen", k=len(expected["Y"]), exclude_seen=False)
    assert {r["item"] for r in seen.items} >= {t for t in history if domain_of[t] == "Y"}


@pytest.mark.integration
def test_batch_form_equals_single_requests(trained):
    model, root, path, history, _ = trained
    recommender = Recommender.load(path)
    histories = [history, history[:3], history[-2:] + ["UNKNOWN"]]
    batch = recommender.recommend_batch(histories, "Y", k=5)
    for h, rec in zip(histories, batch):
        single = recommender.recommend(h, "Y", k=5)
        assert [r["item"] for r in rec.items] == [r["item"] for r in single.items]
        assert [r["score"] for r in rec.items] == pytest.approx([r["score"] for r in single.items], rel=1e-5)
    assert batch[2].unknown == ["UNKNOWN"]

"""Cold-start items: the neutral rule the other way round (an untrained ID row neither rewards nor
punishes), checked against its closed form, and items added to a served LLMEMF model."""
import json
import math

import pytest
import torch

from recbole_ifcdsr.model.losses import fused_log_probs
from recbole_ifcdsr.serving.cli import main
from recbole_ifcdsr.serving.recommender import Recommender, RecommendError
from test_serving import trained_model


def closed_form(id_logits, txt_logits, featured, untrained, w_id, w_txt):
    """One frozen table: the fixed point solved by hand. q: ID softmax over trained items; a: text
    softmax over featured items; A = a(new), Q = q(featured and trained); the new items' ID-slot mass
    m solves m = A * (Q + m (1 - Q)), so m = A Q / (1 - A + A Q)."""
    q = torch.softmax(id_logits.masked_fill(untrained, -math.inf), -1)
    a = torch.softmax(txt_logits.masked_fill(~featured, -math.inf), -1)
    A, Q = a[untrained].sum(), q[featured & ~untrained].sum()
    m = A * Q / (1 - A + A * Q)
    slot = torch.where(untrained, a * (m / A), q * (1 - m))
    p_txt = torch.where(featured, a * slot[featured].sum(), slot)
    return w_id * slot + w_txt * p_txt


@pytest.mark.unit
def test_untrained_rule_matches_its_closed_form_and_ignores_the_id_row():
    g = torch.Generator().manual_seed(0)
    id_logits, txt_logits = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    featured = torch.tensor([True, True, False, True, False, True, True])
    untrained = torch.tensor([False, False, False, False, False, True, True])
    weights = {"id": 0.5, "txt": 0.5}
    got = fused_log_probs({"id": id_logits, "txt": txt_logits}, {"txt": featured}, weights, untrained=untrained).exp()
    assert got.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(got, closed_form(id_logits, txt_logits, featured, untrained, 0.5, 0.5), atol=1e-12)
    # the untrained ID logits take no part: any value gives the same probabilities, bit for bit
    other = id_logits.clone()
    other[untrained] = torch.tensor([50.0, -50.0], dtype=torch.float64)
    again = fused_log_probs({"id": other, "txt": txt_logits}, {"txt": featured}, weights, untrained=untrained).exp()
    assert torch.equal(got, again)
    # nothing untrained: the rule is the model's usual one exactly
    none = torch.zeros(7, dtype=torch.bool)
    assert torch.equal(fused_log_probs({"id": id_logits, "txt": txt_logits}, {"txt": featured}, weights, untrained=none),
                       fused_log_probs({"id": id_logits, "txt": txt_logits}, {"txt": featured}, weights))


@pytest.mark.unit
def test_untrained_items_need_a_frozen_table():
    with pytest.raises(ValueError, match="need a frozen table with fusion weight > 0"):
        fused_log_probs({"id": torch.zeros(3)}, {}, {"id": 1.0}, untrained=torch.tensor([False, False, True]))


@pytest.fixture(scope="module")
def llmemf(abxi_small_dir, tmp_path_factory):
    _, root, path, history, _ = trained_model("LLMEMF", abxi_small_dir, tmp_path_factory)
    return path, history


@pytest.mark.integration
def test_added_items_are_recommendable_and_their_id_row_is_never_read(llmemf):
    path, history = llmemf
    recommender = Recommender.load(path)
    model = recommender.models["Y"]
    titled_y = [int(i) for i in recommender.catalog.domain_items[1] if bool(model.frozen["txt"].mask[i])]
    twin = titled_y[0]
    vector = model.frozen["txt"].table[twin].tolist()
    added = recommender.add_items([{"item": "NEW-Y", "domain": "Kitchen", "title": "a new pan", "vectors": {"text": vector}}])
    assert added == ["NEW-Y"]
    everything = recommender.recommend(history, "Y", k=len(recommender.catalog.domain_items[1]))
    ranked = {r["item"]: r for r in everything.items}
    assert ranked["NEW-Y"]["title"] == "a new pan" and ranked["NEW-Y"]["domain"] == "Kitchen"
    assert all(math.isfinite(r["score"]) for r in everything.items)
    # probabilities of the merged branch still sum to one over all items, new one included
    token2id = recommender.catalog.field2token_id["item_id"]
    ids = [token2id[t] for t in history][-model.max_seq_length:]
    seq = torch.zeros((1, model.max_seq_length), dtype=torch.long)
    seq[0, : len(ids)] = torch.as_tensor(ids)
    with torch.no_grad():
        branches = model.forward(seq, torch.tensor([len(ids)]))
        assert model._branch_probs(branches["xy"], model.all_items).sum().item() == pytest.approx(1.0, abs=1e-5)
        # its ID row is a placeholder no score reads: overwrite it and nothing moves
        model.item_embedding.weight[token2id["NEW-Y"]] = 100.0
    again = recommender.recommend(history, "Y", k=len(recommender.catalog.domain_items[1]))
    assert again.items == everything.items


@pytest.mark.parametrize("items, message", [
    ([{"item": "B0001", "domain": "X", "vectors": {}}], "new item 1 ('B0001'): no frozen table"),
    ([{"item": "N1", "domain": "Books"}], "unknown domain 'Books'"),
    ([{"item": "N1", "domain": "X", "vectors": {"text": [1.0, 2.0]}}], "new item 'N1': text vector must be 12 finite numbers"),
    ([{"item": "N1", "domain": "X"}], "LLMEMF cannot add items: 1 new items have no row in a frozen table"),
    ([{"item": "N1", "domain": "X", "title": "tea"}], "names no encoder under item_features"),
])
@pytest.mark.integration
def test_bad_new_items_are_named(llmemf, items, message):
    path, _ = llmemf
    recommender = Recommender.load(path)
    if items[0]["item"] == "B0001":  # an existing token
        items[0]["item"] = recommender.catalog.tokens[1]
        message = f"new item 1: '{recommender.catalog.tokens[1]}' is already in the catalog"
    with pytest.raises(RecommendError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recommender.add_items(items)


@pytest.mark.integration
def test_sasrec_cannot_score_new_items(abxi_small_dir, tmp_path_factory):
    _, _, path, _, _ = trained_model("SASRec", abxi_small_dir, tmp_path_factory)
    with pytest.raises(RecommendError, match="SASRec has no frozen content table"):
        Recommender.load(path).add_items([{"item": "N1", "domain": "X", "title": "tea"}])


@pytest.mark.e2e
def test_cli_new_items_tsv(llmemf, tmp_path, capsys):
    """--new_items with titles: this model's text store was written by hand (no encoder spec), so a title
    cannot be encoded and the command says so in one line."""
    path, history = llmemf
    tsv = tmp_path / "items.tsv"
    tsv.write_text("item\tdomain\ttitle\nNEW-1\tY\tstainless pan\n")
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "Y", "--new_items", str(tsv)]) == 2
    assert "names no encoder under item_features; give the new items' text vectors instead of titles" in capsys.readouterr().err
    tsv.write_text("item\ttitle\nNEW-1\tpan\n")
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "Y", "--new_items", str(tsv)]) == 2
    assert capsys.readouterr().err == f"error: {tsv}:1: header needs columns item and domain (and optionally title, text); missing ['domain']\n"


@pytest.mark.slow  # MiniLM encodes the slice's 1,278 titles first (about a minute on 2 shared cores)
@pytest.mark.e2e
def test_new_item_titles_go_through_the_stores_own_encoder(abxi_small_dir, tmp_path_factory, tmp_path, capsys):
    """LLMEMF with its default MiniLM text store: a new item titled like an existing one gets that item's
    text row, so the title was encoded exactly as the store was."""
    from test_serving import TINY, train

    settings_without_store = {k: v for k, v in TINY.items() if k not in ("text_feature", "item_features")}
    import test_serving
    original = test_serving.TINY
    test_serving.TINY = settings_without_store  # the model YAML's text_minilm store, built on first use
    try:
        root, path, history, _ = train("LLMEMF", abxi_small_dir, tmp_path_factory)
    finally:
        test_serving.TINY = original
    recommender = Recommender.load(path)
    model = recommender.models["Y"]
    existing = next(i for i in recommender.catalog.domain_items[1].tolist() if recommender.catalog.titles[i])
    title = recommender.catalog.titles[existing]
    recommender.add_items([{"item": "NEW-TWIN", "domain": "Y", "title": title}])
    new_id = recommender.catalog.field2token_id["item_id"]["NEW-TWIN"]
    assert torch.allclose(model.frozen["txt"].table[new_id], model.frozen["txt"].table[existing], atol=1e-5)

    tsv = tmp_path / "items.tsv"
    tsv.write_text(f"item\tdomain\ttitle\nNEW-1\tY\t{title}\n")
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "Y", "--k", "5000",
                 "--new_items", str(tsv)]) == 2  # k larger than the domain (693 + 1)
    err = capsys.readouterr().err  # (the encoder's own loading bar comes first)
    assert err.splitlines()[-1] == "error: k must be an integer from 1 to 694 (the items of domain Y), got 5000"
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "Y", "--k", "694",
                 "--new_items", str(tsv)]) == 0
    assert "NEW-1" in {r["item"] for r in json.loads(capsys.readouterr().out)["items"]}

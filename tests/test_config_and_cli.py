"""Config layering, registry, clear errors for bad names, and one real end-to-end CLI run."""
import json
import subprocess
import sys

import pytest

from recbole_ifcdsr.config import Config
from recbole_ifcdsr.model.pop import Pop
from recbole_ifcdsr.paths import REPO_ROOT
from recbole_ifcdsr.registry import UnknownNameError, get_model, get_trainer, model_names
from recbole_ifcdsr.trainer import CrossDomainTrainer
from recbole.model.sequential_recommender import SASRec

CLI = [sys.executable, str(REPO_ROOT / "run_recbole_ifcdsr.py")]


@pytest.mark.unit
def test_registry_ours_first_then_recboles():
    assert get_model("Pop") is Pop  # ours shadows RecBole's general Pop
    assert get_model("SASRec") is SASRec
    assert {"GRU4Rec", "SASRec", "SRGNN", "Pop"} <= set(model_names())
    assert get_trainer(None, "SASRec") is CrossDomainTrainer


@pytest.mark.unit
def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"Unknown model 'SASRecc'\. Valid models: .*GRU4Rec.*SASRec"):
        get_model("SASRecc")


@pytest.mark.unit
def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"Unknown dataset 'ml-1m'\. Valid datasets: fk_abxi, fk_llmcdsr"):
        Config("SASRec", "ml-1m")


@pytest.mark.unit
def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError, match=r"Unknown protocol 'uni999'\. Valid protocols: sampled, full, both"):
        Config("SASRec", "fk_abxi", config_dict={"protocol": "uni999"})


@pytest.mark.unit
def test_precedence_recbole_then_ours_then_files_then_dict(tmp_path):
    base = Config("SASRec", "fk_abxi")
    assert base["MAX_ITEM_LIST_LENGTH"] == 47  # ours (dataset yaml) over RecBole's 50
    assert base["train_batch_size"] == 256  # our overall.yaml over RecBole's 2048
    assert base["hidden_size"] == 64  # RecBole's model yaml still applies
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("train_batch_size: 128\nlearning_rate: 0.01\n")
    second.write_text("learning_rate: 0.02\n")
    config = Config("SASRec", "fk_abxi", config_file_list=[str(first), str(second)], config_dict={"train_batch_size": 64})
    assert config["learning_rate"] == 0.02 and config["train_batch_size"] == 64


@pytest.mark.parametrize("args, message", [
    (["--model=NoSuchModel", "--dataset=fk_abxi"], "Unknown model 'NoSuchModel'"),
    (["--model=SASRec", "--dataset=nope"], "Unknown dataset 'nope'"),
    (["--model=SASRec", "--dataset=fk_abxi", "--protocol=uni999"], "Unknown protocol 'uni999'"),
])
@pytest.mark.e2e
def test_cli_bad_names_one_line_error(args, message):
    done = subprocess.run(CLI + args, capture_output=True, text=True)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


@pytest.mark.e2e
def test_cli_end_to_end_on_a_real_slice(abxi_slice_dir, tmp_path):
    results = tmp_path / "out.json"
    done = subprocess.run(CLI + ["--model=GRU4Rec", "--dataset=fk_abxi", f"--data_path={abxi_slice_dir}",
                                 "--epochs=2", "--seed=7", f"--checkpoint_dir={tmp_path / 'saved'}",
                                 "--show_progress=False", f"--results_file={results}", "--protocol=sampled"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(results.read_text())
    assert (out["model"], out["dataset"], out["protocol"], out["seed"]) == ("GRU4Rec", "fk_abxi", "sampled", 7)
    assert set(out["valid"]) == {"X", "Y"} and set(out["test"]) == {"X", "Y"}
    assert set(out["test"]["X"]) == {"MRR", "NDCG@5", "NDCG@10", "HR@1", "HR@5", "HR@10"}
    assert out["epochs_run"] == 2 and set(out["best_epoch"]) == {"X", "Y"}
    assert out["config"]["MAX_ITEM_LIST_LENGTH"] == 47
    assert "| sampled | test | Grocery |" in done.stderr + done.stdout
    assert (tmp_path / "saved" / "GRU4Rec-fk_abxi-seed7-last.pth").is_file()


@pytest.mark.integration
def test_resume_continues_from_the_last_checkpoint(abxi_slice_dir, tmp_path):
    from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

    common = {"data_path": str(abxi_slice_dir), "checkpoint_dir": str(tmp_path), "show_progress": False,
              "state": "WARNING", "seed": 3, "cdsr_selection": {"mode": "joint", "metric": "MRR", "improve": "ge",
                                                                "warmup_epochs": 0, "patience": 61}}
    first = run_recbole_ifcdsr("GRU4Rec", "fk_abxi", config_dict={**common, "epochs": 1}, saved=True)
    assert first["epochs_run"] == 1
    second = run_recbole_ifcdsr("GRU4Rec", "fk_abxi", config_dict={**common, "epochs": 2, "resume": True}, saved=True)
    assert second["epochs_run"] == 2
    # epoch 0 was not trained again: its validation result is carried over from the first run unchanged
    assert second["train_seconds"] >= first["train_seconds"]
    state = __import__("recbole_ifcdsr.compat", fromlist=["load_checkpoint"]).load_checkpoint(
        tmp_path / "GRU4Rec-fk_abxi-seed3-last.pth")
    assert [h["epoch"] for h in state["history"]] == [0, 1]
    assert state["history"][0]["valid"] == first_valid(first)


def first_valid(result):
    return {p: {d: result[p]["valid"][d] for d in ("X", "Y")} for p in ("sampled", "full")}


@pytest.mark.unit
def test_selection_patience_shortens_only_the_recipes_patience():
    """One setting shortens every dataset's recipe the same way (issue 15's budget): patience changes, the
    recipe's mode, metric, comparison and warm-up stay."""
    abxi = Config("IFCDSR", "fk_abxi", config_dict={"selection_patience": 10})
    assert abxi["cdsr_selection"] == {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 10, "patience": 10}
    llmcdsr = Config("IFCDSR", "fk_llmcdsr", config_file_list=[str(REPO_ROOT / "properties" / "budget_converge.yaml")])
    assert llmcdsr["cdsr_selection"] == {"mode": "per_domain", "metric": "HR@10", "improve": "gt", "warmup_epochs": 0,
                                         "patience": 10}
    assert llmcdsr["max_train_cpu_minutes"] == 120
    assert Config("IFCDSR", "fk_abxi")["cdsr_selection"]["patience"] == 61


@pytest.mark.unit
def test_selection_warmup_replaces_only_the_recipes_warmup():
    """Issue 15's budget validates from the first epoch on both datasets: the warm-up changes, the rest of
    each recipe stays; 0 is a valid warm-up."""
    abxi = Config("IFCDSR", "fk_abxi", config_dict={"selection_warmup": 0})
    assert abxi["cdsr_selection"] == {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 0, "patience": 61}
    converge = Config("IFCDSR", "fk_abxi", config_file_list=[str(REPO_ROOT / "properties" / "budget_converge.yaml")])
    assert converge["cdsr_selection"] == {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 0,
                                          "patience": 10}
    assert Config("IFCDSR", "fk_llmcdsr", config_dict={"selection_warmup": 3})["cdsr_selection"]["warmup_epochs"] == 3
    assert Config("IFCDSR", "fk_abxi")["cdsr_selection"]["warmup_epochs"] == 10


@pytest.mark.unit
@pytest.mark.parametrize("key,value,least", [("selection_patience", 0, 1), ("selection_patience", -3, 1),
                                             ("selection_patience", 2.5, 1), ("selection_patience", "ten", 1),
                                             ("selection_patience", True, 1), ("selection_warmup", -1, 0),
                                             ("selection_warmup", 1.5, 0), ("selection_warmup", False, 0)])
def test_a_bad_selection_override_is_one_line(key, value, least):
    from recbole_ifcdsr.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^{key} .* invalid; valid: an integer >= {least} ") as error:
        Config("IFCDSR", "fk_abxi", config_dict={key: value})
    assert "\n" not in str(error.value)

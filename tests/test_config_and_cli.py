"""Config layering, registry, clear errors for bad names, and one real end-to-end CLI run."""
import json
import subprocess
import sys

import pytest

from recbole_ifcdsr.config import Config
from recbole_ifcdsr.errors import ConfigError
from recbole_ifcdsr.model.pop import Pop
from recbole_ifcdsr.paths import REPO_ROOT
from recbole_ifcdsr.registry import USER_EMBEDDING_MODELS, UnknownNameError, get_model, get_trainer, model_names
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
    assert Config("IFCDSR", "fk_abxi")["cdsr_selection"]["patience"] == 62  # ABXI stops at count > es_p = 61


@pytest.mark.unit
def test_selection_warmup_replaces_only_the_recipes_warmup():
    """Issue 15's budget validates from the first epoch on both datasets: the warm-up changes, the rest of
    each recipe stays; 0 is a valid warm-up."""
    abxi = Config("IFCDSR", "fk_abxi", config_dict={"selection_warmup": 0})
    assert abxi["cdsr_selection"] == {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 0, "patience": 62}
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
    with pytest.raises(ConfigError, match=rf"^{key} .* invalid; valid: an integer >= {least} ") as error:
        Config("IFCDSR", "fk_abxi", config_dict={key: value})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("argv, message", [
    (["--max_train_cpu_minute=10"], "--max_train_cpu_minute=10: unknown setting 'max_train_cpu_minute' (no property "
                                    "file of RecBole or the plug-in defines it); did you mean max_train_cpu_minutes?"),
    (["--selection_patiense=5"], "unknown setting 'selection_patiense'"),
])
@pytest.mark.unit
def test_a_misspelt_setting_is_refused_where_the_user_named_it(argv, message):
    """--max_train_cpu_minute=10 ran the whole 500-epoch recipe without a budget, and said nothing."""
    with pytest.raises(ValueError) as info:
        Config("IFCDSR", "fk_abxi", argv=argv)
    assert message in str(info.value)
    with pytest.raises(ValueError, match="config_dict selection_patiense=5: unknown setting"):
        Config("IFCDSR", "fk_abxi", config_dict={"selection_patiense": 5})


@pytest.mark.unit
def test_an_unknown_key_of_a_config_file_is_warned_about(tmp_path, caplog):
    """A config file may hold a model's own settings, so its unknown keys are warned about, not refused; keys any
    property file defines (RecBole's models', other datasets' recipes) are known."""
    own = tmp_path / "mine.yaml"
    own.write_text("my_models_width: 3\nhidden_size: 32\ncdsr_recipe: leave_one_out\n")
    with caplog.at_level("WARNING", logger="recbole_ifcdsr.config"):
        config = Config("IFCDSR", "fk_abxi", config_file_list=[str(own)])
    assert config["my_models_width"] == 3
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith(f"{own}: my_models_width: unknown setting 'my_models_width' "
                                                     f"(no property file of RecBole or the plug-in defines it)")
    # ... and the command line may then set it again (it was refused as unknown)
    assert Config("IFCDSR", "fk_abxi", config_file_list=[str(own)], argv=["--my_models_width=4"])["my_models_width"] == 4


@pytest.mark.unit
def test_a_partial_recipe_dict_keeps_the_recipes_other_fields():
    """RecBole's merge replaced the whole dict: {'patience': 5} on fk_llmcdsr selected on joint MRR with >=."""
    llmcdsr = Config("IFCDSR", "fk_llmcdsr", argv=["--cdsr_selection={'patience': 5}"])
    assert llmcdsr["cdsr_selection"] == {"mode": "per_domain", "metric": "HR@10", "improve": "gt", "warmup_epochs": 0,
                                         "patience": 5}
    abxi = Config("IFCDSR", "fk_abxi", argv=["--cdsr_negatives={'num': 99}"])
    assert abxi["cdsr_negatives"] == {**Config("IFCDSR", "fk_abxi")["cdsr_negatives"], "num": 99}
    with pytest.raises(ValueError, match=r"--cdsr_negatives: cdsr_negatives: unknown field 'sede'; fields: num, "
                                         r"replacement, exclude"):
        Config("IFCDSR", "fk_abxi", argv=["--cdsr_negatives={'sede': 3}"])
    assert Config("IFCDSR", "fk_abxi", argv=["--cdsr_selection=None"])["cdsr_selection"] == \
        Config("IFCDSR", "fk_abxi")["cdsr_selection"]  # None keeps the recipe's
    with pytest.raises(ValueError, match=r"--cdsr_selection: cdsr_selection 'best' must be a mapping of mode, metric"):
        Config("IFCDSR", "fk_abxi", argv=["--cdsr_selection=best"])


@pytest.mark.parametrize("setting, message", [
    ("--cdsr_selection={'metrc': 'HR@10'}", "cdsr_selection: unknown field 'metrc'; fields: mode, metric, improve, "
                                            "warmup_epochs, patience"),
    ("--cdsr_selection={'metric': 'NDCG@20'}", "cdsr_selection.metric 'NDCG@20' is not among the evaluated "
                                               "cdsr_metrics (MRR, "),
    ("--cdsr_selection={'mode': 'best'}", "cdsr_selection.mode 'best' unknown; valid: joint, per_domain"),
    ("--cdsr_selection={'improve': 'gte'}", "cdsr_selection.improve 'gte' unknown; valid: ge, gt"),
    ("--cdsr_selection={'patience': 0}", "cdsr_selection.patience 0 invalid; valid: an integer >= 1 or ~ (never stop "
                                         "early)"),
    ("--cdsr_selection={'patience': 2.7}", "cdsr_selection.patience 2.7 invalid"),
    ("--cdsr_selection={'patience': '5'}", "cdsr_selection.patience '5' invalid"),
    ("--cdsr_selection={'warmup_epochs': -4}", "cdsr_selection.warmup_epochs -4 invalid; valid: an integer >= 0"),
    ("--max_train_cpu_minutes=-2", "max_train_cpu_minutes must be a number of minutes >= 0 (0: one batch), or ~"),
    ("--max_train_minutes=abc", "max_train_minutes must be a number of minutes >= 0"),
    ("--max_train_minutes=True", "max_train_minutes must be a number of minutes >= 0"),
    ("--eval_step=0", "eval_step must be an integer >= 1 (epochs between validations)"),
])
@pytest.mark.unit
def test_a_bad_run_setting_is_refused_before_any_data_loads(setting, message):
    """Each was accepted (a truncated or negative count, a negative budget) or failed only at the first validation
    or batch, after the data had loaded; the message names the setting as given."""
    with pytest.raises(ValueError) as info:
        Config("IFCDSR", "fk_abxi", argv=[setting])
    assert message in str(info.value) and setting.partition("=")[0] in str(info.value)


@pytest.mark.unit
def test_a_zero_minute_budget_is_one_batch():
    assert Config("IFCDSR", "fk_abxi", argv=["--max_train_minutes=0"])["max_train_minutes"] == 0  # tests use it


@pytest.mark.unit
def test_a_warm_up_as_long_as_training_is_warned_about(caplog):
    """fk_abxi's 10 warm-up epochs with --epochs=5: only the forced last validation happens, which 'selects' it."""
    with caplog.at_level("WARNING", logger="recbole_ifcdsr.config"):
        Config("IFCDSR", "fk_abxi", argv=["--epochs=5"])
        Config("IFCDSR", "fk_abxi", argv=["--epochs=11"])
    assert [r.getMessage() for r in caplog.records] == [
        "the selection's warm-up (10 epochs) is not shorter than epochs (5): only the last epoch is validated, so it "
        "is the one selected"]


@pytest.mark.unit
def test_run_takes_the_model_and_dataset_its_config_files_name(tmp_path, capsys):
    """The parser's defaults (SASRec, fk_abxi) beat a config file's model and dataset."""
    from recbole_ifcdsr.run import main, named_in_files

    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("model: IFCDSR\ndataset: fk_llmcdsr\n")
    second.write_text("model: NoSuchModel\n")
    assert named_in_files([str(first)], "model") == "IFCDSR" and named_in_files([str(first)], "dataset") == "fk_llmcdsr"
    assert named_in_files([str(first), str(second)], "model") == "NoSuchModel" and named_in_files(None, "model") is None
    assert main([f"--config_files={first},{second}"]) == 2
    assert "Unknown model 'NoSuchModel'" in capsys.readouterr().err


@pytest.mark.parametrize("model", USER_EMBEDDING_MODELS)
@pytest.mark.unit
def test_a_user_embedding_model_is_refused_where_evaluated_users_are_held_out(model):
    """On a user_split recipe no validation or test user was trained on: FPMC & co. would score them with random
    user vectors (0 of fk_llmcdsr's 960 validation users occur in its training file). leave_one_out is fine."""
    with pytest.raises(ConfigError, match=rf"^{model} learns an embedding per training user, but dataset "
                                          r"fk_llmcdsr's recipe \(user_split\) validates and tests users held out"):
        Config(model, "fk_llmcdsr", config_dict={"state": "WARNING"})
    assert Config(model, "fk_abxi", config_dict={"state": "WARNING"})["model"] == model

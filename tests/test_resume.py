"""Resume: an interrupted run continues bit for bit as if it had never stopped, and a checkpoint of
another run (other data, settings or shapes), a truncated one or an old one is refused in one line."""
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_ifcdsr import checkpoint, compat
from recbole_ifcdsr.errors import CheckpointError, CheckpointMismatchError
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr
from recbole_ifcdsr.trainer import CrossDomainTrainer

from conftest import SMALL_RUN

TINY = {"IFCDSR": {"id_embedding_size": 8, "n_heads": 1},
        "SASRec": {"hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1}}
TIMING = ("train_seconds", "train_cpu_seconds", "eval_seconds", "wall_seconds", "config", "stop_reason")


class Interrupted(Exception):
    """Stands for a crash right after a checkpoint was written (deterministic, no signals or timing)."""


def settings(data_dir, checkpoint_dir, model="IFCDSR", **extra) -> dict:
    return {**SMALL_RUN, **TINY[model], "data_path": str(data_dir), "checkpoint_dir": str(checkpoint_dir),
            "seed": 5, **extra}


def last_file(directory, model="IFCDSR"):
    return directory / f"{model}-fk_abxi-seed5-last.pth"


def interrupt_after_epoch(monkeypatch, epoch: int) -> None:
    write = CrossDomainTrainer._write

    def write_then_crash(self, state, path):
        write(self, state, path)
        if path.endswith("-last.pth") and state["epoch"] == epoch:
            raise Interrupted

    monkeypatch.setattr(CrossDomainTrainer, "_write", write_then_crash)


@pytest.mark.parametrize("model", ["IFCDSR", pytest.param("SASRec", marks=pytest.mark.slow)])  # same mechanism,
# RecBole's prefix view: 15 s more, so it runs with -m slow
@pytest.mark.integration
def test_resumed_run_equals_an_uninterrupted_one_bit_for_bit(abxi_small_dir, tmp_path, monkeypatch, model):
    """Same metrics, same epoch losses, same final weights: dropout's random state and the loader's data
    order are restored, not re-seeded (before, epoch 1's loss differed after a resume)."""
    monkeypatch.chdir(tmp_path)  # RecBole writes log/ into the working directory
    epochs = 2
    straight = run_recbole_ifcdsr(model, "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "a", model, epochs=epochs))
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 0)
        with pytest.raises(Interrupted):
            run_recbole_ifcdsr(model, "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "b", model, epochs=epochs))
    resumed = run_recbole_ifcdsr(model, "fk_abxi",
                                 config_dict=settings(abxi_small_dir, tmp_path / "b", model, epochs=epochs, resume=True))
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in straight.items() if k not in TIMING}
    a, b = (compat.load_checkpoint(last_file(tmp_path / d, model)) for d in ("a", "b"))
    assert len(a["losses"]) == epochs and a["losses"] == b["losses"]  # floats compared exactly
    assert a["history"] == b["history"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


@pytest.fixture(scope="module")
def one_epoch(abxi_small_dir, tmp_path_factory):
    """A -last checkpoint of one IFCDSR epoch on the small slice."""
    directory = tmp_path_factory.mktemp("ckpt")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, directory, epochs=1))
    return last_file(directory)


def resume_with(tmp_path, one_epoch, data_dir, **extra):
    directory = tmp_path / "saved"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(one_epoch, last_file(directory))
    return run_recbole_ifcdsr("IFCDSR", "fk_abxi",
                              config_dict=settings(data_dir, directory, epochs=2, resume=True, **extra))


@pytest.mark.integration
def test_a_resumed_runs_wall_time_includes_its_earlier_processes(one_epoch, abxi_small_dir, tmp_path, monkeypatch):
    """The -last checkpoint records the run's wall time so far and a resumed run's results add it (before, they
    counted only the last process: fk_llmcdsr's resumed SRGNN seed 2 reported 6,064 wall s for 7,200 CPU-s of
    training). From a checkpoint without that record the results say their count is partial."""
    monkeypatch.chdir(tmp_path)
    assert compat.load_checkpoint(one_epoch)["wall_seconds"] > 0
    state = compat.load_checkpoint(one_epoch)
    state["wall_seconds"] = 1e6  # an earlier process no test run could take: the sum is unmistakable
    recorded = tmp_path / "recorded.pth"
    torch.save(state, recorded)
    for run in ("a", "b"):  # epoch 0's selected weights, in case epoch 1 does not improve on them
        (tmp_path / run / "saved").mkdir(parents=True)
        for best in one_epoch.parent.glob("*-best_*.pth"):
            shutil.copy(best, tmp_path / run / "saved" / best.name)
    resumed = resume_with(tmp_path / "a", recorded, abxi_small_dir)
    assert resumed["wall_seconds"] > 1e6 and resumed["wall_seconds_partial"] is False
    assert compat.load_checkpoint(last_file(tmp_path / "a" / "saved"))["wall_seconds"] > 1e6  # carried on

    del state["wall_seconds"]  # as checkpoints written before it was recorded
    older = tmp_path / "older.pth"
    torch.save(state, older)
    resumed = resume_with(tmp_path / "b", older, abxi_small_dir)
    assert resumed["wall_seconds_partial"] is True and 0 < resumed["wall_seconds"] < 1e6
    assert compat.load_checkpoint(last_file(tmp_path / "b" / "saved"))["wall_seconds"] is None  # stays unknown


@pytest.fixture
def other_data(abxi_small_dir, tmp_path):
    """The same dataset name and item file with one user less: same shapes, other data."""
    root = tmp_path / "other"
    shutil.copytree(abxi_small_dir, root)
    inter = root / "fk_abxi" / "fk_abxi.inter"
    lines = inter.read_text().splitlines(keepends=True)
    first_user = lines[1].split("\t", 1)[0]
    inter.write_text("".join([lines[0]] + [line for line in lines[1:] if not line.startswith(first_user + "\t")]))
    return root


@pytest.mark.integration
def test_a_checkpoint_of_other_data_under_the_same_name_is_refused(one_epoch, other_data, tmp_path, monkeypatch,
                                                                   abxi_small_dir):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointMismatchError) as info:
        resume_with(tmp_path, one_epoch, other_data)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'saved' / one_epoch.name} belongs to another run (IFCDSR on fk_abxi from "
                              f"{abxi_small_dir / 'fk_abxi'}): its data file fk_abxi.inter (sha256 ")
    assert f"in {other_data / 'fk_abxi'})" in message and "Resume refused" in message


@pytest.mark.parametrize("extra, difference", [
    ({"MAX_ITEM_LIST_LENGTH": 10}, "its MAX_ITEM_LIST_LENGTH is 20, this run's is 10"),
    ({"id_embedding_size": 16}, "its tensor item_embedding.weight has shape [1279, 8], this run's model has [1279, 16]"),
    ({"multiple_attention": False}, "its tensor id_encoders.x."),
    # same shapes, another model: refused by the model's own settings
    ({"temperature": 1.0}, "its temperature is 0.1, this run's is 1.0. Resume refused: "),
    ({"loss_type": "full"}, "its loss_type is 'sampled', this run's is 'full'. Resume refused"),
    ({"learning_rate": 0.01}, "its learning_rate is 0.001, this run's is 0.01. Resume refused"),
    ({"lr_decay": {"patience": 3}}, "its lr_decay is None, this run's is {'patience': 3}. Resume refused"),
    # how the steps are taken and validated (RecBole's own training settings)
    ({"learner": "adamw"}, "its learner is 'adam', this run's is 'adamw'. Resume refused"),
    ({"eval_step": 2}, "its eval_step is 1, this run's is 2. Resume refused"),
    ({"clip_grad_norm": {"max_norm": 1.0}}, "its clip_grad_norm is None, this run's is {'max_norm': 1.0}. Resume refused"),
    # the same weights, tested at another epoch: the selection's comparison and warm-up decide which
    ({"selection_warmup": 1}, "its model selection's warmup_epochs is 0, this run's is 1. Resume refused"),
    ({"cdsr_selection": {**SMALL_RUN["cdsr_selection"], "improve": "gt"}},
     "its model selection's improve is 'ge', this run's is 'gt'. Resume refused"),
])
@pytest.mark.integration
def test_a_checkpoint_of_other_settings_or_shapes_is_refused(one_epoch, abxi_small_dir, tmp_path, monkeypatch,
                                                             extra, difference):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointMismatchError, match="belongs to another run") as info:
        resume_with(tmp_path, one_epoch, abxi_small_dir, **extra)
    assert difference in str(info.value)


@pytest.mark.integration
def test_a_checkpoint_without_the_newer_selection_keys_resumes_and_patience_may_change(
        one_epoch, abxi_small_dir, tmp_path, monkeypatch):
    """Checkpoints written before the selection's improve and warmup_epochs were recorded (fk_llmcdsr's running
    cells) still resume; patience only says how long training goes on, like epochs."""
    monkeypatch.chdir(tmp_path)
    compat.trust_checkpoint_dir(one_epoch.parent)
    state = compat.load_checkpoint(one_epoch)
    assert state["run"]["selection"] == {"mode": "joint", "metric": "MRR", "improve": "ge", "warmup_epochs": 0}
    state["run"]["selection"] = {"mode": "joint", "metric": "MRR"}
    del state["run"]["training"]  # nor the training settings (TRAINING_KEYS), recorded later still
    older = tmp_path / "older.pth"
    torch.save(state, older)
    resumed = resume_with(tmp_path, older, abxi_small_dir, selection_warmup=1, selection_patience=3)
    assert resumed["epochs_run"] == 2


@pytest.mark.unit
def test_a_checkpoint_hashes_what_a_run_reads_of_a_feature_store_not_its_meta(tmp_path):
    """Rebuilding a store gives the same vectors but another meta (its date, its inputs record): resumes go on.
    Another vector, token or mask is another store."""
    from recbole_ifcdsr.features.store import save_features

    path = tmp_path / "d.text.npz"
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    save_features(path, ["A", "B"], vectors, [True, True], {"encoder": "e", "date": "then"})
    before = checkpoint._store_digest(path)
    save_features(path, ["A", "B"], vectors, [True, True], {"encoder": "e", "date": "now", "inputs": {}})
    assert checkpoint._store_digest(path) == before
    for tokens, rows, mask in ((["A", "C"], vectors, [True, True]), (["A", "B"], vectors + 1, [True, True]),
                               (["A", "B"], vectors, [True, False])):
        save_features(path, tokens, rows, mask, {"encoder": "e"})
        assert checkpoint._store_digest(path) != before


@pytest.mark.integration
def test_a_truncated_checkpoint_is_one_line(one_epoch, abxi_small_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "saved"
    directory.mkdir()
    data = one_epoch.read_bytes()
    last_file(directory).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"-last\.pth: not a readable checkpoint, truncated or corrupt \(") as info:
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, directory, epochs=2, resume=True))
    assert "\n" not in str(info.value) and "delete it to start afresh" in str(info.value)


def _older_version(state: dict) -> None:
    for key in ("format", "run", "random", "data_order", "losses"):  # what an older version wrote
        del state[key]


def _format_2(state: dict) -> None:
    """Format 2 kept each domain's results in another nesting; this version reads only its own."""
    assert state["format"] == checkpoint.FORMAT == 4 and set(state["result"]) >= {"protocols", "best_epoch", "sampled"}
    state["format"] = 2


@pytest.mark.integration
@pytest.mark.parametrize("change, message", [
    (_older_version, "written by an older version .no run record."),
    (_format_2, r"written by another version \(checkpoint format 2, this version reads 4\)"),
], ids=["no-run-record", "format-2"])
def test_a_checkpoint_of_another_version_is_refused(one_epoch, abxi_small_dir, tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "saved"
    directory.mkdir()
    compat.trust_checkpoint_dir(one_epoch.parent)
    state = compat.load_checkpoint(one_epoch)
    change(state)
    torch.save(state, last_file(directory))
    with pytest.raises(CheckpointError, match=message):
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, directory, epochs=2, resume=True))


@pytest.mark.integration
def test_resume_without_a_checkpoint_says_so(abxi_small_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = run_recbole_ifcdsr("IFCDSR", "fk_abxi",
                                    config_dict=settings(abxi_small_dir, tmp_path / "empty", epochs=1, resume=True))
    assert result["epochs_run"] == 1
    assert f"resume=True but there is no checkpoint {last_file(tmp_path / 'empty')}: starting from epoch 0" in caplog.text


@pytest.mark.integration
def test_identity_lists_what_the_issue_asks(one_epoch):
    state = checkpoint.load(one_epoch)
    run = state["run"]
    assert (run["model"], run["dataset"]) == ("IFCDSR", "fk_abxi")
    assert set(run["files"]) == {"fk_abxi.inter", "fk_abxi.item"} and all(len(v) == 64 for v in run["files"].values())
    assert run["config"]["MAX_ITEM_LIST_LENGTH"] == 20 and run["config"]["seed"] == 5
    assert run["shapes"]["item_embedding.weight"] == [1279, 8]
    assert set(state["random"]) == {"python", "numpy", "torch", "cuda"} and state["data_order"] is not None


@pytest.mark.integration
def test_resuming_a_stopped_run_trains_no_more(abxi_small_dir, tmp_path, monkeypatch):
    """A run its budget stopped (a zero budget ends epoch 0 after its first batch, whatever the machine's
    speed) is finished: resumed with the same settings it trains nothing more and reports the same run
    (before, it trained one more batch in epoch 1 and reported 2 epochs)."""
    monkeypatch.chdir(tmp_path)
    run = settings(abxi_small_dir, tmp_path / "saved", epochs=2, max_train_cpu_minutes=0)
    stopped = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    assert (stopped["epochs_run"], stopped["stop_reason"]) == (1, "0 CPU-minute budget")
    assert isinstance(stopped["train_cpu_seconds"], float)
    before = compat.load_checkpoint(last_file(tmp_path / "saved"))
    resumed = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "resume": True})
    keep = ("stop_reason", "train_cpu_seconds")  # restored from the checkpoint, not measured again
    assert {k: v for k, v in resumed.items() if k not in TIMING or k in keep} == \
        {k: v for k, v in stopped.items() if k not in TIMING or k in keep}
    assert before["stopped"] == "0 CPU-minute budget"
    after = compat.load_checkpoint(last_file(tmp_path / "saved"))
    assert after["losses"] == before["losses"] and len(after["losses"]) == 1
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())


@pytest.mark.integration
def test_a_budget_spent_on_an_epochs_last_batch_cut_nothing(abxi_small_dir, tmp_path, monkeypatch):
    """A zero budget runs out after the first batch, whatever the machine's speed; with one batch per epoch
    (a batch larger than the slice) that batch is the epoch's last. In the final epoch the epochs ended the
    run, not the budget (before: '0 CPU-minute budget', which compare marks as stopped before model
    selection); before the final epoch the budget still ends it."""
    monkeypatch.chdir(tmp_path)
    one_batch = {"max_train_cpu_minutes": 0, "train_batch_size": 100_000}
    final = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "a", epochs=1, **one_batch))
    assert (final["epochs_run"], final["stop_reason"]) == (1, "max epochs")
    early = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "b", epochs=2, **one_batch))
    assert (early["epochs_run"], early["stop_reason"]) == (1, "0 CPU-minute budget")


@pytest.mark.integration
def test_a_wall_clock_budget_reports_no_cpu_seconds(abxi_small_dir, tmp_path, monkeypatch):
    """``train_cpu_seconds`` is CPU time, which only ``max_train_cpu_minutes`` counts; a wall-clock budget's
    seconds are ``train_seconds`` (before, they were also reported as CPU seconds, under compare's
    'train s (CPU)')."""
    monkeypatch.chdir(tmp_path)
    run = settings(abxi_small_dir, tmp_path / "saved", epochs=2, max_train_minutes=0)
    wall = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    assert (wall["epochs_run"], wall["stop_reason"], wall["train_cpu_seconds"]) == (1, "0 wall-minute budget", None)
    assert isinstance(wall["train_seconds"], float) and wall["train_seconds"] >= 0  # one batch: 0.0 on a fast machine


@pytest.mark.integration
def test_each_epoch_logs_what_it_cost_on_the_budgets_clock(abxi_small_dir, tmp_path, monkeypatch, caplog):
    """A CPU cap is spent in CPU seconds, which RecBole's epoch line (wall time) does not show: each epoch
    logs its own, and they add up to the run's ``train_cpu_seconds``."""
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO):
        run = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(
            abxi_small_dir, tmp_path / "saved", epochs=2, max_train_cpu_minutes=10))
    lines = [m for m in caplog.messages if " budget [" in m]
    parsed = [re.fullmatch(r"epoch (\d) budget \[cpu time: ([\d.]+)s, used (\d+)s of 600s\]", m) for m in lines]
    assert all(parsed) and [int(p[1]) for p in parsed] == [0, 1], lines
    rounding = 0.05 * len(parsed) + 1e-9  # each line rounds its seconds to 0.1
    assert sum(float(p[2]) for p in parsed) == pytest.approx(run["train_cpu_seconds"], abs=rounding)
    assert int(parsed[-1][3]) == round(run["train_cpu_seconds"])


PER_DOMAIN = {"cdsr_selection": {"mode": "per_domain", "metric": "MRR", "improve": "gt", "warmup_epochs": 0,
                                 "patience": 61}}


@pytest.mark.integration
def test_test_numbers_are_those_of_each_selected_epochs_weights(abxi_small_dir, tmp_path, monkeypatch):
    """Test is evaluated when training ends, once per selected epoch: each domain's test numbers equal an
    evaluation of its -best checkpoint with that epoch's negatives (the numbers a test pass at that epoch
    gave), and a run that saves nothing (weights kept in memory) reports the same."""
    from recbole_ifcdsr.config import Config
    from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
    from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
    from recbole_ifcdsr.model.ifcdsr import IFCDSR

    monkeypatch.chdir(tmp_path)
    run = settings(abxi_small_dir, tmp_path / "saved", epochs=4, **PER_DOMAIN)
    saved = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    unsaved = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "checkpoint_dir": str(tmp_path / "none")},
                                 saved=False)
    assert {k: v for k, v in unsaved.items() if k not in TIMING} == {k: v for k, v in saved.items() if k not in TIMING}
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    config = Config("IFCDSR", "fk_abxi", config_dict=run)
    data = CrossDomainSequentialDataset(config)
    model, evaluator = IFCDSR(config, data), ProtocolEvaluator(data, config)
    for d, epoch in saved["best_epoch"].items():
        best = compat.load_checkpoint(tmp_path / "saved" / f"IFCDSR-fk_abxi-seed5-best_{d}.pth")
        assert best["epoch"] == epoch
        model.load_state_dict(best["state_dict"])
        again = evaluator.evaluate(model, "test", pass_index=epoch)
        for protocol in ("sampled", "full"):
            assert saved[protocol]["test"][d] == pytest.approx(again[protocol][d], abs=1e-12)


def killed_before_the_test_pass(data_dir, tmp_path):
    """A run its budget stopped after one batch (epoch 0 selected in both domains), its -last file rewritten as
    if the process had died before the test pass: (its settings, best_X's path, best_X's content)."""
    run = settings(data_dir, tmp_path / "saved", epochs=2, max_train_cpu_minutes=0)
    run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    state = compat.load_checkpoint(last_file(tmp_path / "saved"))
    state["result"]["sampled"]["test"] = state["result"]["full"]["test"] = {}
    torch.save(state, last_file(tmp_path / "saved"))
    best = tmp_path / "saved" / "IFCDSR-fk_abxi-seed5-best_X.pth"
    return run, best, compat.load_checkpoint(best)


def resumes_and_tests_both_domains(run) -> None:
    resumed = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "resume": True})
    assert resumed["best_epoch"] == {"X": 0, "Y": 0} and set(resumed["sampled"]["test"]) == {"X", "Y"}


@pytest.mark.integration
def test_a_best_checkpoint_of_another_epoch_is_refused_at_resume(abxi_small_dir, tmp_path, monkeypatch):
    """A resumed run tests its selected epochs from their -best checkpoints; one that holds another epoch
    would give other weights' numbers, so the run stops with one line instead."""
    monkeypatch.chdir(tmp_path)
    run, best, kept = killed_before_the_test_pass(abxi_small_dir, tmp_path)
    torch.save({**kept, "epoch": 7}, best)
    with pytest.raises(CheckpointError, match=r"best_X.pth holds epoch 7, but domain X selected epoch 0"):
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "resume": True})
    torch.save(kept, best)
    resumes_and_tests_both_domains(run)


@pytest.mark.integration
def test_a_best_checkpoint_of_another_run_at_the_same_epoch_is_refused(abxi_small_dir, tmp_path, monkeypatch):
    """Two runs with other settings over one --checkpoint_dir write the same -best names; the epoch alone does
    not tell them apart, so a -best file carries its run and the test pass checks it."""
    monkeypatch.chdir(tmp_path)
    run, best, kept = killed_before_the_test_pass(abxi_small_dir, tmp_path)
    assert kept["epoch"] == 0 and kept["run"] == compat.load_checkpoint(last_file(tmp_path / "saved"))["run"]
    other = {**kept["run"], "model_config": {**kept["run"]["model_config"], "learning_rate": 0.05}}
    torch.save({**kept, "run": other}, best)
    with pytest.raises(CheckpointMismatchError, match=r"best_X.pth was written by another run \(its learning_rate is "
                                                      r"0.05, this run's is 0.001\), though for the same epoch 0"):
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "resume": True})
    torch.save({k: v for k, v in kept.items() if k != "run"}, best)  # written before -best files carried their run
    resumes_and_tests_both_domains(run)


def pending_file(directory, domain: str):
    return directory / f"IFCDSR-fk_abxi-seed5-best_{domain}.pending.pth"


def crash_leaving_pending_files(monkeypatch, run: dict, method: str, crashing) -> list:
    """Run with CrossDomainTrainer's ``method`` replaced by ``crashing`` (which raises Interrupted), and
    return the domains whose .pending weights the crash left."""
    with monkeypatch.context() as patch:
        patch.setattr(CrossDomainTrainer, method, crashing)
        with pytest.raises(Interrupted):
            run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    return [d for d in ("X", "Y") if pending_file(Path(run["checkpoint_dir"]), d).is_file()]


@pytest.mark.integration
def test_a_crash_between_an_improving_epochs_best_and_last_writes_loses_nothing(abxi_small_dir, tmp_path, monkeypatch):
    """Epoch 1 improves, its weights are written, and the process dies before its -last. The resumed run starts
    at epoch 1 again; here it trains no more (epochs lowered to 1), so it selects epoch 0. Before, epoch 1's
    weights had overwritten -best and the test pass refused the run ('holds epoch 1, but domain X selected
    epoch 0'): they now wait in a .pending file that only epoch 1's -last promotes, and the resume drops it."""
    monkeypatch.chdir(tmp_path)
    one = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "a", epochs=1))
    write = CrossDomainTrainer._write

    def die_before_epoch_1s_last(self, state, path):
        if path.endswith("-last.pth") and state["epoch"] == 1:
            raise Interrupted
        write(self, state, path)

    run = settings(abxi_small_dir, tmp_path / "b", epochs=2)
    waiting = crash_leaving_pending_files(monkeypatch, run, "_write", die_before_epoch_1s_last)
    assert waiting, "epoch 1 improved no domain on this slice: the case this test is about did not arise"
    assert all(compat.load_checkpoint(tmp_path / "b" / f"IFCDSR-fk_abxi-seed5-best_{d}.pth")["epoch"] == 0
               for d in waiting)
    resumed = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "epochs": 1, "resume": True})
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in one.items() if k not in TIMING}
    assert not any(pending_file(tmp_path / "b", d).exists() for d in ("X", "Y"))


@pytest.mark.integration
def test_a_crash_between_an_epochs_last_and_its_best_promotion_keeps_that_epochs_weights(abxi_small_dir, tmp_path,
                                                                                           monkeypatch):
    """The process dies after epoch 1's -last (which selected epoch 1) but before its weights became -best:
    the resume promotes the .pending file, and the results are the uninterrupted run's."""
    monkeypatch.chdir(tmp_path)
    run = settings(abxi_small_dir, tmp_path / "a", epochs=2)
    straight = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    promote = CrossDomainTrainer._promote_pending_best
    calls = []

    def die_at_the_second_promotion(self):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted
        promote(self)

    run = settings(abxi_small_dir, tmp_path / "b", epochs=2)
    waiting = crash_leaving_pending_files(monkeypatch, run, "_promote_pending_best", die_at_the_second_promotion)
    assert waiting and all(straight["best_epoch"][d] == 1 for d in waiting)
    resumed = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "resume": True})
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in straight.items() if k not in TIMING}
    assert not any(pending_file(tmp_path / "b", d).exists() for d in ("X", "Y"))
    assert all(compat.load_checkpoint(tmp_path / "b" / f"IFCDSR-fk_abxi-seed5-best_{d}.pth")["epoch"] == 1
               for d in waiting)


CLOCKS = {"cpu": ("max_train_cpu_minutes", {"max_train_cpu_minutes": 10}),
          "wall": ("max_train_minutes", {"max_train_cpu_minutes": None, "max_train_minutes": 10})}


@pytest.mark.parametrize("first, then", [("cpu", "wall"), ("wall", "cpu")])
@pytest.mark.integration
def test_a_resume_under_the_other_budget_clock_is_refused(abxi_small_dir, tmp_path, monkeypatch, first, then):
    """Seconds spent under one budget clock cannot be carried into the other (CPU seconds into a wall-clock
    budget, or the reverse): the resumed run would stop at the wrong time and report a sum of both; the
    resume is refused in one line, and one under the same clock goes on."""
    monkeypatch.chdir(tmp_path)
    run = settings(abxi_small_dir, tmp_path / "saved", epochs=1, **CLOCKS[first][1])
    done = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=run)
    assert done["train_seconds"] > 0 and compat.load_checkpoint(last_file(tmp_path / "saved"))["budget_clock"] == first
    other = {**run, "epochs": 2, "resume": True, **CLOCKS[then][1]}
    with pytest.raises(CheckpointMismatchError, match=rf"-last\.pth: its training budget counted {first} seconds \(\d+ s "
                                                      rf"spent, under {CLOCKS[first][0]}\); this run's budget counts "
                                                      rf"{then} seconds \({CLOCKS[then][0]}\)"):
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=other)
    resumed = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={**run, "epochs": 2, "resume": True})
    assert resumed["epochs_run"] == 2 and resumed["train_seconds"] >= done["train_seconds"]

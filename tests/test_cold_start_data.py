"""The cold-start measurement (recbole_ifcdsr/cold_start.py)'s data: held-out test targets leave training, nothing else changes."""
import pytest

import json

from recbole_ifcdsr.cold_start import main, prepare_data, run_options, stored_run_problem
from recbole_ifcdsr.errors import ConfigError
from recbole_ifcdsr.paths import default_data_path


@pytest.mark.integration
def test_held_out_targets_leave_every_training_sequence_and_nothing_else(tmp_path, llmcdsr):
    data_path, cold = prepare_data(tmp_path, 0.1)
    source, held = default_data_path() / "fk_llmcdsr", data_path / "fk_llmcdsr"
    test = source.joinpath("fk_llmcdsr.test.inter").read_text().splitlines()[1:]
    targets = {}
    for line in test:
        user, item = line.split("\t")[:2]
        targets[user] = item
    assert set(cold) <= set(targets.values()) and len(cold) == round(0.1 * len(set(targets.values())))
    original = source.joinpath("fk_llmcdsr.train.inter").read_text().splitlines()
    kept = held.joinpath("fk_llmcdsr.train.inter").read_text().splitlines()
    assert kept[0] == original[0]
    assert kept[1:] == [line for line in original[1:] if line.split("\t")[1] not in set(cold)]
    assert len(kept) < len(original)
    for name in ("fk_llmcdsr.valid.inter", "fk_llmcdsr.test.inter", "fk_llmcdsr.item"):
        assert held.joinpath(name).read_bytes() == source.joinpath(name).read_bytes()
    assert prepare_data(tmp_path, 0.1) == (data_path, cold)  # a finished folder is reused as it is
    # ... but not under another fraction's name (it was, and cold_start.json recorded the new fraction)
    with pytest.raises(ConfigError, match=f"holds out {len(cold)} items, not the .* that --fraction 0.3 draws: it "
                                          "was made with another --fraction; give another --out"):
        prepare_data(tmp_path, 0.3)


@pytest.mark.unit
def test_a_finished_run_is_reused_only_with_the_same_budget_and_options(tmp_path):
    """Finished runs under <out>/runs were reused whatever --max_train_cpu_minutes or options the rerun gave."""
    results = tmp_path / "SASRec-seed0.json"
    results.write_text(json.dumps({"config": {"max_train_cpu_minutes": 2.0}}))
    wanted = {"max_train_cpu_minutes": 2.0, "options": ["--epochs=3"]}
    assert stored_run_problem(results, wanted) is None  # recorded before settings files: its config's budget
    assert stored_run_problem(results, {**wanted, "max_train_cpu_minutes": 5.0}) == \
        f"{results} was run with max_train_cpu_minutes 2.0, not 5.0"
    results.with_suffix(".settings.json").write_text(json.dumps(wanted))
    assert stored_run_problem(results, wanted) is None
    assert stored_run_problem(results, {**wanted, "options": []}).startswith(f"{results} was run with other options (")


@pytest.mark.parametrize("args, message", [
    (["--fraction=0"], "argument --fraction: 0.0: the share of test-target items to hold out, in (0, 1]"),
    (["--fraction=1.5"], "argument --fraction: 1.5: the share of test-target items to hold out, in (0, 1]"),
    (["--seeds=0"], "argument --seeds: 0: at least 1"),
    (["--max_train_cpu_minutes=-1"], "argument --max_train_cpu_minutes: -1.0: above 0"),
])
@pytest.mark.unit
def test_bad_numbers_are_usage_errors(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["--out", str(out), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.unit
def test_pass_through_options_reach_the_runs_as_key_value():
    assert run_options(["--epochs", "2", "--learning_rate=0.01"]) == ["--epochs=2", "--learning_rate=0.01"]


@pytest.mark.parametrize("args, message", [
    # not a prefix of --seeds (argparse's abbreviations are off), and not a run setting either
    (["--seed=5"], "error: --seed=5: cold_start sets seed itself (--seeds N runs seeds 0..N-1); leave it out"),
    (["--seed", "5"], "error: --seed=5: cold_start sets seed itself (--seeds N runs seeds 0..N-1); leave it out"),
    (["--data_path=/x"], "error: --data_path=/x: cold_start sets data_path itself (the held-out copy under --out); "
                         "leave it out"),
])
@pytest.mark.unit
def test_settings_the_script_owns_are_refused_before_anything_runs(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--seeds", "1", *args]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not out.exists()

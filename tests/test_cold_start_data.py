"""The cold-start measurement (recbole_ifcdsr/cold_start.py)'s data: held-out test targets leave training, nothing else changes."""
import pytest

from recbole_ifcdsr.cold_start import main, prepare_data, run_options
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

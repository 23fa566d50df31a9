"""The one command line: ``python -m recbole_ifcdsr <command>``, one option style, one exit-code policy, and
the old entry points kept as aliases."""
from __future__ import annotations

import importlib
import json
import runpy
import sys

import pytest

from recbole_ifcdsr import cli
from recbole_ifcdsr.paths import REPO_ROOT

SMALL_NEGATIVES = "{'num': 50, 'replacement': False, 'exclude': 'sequence', 'redraw': 'every_pass', 'rng': 'generator', 'seed': 1}"

#: every old ``python -m`` entry point and the command it now is
ALIASES = {
    "recbole_ifcdsr.run": "run",
    "recbole_ifcdsr.compare": "compare",
    "recbole_ifcdsr.features": "features",
    "recbole_ifcdsr.enrich": "enrich",
    "recbole_ifcdsr.data.converters": "convert",
    "recbole_ifcdsr.data.amazon": "convert amazon",
}


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """argparse wraps usage lines at COLUMNS: below about 57 a usage line breaks after the program name."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.unit
def test_config_options_take_both_styles():
    assert cli.config_options(["--epochs", "5", "--seed=3", "--learning_rate", "-0.1", "--x={'a': 1}"]) == \
        ["--epochs=5", "--seed=3", "--learning_rate=-0.1", "--x={'a': 1}"]
    assert cli.config_options([]) == []


@pytest.mark.parametrize("extra, message", [
    (["--epochs"], "error: --epochs needs a value: --epochs=VALUE or --epochs VALUE"),
    (["--epochs", "--seed=1"], "error: --epochs needs a value"),
    (["stray"], "error: 'stray' is not an option: give config settings as --key=value or --key value"),
    (["--=3"], "error: '--=3' is not an option"),
])
@pytest.mark.unit
def test_config_options_without_a_value_are_usage_errors(extra, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.config_options(extra)
    assert info.value.code == 2 and capsys.readouterr().err.startswith(message)


@pytest.mark.unit
def test_every_command_has_a_parser_and_a_main():
    assert list(cli.COMMANDS) == ["run", "compare", "features", "enrich", "convert", "recommend"]
    for name, command in cli.COMMANDS.items():
        module = importlib.import_module(command.module)
        assert callable(module.main)
        assert module.build_parser().prog == f"python -m recbole_ifcdsr {name}"


@pytest.mark.unit
def test_convert_has_a_subcommand_per_release_preset_and_amazon():
    from recbole_ifcdsr.data.convert import PRESETS, SUBCOMMANDS
    from recbole_ifcdsr.data.converters import CONVERTERS

    assert set(PRESETS) == set(CONVERTERS)
    assert list(SUBCOMMANDS) == [*PRESETS, "amazon"]


@pytest.mark.integration
def test_top_level_help_lists_the_commands_and_bad_commands_exit_2(capsys):
    assert cli.main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == list(cli.COMMANDS)
    assert cli.main([]) == 2 and "usage: python -m recbole_ifcdsr <command>" in capsys.readouterr().err
    assert cli.main(["train"]) == 2
    assert capsys.readouterr().err.startswith(f"error: unknown command 'train'; valid commands: {', '.join(cli.COMMANDS)}")


@pytest.mark.parametrize("argv, message", [
    (["run", "--model"], "argument --model/-m: expected one argument (see python -m recbole_ifcdsr run --help)"),
    (["compare", "--dataset=fk_abxi", "--seeds=0"],
     "argument --seeds: 0: at least 1 (see python -m recbole_ifcdsr compare --help)"),
    (["compare", "--dataset=fk_abxi", "--models=,"], "--models: no model given (see python -m recbole_ifcdsr compare --help)"),
    (["features", "extract", "--dataset=x"],
     "the following arguments are required: --feature (see python -m recbole_ifcdsr features extract --help)"),
    (["enrich", "--dataset=x", "--backend=local", "--limit=0"],
     "--limit must be at least 1 (see python -m recbole_ifcdsr enrich --help)"),
    (["convert", "abxi", "--src=x"],
     "the following arguments are required: --name (see python -m recbole_ifcdsr convert abxi --help)"),
    (["convert", "check"],
     "check needs exactly one of --dataset NAME or --src DIR (see python -m recbole_ifcdsr convert --help)"),
    (["recommend", "--checkpoint=x", "--domain=X", "--history=a", "--k=abc"],
     "argument --k: invalid int value: 'abc' (see python -m recbole_ifcdsr recommend --help)"),
])
@pytest.mark.unit
def test_a_usage_error_is_one_error_line_naming_the_help(argv, message, capsys):
    """The exit policy's one ``error: ...`` line on stderr, status 2, for argparse's own checks and the
    commands' ``parser.error`` alike (argparse printed its usage block and the program name first)."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    captured = capsys.readouterr()
    assert info.value.code == 2 and captured.err == f"error: {message}\n" and captured.out == ""


@pytest.mark.parametrize("command", list(cli.COMMANDS))
@pytest.mark.integration
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m recbole_ifcdsr {command} ")


@pytest.mark.parametrize("module, command", list(ALIASES.items()))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # runpy: the module was imported before, as in a test run
@pytest.mark.integration
def test_old_entry_points_are_aliases(module, command, monkeypatch, capsys):
    """``python -m <module> --help`` (runpy is what ``-m`` runs) shows the new command's options."""
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m recbole_ifcdsr {command} ")


@pytest.mark.integration
def test_root_script_is_the_run_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["run_recbole_ifcdsr.py", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO_ROOT / "run_recbole_ifcdsr.py"), run_name="__main__")
    assert info.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m recbole_ifcdsr run ")


@pytest.mark.integration
def test_run_takes_key_space_value_options(abxi_small_dir, tmp_path, monkeypatch):
    """``--key value`` works like ``--key=value``, for the run's own options and for config keys alike; the
    command line's settings are the run's, whatever ``sys.argv`` holds (here: pytest's)."""
    monkeypatch.chdir(tmp_path)  # RecBole writes log/ into the working directory
    out = tmp_path / "pop.json"
    code = cli.main(["run", "--model", "Pop", "--dataset", "fk_abxi", "--data_path", str(abxi_small_dir),
                     "--seed", "5", "--results_file", str(out), "--show_progress", "False", "--state", "WARNING",
                     "--checkpoint_dir", str(tmp_path / "saved"), "--cdsr_negatives", SMALL_NEGATIVES,
                     "--protocol=sampled"])
    assert code == 0
    result = json.loads(out.read_text())
    assert (result["model"], result["seed"], result["protocols"]) == ("Pop", 5, ["sampled"])
    assert result["config"]["data_path"] == str(abxi_small_dir / "fk_abxi")
    assert result["config"]["cdsr_negatives"]["num"] == 50


@pytest.mark.integration
def test_run_settings_given_twice_differently_are_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--model=Pop", "--seed=1", "--seed", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: --seed is given twice with different values ('1', '2')"


@pytest.mark.e2e
def test_a_grid_with_a_failed_cell_exits_1_and_ends_with_its_table(abxi_small_dir, tmp_path, capsys):
    """Partial failure: the cell that cannot run is listed, the others' table still comes out, last."""
    out = tmp_path / "grid"
    code = cli.main(["compare", "--dataset", "fk_abxi", "--models", "Pop,broken=Pop:cdsr_recipe=nonsense",
                     "--seeds", "1", "--out", str(out), "--protocols", "sampled", "--data_path", str(abxi_small_dir),
                     "--checkpoint_dir", str(tmp_path / "saved"), "--state", "WARNING",
                     f"--cdsr_negatives={SMALL_NEGATIVES}"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "broken seed 0: exit code 2, see" in printed
    tail = printed[printed.index("written: "):]
    assert "| Pop |" in tail and "- broken seed 0: exit code 2" in tail
    assert "| broken |" not in tail
    assert printed.rstrip().splitlines()[-1].startswith("- broken seed 0: exit code 2")
    assert "error: cdsr_recipe 'nonsense' unknown" in (out / "broken-seed0.log").read_text()

"""Every command in README.md and docs/ works as written: each one in a ```bash block is parsed by its command's
real parser (options, model names, config files), the cheap ones are run as a user runs them, and the
README stays a front door (200 lines or fewer, links that resolve)."""
from __future__ import annotations

import gzip
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import shared_data_dir

from recbole_ifcdsr import cli
from recbole_ifcdsr.paths import REPO_ROOT, SHIPPED_DATASET_DIR

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
#: the old ``python -m`` entry points and the command (with leading arguments) each is an alias of
ALIASES = {"recbole_ifcdsr.run": ["run"], "recbole_ifcdsr.compare": ["compare"], "recbole_ifcdsr.features": ["features"],
           "recbole_ifcdsr.enrich": ["enrich"], "recbole_ifcdsr.data.converters": ["convert"],
           "recbole_ifcdsr.data.amazon": ["convert", "amazon"]}
#: scripts run as ``python -m <module>`` that are no command of the CLI: each has build_parser() and run_options()
SCRIPTS = ("recbole_ifcdsr.cold_start",)
PLACEHOLDERS = {"<d>": "fk_abxi"}  # results.md's reproduction lines run once per dataset
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


class Documented(NamedTuple):
    where: str  # file:line
    argv: list[str]  # the plug-in command line after the python executable, as ``python -m recbole_ifcdsr`` takes it
    text: str  # the command as written (continuation lines joined)


def _bash_lines(path: Path):
    """(line number, logical line) of every ```bash block in ``path``, continuation lines joined."""
    in_bash, pending, start = False, "", 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending = ""


def _plugin_argv(tokens: list[str]) -> list[str] | None:
    """The plug-in command line of a shell command (None when it runs something else: pip, pytest)."""
    while tokens and ASSIGNMENT.match(tokens[0]):  # environment settings before the command
        tokens = tokens[1:]
    if len(tokens) < 2 or Path(tokens[0]).name not in ("python", "python3"):
        return None
    if tokens[1].endswith("run_recbole_ifcdsr.py"):
        return ["run", *tokens[2:]]
    if tokens[1] != "-m":
        return None
    module, rest = tokens[2], tokens[3:]
    if module == "recbole_ifcdsr":
        return rest
    if module in SCRIPTS:
        return [module, *rest]
    return [*ALIASES[module], *rest] if module in ALIASES else None


def documented_commands() -> tuple[list[Documented], list[str]]:
    """The plug-in commands of every ```bash block, and the other commands (pip, pytest) as written."""
    found, others = [], []
    for path in DOCS:
        variables: dict[str, str] = {}
        for number, line in _bash_lines(path):
            if not line or line.startswith("#"):
                continue
            tokens = shlex.split(line, comments=True)
            if len(tokens) == 1 and ASSIGNMENT.match(tokens[0]):  # M="..." (a variable for the lines below)
                name, _, value = tokens[0].partition("=")
                variables[name] = value
                continue
            expanded = []
            for token in tokens:
                token = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], token)
                for placeholder, value in PLACEHOLDERS.items():
                    token = token.replace(placeholder, value)
                expanded.append(token)
            argv = _plugin_argv(expanded)
            where = f"{path.relative_to(REPO_ROOT)}:{number}"
            if argv is None:
                others.append(f"{where}: {line}")
            else:
                found.append(Documented(where, argv, line))
    return found, others


COMMANDS, OTHERS = documented_commands()


def _parse(argv: list[str], capsys) -> None:
    """Parse ``argv`` with its command's parser and check what a parser cannot: model names, YAML files."""
    if argv[:1] in (["--help"], ["-h"]):
        assert cli.main(argv) == 0
        return
    command, args = argv[0], argv[1:]
    if command in SCRIPTS:
        script = importlib.import_module(command)
        try:
            parsed, extra = script.build_parser().parse_known_args(args)
        except SystemExit:
            pytest.fail(capsys.readouterr().err)
        script.run_options(extra)
        return
    assert command in cli.COMMANDS, f"unknown command {command!r}"
    parser = importlib.import_module(cli.COMMANDS[command].module).build_parser()
    try:
        if "--help" in args:
            with pytest.raises(SystemExit) as info:
                parser.parse_args(args)
            assert info.value.code == 0
            return
        if command in ("run", "compare"):
            parsed, extra = parser.parse_known_args(args)
            cli.config_options(extra)
        else:
            parsed = parser.parse_args(args)
    except SystemExit:
        pytest.fail(capsys.readouterr().err)
    from recbole_ifcdsr.compare import parse_model_spec, split_top_level
    from recbole_ifcdsr.registry import get_model

    if command == "run":
        get_model(parsed.model)
    if command == "compare":
        for spec in split_top_level(parsed.models, ","):
            get_model(parse_model_spec(spec)[1])
    for name in filter(None, (getattr(parsed, "config_files", None) or "").split(",")):
        assert (REPO_ROOT / name).is_file(), f"--config_files: {name} is not in the repository"


@pytest.mark.unit
def test_the_docs_have_commands_of_every_kind():
    commands = {c.argv[0] for c in COMMANDS}
    assert set(cli.COMMANDS) <= commands and "--help" in commands
    # every other shell line is the install or the test command (none is a plug-in command this test missed)
    assert [line.split(": ", 1)[1] for line in OTHERS] == ['python3 -m venv .venv && .venv/bin/pip install -e ".[test]"',
                                                           ".venv/bin/python -m pytest"]


@pytest.mark.parametrize("documented", COMMANDS, ids=[c.where for c in COMMANDS])
@pytest.mark.integration
def test_every_documented_command_parses(documented, capsys):
    _parse(documented.argv, capsys)


@pytest.mark.unit
def test_the_readme_is_a_front_door():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    # the main job: our model beside a RecBole baseline and Pop on the embedded dataset, one compare command
    main_job = [c for c in COMMANDS if c.where.startswith("README.md") and c.argv[0] == "compare"]
    assert [c.argv for c in main_job] == [["compare", "--dataset=fk_abxi", "--models=Pop,SASRec,IFCDSR-sampled=IFCDSR:loss_type=sampled", "--seeds=1",
                                           "--config_files=properties/budget_cpu.yaml"]]


@pytest.mark.unit
def test_links_between_the_docs_resolve():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{path.relative_to(REPO_ROOT)}: link to {target}"


@pytest.mark.unit
def test_the_results_blocks_live_in_docs_results():
    """compare's --readme fills docs/results.md; its charts sit beside it in docs/results/."""
    text = (REPO_ROOT / "docs" / "results.md").read_text()
    keys = re.findall(r"^<!-- results:(\S+):start -->$", text, re.M)
    assert keys == re.findall(r"^<!-- results:(\S+):end -->$", text, re.M) and len(keys) == 17
    for key in keys:
        assert f"![{key}: " in text and (REPO_ROOT / "docs" / "results" / f"{key}.png").is_file()
    assert "<!-- results:" not in (REPO_ROOT / "README.md").read_text()


# ---- the cheap ones, run as written (the python executable is this interpreter) ---------------------------
def _documented(text: str) -> Documented:
    matches = [c for c in COMMANDS if re.sub(r"\s+#.*$", "", c.text).endswith(text)]  # without a trailing comment
    assert matches, f"not in README.md or docs/: {text}"
    return matches[0]


def _run_as_written(text: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recbole_ifcdsr", *_documented(text).argv]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.e2e
def test_top_level_help_as_written(tmp_path):
    done = _run_as_written("python -m recbole_ifcdsr --help", tmp_path)
    assert [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")] == list(cli.COMMANDS)


@pytest.mark.e2e
def test_a_first_pop_run_as_written(tmp_path):
    _run_as_written("-m recbole_ifcdsr run --model=Pop --dataset=fk_abxi --results_file=pop.json", tmp_path)
    result = json.loads((tmp_path / "pop.json").read_text())
    assert (result["model"], result["dataset"], result["protocols"]) == ("Pop", "fk_abxi", ["sampled", "full"])
    assert result["config"]["data_path"] == str(tmp_path / "dataset" / "fk_abxi")


@pytest.mark.e2e
def test_enrich_without_a_model_as_written(tmp_path):
    done = _run_as_written("python -m recbole_ifcdsr enrich --dataset=fk_llmcdsr --backend=none", tmp_path)
    assert "wrote 36298 titles to" in done.stdout
    lines = (tmp_path / "dataset" / "fk_llmcdsr" / "fk_llmcdsr.enrich.none.tsv").read_text().splitlines()
    assert lines[0] == "item_id:token\ttext:token_seq" and len(lines) == 1 + 36298


@pytest.mark.e2e
def test_converting_a_release_as_written_gives_the_shipped_files(tmp_path):
    shared_data_dir()
    _run_as_written("python -m recbole_ifcdsr convert fk_llmcdsr", tmp_path)
    out = tmp_path / "dataset" / "fk_llmcdsr"
    shipped = SHIPPED_DATASET_DIR / "fk_llmcdsr"
    packed = sorted(shipped.glob("*.gz"))
    assert len(packed) == 4
    for gz in packed:
        assert (out / gz.stem).read_bytes() == gzip.decompress(gz.read_bytes()), gz.stem

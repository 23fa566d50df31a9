"""Installable like RecBole: the wheel carries the plug-in's properties and embedded datasets, lookups go
working directory first, then the package, and an installed wheel runs outside any checkout."""
from __future__ import annotations

import configparser
import gzip
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import setuptools
from conftest import DATA_PATH, QUIET, first_users_rows

from recbole_ifcdsr import paths
from recbole_ifcdsr.cli import COMMANDS
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.data.packing import prepare_dataset_dir
from recbole_ifcdsr.paths import PROPERTIES_DIR, REPO_ROOT, SHIPPED_DATASET_DIR, SHIPPED_DATASETS

DATA_PACKAGES = {"recbole_ifcdsr.properties": "properties", "recbole_ifcdsr.dataset": "dataset"}


def setup_options() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    return parser["options"]


def listed(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


@pytest.mark.unit
def test_torch_lower_bound_has_fused_adam_on_cpu():
    """trainer.fused_adam asks torch for fused=True on CPU parameters, which torch has from 2.4 on
    (pytorch PR #123074); an older torch passed by the bound would fail at the first training run."""
    torch_line = next(line for line in listed(setup_options()["install_requires"]) if line.startswith("torch>="))
    lower = torch_line.split(">=")[1].split(",")[0]
    assert tuple(int(part) for part in lower.split(".")[:2]) >= (2, 4), torch_line


@pytest.mark.unit
def test_setup_lists_every_package_and_maps_the_data_folders():
    """setup.cfg lists its packages by hand (two are mapped folders, which find: cannot express): a new
    subpackage missing from the list would be missing from the wheel."""
    options = setup_options()
    code_packages = setuptools.find_packages(where=str(REPO_ROOT), include=["recbole_ifcdsr", "recbole_ifcdsr.*"])
    assert sorted(listed(options["packages"])) == sorted(code_packages + list(DATA_PACKAGES))
    mapping = dict(line.replace(" ", "").split("=") for line in listed(options["package_dir"]))
    assert mapping == DATA_PACKAGES
    for folder in mapping.values():
        assert (REPO_ROOT / folder).is_dir()


@pytest.mark.unit
def test_working_directory_properties_come_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.default_data_path() == tmp_path / "dataset"  # RecBole's data_path default, dataset/
    assert paths.properties_file("dataset/fk_abxi.yaml") == PROPERTIES_DIR / "dataset" / "fk_abxi.yaml"
    assert "mine" not in paths.known_datasets() and set(SHIPPED_DATASETS) <= set(paths.known_datasets())
    user = tmp_path / "properties" / "dataset"
    user.mkdir(parents=True)
    (user / "fk_abxi.yaml").write_text("cdsr_recipe: leave_one_out\n")
    (user / "mine.yaml").write_text("cdsr_recipe: leave_one_out\n")
    assert paths.properties_file("dataset/fk_abxi.yaml") == user / "fk_abxi.yaml"
    assert "mine" in paths.known_datasets()
    assert paths.default_properties("IFCDSR", "fk_abxi") == {
        "overall.yaml": PROPERTIES_DIR / "overall.yaml", "model/IFCDSR.yaml": PROPERTIES_DIR / "model" / "IFCDSR.yaml",
        "dataset/fk_abxi.yaml": user / "fk_abxi.yaml"}


@pytest.mark.integration
def test_shipped_dataset_unpacks_into_the_data_path_not_the_package(tmp_path):
    before = sorted(p.name for p in (SHIPPED_DATASET_DIR / "fk_abxi").iterdir())
    target = tmp_path / "dataset" / "fk_abxi"
    written = prepare_dataset_dir(target)
    assert sorted(p.name for p in written) == ["README.md", "fk_abxi.inter", "fk_abxi.item", "fk_abxi.meta.json"]
    assert (target / "fk_abxi.meta.json").read_bytes() == (SHIPPED_DATASET_DIR / "fk_abxi" / "fk_abxi.meta.json").read_bytes()
    for name in ("fk_abxi.inter", "fk_abxi.item"):
        packed = SHIPPED_DATASET_DIR / "fk_abxi" / f"{name}.gz"
        assert (target / name).read_bytes() == gzip.decompress(packed.read_bytes())
    assert sorted(p.name for p in (SHIPPED_DATASET_DIR / "fk_abxi").iterdir()) == before
    assert not list(target.glob("*.tmp")) and not list(target.glob("*.gz"))
    # a file the user already has is theirs: not overwritten, as RecBole does not download again
    (target / "fk_abxi.item").write_text("mine\n")
    assert prepare_dataset_dir(target) == []
    assert (target / "fk_abxi.item").read_text() == "mine\n"
    # a folder of the user's own files under a shipped name (a slice, say) gets no provenance that is not its
    own = tmp_path / "slice" / "fk_abxi"
    own.mkdir(parents=True)
    for name in ("fk_abxi.inter", "fk_abxi.item"):
        (own / name).write_text("own\n")
    assert prepare_dataset_dir(own) == [] and sorted(p.name for p in own.iterdir()) == ["fk_abxi.inter", "fk_abxi.item"]


@pytest.mark.integration
def test_a_users_dataset_and_properties_in_the_working_directory(tmp_path, monkeypatch):
    """``./dataset/mine/`` and ``./properties/dataset/mine.yaml`` work as RecBole's data_path does: no
    argument names them."""
    src = DATA_PATH / "fk_abxi"
    prepare_dataset_dir(src)
    (tmp_path / "dataset" / "mine").mkdir(parents=True)
    kept = first_users_rows((src / "fk_abxi.inter").read_text().splitlines(keepends=True), 50)
    (tmp_path / "dataset" / "mine" / "mine.inter").write_text("".join(kept))
    shutil.copyfile(src / "fk_abxi.item", tmp_path / "dataset" / "mine" / "mine.item")
    (tmp_path / "properties" / "dataset").mkdir(parents=True)
    shutil.copyfile(PROPERTIES_DIR / "dataset" / "fk_abxi.yaml", tmp_path / "properties" / "dataset" / "mine.yaml")
    monkeypatch.chdir(tmp_path)
    config = Config("Pop", "mine", config_dict=dict(QUIET))
    assert config["data_path"] == str(tmp_path / "dataset" / "mine") and config["cdsr_recipe"] == "leave_one_out"
    data = CrossDomainSequentialDataset(config)
    assert data.user_num - 1 == 50  # RecBole counts the [PAD] user


def _copy_source(dst: Path) -> None:
    """What a source distribution holds, plus whatever the shipped dataset folders hold now (unpacked files,
    feature stores): the wheel must leave those out."""
    for name in ("setup.cfg", "pyproject.toml", "README.md", "run_recbole_ifcdsr.py"):
        shutil.copy2(REPO_ROOT / name, dst / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.partial")
    shutil.copytree(REPO_ROOT / "recbole_ifcdsr", dst / "recbole_ifcdsr", ignore=skip)
    shutil.copytree(REPO_ROOT / "properties", dst / "properties", ignore=skip)
    for name in SHIPPED_DATASETS:
        shutil.copytree(REPO_ROOT / "dataset" / name, dst / "dataset" / name, ignore=skip)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.e2e
def test_wheel_installed_outside_the_checkout_runs_pop_and_compare(tmp_path):
    src, wheels, site, work = (tmp_path / n for n in ("src", "wheels", "site", "work"))
    for folder in (src, work):
        folder.mkdir()
    _copy_source(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(src)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("recbole_ifcdsr-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    data = {n for n in names if n.startswith("recbole_ifcdsr/") and not n.endswith(".py")}
    expected = {f"recbole_ifcdsr/properties/{p.relative_to(src / 'properties')}" for p in (src / "properties").rglob("*.yaml")}
    for name in SHIPPED_DATASETS:
        expected |= {f"recbole_ifcdsr/dataset/{name}/{p.name}" for p in (src / "dataset" / name).iterdir()
                     if p.suffix == ".gz" or p.name in (f"{name}.meta.json", "README.md")}
    assert data == expected  # no unpacked atomic file, feature store or cache rides along
    code = {f"{p.relative_to(src)}" for p in (src / "recbole_ifcdsr").rglob("*.py")}
    assert code <= names

    installed = subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    before = _files(site)
    # the wheel's folder only (the venv's site-packages still gives the dependencies), never the checkout
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=work, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    where = run("-c", "import recbole_ifcdsr.paths as p; print(p.__file__); print(p.PROPERTIES_DIR)").stdout.split()
    assert where == [str(site / "recbole_ifcdsr" / "paths.py"), str(site / "recbole_ifcdsr" / "properties")]

    run("-m", "recbole_ifcdsr", "run", "--model=Pop", "--dataset=fk_abxi", "--results_file=pop.json",
        "--show_progress=False", "--state=WARNING")
    result = json.loads((work / "pop.json").read_text())
    assert (result["model"], result["dataset"], result["protocols"]) == ("Pop", "fk_abxi", ["sampled", "full"])
    assert set(result["test"]) == {"X", "Y"} and result["config"]["data_path"] == str(work / "dataset" / "fk_abxi")
    shipped = site / "recbole_ifcdsr" / "dataset" / "fk_abxi"
    assert (work / "dataset" / "fk_abxi" / "fk_abxi.inter").read_bytes() == \
        gzip.decompress((shipped / "fk_abxi.inter.gz").read_bytes())

    grid = run("-m", "recbole_ifcdsr", "compare", "--dataset=fk_abxi", "--models=Pop", "--seeds=1", "--out=grid",
               "--protocols=sampled")
    assert "Pop seed 0: ran" in grid.stdout + grid.stderr
    summary = (work / "grid" / "summary.md").read_text()
    assert "| Pop |" in summary and "*ABXI (published)*" in summary  # the anchors came from the package
    assert json.loads((work / "grid" / "Pop-seed0.json").read_text())["model"] == "Pop"
    assert _files(site) == before  # nothing was written into the installed package

    # the console script pip made from the wheel's entry point is the same command line
    script = subprocess.run([str(site / "bin" / "recbole-ifcdsr"), "--help"], capture_output=True, text=True,
                            cwd=work, env=env)
    assert script.returncode == 0, script.stderr[-3000:]
    assert [line.split()[0] for line in script.stdout.splitlines() if line.startswith("  ")] == list(COMMANDS)

"""``convert <format>`` / ``convert check`` (issue 16), through the alias ``python -m recbole_ifcdsr.data.converters``.

The ABXI tests build a second scenario from a real slice of afk under another file name (``bel``) and other
domain names, so nothing depends on the afk name; bad inputs must fail in one line and write nothing.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from conftest import load, shared_data_dir
from recbole_ifcdsr.data.converters import ConversionError, main

ITEM_HEADER = "item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq"


def abxi_slice(root: Path, n_users: int = 40) -> Path:
    """The first ``n_users`` afk sequences as scenario ``bel``: item ids renumbered 1..n (X first), as ABXI
    numbers a scenario, and no user map (it is optional)."""
    afk = shared_data_dir() / "abxi-afk"
    lines = (afk / "afk_50_preprocessed.txt").read_text().splitlines()[:n_users]
    item_map = json.loads((afk / "map_item_50.txt").read_text())
    asin_of = {ident: (asin, dom) for asin, (ident, dom) in item_map.items()}
    used = sorted({int(ev.split("|")[0]) for line in lines for ev in line.split()[1:]})
    renum = {old: new for new, old in enumerate(used, start=1)}  # afk numbers X before Y, so order is kept
    src = root / "bel-src"
    src.mkdir(parents=True)
    (src / "map_item_50.txt").write_text(json.dumps({asin_of[old][0]: [new, asin_of[old][1]] for old, new in renum.items()}))
    out_lines = [" ".join([line.split()[0]] + [f"{renum[int(ev.split('|')[0])]}|{ev.split('|')[1]}"
                                                for ev in line.split()[1:]]) for line in lines]
    (src / "bel_50_preprocessed.txt").write_text("\n".join(out_lines) + "\n")
    return src


def run_convert(argv: list, capsys) -> tuple:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.rsplit("\r", 1)[-1]  # what follows the progress bars


@pytest.mark.integration
def test_abxi_scenario_of_another_name_converts_checks_and_loads(tmp_path, monkeypatch, capsys):
    src = abxi_slice(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_convert(["abxi", "--src", str(src), "--name", "bel", "--domains", "Beauty,Electronics"], capsys)
    assert code == 0, err
    folder = tmp_path / "dataset" / "bel"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "bel.inter", "bel.item", "bel.meta.json"]
    item_lines = (folder / "bel.item").read_text().splitlines()
    assert item_lines[0] == ITEM_HEADER
    assert {line.split("\t")[2] for line in item_lines[1:]} == {"Beauty", "Electronics"}
    yaml_text = (tmp_path / "properties" / "dataset" / "bel.yaml").read_text()
    assert "cdsr_recipe: leave_one_out" in yaml_text and 'domains: {X: "Beauty", Y: "Electronics"}' in yaml_text
    assert str(src.resolve()) in yaml_text  # provenance
    meta = json.loads((folder / "bel.meta.json").read_text())
    assert meta["n_sequences"] == {"all": 40} and meta["domains_from"] == "--domains"
    # the user map is optional: user tokens are ABXI's user ids
    assert (folder / "bel.inter").read_text().splitlines()[1].split("\t")[0] == "0"

    assert main(["check", "--dataset", "bel"]) == 0
    assert capsys.readouterr().out.strip() == "dataset bel: ok"
    _, dataset = load("Pop", "bel")  # `run --dataset=bel` reads exactly this
    for split in ("valid", "test"):
        assert dataset.eval_cases(split).counts() == meta["n_eval_cases"][split]
    assert sum(meta["n_eval_cases"]["test"].values()) == 40


def make_llmcdsr(root: Path, drop: tuple = ()) -> Path:
    src = root / "food-kitchen"
    src.mkdir(parents=True)
    files = {"num.txt": "2\n2\n", "instance_num.txt": "1\n1\n1", "train_A.txt": "1\t0,1\n",
             "train_B.txt": "1\t2,3\n", "train_overlap.txt": "1\t0,2\n", "valid.txt": "1\t0,3,1\n",
             "test.txt": "1\t1,2,3\n"}
    for name, text in files.items():
        (src / name).write_text(text)
    (src / "item_set_A.pkl").write_bytes(pickle.dumps({"a0": 0, "a1": 1}))
    (src / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 1}))
    (src / "text_A.pkl").write_bytes(pickle.dumps({"a0": "Green tea"}))
    (src / "text_B.pkl").write_bytes(pickle.dumps({"b1": "Pan"}))
    for name in drop:
        (src / name).unlink()
    return src


@pytest.mark.unit
def test_llmcdsr_domains_from_the_release_folder_name(tmp_path, monkeypatch, capsys):
    src = make_llmcdsr(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_convert(["llmcdsr", "--src", str(src), "--name", "fk_mine"], capsys)
    assert code == 0, err
    assert (tmp_path / "dataset/fk_mine/fk_mine.item").read_text() == (
        ITEM_HEADER + "\na0\tX\tFood\tGreen tea\na1\tX\tFood\t\nb0\tY\tKitchen\t\nb1\tY\tKitchen\tPan\n")
    meta = json.loads((tmp_path / "dataset/fk_mine/fk_mine.meta.json").read_text())
    assert meta["domains_from"] == "release folder name 'food-kitchen'"
    assert meta["n_eval_cases"] == {"valid": {"X": 1, "Y": 0}, "test": {"X": 0, "Y": 1}}
    assert meta["missing_files"] == []


@pytest.mark.unit
def test_a_release_name_in_the_folder_name_is_not_a_domain(tmp_path):
    """The shared data's abxi-afk folder named Grocery and Kitchen 'Abxi' and 'Afk'; such a folder now asks
    for --domains, while food-kitchen still names Food and Kitchen."""
    from recbole_ifcdsr.data.converters.formats import parse_domains

    for name in ("abxi-afk", "llmcdsr-food", "C2DSR-Food"):
        with pytest.raises(ConversionError, match="the release names no domains; pass --domains"):
            parse_domains(None, tmp_path / name)
    assert parse_domains(None, tmp_path / "food-kitchen") == (("Food", "Kitchen"), "release folder name 'food-kitchen'")


@pytest.mark.unit
def test_llmcdsr_missing_files_stop_unless_allowed(tmp_path, monkeypatch, capsys):
    src = make_llmcdsr(tmp_path, drop=("train_B.txt", "text_B.pkl"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_convert(["llmcdsr", "--src", str(src), "--name", "part"], capsys)
    assert code == 2
    assert err == (f"error: {src}: missing train_B.txt, text_B.pkl; fetch them from the release, or pass "
                   f"--allow_missing to convert the rest (recorded in the dataset's README and meta)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["food-kitchen"]
    code, _, err = run_convert(["llmcdsr", "--src", str(src), "--name", "part", "--allow_missing"], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "dataset/part/part.meta.json").read_text())
    assert meta["missing_files"] == ["train_B.txt", "text_B.pkl"]
    assert meta["n_sequences"]["train"] == 2
    assert "**Missing release files:** train_B.txt, text_B.pkl" in (tmp_path / "dataset/part/README.md").read_text()


@pytest.mark.unit
def test_c2dsr_format_with_given_domains(tmp_path, monkeypatch, capsys):
    src = tmp_path / "mine"
    src.mkdir()
    (src / "Alist.txt").write_text("5\tX0\t0\n6\tX1\t1\n")
    (src / "Blist.txt").write_text("7\tB0\t0\n8\tB1\t1\n")
    ev = lambda item, ts: f"{item}|{ts}|2014-01-01 08:00:00|"  # noqa: E731
    (src / "traindata_new.txt").write_text(f"0\t0\t{ev(0, 5)}\t{ev(2, 3)}\n")
    (src / "validdata_new.txt").write_text(f"1\t1\t{ev(3, 9)}\t{ev(1, 2)}\t{ev(2, 9)}\n")
    (src / "testdata_new.txt").write_text(f"2\t2\t{ev(0, 1)}\t{ev(3, 1)}\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_convert(["c2dsr", "--src", str(src), "--name", "c2", "--domains", "Tea,Pots"], capsys)
    assert code == 0, err
    assert "cdsr_recipe: user_split" in (tmp_path / "properties/dataset/c2.yaml").read_text()
    assert json.loads((tmp_path / "dataset/c2/c2.meta.json").read_text())["n_eval_cases"] == {
        "valid": {"X": 0, "Y": 1}, "test": {"X": 0, "Y": 1}}


def bad_inputs(tmp_path: Path) -> dict:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x\n")
    both = make_llmcdsr(tmp_path / "b")
    (both / "Alist.txt").write_text("5\tX0\t0\n")
    gap = make_llmcdsr(tmp_path / "g")
    (gap / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 2}))
    good = make_llmcdsr(tmp_path / "ok")
    return {"none": empty, "two": both, "gap": gap, "good": good}


@pytest.mark.unit
def test_each_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    srcs = bad_inputs(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cases = [
        (["llmcdsr", "--src", str(srcs["none"]), "--name", "n"],
         f"{srcs['none']}: matches no known format; expected the files of ABXI (*_50_preprocessed.txt + "
         f"map_item_50.txt); or LLMCDSR (train_*.txt, valid.txt, test.txt, item_set_*.pkl, num.txt); or C2DSR "
         f"(Alist.txt, Blist.txt, validdata_new.txt, testdata_new.txt)"),
        (["llmcdsr", "--src", str(srcs["two"]), "--name", "n"],
         f"{srcs['two']}: holds files of 2 formats (llmcdsr: item_set_A.pkl, item_set_B.pkl, train_A.txt; "
         f"c2dsr: Alist.txt); put each release in its own folder"),
        (["llmcdsr", "--src", str(srcs["good"]), "--name", "n", "--domains", "A,B,C"],
         "--domains 'A,B,C': give exactly two different names, X first: --domains Food,Kitchen"),
        (["llmcdsr", "--src", str(srcs["gap"]), "--name", "n"],
         f"{srcs['gap'] / 'item_set_B.pkl'}: ids are not a bijection onto 0..1 (first missing id: 1); the map "
         f"must number every item once without gaps: use the release's own file"),
        (["llmcdsr", "--src", str(srcs["good"]), "--name", "fk_abxi"],
         "--name fk_abxi would overwrite the shipped preset fk_abxi; choose another name (regenerate the preset "
         "with: python -m recbole_ifcdsr.data.converters fk_abxi)"),
        (["abxi", "--src", str(srcs["good"]), "--name", "n"],
         f"{srcs['good']}: holds LLMCDSR (train_*.txt, valid.txt, test.txt, item_set_*.pkl, num.txt) files, not "
         f"abxi; run convert llmcdsr"),
    ]
    for argv, message in cases:
        code, out, err = run_convert(argv, capsys)
        assert (code, err) == (2, f"error: {message}\n"), argv
    assert list(work.iterdir()) == []


@pytest.mark.unit
def test_abxi_map_with_a_gap_is_refused(tmp_path, monkeypatch, capsys):
    src = tmp_path / "gap"
    src.mkdir()
    (src / "map_item_50.txt").write_text(json.dumps({"A1": [1, 0], "B1": [3, 1]}))
    (src / "zz_50_preprocessed.txt").write_text("0 1|5 3|6\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_convert(["abxi", "--src", str(src), "--name", "zz", "--domains", "P,Q"], capsys)
    assert (code, err) == (2, f"error: {src / 'map_item_50.txt'}: item ids are not contiguous 1..2 (first missing id: 2); "
                              f"ABXI numbers every item once without gaps: use the release's own map_item_50.txt\n")
    assert not (tmp_path / "dataset").exists() and not (tmp_path / "properties").exists()


@pytest.mark.unit
def test_check_src_reports_every_bad_input_in_one_run(tmp_path, monkeypatch, capsys):
    gap = make_llmcdsr(tmp_path / "g")
    (gap / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 2}))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_convert(["check", "--src", str(gap), "--name", "movie_book", "--domains", "A"], capsys)
    assert code == 2
    assert out.splitlines() == [
        "--name movie_book would overwrite the shipped preset movie_book; choose another name (regenerate the "
        "preset with: python -m recbole_ifcdsr.data.converters movie_book)",
        "--domains 'A': give exactly two different names, X first: --domains Food,Kitchen",
        f"{gap / 'item_set_B.pkl'}: ids are not a bijection onto 0..1 (first missing id: 1); the map must number "
        f"every item once without gaps: use the release's own file",
    ]
    assert err == f"error: 3 problems in source folder {gap}; nothing was written\n"
    code, out, _ = run_convert(["check", "--src", str(tmp_path / "g")], capsys)
    assert code == 2 and "matches no known format" in out


def write_own_dataset(root: Path, item_rows: str, inter_rows: str) -> Path:
    """A hand-made leave-one-out dataset 'own' (Tea / Pots) under ``root``; returns its folder."""
    (root / "properties/dataset").mkdir(parents=True)
    (root / "properties/dataset/own.yaml").write_text(
        "cdsr_recipe: leave_one_out\ndomains: {X: Tea, Y: Pots}\nTIME_FIELD: timestamp\n")
    folder = root / "dataset/own"
    folder.mkdir(parents=True)
    (folder / "own.item").write_text(ITEM_HEADER + item_rows)
    (folder / "own.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + inter_rows)
    return folder


@pytest.mark.unit
def test_check_dataset_reports_every_problem_with_file_line_and_field(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = write_own_dataset(tmp_path, "\na\tX\tTea\t\nb\tZ\tPots\t\nc\tY\tPots\t\na\tX\tTea\t\n",
                               "u1\ta\t1\nu1\tq\t2\nu1\tc\tnan\nu2\ta\t1\nu2\tc\n")
    before = sorted(p.name for p in folder.iterdir())
    code, out, err = run_convert(["check", "--dataset", "own"], capsys)
    item, inter = folder / "own.item", folder / "own.inter"
    assert code == 2
    assert out.splitlines() == [
        f"{item}:3: domain: 'Z' is not X or Y",
        f"{item}:5: item_id: 'a' listed twice",
        f"{inter}:3: item_id: 'q' is not in the .item file",
        f"{inter}:4: timestamp: 'nan' is not a finite number",
        f"{inter}:6: 2 fields, the header has 3 (user_id, item_id, timestamp)",
        f"{inter}:5: user_id: sequence 'u2' has 1 item(s); recipe leave_one_out needs at least 3",
        # u1, the only long-enough sequence, has its valid target 'q' (no domain) and its test target in Y
        f"{inter}: no valid case targets domain X; recipe leave_one_out evaluates both domains",
        f"{inter}: no valid case targets domain Y; recipe leave_one_out evaluates both domains",
        f"{inter}: no test case targets domain X; recipe leave_one_out evaluates both domains",
    ]
    assert err == "error: 9 problems in dataset own; nothing was written\n"
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.unit
def test_check_dataset_names_a_cell_that_opens_a_quote(tmp_path, monkeypatch, capsys):
    """The same quote rule a run applies before RecBole reads the file (data/atomic.py)."""
    monkeypatch.chdir(tmp_path)
    folder = write_own_dataset(tmp_path, '\na\tX\tTea\t"Green tea\nb\tY\tPots\t"Pan"\n',
                               "u1\ta\t1\nu1\tb\t2\nu1\ta\t3\nu1\tb\t4\nu2\tb\t1\nu2\ta\t2\nu2\tb\t3\nu2\ta\t4\n")
    code, out, _ = run_convert(["check", "--dataset", "own"], capsys)
    assert code == 2
    assert out.splitlines() == [f"{folder / 'own.item'}:2: title: starts with a double quote but is not one quoted "
                                f"cell (\"...\" with inner quotes doubled), so RecBole's reader (pandas) would misread "
                                f"it or read the lines after it into it; remove the quote"]


@pytest.mark.unit
def test_check_dataset_without_yaml_or_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_convert(["check", "--dataset", "nothing"], capsys)
    assert code == 2
    assert out.splitlines()[1] == f"{tmp_path / 'dataset/nothing/nothing.item'}: missing: the .item file gives every item's domain (X/Y)"
    assert "properties/dataset/nothing.yaml" in out.splitlines()[0]


@pytest.mark.integration
def test_check_passes_on_the_shipped_datasets(capsys):
    load("Pop", "fk_llmcdsr")  # unpacks the shipped files
    assert main(["check", "--dataset", "fk_llmcdsr"]) == 0
    assert main(["check", "--dataset", "fk_abxi"]) == 0


@pytest.mark.integration
def test_mb_llmcdsr_needs_allow_missing_and_matches_its_readme(tmp_path, capsys):
    src = shared_data_dir() / "llmcdsr-movie-book"
    out = tmp_path / "mb_llmcdsr"
    assert main(["mb_llmcdsr", "--src", str(src), "--out", str(out)]) == 2  # a data error (cli.py's policy)
    assert "missing train_B.txt, text_B.pkl" in capsys.readouterr().err and not out.exists()
    assert main(["mb_llmcdsr", "--src", str(src), "--out", str(out), "--allow_missing"]) == 0
    shipped = Path(__file__).resolve().parents[1] / "dataset" / "mb_llmcdsr"
    assert (out / "README.md").read_text() == (shipped / "README.md").read_text(), \
        "re-run: python -m recbole_ifcdsr.data.converters mb_llmcdsr --allow_missing"
    meta = json.loads((out / "mb_llmcdsr.meta.json").read_text())
    assert meta["missing_files"] == ["train_B.txt", "text_B.pkl"]
    assert meta["n_items"] == {"X": 12875, "Y": 93860}  # num.txt


@pytest.mark.e2e
def test_abxi_scenario_converts_and_runs_in_two_commands(tmp_path):
    """The issue's promise, as a user types it: ``convert abxi`` then ``run`` in an empty working directory."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    src = abxi_slice(tmp_path, n_users=300)  # enough items per domain for 999 sampled negatives
    work = tmp_path / "work"
    work.mkdir()
    env = {**__import__("os").environ, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-m", "recbole_ifcdsr.data.converters", "abxi", "--src", str(src),
                           "--name", "bel", "--domains", "Beauty,Electronics"], cwd=work, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = work / "out.json"
    done = subprocess.run([sys.executable, str(repo / "run_recbole_ifcdsr.py"), "--model=Pop", "--dataset=bel",
                           "--show_progress=False", f"--results_file={results}", f"--checkpoint_dir={work / 'saved'}"],
                          cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads((work / "dataset/bel/bel.meta.json").read_text())
    out = json.loads(results.read_text())
    assert (out["model"], out["dataset"]) == ("Pop", "bel") and set(out["test"]) == {"X", "Y"}
    assert "| sampled | test | Beauty |" in done.stdout + done.stderr
    assert "| sampled | test | Electronics |" in done.stdout + done.stderr
    assert sum(meta["n_eval_cases"]["test"].values()) == 300


@pytest.mark.unit
def test_missing_release_files_are_logged_once(tmp_path, caplog):
    from recbole_ifcdsr.data.dataset import log_missing_release_files

    meta = tmp_path / "part.meta.json"
    meta.write_text(json.dumps({"missing_files": ["train_B.txt", "text_B.pkl"]}))
    complete = tmp_path / "full.meta.json"
    complete.write_text(json.dumps({"missing_files": []}))
    with caplog.at_level("WARNING"):
        for _ in range(3):
            log_missing_release_files(str(meta))
            log_missing_release_files(str(complete))
    assert [r.getMessage() for r in caplog.records] == [
        f"{meta}: converted without the release files train_B.txt, text_B.pkl (--allow_missing); results are not "
        f"comparable with the full release"]

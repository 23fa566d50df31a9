"""Tests for recbole_ifcdsr.data.converters.

Real-data tests read ../shared/data (skipped when absent, failed under CI=true);
error-path tests build tiny broken sources in tmp_path, so they always run.
"""
from __future__ import annotations

import collections
import itertools
import gzip
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from recbole_ifcdsr.data.converters import (
    CONVERTERS, ConversionError, clean_title, convert_fk_abxi, convert_fk_llmcdsr, convert_food_kitchen,
    load_c2dsr_items, main, parse_c2dsr_sequences,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.filterwarnings("ignore:title file not found")
ITEM_HEADER = "item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        msg = f"real data folder {DATA} is absent (see shared/data/SOURCES.md)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return DATA


@pytest.fixture(scope="session")
def abxi_out(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "fk_abxi"
    convert_fk_abxi(data_dir / "abxi-afk", out)
    return out


@pytest.fixture(scope="session")
def llmcdsr_out(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "fk_llmcdsr"
    convert_fk_llmcdsr(data_dir / "llmcdsr-food-kitchen", out)
    return out


# ---------------------------------------------------------------- helpers

def read_atomic(path: Path) -> Tuple[str, List[List[str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    assert "\r" not in text and text.endswith("\n")
    lines = text[:-1].split("\n")
    return lines[0], [line.split("\t") for line in lines[1:]]


def sequences(rows: List[List[str]]) -> List[Tuple[str, List[str]]]:
    """Group contiguous rows by user; asserts each user forms exactly one block."""
    seqs = [(u, [r[1] for r in g]) for u, g in itertools.groupby(rows, key=lambda r: r[0])]
    assert len(seqs) == len({u for u, _ in seqs}), "a user's rows are not contiguous"
    return seqs


def item_domains(path: Path) -> Dict[str, str]:
    header, rows = read_atomic(path)
    assert header == ITEM_HEADER
    return {r[0]: r[1] for r in rows}


def target_counts(seqs, domain: Dict[str, str], pos: int) -> Dict[str, int]:
    return dict(collections.Counter(domain[s[pos]] for _, s in seqs))


def dir_bytes(path: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name != "README.md"}


@pytest.mark.unit
def test_a_title_is_one_safe_tsv_cell():
    """Whitespace runs become one space; double quotes become two single ones, since RecBole's reader
    (pandas) takes a cell that starts with a quote as a quoted field that swallows the following rows."""
    assert clean_title(' "Hello  Kitty"\tlunch\r\nbox 12" ') == "''Hello Kitty'' lunch box 12''"


# ---------------------------------------------------------------- real data: counts

@pytest.mark.integration
def test_abxi_counts(abxi_out):
    header, items = read_atomic(abxi_out / "fk_abxi.item")
    assert header == ITEM_HEADER
    doms = [r[1] for r in items]
    assert doms == ["X"] * 11837 + ["Y"] * 16258  # X block first, then Y
    assert {r[2] for r in items[:11837]} == {"Grocery"} and {r[2] for r in items[11837:]} == {"Kitchen"}
    header, rows = read_atomic(abxi_out / "fk_abxi.inter")
    assert header == "user_id:token\titem_id:token\ttimestamp:float"
    assert all(r[2].isdigit() for r in rows)
    seqs = sequences(rows)
    assert len(seqs) == 7144
    domain = {r[0]: r[1] for r in items}
    assert target_counts(seqs, domain, -2) == {"X": 2837, "Y": 4307}  # LOO valid
    assert target_counts(seqs, domain, -1) == {"X": 2419, "Y": 4725}  # LOO test
    meta = json.loads((abxi_out / "fk_abxi.meta.json").read_text())
    assert meta["n_items"] == {"X": 11837, "Y": 16258}
    assert meta["n_titled_items"] == {"X": 7601, "Y": 15756}


@pytest.mark.integration
def test_abxi_keeps_file_order(abxi_out, data_dir):
    """First source line: user 0 -> its reviewerID, items in file order, ts as integers."""
    users = {v: k for k, v in json.loads((data_dir / "abxi-afk/map_user_50.txt").read_text()).items()}
    asins = {v[0]: k for k, v in json.loads((data_dir / "abxi-afk/map_item_50.txt").read_text()).items()}
    first = (data_dir / "abxi-afk/afk_50_preprocessed.txt").open().readline().split()
    events = [tok.split("|") for tok in first[1:]]
    _, rows = read_atomic(abxi_out / "fk_abxi.inter")
    expect = [[users[int(first[0])], asins[int(i)], ts] for i, ts in events]
    assert rows[: len(expect)] == expect


@pytest.mark.integration
def test_llmcdsr_counts(llmcdsr_out):
    domain = item_domains(llmcdsr_out / "fk_llmcdsr.item")
    assert collections.Counter(domain.values()) == {"X": 8661, "Y": 27637}
    split_seqs = {}
    for split in ("train", "valid", "test"):
        header, rows = read_atomic(llmcdsr_out / f"fk_llmcdsr.{split}.inter")
        assert header == "user_id:token\titem_id:token"
        split_seqs[split] = sequences(rows)
    prefixes = collections.Counter(u.split("_")[0] for u, _ in split_seqs["train"])
    assert prefixes == {"trainA": 5472, "trainB": 38191, "overlap": 7501}
    order = [u.split("_")[0] for u, _ in split_seqs["train"]]
    assert order == ["trainA"] * 5472 + ["trainB"] * 38191 + ["overlap"] * 7501
    assert len(split_seqs["valid"]) == 960 and len(split_seqs["test"]) == 937
    assert target_counts(split_seqs["valid"], domain, -1) == {"X": 363, "Y": 597}
    assert target_counts(split_seqs["test"], domain, -1) == {"X": 300, "Y": 637}
    all_users = [u for s in split_seqs.values() for u, _ in s]
    assert len(all_users) == len(set(all_users))


@pytest.mark.integration
def test_llmcdsr_id_mapping(llmcdsr_out, data_dir):
    """Global id g -> item row g (A block then B block), checked on the first valid line."""
    src = data_dir / "llmcdsr-food-kitchen"
    _, items = read_atomic(llmcdsr_out / "fk_llmcdsr.item")
    ids = [int(t) for t in (src / "valid.txt").open().readline().split("\t")[1].split(",")]
    _, rows = read_atomic(llmcdsr_out / "fk_llmcdsr.valid.inter")
    assert [r[1] for r in rows[: len(ids)]] == [items[i][0] for i in ids]
    assert {r[0] for r in rows[: len(ids)]} == {"valid_1"}


@pytest.mark.parametrize("folder,counts", [
    ("Food-Kitchen", {"valid": {"X": 2722, "Y": 5451}, "test": {"X": 2747, "Y": 5659}}),
    ("Movie-Book", {"valid": {"X": 2032, "Y": 5612}, "test": {"X": 1978, "Y": 5730}}),
])
@pytest.mark.integration
def test_c2dsr_eval_targets(data_dir, folder, counts):
    n_x = len(load_c2dsr_items(data_dir / folder / "Alist.txt"))
    n_y = len(load_c2dsr_items(data_dir / folder / "Blist.txt"))
    users = set()
    for split in ("valid", "test"):
        seqs = list(parse_c2dsr_sequences(data_dir / folder / f"{split}data_new.txt", n_x, n_y, split))
        got = collections.Counter("X" if items[-1] < n_x else "Y" for _, items, _ in seqs)
        assert got == counts[split]
        assert all(ts == sorted(ts) for _, _, ts in seqs)
        users |= {tok.split("_")[1] for tok, _, _ in seqs}
    assert len(users) == sum(sum(c.values()) for c in counts.values())  # every user once


@pytest.mark.integration
def test_c2dsr_full_conversion_with_given_train(data_dir, tmp_path):
    """A stand-in train file (a few real eval lines) exercises the whole C2DSR path."""
    src = data_dir / "Food-Kitchen"
    train = tmp_path / "traindata_new.txt"
    train.write_text("".join((src / "validdata_new.txt").open().readlines()[:5]))
    out = tmp_path / "food_kitchen"
    meta = convert_food_kitchen(src, out, train=train)
    assert meta["n_sequences"] == {"train": 5, "valid": 8173, "test": 8406}
    assert meta["n_titled_items"] == {"X": 8435, "Y": 22352}
    domain = item_domains(out / "food_kitchen.item")
    header, rows = read_atomic(out / "food_kitchen.test.inter")
    assert header == "user_id:token\titem_id:token\ttimestamp:float"
    seqs = sequences(rows)
    assert target_counts(seqs, domain, -1) == {"X": 2747, "Y": 5659}
    assert all(u.startswith("test_") for u, _ in seqs)
    _, train_rows = read_atomic(out / "food_kitchen.train.inter")
    assert {r[0].split("_")[0] for r in train_rows} == {"train"}


# ---------------------------------------------------------------- shipped outputs

@pytest.mark.parametrize("name", ["fk_abxi", "fk_llmcdsr"])
@pytest.mark.integration
def test_shipped_dataset_is_current(name, request):
    out = request.getfixturevalue(f"{name.split('_')[1]}_out")
    shipped = REPO / "dataset" / name
    assert (shipped / "README.md").is_file()
    # git holds the atomic files gzipped (<file>.gz) plus the meta JSON; compare their contents
    shipped_files = {p.name[:-3]: gzip.decompress(p.read_bytes()) for p in shipped.glob("*.gz")}
    shipped_files[f"{name}.meta.json"] = (shipped / f"{name}.meta.json").read_bytes()
    assert shipped_files == dir_bytes(out), f"re-run: python -m recbole_ifcdsr.data.converters {name} --pack"


# ---------------------------------------------------------------- tiny synthetic sources

def make_abxi(root: Path, seq_lines: List[str]) -> Path:
    src = root / "abxi"
    src.mkdir(parents=True, exist_ok=True)
    items = {"A1": [1, 0], "A2": [2, 0], "B1": [3, 1], "B2": [4, 1]}
    (src / "map_item_50.txt").write_text(json.dumps(items))
    (src / "map_user_50.txt").write_text(json.dumps({"U0": 0, "U1": 1}))
    (src / "afk_50_preprocessed.txt").write_text("".join(line + "\n" for line in seq_lines))
    (root / "derived").mkdir(exist_ok=True)
    (root / "derived" / "llmcdsr_titles_food.tsv").write_text("asin\ttitle\nA1\tTea  bag\n")
    return src


def make_llmcdsr(root: Path, files: Dict[str, str], num: str = "2\n2\n") -> Path:
    src = root / "llm"
    src.mkdir(parents=True, exist_ok=True)
    (src / "num.txt").write_text(num)
    (src / "item_set_A.pkl").write_bytes(pickle.dumps({"a0": 0, "a1": 1}))
    (src / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 1}))
    (src / "text_A.pkl").write_bytes(pickle.dumps({"a0": " Green\ttea\r\nbox "}))
    (src / "text_B.pkl").write_bytes(pickle.dumps({"b1": "Pan"}))
    base = {"train_A.txt": "1\t0,1\n", "train_B.txt": "1\t2,3\n", "train_overlap.txt": "1\t0,2\n",
            "valid.txt": "1\t0,3,1\n", "test.txt": "1\t1,2,3\n"}
    base.update(files)
    for name, text in base.items():
        (src / name).write_text(text)
    return src


def ev(item: int, ts: int) -> str:
    return f"{item}|{ts}|2014-01-01 08:00:00|"


def make_c2dsr(root: Path, files: Dict[str, str], blist: str = "7\tB0\t0\n8\tB1\t1\n") -> Path:
    src = root / "Food-Kitchen"
    src.mkdir(parents=True, exist_ok=True)
    (src / "Alist.txt").write_text("5\tX0\t0\n6\tX1\t1\n")
    (src / "Blist.txt").write_text(blist)
    base = {"traindata_new.txt": f"0\t0\t{ev(0, 5)}\t{ev(2, 3)}\n",
            "validdata_new.txt": f"1\t1\t{ev(3, 9)}\t{ev(1, 2)}\t{ev(2, 9)}\n",
            "testdata_new.txt": f"2\t2\t{ev(0, 1)}\t{ev(3, 1)}\n"}
    base.update(files)
    for name, text in base.items():
        (src / name).write_text(text)
    return src


@pytest.mark.unit
def test_tiny_abxi_output(tmp_path):
    src = make_abxi(tmp_path, ["0 3|20 1|10", "1 2|5 4|5"])
    convert_fk_abxi(src, tmp_path / "out")
    assert (tmp_path / "out/fk_abxi.item").read_text() == (
        ITEM_HEADER + "\nA1\tX\tGrocery\tTea bag\nA2\tX\tGrocery\t\n"
        "B1\tY\tKitchen\t\nB2\tY\tKitchen\t\n")
    assert (tmp_path / "out/fk_abxi.inter").read_text() == (
        "user_id:token\titem_id:token\ttimestamp:float\n"
        "U0\tB1\t20\nU0\tA1\t10\nU1\tA2\t5\nU1\tB2\t5\n")  # file order kept, not re-sorted


@pytest.mark.unit
def test_tiny_llmcdsr_output_and_pickle_titles(tmp_path):
    src = make_llmcdsr(tmp_path, {})
    meta = convert_fk_llmcdsr(src, tmp_path / "out", derived=tmp_path / "no_derived")
    items = (tmp_path / "out/fk_llmcdsr.item").read_text().splitlines()
    assert items[1:] == ["a0\tX\tFood\tGreen tea box", "a1\tX\tFood\t", "b0\tY\tKitchen\t",
                         "b1\tY\tKitchen\tPan"]
    assert (tmp_path / "out/fk_llmcdsr.train.inter").read_text().splitlines()[1:] == [
        "trainA_1\ta0", "trainA_1\ta1", "trainB_1\tb0", "trainB_1\tb1", "overlap_1\ta0", "overlap_1\tb0"]
    assert meta["n_sequences"] == {"train": 3, "valid": 1, "test": 1}


@pytest.mark.unit
def test_tiny_c2dsr_stable_sort(tmp_path):
    src = make_c2dsr(tmp_path, {})
    convert_food_kitchen(src, tmp_path / "out", derived=tmp_path)
    valid = (tmp_path / "out/food_kitchen.valid.inter").read_text().splitlines()[1:]
    # ts 9,2,9 -> 2 first, then the two ts=9 events in file order (B1 before Y-item 2 = B0)
    assert valid == ["valid_1_1\tX1\t2", "valid_1_1\tB1\t9", "valid_1_1\tB0\t9"]


@pytest.mark.unit
def test_pickle_with_globals_refused(tmp_path):
    src = make_llmcdsr(tmp_path, {})
    (src / "item_set_A.pkl").write_bytes(pickle.dumps(collections.OrderedDict(a0=0, a1=1)))
    with pytest.raises(ConversionError, match="item_set_A.pkl"):
        convert_fk_llmcdsr(src, tmp_path / "out")


# ---------------------------------------------------------------- error paths

ABXI_BAD = [
    ("0 1|10 2-20", "bad event"),
    ("0 1|10 x|20", "non-integer item id"),
    ("0 1|10 2|1.5", "non-integer timestamp"),
    ("0", "empty sequence"),
    ("0 1|10 9|20", "outside both domains"),
    ("7 1|10", "user 7"),
]


@pytest.mark.parametrize("bad,why", ABXI_BAD)
@pytest.mark.unit
def test_abxi_bad_line(tmp_path, bad, why):
    src = make_abxi(tmp_path, ["1 1|1 3|2", bad])
    with pytest.raises(ConversionError, match=why) as info:
        convert_fk_abxi(src, tmp_path / "out")
    assert f"{src / 'afk_50_preprocessed.txt'}:2:" in str(info.value)
    assert not (tmp_path / "out").exists()


LLM_BAD = [
    ("train_B.txt", "1\t2,3\n2\t2,x\n", "non-integer item id"),
    ("train_A.txt", "1\t0,1\n2\t\n", "empty"),
    ("train_overlap.txt", "1\t0,2\n2\t0,4\n", "item id 4 outside both domains"),
    ("valid.txt", "1\t0,3,1\n2\t0,2,17\n", "target item id 17"),
    ("test.txt", "1\t1,2,3\n2\t-1,2\n", "item id -1 outside"),
]


@pytest.mark.parametrize("fname,text,why", LLM_BAD)
@pytest.mark.unit
def test_llmcdsr_bad_line(tmp_path, fname, text, why):
    src = make_llmcdsr(tmp_path, {fname: text})
    with pytest.raises(ConversionError, match=why) as info:
        convert_fk_llmcdsr(src, tmp_path / "out")
    assert f"{src / fname}:2:" in str(info.value)


@pytest.mark.unit
def test_llmcdsr_empty_domain(tmp_path):
    src = make_llmcdsr(tmp_path, {}, num="2\n0\n")
    with pytest.raises(ConversionError, match=r"num\.txt.*domain B has 0 items"):
        convert_fk_llmcdsr(src, tmp_path / "out")


@pytest.mark.unit
def test_llmcdsr_missing_file(tmp_path):
    src = make_llmcdsr(tmp_path, {})
    (src / "test.txt").unlink()
    with pytest.raises(ConversionError, match="missing source file") as info:
        convert_fk_llmcdsr(src, tmp_path / "out")
    assert str(src / "test.txt") in str(info.value)


C2DSR_BAD = [
    ("validdata_new.txt", "1\t1\t{e}\t3|x|d|\n", "non-integer timestamp"),
    ("testdata_new.txt", "2\t2\t{e}\t3\n", "bad event"),
    ("testdata_new.txt", "2\tq\t{e}\n", "non-integer seq_id"),
    ("traindata_new.txt", "9\t9\n", "empty sequence"),
    ("traindata_new.txt", "9\t9\t{e}\t" + ev(4, 9) + "\n", "item id 4 outside both domains"),
    ("traindata_new.txt", "0\t0\t{e}\n", "sequence train_0_0 repeated"),
    ("testdata_new.txt", "8\t8\t{e}\t" + ev(5, 9) + "\n", "target item id 5"),
]


@pytest.mark.parametrize("fname,text,why", C2DSR_BAD)
@pytest.mark.unit
def test_c2dsr_bad_line(tmp_path, fname, text, why):
    good = {"validdata_new.txt": "1\t1\t" + ev(0, 1) + "\n", "testdata_new.txt": "2\t2\t" + ev(2, 1) + "\n",
            "traindata_new.txt": "0\t0\t" + ev(1, 1) + "\n"}
    src = make_c2dsr(tmp_path, {fname: good[fname] + text.format(e=ev(0, 1))})
    with pytest.raises(ConversionError, match=why) as info:
        convert_food_kitchen(src, tmp_path / "out", derived=tmp_path)
    assert f"{src / fname}:2:" in str(info.value)


@pytest.mark.unit
def test_c2dsr_empty_domain_and_duplicate_asin(tmp_path):
    src = make_c2dsr(tmp_path, {}, blist="")
    with pytest.raises(ConversionError, match=r"Blist\.txt.*empty domain"):
        convert_food_kitchen(src, tmp_path / "out", derived=tmp_path)
    src = make_c2dsr(tmp_path, {}, blist="7\tX1\t0\n")
    with pytest.raises(ConversionError, match="'X1' appears more than once"):
        convert_food_kitchen(src, tmp_path / "out", derived=tmp_path)


@pytest.mark.unit
def test_c2dsr_missing_train_writes_nothing(tmp_path):
    src = make_c2dsr(tmp_path / "data", {})
    (src / "traindata_new.txt").unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConversionError) as info:
        convert_food_kitchen(src, tmp_path / "out")
    msg = str(info.value)
    assert str(src / "traindata_new.txt") in msg and "Google Drive" in msg and "cjx96/C2DSR" in msg
    assert "Food-Kitchen/traindata_new.txt" in msg and "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert main(["food_kitchen", "--src", str(src), "--out", str(tmp_path / "out")]) == 2


@pytest.mark.unit
def test_deterministic_output(tmp_path):
    src = make_c2dsr(tmp_path, {})
    convert_food_kitchen(src, tmp_path / "a", derived=tmp_path)
    convert_food_kitchen(src, tmp_path / "b", derived=tmp_path)
    assert dir_bytes(tmp_path / "a") == dir_bytes(tmp_path / "b")
    assert len(dir_bytes(tmp_path / "a")) == 5  # item, 3 inter, meta


@pytest.mark.unit
def test_failed_conversion_keeps_previous_output(tmp_path):
    src = make_llmcdsr(tmp_path, {})
    out = tmp_path / "out"
    convert_fk_llmcdsr(src, out)
    (out / "README.md").write_text("note\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (src / "test.txt").write_text("1\t1,2,3\n2\t0,99\n")  # fails after valid/train were written
    with pytest.raises(ConversionError, match="test.txt:2"):
        convert_fk_llmcdsr(src, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm", "out"]  # no temp dir left


@pytest.mark.unit
def test_registry_and_cli_defaults():
    assert set(CONVERTERS) == {"fk_abxi", "fk_llmcdsr", "food_kitchen", "movie_book", "mb_llmcdsr"}
    with pytest.raises(ConversionError, match="--train"):
        CONVERTERS["fk_abxi"](Path("x"), Path("y"), train=Path("t"))


@pytest.mark.unit
def test_preset_source_default_needs_the_shared_folder(tmp_path, monkeypatch, capsys):
    """Beside ../shared/data (a source checkout) the presets read it; without it (an installed package,
    whose ../shared is next to site-packages) the command asks for --src in one line, before writing."""
    import recbole_ifcdsr.data.converters as converters
    from recbole_ifcdsr.data.convert import main as convert_main

    present = tmp_path / "shared" / "data"
    present.mkdir(parents=True)
    monkeypatch.setattr(converters, "SHARED_DATA_DIR", present)
    assert converters.default_src("fk_abxi") == present / "abxi-afk"
    absent = tmp_path / "site-packages-sibling" / "shared" / "data"
    monkeypatch.setattr(converters, "SHARED_DATA_DIR", absent)
    assert convert_main(["fk_abxi", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"error: convert fk_abxi: give --src DIR, the folder of the release's files "
                                       f"(the default {absent} exists only beside a source checkout)\n")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- completeness: a cut file is never "converted"

@pytest.fixture
def abxi_copy(data_dir, tmp_path) -> Path:
    src = tmp_path / "abxi-afk"
    shutil.copytree(data_dir / "abxi-afk", src)
    return src


@pytest.mark.integration
def test_abxi_cut_in_the_middle_of_a_timestamp_keeps_the_good_output(abxi_copy, abxi_out, tmp_path):
    """The finding: cut inside line 3,661's last timestamp, it converted 3,661 of 7,144 users with exit 0
    and replaced the good output."""
    out = tmp_path / "out"
    shutil.copytree(abxi_out, out)
    before = dir_bytes(out)
    seq = abxi_copy / "afk_50_preprocessed.txt"
    lines = seq.read_bytes().splitlines(keepends=True)
    seq.write_bytes(b"".join(lines[:3660]) + lines[3660][:-4])  # '...|1390780' instead of '...|1390780800\n'
    with pytest.raises(ConversionError, match=rf"{seq}:3661: no newline at the end of the file: it looks truncated"):
        convert_fk_abxi(abxi_copy, out)
    assert dir_bytes(out) == before
    seq.write_bytes(b"".join(lines[:3661]))  # cut at a line end: every line is whole, users are missing
    with pytest.raises(ConversionError, match=r"afk_50_preprocessed\.txt: 3,661 users but map_user_50\.txt lists "
                                              r"7,144: the file is incomplete"):
        convert_fk_abxi(abxi_copy, out)
    assert dir_bytes(out) == before
    assert main(["fk_abxi", "--src", str(abxi_copy), "--out", str(out)]) == 2


@pytest.mark.unit
def test_abxi_user_order_and_item_coverage(tmp_path):
    src = make_abxi(tmp_path, ["1 1|1 3|2", "0 2|5 4|5"])
    with pytest.raises(ConversionError, match=r"afk_50_preprocessed\.txt:2: user id 0 after 1: ABXI's file lists users"):
        convert_fk_abxi(src, tmp_path / "out")
    src = make_abxi(tmp_path, ["0 3|20 1|10", "1 2|5 1|5"])  # item 4 (B2) never occurs
    with pytest.raises(ConversionError, match=r"3 items but map_item_50\.txt lists 4"):
        convert_fk_abxi(src, tmp_path / "out")


@pytest.mark.parametrize("files, why", [
    ({"valid.txt": "1\t0,3,1\n2\t0,2,"}, r"valid\.txt:2: no newline at the end of the file"),
    ({"test.txt": "2\t1,2,3\n1\t0,2\n"}, r"test\.txt:2: user id 1 after 2: LLMCDSR's files list users in increasing"),
    ({"train_B.txt": "1\t2,2\n", "valid.txt": "1\t0,2,1\n", "test.txt": "1\t1,2,0\n"},  # b1 (id 3) never occurs
     r"llm: 3 items in the sequence files but num\.txt lists 4"),
])
@pytest.mark.unit
def test_llmcdsr_completeness(tmp_path, files, why):
    src = make_llmcdsr(tmp_path, files)
    with pytest.raises(ConversionError, match=why):
        convert_fk_llmcdsr(src, tmp_path / "out")


@pytest.mark.unit
def test_c2dsr_valid_and_test_must_hold_every_listed_user(tmp_path):
    src = make_c2dsr(tmp_path, {})
    (src / "userlist.txt").write_text("R0\t0\nR1\t1\nR2\t2\n")  # valid holds user 1, test user 2: user 0 is missing
    with pytest.raises(ConversionError, match=r"valid and test hold 2 users, userlist\.txt lists 3 \(1 missing, e\.g\. "
                                              r"\[0\]\): the files are incomplete"):
        convert_food_kitchen(src, tmp_path / "out", derived=tmp_path)
    (src / "userlist.txt").write_text("R1\t1\nR2\t2\n")
    assert convert_food_kitchen(src, tmp_path / "out", derived=tmp_path)["n_sequences"] == {"train": 1, "valid": 1, "test": 1}


@pytest.mark.integration
def test_real_c2dsr_valid_and_test_cover_the_user_list(data_dir, tmp_path):
    """The check holds on the real release (the train file stands in: it is not obtainable here)."""
    src = data_dir / "Food-Kitchen"
    meta = convert_food_kitchen(src, tmp_path / "out", train=src / "testdata_new.txt", derived=tmp_path)
    assert meta["n_sequences"]["valid"] + meta["n_sequences"]["test"] == 16579

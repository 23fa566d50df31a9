"""Raw Amazon converter: every release's schema, exact counts, errors, determinism, RecBole loading."""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.amazon import (
    AMAZON_ITEM_HEADER, ErrorPolicy, ScenarioOptions, classify, convert_amazon, cut_sequences,
    image_urls, main,
)
from recbole_ifcdsr.data.amazon.scenario import _format_ms
from recbole_ifcdsr.data.converters.common import ConversionError
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset

import amazon_fixtures as fx

QUIET = {"show_progress": False, "state": "WARNING"}
EXPECTED_SEQ = {"train": 12, "valid": 6, "test": 6}
EXPECTED_INTER = {"train": 120, "valid": 60, "test": 60}


def convert(files, root: Path, name: str = "fk", **kw) -> dict:
    return convert_amazon(files["x"], files["y"], name, root / "ds" / name, root / "props" / f"{name}.yaml",
                          quiet=True, **kw)


def outputs(root: Path, name: str = "fk") -> dict:
    folder = root / "ds" / name
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def rows(path: Path) -> list:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:]]


@pytest.fixture(scope="module")
def converted_2014(tmp_path_factory):
    root = tmp_path_factory.mktemp("amazon2014")
    files = fx.write_release(root / "raw", "2014")
    return root, files, convert(files, root)


@pytest.mark.integration
def test_exact_counts_after_filtering(converted_2014):
    root, _, meta = converted_2014
    assert meta["n_sequences"] == EXPECTED_SEQ and meta["n_interactions"] == EXPECTED_INTER
    assert meta["n_items"] == {"X": 10, "Y": 10}
    f = meta["funnel"]
    assert (f["users_raw"], f["users_after_filter"], f["items_raw"], f["items_after_filter"]) == (14, 12, 24, 20)
    assert f["duplicates_dropped"] == 1 and f["items_in_both_domains_dropped"] == 1
    assert f["filter_rounds"] == 3  # XCASC falls only in the second round; the third confirms
    # 6 even reviewers end on X, 6 odd ones on Y; valid gets floor(12 / 2)
    t = meta["eval_targets"]
    assert t["valid"]["X"] + t["test"]["X"] == 6 and t["valid"]["Y"] + t["test"]["Y"] == 6
    items = rows(root / "ds/fk/fk.item")
    assert [r[0] for r in items] == fx.X_ITEMS + fx.Y_ITEMS  # X first, ASIN order; no XRARE/XCASC/BOTH1
    assert items[0][1:] == ["X", "Grocery_and_Gourmet_Food", "Title of X0's box", fx.image_url("X0")]


@pytest.mark.integration
def test_sequences_are_windows_and_latest_is_evaluated(converted_2014):
    root, _, _ = converted_2014
    train = rows(root / "ds/fk/fk.train.inter")
    evals = rows(root / "ds/fk/fk.valid.inter") + rows(root / "ds/fk/fk.test.inter")
    assert {r[0] for r in train} == {f"{u}_0" for u in fx.GOOD}
    assert {r[0] for r in evals} == {f"{u}_1" for u in fx.GOOD}
    seq0 = [r[1] for r in train if r[0] == "A0GOOD00_0"]
    assert seq0 == ["X0", "Y0", "X1", "Y1", "X2", "Y2", "X3", "Y3", "X4", "Y4"]  # duplicate collapsed
    last = {}
    for user, item, _ in evals:
        last[user] = item
    assert last["A0GOOD00_1"] == "X9" and last["A0GOOD01_1"] == "Y9"
    stamps = [float(r[2]) for r in train if r[0] == "A0GOOD03_0"]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("release", ["2014-csv", "2018", "2023"])
@pytest.mark.integration
def test_every_release_gives_the_same_scenario(converted_2014, release, tmp_path):
    root, _, _ = converted_2014
    files = fx.write_release(tmp_path / "raw", release)
    convert(files, tmp_path)
    ours, ref = outputs(tmp_path), outputs(root)
    for name in ("fk.item", "fk.train.inter", "fk.valid.inter", "fk.test.inter"):
        assert ours[name] == ref[name], f"{release}: {name} differs from the 2014 JSON conversion"


@pytest.mark.integration
def test_deterministic_and_independent_of_line_order(converted_2014, tmp_path):
    root, files, _ = converted_2014
    convert(files, tmp_path / "again")
    assert outputs(tmp_path / "again") == outputs(root)
    shuffled = {}
    for side in ("x", "y"):
        inter, meta = files[side]
        lines = gzip.decompress(inter.read_bytes()).decode().splitlines(keepends=True)
        random.Random(7).shuffle(lines)
        target = tmp_path / "raw" / inter.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress("".join(lines).encode()))
        shuffled[side] = [target, meta]
    convert(shuffled, tmp_path / "shuffled")
    assert outputs(tmp_path / "shuffled") == outputs(root)
    convert(files, tmp_path / "one_bucket", opts=ScenarioOptions(buckets=1))  # scratch layout is invisible
    assert outputs(tmp_path / "one_bucket") == outputs(root)


@pytest.mark.integration
def test_output_loads_in_the_cross_domain_dataset(converted_2014):
    root, _, meta = converted_2014
    config = Config("SASRec", "fk", config_file_list=[str(root / "props/fk.yaml")],
                    config_dict={**QUIET, "data_path": str(root / "ds")})
    data = CrossDomainSequentialDataset(config)
    assert len(data.train_sequences) == 12
    assert [len(d) for d in data.domain_items] == [10, 10]
    for split in ("valid", "test"):
        assert data.eval_cases(split).counts() == meta["eval_targets"][split]
    assert config["cdsr_negatives"]["replacement"] is True and config["MAX_ITEM_LIST_LENGTH"] == 15
    # every .item column (title, image URLs) also loads in RecBole when asked for
    every = {"inter": ["user_id", "item_id", "timestamp"],
             "item": ["item_id", "domain", "domain_name", "title", "image_url"]}
    config = Config("SASRec", "fk", config_file_list=[str(root / "props/fk.yaml")],
                    config_dict={**QUIET, "data_path": str(root / "ds"), "load_col": every})
    full = CrossDomainSequentialDataset(config)
    assert "image_url" in full.item_feat and len(full.train_sequences) == 12


@pytest.mark.unit
def test_paper_defaults_and_yaml():
    d = ScenarioOptions()
    assert (d.min_user_inter, d.min_item_inter, d.min_per_domain) == (10, 10, 3)
    assert (d.window_days, d.max_seq_len) == (365.0, 15)


@pytest.mark.parametrize("on_error", ["fail", "skip"])
@pytest.mark.integration
def test_malformed_review_line(converted_2014, tmp_path, on_error):
    root, files, _ = converted_2014
    inter, meta = files["x"]
    lines = gzip.decompress(inter.read_bytes()).decode().splitlines(keepends=True)
    lines.insert(4, '{"reviewerID": "A0GOOD00", "asin": "X0", "unixReviewTime": "soon"}\n')  # line 5
    bad = tmp_path / "raw" / inter.name
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress("".join(lines).encode()))
    broken = {"x": [bad, meta], "y": files["y"]}
    if on_error == "fail":
        with pytest.raises(ConversionError, match=rf"{bad.name}:5: missing or bad reviewerID/asin/unixReviewTime"):
            convert(broken, tmp_path)
        assert not (tmp_path / "ds" / "fk").exists() and not (tmp_path / "props").exists()
    else:
        meta_out = convert(broken, tmp_path, on_error="skip")
        assert meta_out["funnel"]["malformed_lines_skipped"] == 1
        ref = outputs(root)
        assert outputs(tmp_path)["fk.train.inter"] == ref["fk.train.inter"]


@pytest.mark.integration
def test_malformed_2014_metadata_line_names_file_and_line(tmp_path):
    files = fx.write_release(tmp_path / "raw", "2014")
    meta = files["x"][1]
    lines = gzip.decompress(meta.read_bytes()).decode().splitlines(keepends=True)
    lines[2] = "{'asin': 'X2', 'title': 'unterminated}\n"
    meta.write_bytes(gzip.compress("".join(lines).encode()))
    with pytest.raises(ConversionError, match=rf"{meta.name}:3: neither JSON nor a Python literal"):
        convert(files, tmp_path)
    out = convert(files, tmp_path, on_error="skip")
    assert out["n_titled_items"] == {"X": 9, "Y": 10} and out["funnel"]["malformed_lines_skipped"] == 1


@pytest.mark.unit
def test_cut_sequences_window_length_and_domain_rules():
    day = 86_400_000
    times = [0, 1, 2, 3, 4, 5, 366 * day, 366 * day + 1]
    in_x = [True, False, True, False, True, False, True, False]
    assert cut_sequences(times, in_x, 365 * day, 15, 3) == [(0, 6)]  # the 2-event tail window is dropped
    assert cut_sequences(times, in_x, 365 * day, 4, 2) == [(0, 4)]   # (4, 6) has 1 X, 1 Y
    assert cut_sequences(times, in_x, 365 * day, 15, 1) == [(0, 6), (6, 8)]


@pytest.mark.integration
def test_ties_are_broken_by_domain_then_asin(tmp_path):
    """Events at the same second: X before Y, then ASIN order, whatever the file order."""
    lines_x, lines_y = [], []
    users = [f"U{k:02d}" for k in range(10)]
    for user in users:
        for j, item in enumerate(["XB", "XA", "XC"]):
            lines_x.append(fx.review_2014(user, item, fx.T0 + 3600 * (j // 2)))
        for item in ["YB", "YA", "YC"]:
            lines_y.append(fx.review_2014(user, item, fx.T0))
    (tmp_path / "reviews_A.json").write_text("\n".join(lines_x) + "\n")
    (tmp_path / "reviews_B.json").write_text("\n".join(lines_y) + "\n")
    opts = ScenarioOptions(min_user_inter=6, min_item_inter=10)
    convert_amazon([tmp_path / "reviews_A.json"], [tmp_path / "reviews_B.json"], "t", tmp_path / "t",
                   None, opts, quiet=True)
    seqs = rows(tmp_path / "t" / "t.valid.inter") + rows(tmp_path / "t" / "t.test.inter")
    assert [r[1] for r in seqs if r[0] == "U00_0"] == ["XA", "XB", "YA", "YB", "YC", "XC"]


@pytest.mark.unit
def test_a_ratings_csv_with_a_header_line_is_refused(tmp_path):
    """2023's rating CSVs (user_id,parent_asin,rating,ms, with a header) match the 2018 name <Cat>.csv; with
    --on_error=skip their lines were read with user and item swapped and the time scaled again."""
    from recbole_ifcdsr.data.amazon.readers import ErrorPolicy, iter_interactions

    path = tmp_path / "Books.csv"
    path.write_text("user_id,parent_asin,rating,timestamp\nU1,B01,5.0,1588687728923\n")
    for mode in ("fail", "skip"):
        with pytest.raises(ConversionError, match=r"Books.csv:1: a header line .* would be read with user and item "
                                                  r"swapped; use its <Cat>.jsonl reviews"):
            list(iter_interactions(classify(path), ErrorPolicy(mode)))
    path.write_text("B01,U1,5.0,1388687728\n")  # 2018: item,user,rating,seconds
    assert list(iter_interactions(classify(path), ErrorPolicy("fail"))) == [("U1", "B01", 1388687728000)]


@pytest.mark.unit
def test_domain_names_reach_the_yaml_as_strings():
    """Unquoted, --x_name=Food,Drinks made a third domain key and --y_name=No read as False."""
    import yaml

    from recbole_ifcdsr.data.amazon.convert import properties_yaml

    text = properties_yaml("fk", ("Food,Drinks", "No"), ScenarioOptions())
    assert yaml.safe_load(text)["domains"] == {"X": "Food,Drinks", "Y": "No"}


@pytest.mark.unit
def test_file_classification_and_image_urls():
    assert classify(Path("reviews_Books.json.gz")).kind == "reviews_json"
    assert classify(Path("ratings_Books.csv")).kind == "ratings_csv_uirt"
    assert classify(Path("Books.csv")).kind == "ratings_csv_iurt"
    assert classify(Path("Books_5.json.gz")).category == "Books"
    assert classify(Path("meta_Books.jsonl")).kind == "meta"
    with pytest.raises(ConversionError, match="unknown Amazon file name"):
        classify(Path("Books.parquet"))
    assert image_urls({"imUrl": " http://a/b c.jpg "}) == ["http://a/b%20c.jpg"]
    assert image_urls({"images": [{"large": "L1", "thumb": "T1"}, {"hi_res": "H2"}, {"large": "L1"}]}) == ["L1", "H2"]
    assert _format_ms(1_588_687_728_923) == "1588687728.923" and _format_ms(5000) == "5"


@pytest.mark.integration
def test_bad_inputs_are_one_line_errors(converted_2014, tmp_path):
    _, files, _ = converted_2014
    with pytest.raises(ConversionError, match="same file is given for both domains"):
        convert({"x": files["x"], "y": files["x"]}, tmp_path)
    with pytest.raises(ConversionError, match="no reviews or ratings file"):
        convert({"x": files["x"][1:], "y": files["y"]}, tmp_path)
    with pytest.raises(ConversionError, match="missing source file"):
        convert({"x": [tmp_path / "reviews_Nope.json"], "y": files["y"]}, tmp_path)
    with pytest.raises(ConversionError, match="no user has >= 100 interactions"):
        convert(files, tmp_path, opts=ScenarioOptions(min_user_inter=100))
    hand_written = tmp_path / "props" / "fk.yaml"
    hand_written.parent.mkdir(parents=True)
    hand_written.write_text("cdsr_recipe: user_split\n")
    with pytest.raises(ConversionError, match="not written by this converter"):
        convert(files, tmp_path)
    assert ErrorPolicy("skip").mode == "skip"


@pytest.mark.integration
def test_cli_writes_dataset_and_yaml(converted_2014, tmp_path, capsys):
    root, files, _ = converted_2014
    argv = ["--x=" + ",".join(map(str, files["x"])), "--y=" + ",".join(map(str, files["y"])),
            "--name=fk", f"--out={tmp_path / 'ds' / 'fk'}", f"--properties={tmp_path / 'props' / 'fk.yaml'}"]
    assert main(argv) == 0
    assert "| fk | Grocery_and_Gourmet_Food (X) | 10 | 12 |" in capsys.readouterr().out
    assert outputs(tmp_path) == outputs(root)
    assert (tmp_path / "props/fk.yaml").read_bytes() == (root / "props/fk.yaml").read_bytes()
    assert (root / "ds/fk/fk.item").read_text().splitlines()[0] == AMAZON_ITEM_HEADER
    assert main(argv[:2] + ["--name=fk", f"--out={tmp_path / 'o'}", "--no_properties",
                            "--min_per_domain=9"]) == 2
    assert "cannot hold 9 items of each domain" in capsys.readouterr().err


@pytest.mark.parametrize("on_error", ["fail", "skip"])
@pytest.mark.integration
def test_a_plain_ratings_file_cut_inside_a_timestamp(tmp_path, on_error):
    """'user,item,5.0,13000' parses as a rating from 1970: the missing final newline gives the cut away."""
    files = fx.write_release(tmp_path / "raw", "2014-csv")
    ratings = files["x"][0]
    ratings.write_bytes(ratings.read_bytes()[:-6])
    last = len(ratings.read_bytes().splitlines())
    if on_error == "fail":
        with pytest.raises(ConversionError, match=rf"{ratings.name}:{last}: no newline at the end of the file: it "
                                                  r"looks truncated \(pass --on_error=skip"):
            convert(files, tmp_path)
    else:
        assert convert(files, tmp_path, on_error="skip")["funnel"]["malformed_lines_skipped"] == 1

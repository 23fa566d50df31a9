"""CrossDomainSequentialDataset: views of the real data and one-line errors for broken atomic files."""
import numpy as np
import pytest

from recbole_ifcdsr.data.dataset import DatasetError
from recbole_ifcdsr.errors import DataError

from conftest import load

pytestmark = pytest.mark.integration

ITEM_HEADER = "item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq\n"
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def write(root, items: str, inter: str):
    (root / "fk_abxi").mkdir(parents=True, exist_ok=True)
    (root / "fk_abxi" / "fk_abxi.item").write_text(ITEM_HEADER + items)
    (root / "fk_abxi" / "fk_abxi.inter").write_text(INTER_HEADER + inter)
    return root


ITEMS = "a\tX\tGrocery\t\nb\tX\tGrocery\t\nc\tY\tKitchen\t\nd\tY\tKitchen\t\n"


def test_interacted_item_without_a_row_is_named(tmp_path):
    write(tmp_path, ITEMS, "u1\ta\t1\nu1\tc\t2\nu1\tzzz\t3\n")
    with pytest.raises(DatasetError, match=r"fk_abxi\.item: 1 interacted items have no row \(no domain\), e\.g\. \['zzz'\]"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_empty_domain_is_named(tmp_path):
    write(tmp_path, "a\tX\tGrocery\t\nb\tX\tGrocery\t\n", "u1\ta\t1\nu1\tb\t2\nu1\ta\t3\n")
    with pytest.raises(DatasetError, match=r"fk_abxi\.item: domain Y has no items"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_bad_domain_value_is_named(tmp_path):
    write(tmp_path, ITEMS + "e\tZ\tOther\t\n", "u1\ta\t1\nu1\tc\t2\nu1\tb\t3\n")
    with pytest.raises(DatasetError, match=r"field 'domain' must be X or Y, found \['Z'\]"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_an_item_listed_twice_is_named(tmp_path):
    """RecBole keeps an item's first row and drops the rest: 'a' listed in X then Y stayed in X silently."""
    write(tmp_path, ITEMS + "a\tY\tKitchen\t\n", "u1\ta\t1\nu1\tc\t2\nu1\tb\t3\n")
    with pytest.raises(DataError, match=r"fk_abxi\.item:6: item_id: 'a' repeats line 2 \(RecBole would keep line 2 and "
                                        r"drop this one\); give each id one row"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_a_title_that_opens_a_quote_is_named(tmp_path):
    """pandas reads a cell starting with an unclosed double quote up to the next quote, several lines on:
    here items c and d vanished, and the Y pool shrank without an error. One quoted cell reads fine."""
    items = 'a\tX\tGrocery\t\nb\tX\tGrocery\t"Hello Kitty lunch box\nc\tY\tKitchen\t\nd\tY\tKitchen\t12 inch"\n'
    write(tmp_path, items, "u1\ta\t1\nu1\tb\t2\nu1\ta\t3\n")
    with pytest.raises(DataError, match=r"fk_abxi\.item:3: title: starts with a double quote but is not one quoted cell"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))
    write(tmp_path, items.replace('"Hello Kitty lunch box', '"Hello Kitty"" lunch box"'), "u1\ta\t1\nu1\tc\t2\nu1\ta\t3\n")
    _, data = load("SASRec", "fk_abxi", data_path=str(tmp_path))
    assert [len(pool) for pool in data.domain_items] == [2, 2]


def test_split_user_rows_are_rejected(tmp_path):
    write(tmp_path, ITEMS, "u1\ta\t1\nu2\tc\t2\nu1\tb\t3\nu2\td\t4\nu2\ta\t5\nu1\tc\t6\n")
    with pytest.raises(DatasetError, match=r"rows of user 'u\d' are not contiguous"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_a_user_in_two_benchmark_files_is_rejected(tmp_path):
    """user_split holds each user in one file. A user last in train.inter and first in valid.inter was read
    as one training sequence: its valid case vanished and its target was trained on, without an error."""
    root = tmp_path / "fk_llmcdsr"
    root.mkdir()
    (root / "fk_llmcdsr.item").write_text(ITEM_HEADER + ITEMS)
    header = "user_id:token\titem_id:token\n"
    (root / "fk_llmcdsr.train.inter").write_text(header + "u1\ta\nu1\tc\nu2\tb\nu2\td\n")
    (root / "fk_llmcdsr.valid.inter").write_text(header + "u2\ta\nu2\tc\nu3\tb\nu3\td\n")
    (root / "fk_llmcdsr.test.inter").write_text(header + "u4\ta\nu4\td\n")
    with pytest.raises(DatasetError, match=r"user 'u2' has rows in fk_llmcdsr\.train\.inter and fk_llmcdsr\.valid\.inter; "
                                           r"recipe user_split holds each user's sequence in one file"):
        load("SASRec", "fk_llmcdsr", data_path=str(tmp_path))
    (root / "fk_llmcdsr.valid.inter").write_text(header + "u5\ta\nu5\tc\nu3\tb\nu3\td\n")
    _, data = load("SASRec", "fk_llmcdsr", data_path=str(tmp_path))
    assert [(len(seq), split) for _, seq, split in data.sequences] == [(2, 0), (2, 0), (2, 1), (2, 1), (2, 2)]


def test_file_order_is_kept_and_views_are_consistent(tmp_path):
    # equal timestamps: file order decides (ABXI), nothing is re-sorted
    write(tmp_path, ITEMS, "u1\tc\t5\nu1\ta\t5\nu1\td\t5\nu1\tb\t5\n")
    config, data = load("SASRec", "fk_abxi", data_path=str(tmp_path), MAX_ITEM_LIST_LENGTH=3)
    token = data.field2id_token["item_id"]
    assert token[data.sequences[0][1]].tolist() == ["c", "a", "d", "b"]
    assert token[data.eval_cases("test").targets].tolist() == ["b"]
    assert data.eval_cases("test").counts() == {"X": 1, "Y": 0}
    assert data.eval_cases("valid").counts() == {"X": 0, "Y": 1}
    view = data.recbole_train_dataset().inter_feat  # RecBole's prefix view of the train part ['c', 'a']
    assert token[view["item_id"].numpy()].tolist() == ["a"]
    assert token[view["item_id_list"][0, :1].numpy()].tolist() == ["c"]
    whole = data.sequence_train_dataset().inter_feat
    assert token[whole["item_id_list"][0, :2].numpy()].tolist() == ["c", "a"]
    assert data.train_item_counts()[data.field2token_id["item_id"]["c"]] == 1


def test_recbole_view_of_real_data_has_one_instance_per_prefix(abxi):
    _, data = abxi
    view = data.recbole_train_dataset().inter_feat
    assert len(view) == sum(len(s) - 1 for s in data.train_sequences)
    lengths = view["item_length"].numpy()
    assert lengths.max() <= 47 and lengths.min() == 1
    assert np.all(view["item_id_list"][:, 0].numpy() > 0)


def _unpack_in_child(directory: str) -> None:
    from recbole_ifcdsr.data.packing import unpack_if_needed
    unpack_if_needed(directory)


def test_concurrent_first_use_unpacks_once_per_process_without_clashing(tmp_path):
    """Grid cells start together and all unpack the shipped .gz: none may fail, the result is whole."""
    import gzip
    import multiprocessing

    rows = "".join(f"u{i}\ti{i % 997}\n" for i in range(400_000)).encode()
    with gzip.open(tmp_path / "d.inter.gz", "wb") as f:
        f.write(rows)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_unpack_in_child, args=(str(tmp_path),)) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(900)  # a hang guard only: four interpreters importing torch on a loaded 2-core machine are slow
    assert [c.exitcode for c in children] == [0, 0, 0, 0]
    assert (tmp_path / "d.inter").read_bytes() == rows
    assert not list(tmp_path.glob("*.tmp"))


GOOD_INTER = "u1\ta\t1\nu1\tc\t2\nu1\tb\t3\nu1\td\t4\n"


@pytest.mark.parametrize("inter, message", [
    # a line with only a user id: RecBole read NaN for the rest and its NaN filter dropped the row silently
    ("u1\ta\t1\nu1\nu1\tc\t2\nu1\tb\t3\n", r"fk_abxi\.inter:3: 1 fields, the header has 3 \(user_id, item_id, timestamp\)$"),
    # an extra field: ignored before
    ("u1\ta\t1\tstray\nu1\tc\t2\nu1\tb\t3\n", r"fk_abxi\.inter:2: 4 fields, the header has 3"),
    # a bad timestamp: its error named neither the file nor the line
    ("u1\ta\t1\nu1\tc\t2\nu1\tb\t3x\n", r"fk_abxi\.inter:4: timestamp: '3x' is not a number$"),
    ("u1\ta\tnan\nu1\tc\t2\nu1\tb\t3\n", r"fk_abxi\.inter:2: timestamp: 'nan' is not finite$"),
    ("u1\ta\t1\nu1\t\t2\nu1\tb\t3\n", r"fk_abxi\.inter:3: item_id: empty value$"),
    ("u1\ta\t1\nu1\tc\t2\nu1\tb\t3", r"fk_abxi\.inter:4: no newline at the end of the file: it looks truncated"),
])
def test_malformed_inter_lines_are_named_before_recbole_reads_them(tmp_path, inter, message):
    write(tmp_path, ITEMS, inter)
    with pytest.raises(DataError, match=message):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_malformed_headers_and_item_lines_are_named(tmp_path):
    from recbole_ifcdsr.errors import DataError

    write(tmp_path, ITEMS + "e\tX\n", GOOD_INTER)
    with pytest.raises(DataError, match=r"fk_abxi\.item:6: 2 fields, the header has 4"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))
    write(tmp_path, ITEMS, GOOD_INTER)
    inter = tmp_path / "fk_abxi" / "fk_abxi.inter"
    inter.write_text(inter.read_text().replace("timestamp:float", "timestamp:int"))
    with pytest.raises(DataError, match=r"fk_abxi\.inter:1: timestamp: type 'int' unknown; valid: token, token_seq"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))
    inter.write_text(inter.read_text().replace("\ttimestamp:int", "").replace("\t1\n", "\n").replace("\t2\n", "\n")
                     .replace("\t3\n", "\n").replace("\t4\n", "\n"))
    with pytest.raises(DataError, match=r"fk_abxi\.inter:1: timestamp: load_col lists it but the header has no such column"):
        load("SASRec", "fk_abxi", data_path=str(tmp_path))


def test_the_shipped_files_pass_and_are_fingerprinted(abxi):
    _, data = abxi
    assert set(data.file_fingerprint) == {"fk_abxi.inter", "fk_abxi.item"}
    assert all(len(digest) == 64 for digest in data.file_fingerprint.values())

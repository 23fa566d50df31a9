"""io.py: whole-or-nothing writes through one helper, and the one reader of a dataset's .item file."""
from __future__ import annotations

import gzip
import json
import os
import stat

import numpy as np
import pytest
from conftest import DATA_PATH

from recbole_ifcdsr import io
from recbole_ifcdsr.data.packing import dataset_file
from recbole_ifcdsr.errors import DataError


@pytest.mark.unit
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "results.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_file(target, "w") as handle:
            handle.write('{"a": 2, "b"')  # a crash half-way
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


@pytest.mark.unit
def test_the_temp_file_never_matches_the_targets_pattern(tmp_path):
    """The finding behind the flaky resume test: ``part-*.npz`` also counted the writer's temp file."""
    with io.atomic_file(tmp_path / "part-000001.npz") as handle:
        handle.write(b"x")
        (pending,) = tmp_path.iterdir()
        assert pending.name.startswith("part-000001.npz.") and pending.suffix == ".tmp"
        assert list(tmp_path.glob("part-*.npz")) == []
    assert [p.name for p in tmp_path.glob("part-*.npz")] == ["part-000001.npz"]


@pytest.mark.unit
def test_files_get_the_permissions_open_would_give(tmp_path):
    (tmp_path / "plain").write_text("x")
    io.write_text(tmp_path / "sub" / "atomic", "x")  # the folder is made too
    mode = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert stat.S_IMODE(os.stat(tmp_path / "sub" / "atomic").st_mode) == mode


@pytest.mark.unit
def test_every_writer_round_trips(tmp_path):
    io.write_text(tmp_path / "a.txt", "one\ntwo\n")
    io.write_bytes(tmp_path / "a.bin", b"\x00\x01")
    io.write_npz(tmp_path / "a.npz", vectors=np.arange(6, dtype=np.float32).reshape(2, 3))
    assert (tmp_path / "a.txt").read_bytes() == b"one\ntwo\n" and (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    with np.load(tmp_path / "a.npz") as f:
        assert f["vectors"].tolist() == [[0, 1, 2], [3, 4, 5]]
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(b"unpacked\n"))
    io.copy_file(packed, tmp_path / "b.txt", gzip.open)
    assert (tmp_path / "b.txt").read_bytes() == b"unpacked\n"
    with pytest.raises(ValueError, match="mode 'w' or 'wb', not 'a'"):
        with io.atomic_file(tmp_path / "c", "a"):
            pass


@pytest.mark.integration
def test_item_table_of_a_shipped_dataset():
    items = io.read_item_table(dataset_file(DATA_PATH / "fk_abxi", "fk_abxi", "item"))
    assert len(items) == 11837 + 16258
    assert items[0] == io.Item("616719923X", "Grocery", "Japanese Kit Kat Maccha Green Tea Flavor (5 Bag) (4.91oz x 5)")
    assert {item.domain for item in items} == {"Grocery", "Kitchen"}
    assert sum(1 for item in items if not item.title) == 4738


@pytest.mark.parametrize("lines, message", [
    (["item_id:token\tdomain:token", "A\tX", "B"], "bad.item:3: 1 fields, the header has 2"),
    (["item_id:token\tdomain:token", "A\tX", "A\tY"], "bad.item:3: item token 'A' appears twice"),
    (["item_id:token\tdomain:token", " \tX"], "bad.item:2: item_id: empty value"),
    (["name:token\tdomain:token", "A\tX"], "bad.item:1: header lacks item_id (found name:token, domain:token)"),
])
@pytest.mark.unit
def test_item_table_errors_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "bad.item"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        io.read_item_table(path)
    assert str(info.value) == f"{path.parent}/{message}"


@pytest.mark.unit
def test_item_table_domain_and_title_columns_are_optional(tmp_path):
    path = tmp_path / "d.item"
    path.write_text("item_id:token\tdomain:token\n\nA\tX\nB\tY\n")  # a blank line holds no row
    assert io.read_item_table(path) == [io.Item("A", "X", ""), io.Item("B", "Y", "")]
    with pytest.raises(DataError, match=r"d\.item:1: header lacks title"):
        io.read_item_table(path, required=("item_id", "title"))

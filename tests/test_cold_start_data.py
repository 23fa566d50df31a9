"""The cold-start measurement (recbole_ifcdsr/cold_start.py)'s data: held-out test targets leave training, nothing else changes."""
import pytest

from recbole_ifcdsr.cold_start import prepare_data
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

"""tools/curves.py: the curve read from a run's -last checkpoint agrees with the run's own selection and
validation numbers; bad input is one clear error."""
import csv

import pytest

from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

from conftest import SMALL_RUN, load_tool

pytestmark = pytest.mark.integration
TINY = {"id_embedding_size": 8, "n_heads": 1, "seed": 3, "epochs": 3}


def curves():
    return load_tool("curves")


def test_the_curve_agrees_with_the_runs_selection(abxi_small_dir, tmp_path, capsys):
    saved = tmp_path / "out" / "saved" / "tiny"  # compare's layout: <out>/saved/<label>/
    settings = {**SMALL_RUN, **TINY, "data_path": str(abxi_small_dir), "checkpoint_dir": str(saved)}
    result = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings)
    capsys.readouterr()
    png, table = tmp_path / "curves.png", tmp_path / "curves.csv"
    assert curves().main([str(tmp_path / "out"), "--png", str(png), "--csv", str(table)]) == 0
    rows = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 1
    label, seed, validations, best, _tail, grocery, kitchen, _stopped = [cell.strip() for cell in rows[0]]
    assert (label, seed, validations) == ("tiny", "3", "3 (to epoch 2)")
    assert best.endswith(f"(epoch {result['best_epoch']['X']})")
    valid = result["sampled"]["valid"]
    assert [float(grocery), float(kitchen)] == [round(100 * valid["X"]["MRR"], 2), round(100 * valid["Y"]["MRR"], 2)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(table, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(r["run"], r["seed"], r["epoch"], r["protocol"], r["metric"]) for r in written] == [
        ("tiny", "3", str(epoch), "sampled", "MRR") for epoch in range(3)]
    at_best = written[result["best_epoch"]["X"]]
    assert float(at_best["Grocery"]) == pytest.approx(100 * valid["X"]["MRR"], abs=5e-5)
    assert float(at_best["mean"]) == pytest.approx(50 * (valid["X"]["MRR"] + valid["Y"]["MRR"]), abs=1e-4)


def test_bad_input_is_one_clear_error(abxi_small_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        curves().main([str(tmp_path)])
    assert "no -last checkpoint in it or in its saved/<label>/ folders" in capsys.readouterr().err
    settings = {**SMALL_RUN, **TINY, "epochs": 1, "data_path": str(abxi_small_dir), "checkpoint_dir": str(tmp_path)}
    run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings)
    with pytest.raises(SystemExit):
        curves().main([str(tmp_path), "--metric", "AUC"])
    assert "no metric 'AUC' in its history (it has MRR, NDCG@5" in capsys.readouterr().err

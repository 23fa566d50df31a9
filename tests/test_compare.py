"""The comparison grid: exact mean/std, the Markdown table, and reuse of finished cells."""
import json

import pytest

from recbole_ifcdsr.compare import cell_request, markdown_table, mean_std, run_cell, summarise


def fake_result(model, seed, mrr_x, mrr_y):
    metrics = lambda v: {"MRR": v, "NDCG@10": v / 2, "HR@10": v * 2}  # noqa: E731
    per = {"valid": {"X": metrics(mrr_x), "Y": metrics(mrr_y)}, "test": {"X": metrics(mrr_x), "Y": metrics(mrr_y)}}
    return {"model": model, "seed": seed, "protocols": ["sampled"], "sampled": per, "epochs_run": 2,
            "train_seconds": 10.0 + seed, "train_cpu_seconds": 20.0, "wall_seconds": 30.0, "best_epoch": {"X": 1, "Y": 1}}


def test_mean_std_exact():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(1.118033988749895))
    assert mean_std([0.1]) == (0.1, 0.0)


def test_summary_and_table_mark_the_best_mean():
    results = [fake_result("A", s, 0.1 + 0.01 * s, 0.05) for s in range(3)] + \
              [fake_result("B", s, 0.2, 0.04 + 0.02 * s) for s in range(3)]
    summary = summarise(results)
    assert summary["A"]["sampled"]["test"]["X"]["MRR"] == [pytest.approx(0.11), pytest.approx(0.0081649658), 3]
    table = markdown_table(summary, {"X": "Food", "Y": "Kitchen"}, "sampled")
    lines = table.splitlines()
    assert lines[0].startswith("| model | Food MRR | Food NDCG@10 | Food HR@10 | Kitchen MRR")
    assert "| A | 11.00 ± 0.82 |" in lines[2] and "**5.00 ± 0.00**" not in lines[2]
    assert "**20.00 ± 0.00**" in lines[3] and "**6.00 ± 1.63**" in lines[3]
    assert lines[2].endswith("| 2,2,2 | 11 (20) | 30 |")


def test_finished_cell_with_same_request_is_reused(tmp_path):
    request = cell_request("Pop", "fk_abxi", 0, [], ["--epochs=1"])
    (tmp_path / "Pop-seed0.json").write_text(json.dumps({"cell_request": request}))
    assert run_cell(request, tmp_path, [], ["--epochs=1"]) == (True, "reused")
    changed = cell_request("Pop", "fk_abxi", 0, [], ["--epochs=2"])
    assert changed != request  # a different setting is a different cell and runs again

"""RunResult: one nesting order (protocol -> split -> domain -> metric) from the trainer to the results JSON and
back, and the shared constants defined once."""
from __future__ import annotations

import json

import pytest

from recbole_ifcdsr import constants
from recbole_ifcdsr.results import RunResult


def evaluation(mrr_x: float, mrr_y: float) -> dict:
    """One evaluation pass as ProtocolEvaluator returns it: {protocol: {domain: {metric: value}}}."""
    return {p: {"X": {"MRR": mrr_x / k, "HR@10": 2 * mrr_x / k}, "Y": {"MRR": mrr_y / k, "HR@10": 2 * mrr_y / k}}
            for p, k in (("sampled", 1), ("full", 4))}


@pytest.mark.unit
def test_each_domain_keeps_the_numbers_of_its_selected_epoch():
    result = RunResult()
    result.select("X", 0, evaluation(0.1, 0.2), evaluation(0.3, 0.4))
    result.select("Y", 2, evaluation(0.5, 0.6), evaluation(0.7, 0.8))  # per-domain selection: Y improved later
    assert result.best_epoch == {"X": 0, "Y": 2}
    assert result.metrics["sampled"]["test"] == {"X": {"MRR": 0.3, "HR@10": 0.6}, "Y": {"MRR": 0.8, "HR@10": 1.6}}
    assert result.metrics["full"]["valid"]["Y"] == {"MRR": 0.6 / 4, "HR@10": 1.2 / 4}
    assert result.protocols == ["sampled", "full"] and result.problem() is None


@pytest.mark.unit
def test_results_json_round_trip_and_its_first_protocol_on_top():
    result = RunResult()
    for d in constants.DOMAINS:
        result.select(d, 3, evaluation(0.1, 0.2), evaluation(0.3, 0.4))
    data = json.loads(json.dumps(result.to_json(["full"])))
    assert list(data) == ["protocols", "best_epoch", "full", "valid", "test"]
    assert data["test"] == data["full"]["test"] == {"X": {"MRR": 0.075, "HR@10": 0.15}, "Y": {"MRR": 0.1, "HR@10": 0.2}}
    back = RunResult.from_json(data)
    assert back.protocols == ["full"] and back.metrics["full"] == result.metrics["full"] and back.best_epoch == {"X": 3, "Y": 3}
    assert RunResult.from_json(result.to_json()).metrics == result.metrics


@pytest.mark.unit
def test_problem_names_what_a_result_lacks():
    result = RunResult()
    assert result.problem() == "no protocols"
    result.select("X", 0, evaluation(0.1, 0.2), evaluation(0.3, float("nan")))
    assert result.problem() == "no sampled valid results for domain Y"
    result.select("Y", 1, evaluation(0.1, 0.2), evaluation(0.3, float("nan")))
    assert result.problem() == "sampled test Y: MRR is nan"
    assert result.problem(["full"]) == "full test Y: MRR is nan"


@pytest.mark.unit
def test_table_has_a_row_per_protocol_split_and_domain():
    result = RunResult()
    result.select("Y", 1, evaluation(0.1, 0.2), evaluation(0.3, 0.4))
    result.select("X", 0, evaluation(0.1, 0.2), evaluation(0.3, 0.4))
    lines = result.table({"X": "Food", "Y": "Kitchen"}, ["sampled"]).splitlines()
    assert lines[0] == "| protocol | split | domain | epoch | MRR | HR@10 |"
    assert lines[2:] == ["| sampled | valid | Food | 0 | 0.1000 | 0.2000 |", "| sampled | valid | Kitchen | 1 | 0.2000 | 0.4000 |",
                         "| sampled | test | Food | 0 | 0.3000 | 0.6000 |", "| sampled | test | Kitchen | 1 | 0.4000 | 0.8000 |"]


@pytest.mark.unit
def test_domains_splits_and_protocols_are_defined_once():
    from recbole_ifcdsr import compare, config, report, trainer
    from recbole_ifcdsr.data import dataset
    from recbole_ifcdsr.evaluation import protocol, selection

    for module in (compare, report, trainer, dataset, protocol, selection):
        assert module.DOMAINS is constants.DOMAINS, module.__name__
    assert protocol.ALL_PROTOCOLS is constants.PROTOCOLS and config.PROTOCOL_SETTINGS is constants.PROTOCOL_SETTINGS
    assert compare.SPLITS is dataset.SPLITS is constants.SPLITS


@pytest.mark.unit
def test_a_reselected_domain_waits_for_its_new_epochs_test_numbers():
    """The trainer tests the selected epochs once training ends: until then a re-selected domain has no test
    numbers, never the previous epoch's, and ``problem`` says so."""
    result = RunResult()
    result.select("X", 1, evaluation(0.1, 0.2), evaluation(0.3, 0.4))
    result.select("Y", 1, evaluation(0.1, 0.2), evaluation(0.3, 0.4))
    result.select("X", 4, evaluation(0.5, 0.6))
    assert result.pending_test() == {"X": 4}
    assert "X" not in result.metrics["sampled"]["test"] and result.problem() == "no sampled test results for domain X"
    result.add_test("X", evaluation(0.9, 0.0))
    assert result.pending_test() == {} and result.problem() is None
    assert result.metrics["full"]["test"]["X"] == {"MRR": 0.9 / 4, "HR@10": 1.8 / 4}
    assert result.metrics["sampled"]["test"]["Y"] == {"MRR": 0.4, "HR@10": 0.8}

"""Ranks and metrics against values computed by hand, ties and the constant-score guard included."""
import math

import numpy as np
import pytest
import torch

from recbole_ifcdsr.evaluation.metrics import check_metric_names, metrics_from_ranks, ranks_against

pytestmark = pytest.mark.unit


def test_metrics_by_hand():
    ranks = np.array([1.0, 3.0, 12.0])
    got = metrics_from_ranks(ranks, ["MRR", "NDCG@5", "NDCG@10", "HR@1", "HR@3", "HR@5", "HR@10", "NDCG@3"])
    assert got["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 3)
    assert got["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)  # rank 12 is past the cutoff
    assert got["NDCG@5"] == pytest.approx(0.5)
    assert got["NDCG@3"] == pytest.approx(0.5)
    assert got["HR@1"] == pytest.approx(1 / 3)
    assert got["HR@3"] == pytest.approx(2 / 3)
    assert got["HR@5"] == pytest.approx(2 / 3)
    assert got["HR@10"] == pytest.approx(2 / 3)


def test_ties_go_to_the_target():
    target = torch.tensor([0.5, 0.5])
    others = torch.tensor([[0.7, 0.5, 0.5, 0.2], [0.1, 0.2, 0.3, 0.4]])
    assert ranks_against(target, others).tolist() == [2.0, 1.0]


def test_tolerance_counts_near_ties_for_the_target():
    target = torch.tensor([0.5])
    others = torch.tensor([[0.500001, 0.6, 0.4, 0.2]])
    assert ranks_against(target, others, tolerance=0.0).tolist() == [3.0]
    assert ranks_against(target, others, tolerance=1e-5).tolist() == [2.0]


def test_constant_scores_get_the_worst_rank_not_rank_one():
    target = torch.tensor([1.0])
    others = torch.ones(1, 999)
    rank = ranks_against(target, others)
    assert rank.tolist() == [1000.0]
    assert metrics_from_ranks(rank.numpy(), ["HR@10"])["HR@10"] == 0.0


def test_mask_limits_competitors():
    target = torch.tensor([0.5])
    others = torch.tensor([[0.9, 0.8, 0.1, 0.5]])
    valid = torch.tensor([[False, True, True, False]])
    assert ranks_against(target, others, valid).tolist() == [2.0]
    # constant among the counted columns only -> worst rank among them
    valid_tied = torch.tensor([[False, False, False, True]])
    assert ranks_against(target, others, valid_tied).tolist() == [2.0]


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown metric 'Recall@10'"):
        check_metric_names(["MRR", "Recall@10"])


@pytest.mark.parametrize("name", ["NDCG@0", "HR@0", "HR@00"])
def test_a_cut_off_of_zero_is_an_unknown_metric(name):
    """k must be positive: before, NDCG@0 and HR@0 were accepted and reported a column of zeros."""
    with pytest.raises(ValueError, match=f"Unknown metric '{name}'.*k a positive integer"):
        check_metric_names(["MRR", name])


def test_a_relative_margin_ties_probabilities_only_within_a_ratio():
    """C2DSR's 1e-5 margin is on logits; on probabilities of about 1/29,000 (IFCDSR's scores) an added 1e-5
    ties most competitors with the target, while the log-scale margin (a ratio of e^1e-5) ties none here."""
    target = torch.tensor([3e-5])
    others = torch.tensor([[3.5e-5, 2e-5, 1e-5, 4.5e-5]])
    assert ranks_against(target, others).tolist() == [3.0]
    assert ranks_against(target, others, tolerance=1e-5).tolist() == [2.0]  # 3.5e-5 counted as a tie
    assert ranks_against(target, others, tolerance=1e-5, relative=True).tolist() == [3.0]
    scaled = ranks_against(target * 2.0 ** -20, others * 2.0 ** -20, tolerance=1e-5, relative=True)
    assert scaled.tolist() == [3.0]  # the same at any scale (a power of two scales floats exactly)
    assert ranks_against(target * 2.0 ** -20, others * 2.0 ** -20, tolerance=1e-5).tolist() == [5.0]  # all tied: the guard


def reference_ranks(target, others, valid, tolerance, relative=False):
    """ranks_against's definition, one case and one competitor at a time."""
    out = []
    for i in range(len(target)):
        counted = [float(o) for j, o in enumerate(others[i]) if valid is None or bool(valid[i, j])]
        t = float(target[i])
        bound, within = (t * math.exp(tolerance), t * (math.exp(tolerance) - 1)) if relative else (t + tolerance, tolerance)
        higher = sum(o > bound for o in counted)
        tied = sum(abs(o - t) <= within for o in counted)
        out.append(float(1 + len(counted)) if tied == len(counted) else float(1 + higher))
    return out


@pytest.mark.parametrize("tolerance, relative", [(0.0, False), (0.05, False), (0.0, True), (0.3, True)])
@pytest.mark.parametrize("masked", [False, True])
def test_ranks_equal_their_definition_case_by_case(tolerance, relative, masked):
    # scores on a coarse grid, so that ties, near-ties within the tolerance and constant rows are common
    generator = torch.Generator().manual_seed(7)
    others = torch.randint(0, 6, (300, 40), generator=generator).float() / 10
    others[:20] = 0.3  # constant rows: the guard
    target = torch.randint(0, 6, (300,), generator=generator).float() / 10
    target[:10] = 0.3
    valid = torch.rand(300, 40, generator=generator) > 0.3 if masked else None
    got = ranks_against(target, others, valid, tolerance, relative=relative)
    assert got.dtype == torch.float64
    assert got.tolist() == reference_ranks(target, others, valid, tolerance, relative)
    if valid is None:  # rows 0-9 tie the target everywhere: the worst rank, not rank 1
        assert got[:10].tolist() == [41.0] * 10


def test_huge_finite_scores_are_ranked_not_rejected():
    # the row sum overflows to inf, yet every score is finite: no error, and the ranks are right
    target = torch.tensor([3.0e38, 1.0])
    others = torch.tensor([[3.2e38, 3.1e38, 1.0], [3.2e38, 3.1e38, 0.5]])
    assert ranks_against(target, others).tolist() == [3.0, 3.0]
    valid = torch.tensor([[True, False, True], [False, False, True]])
    assert ranks_against(target, others, valid).tolist() == [2.0, 1.0]

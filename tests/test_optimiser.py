import pytest
"""The trainer's optimiser: RecBole's Adam as torch's fused implementation takes the same steps."""
import torch


pytestmark = pytest.mark.unit
from recbole_ifcdsr.trainer import fused_adam


def test_fused_adam_takes_the_same_steps_as_recboles_adam():
    torch.manual_seed(0)
    start = [torch.randn(50, 8), torch.randn(8)]
    runs = []
    for make in (lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4),
                 lambda p: fused_adam(torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4))):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimiser = make(params)
        for step in range(5):
            for i, p in enumerate(params):
                p.grad = torch.sin(p.detach() * (step + 1) + i)  # a fixed gradient field
            optimiser.step()
        runs.append(([p.detach() for p in params], optimiser))
    assert runs[1][1].param_groups[0]["fused"] and not runs[0][1].param_groups[0]["fused"]
    for plain, fused in zip(runs[0][0], runs[1][0]):
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-7)


def test_other_optimisers_are_left_as_recbole_built_them():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = torch.optim.SGD(params, lr=0.1)
    assert fused_adam(sgd) is sgd

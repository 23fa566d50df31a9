"""lr_decay: the learning rate falls by the factor after N validations without improving the selection
(ABXI's plateau schedule); off by default, exact in its steps, kept across a resume, refused when malformed."""
import math

import pytest
import torch

from recbole_ifcdsr import compat
from recbole_ifcdsr.errors import ConfigError
from recbole_ifcdsr.lr_decay import DEFAULT_FACTOR, PlateauDecay
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

from test_resume import TIMING, Interrupted, interrupt_after_epoch, last_file, settings


def optimizer(lr: float = 0.01):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


@pytest.mark.unit
def test_one_decay_per_plateau_and_every_improvement_restarts_the_count():
    opt, decay = optimizer(), PlateauDecay(patience=2, factor=0.5)
    seen = [decay.step(improved, opt) for improved in (True, False, True, False, False, False, False, False)]
    assert seen == [None, None, None, None, 0.005, None, 0.0025, None]
    assert opt.param_groups[0]["lr"] == 0.0025 and decay.state_dict() == {"bad_evals": 1, "decays": 2}


@pytest.mark.unit
def test_every_parameter_group_decays_and_the_state_round_trips():
    opt = torch.optim.Adam([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1},
                            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.02}])
    decay = PlateauDecay.from_config({"patience": 1})
    assert decay.factor == DEFAULT_FACTOR == 0.3162
    decay.step(False, opt)
    assert [g["lr"] for g in opt.param_groups] == [0.1 * 0.3162, 0.02 * 0.3162]
    copy = PlateauDecay(patience=1)
    copy.load_state_dict(decay.state_dict())
    assert copy.state_dict() == {"bad_evals": 0, "decays": 1}


@pytest.mark.unit
def test_off_by_default():
    assert PlateauDecay.from_config(None) is None


@pytest.mark.unit
@pytest.mark.parametrize("setting, named", [
    (5, "lr_decay 5 invalid"), ({}, "lr_decay {} invalid"), ({"patience": 5, "gamma": 0.5}, "lr_decay {'patience': 5, 'gamma': 0.5} invalid"),
    ({"factor": 0.5}, "lr_decay patience None invalid"), ({"patience": 0}, "lr_decay patience 0 invalid"),
    ({"patience": 2.5}, "lr_decay patience 2.5 invalid"), ({"patience": True}, "lr_decay patience True invalid"),
    ({"patience": 3, "factor": 1}, "lr_decay factor 1 invalid"), ({"patience": 3, "factor": 0}, "lr_decay factor 0 invalid"),
    ({"patience": 3, "factor": "half"}, "lr_decay factor 'half' invalid"),
])
def test_a_malformed_setting_is_named(setting, named):
    with pytest.raises(ConfigError) as info:
        PlateauDecay.from_config(setting)
    assert str(info.value).startswith(named) and "{patience: N, factor: f}" in str(info.value)


def replayed_lr(history: list, lr: float, patience: int, factor: float) -> float:
    """The learning rate the rule gives after these validations (joint sampled MRR, >=), recomputed apart."""
    best, bad = float("-inf"), 0
    for entry in history:
        score = sum(entry["valid"]["sampled"][d]["MRR"] for d in ("X", "Y"))
        if score >= best:
            best, bad = score, 0
        else:
            bad += 1
            if bad == patience:
                lr, bad = lr * factor, 0
    return lr


@pytest.mark.integration
def test_a_run_decays_by_its_validations_and_resumes_bit_for_bit(abxi_small_dir, tmp_path, monkeypatch):
    """A real run with patience 1: its final learning rate is the one its own validation history implies,
    and a run interrupted after epoch 1 and resumed ends with the same weights, history and rate."""
    monkeypatch.chdir(tmp_path)
    extra = {"epochs": 4, "learning_rate": 0.01, "lr_decay": {"patience": 1, "factor": 0.5}}
    straight = run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "a", **extra))
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, 1)
        with pytest.raises(Interrupted):
            run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings(abxi_small_dir, tmp_path / "b", **extra))
    resumed = run_recbole_ifcdsr("IFCDSR", "fk_abxi",
                                 config_dict=settings(abxi_small_dir, tmp_path / "b", resume=True, **extra))
    a, b = (compat.load_checkpoint(last_file(tmp_path / d)) for d in ("a", "b"))
    assert len(a["history"]) == 4 and a["history"] == b["history"] and a["losses"] == b["losses"]
    lr = a["optimizer"]["param_groups"][0]["lr"]
    assert lr == replayed_lr(a["history"], 0.01, 1, 0.5) == b["optimizer"]["param_groups"][0]["lr"]
    assert a["lr_decay"] == b["lr_decay"] and a["lr_decay"]["decays"] == round(math.log2(0.01 / lr)) >= 1
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in straight.items() if k not in TIMING}


@pytest.mark.unit
def test_a_malformed_setting_fails_in_the_configuration_before_any_data_loads():
    from recbole_ifcdsr.config import Config

    with pytest.raises(ConfigError, match="lr_decay patience 0 invalid"):
        Config("IFCDSR", "fk_abxi", config_dict={"lr_decay": {"patience": 0}})
    assert Config("IFCDSR", "fk_abxi")["lr_decay"] is None  # unset: off

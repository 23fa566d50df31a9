"""Each compat patch, with a test that fails without it."""
import subprocess
import sys

import pytest
import torch
from recbole.trainer import Trainer

from recbole_ifcdsr import compat
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.registry import get_model


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.integration
def test_recbole_checkpoint_reloads_through_recboles_own_trainer(abxi_slice_dir, tmp_path):
    config = Config("SASRec", "fk_abxi", config_dict={"data_path": str(abxi_slice_dir), "checkpoint_dir": str(tmp_path),
                                                      "show_progress": False, "state": "WARNING"})
    data = CrossDomainSequentialDataset(config)
    model = get_model("SASRec")(config, data)
    trainer = Trainer(config, model)
    compat.trust_checkpoint_dir(tmp_path)
    trainer._save_checkpoint(0, verbose=False)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    trainer.resume_checkpoint(trainer.saved_model_file)  # RecBole's own torch.load call
    assert trainer.start_epoch == 1
    assert any(p.abs().sum() > 0 for p in model.parameters())
    # Without the patch, torch>=2.6 refuses the pickled Config:
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(trainer.saved_model_file, weights_only=True)


@pytest.mark.unit
def test_untrusted_checkpoint_is_not_unpickled(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"config": Config}, path)  # a pickled class, as a foreign checkpoint might hold
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        compat.load_checkpoint(path)


@pytest.mark.unit
def test_anomaly_mode_is_off_after_import():
    code = ("import recbole_ifcdsr, torch; from recbole_ifcdsr.registry import get_model; "
            "get_model('SASRec'); print(torch.is_anomaly_enabled())")
    assert _run(code) == "False"
    # without the patch RecBole's own model registry switches it on:
    assert _run("import torch; from recbole.utils import get_model; get_model('SASRec'); "
                "print(torch.is_anomaly_enabled())") == "True"


@pytest.mark.integration
def test_our_paths_do_not_import_ray():
    code = ("import sys, recbole_ifcdsr; import recbole_ifcdsr.quick_start, recbole_ifcdsr.compare, "
            "recbole_ifcdsr.trainer; print('ray' in sys.modules, 'recbole.quick_start' in sys.modules)")
    assert _run(code) == "False False"


@pytest.mark.unit
def test_recbole_config_survives_numpy2_alias_removal(monkeypatch):
    """NumPy 2 dropped np.float_/complex_/unicode_, which RecBole's Config assigns on every init."""
    import numpy as np
    from recbole.config.configurator import Config as RecBoleConfig

    for name in ("float_", "complex_", "unicode_"):
        monkeypatch.delattr(np, name, raising=False)
    with pytest.raises(AttributeError):
        RecBoleConfig.compatibility_settings(object())
    compat._restore_numpy_aliases_for_recbole()
    RecBoleConfig.compatibility_settings(object())
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_


@pytest.mark.unit
def test_pandas_copy_on_write_is_refused_since_recboles_fills_would_keep_nans(monkeypatch):
    """Under copy-on-write RecBole 1.2.1's ``feat[field].fillna(..., inplace=True)`` fills a copy; refused."""
    import warnings

    import numpy as np
    import pandas as pd

    compat.refuse_pandas_copy_on_write()  # the pinned pandas with copy-on-write off: accepted
    with pd.option_context("mode.copy_on_write", True):
        feat = pd.DataFrame({"price": [1.0, np.nan]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            feat["price"].fillna(value=0.0, inplace=True)  # what _fill_nan does to a FLOAT field
        assert feat["price"].isna().sum() == 1  # the NaN stays, and nothing says so
        with pytest.raises(compat.PandasCopyOnWriteError, match=r"copy-on-write mode \(mode.copy_on_write=True\)"):
            compat.refuse_pandas_copy_on_write()
    monkeypatch.setattr(pd, "__version__", "3.0.1")
    with pytest.raises(compat.PandasCopyOnWriteError, match=r"pandas 3\.0\.1: .*install pandas<3"):
        compat.refuse_pandas_copy_on_write()


@pytest.mark.integration
def test_a_dataset_is_not_loaded_under_pandas_copy_on_write(abxi_slice_dir):
    """Switched on after import, copy-on-write is still caught before RecBole's Dataset loads anything."""
    import pandas as pd

    config = Config("SASRec", "fk_abxi", config_dict={"data_path": str(abxi_slice_dir), "show_progress": False,
                                                      "state": "WARNING"})
    with pd.option_context("mode.copy_on_write", True), pytest.raises(compat.PandasCopyOnWriteError):
        CrossDomainSequentialDataset(config)

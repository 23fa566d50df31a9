"""How models declare what they need: model YAML inherited along the class hierarchy, and the training
view each model class declares (``cdsr_training``) for quick_start."""
import pytest
import yaml

from recbole_ifcdsr.config import Config, model_yaml_files
from recbole_ifcdsr.model.abstract import score_scale, training_view
from recbole_ifcdsr.model.ifcdsr import IFCDSR
from recbole_ifcdsr.model.llmemf import LLMEMF
from recbole_ifcdsr.paths import PROPERTIES_DIR
from recbole_ifcdsr.quick_start import build_train_data
from recbole_ifcdsr.registry import get_model

pytestmark = pytest.mark.integration

QUIET = {"show_progress": False, "state": "WARNING"}


def test_llmemf_reads_ifcdsr_yaml_first_and_its_own_only_for_what_differs():
    assert model_yaml_files("LLMEMF", LLMEMF) == [PROPERTIES_DIR / "model" / "IFCDSR.yaml",
                                                  PROPERTIES_DIR / "model" / "LLMEMF.yaml"]
    assert model_yaml_files("SASRec", get_model("SASRec")) == []
    ifcdsr = yaml.safe_load((PROPERTIES_DIR / "model" / "IFCDSR.yaml").read_text())
    own = yaml.safe_load((PROPERTIES_DIR / "model" / "LLMEMF.yaml").read_text())
    assert all(ifcdsr.get(key) != value for key, value in own.items())  # nothing repeated
    config = Config("LLMEMF", "fk_abxi", config_dict=QUIET)
    for key in ("loss_type", "num_negatives", "negative_distribution", "lambda1", "temperature", "n_layers"):
        assert config[key] == ifcdsr[key]
    assert config["alpha"] is None and config["fusion_weights"] == {"id": 0.5, "img": 0.15, "txt": 0.5}
    assert Config("IFCDSR", "fk_abxi", config_dict=QUIET)["alpha"] == 0.7


def test_alpha_given_to_llmemf_is_an_error_naming_fusion_weights(abxi_slice_dir):
    from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset

    config = Config("LLMEMF", "fk_abxi", config_dict={**QUIET, "data_path": str(abxi_slice_dir), "alpha": 0.7,
                                                       "id_embedding_size": 8})
    with pytest.raises(ValueError, match="alpha is IFCDSR's ID weight; LLMEMF weighs its tables with fusion_weights"):
        LLMEMF(config, CrossDomainSequentialDataset(config))


def test_each_model_declares_its_training_view(abxi):
    assert training_view(IFCDSR) == training_view(LLMEMF) == "sequence"
    assert training_view(get_model("Pop")) == "none"
    assert training_view(get_model("SASRec")) == training_view(get_model("GRU4Rec")) == "prefix"
    config, data = abxi
    assert build_train_data(config, data, get_model("Pop")) is None
    whole = build_train_data(config, data, IFCDSR)
    prefixes = build_train_data(config, data, get_model("SASRec"))
    assert len(whole.dataset) == 7144 and len(prefixes.dataset) == 152116  # fk_abxi: sequences vs prefixes


def test_each_model_declares_the_scale_of_its_scores():
    """The protocols put a recipe's tie margin on the log scale of probability scores (IFCDSR's eq. (9))."""
    assert score_scale(IFCDSR) == score_scale(LLMEMF) == "probability"
    assert score_scale(get_model("Pop")) == score_scale(get_model("SASRec")) == score_scale(get_model("SRGNN")) == "logit"

    class Odd:
        cdsr_score_scale = "rank"

    with pytest.raises(ValueError, match="Odd.cdsr_score_scale 'rank' unknown; valid: logit, probability"):
        score_scale(Odd)


def test_compare_reuses_no_llmemf_cell_after_ifcdsr_yaml_changes():
    """A grid cell is keyed by every model YAML the run reads, the parent class's included."""
    from recbole_ifcdsr.compare import cell_request

    defaults = cell_request("LLMEMF", "fk_abxi", 0, [], [])["defaults"]
    assert {"model/IFCDSR.yaml", "model/LLMEMF.yaml"} <= set(defaults)
    assert "model/LLMEMF.yaml" not in cell_request("IFCDSR", "fk_abxi", 0, [], [])["defaults"]

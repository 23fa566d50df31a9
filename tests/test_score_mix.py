"""tools/score_mix.py: rescoring a checkpoint with the model's own weights reproduces the run's validation
numbers at that epoch; other weights change them; bad input is one clear error."""
import pytest

from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

from conftest import SMALL_RUN, load_tool

pytestmark = pytest.mark.integration
TINY = {"id_embedding_size": 8, "n_heads": 1, "seed": 3, "epochs": 2}


def score_mix():
    return load_tool("score_mix")


def train(data_dir, checkpoint_dir, **extra) -> dict:
    settings = {**SMALL_RUN, **TINY, "data_path": str(data_dir), "checkpoint_dir": str(checkpoint_dir), **extra}
    return run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict=settings)


def table_rows(output: str) -> dict:
    rows = [line.strip("|").split("|") for line in output.splitlines() if line.startswith("| ") and "w_own" not in line]
    return {cells[0].strip(): [float(c) for c in cells[1:]] for cells in rows}


def test_the_models_own_weights_reproduce_the_runs_validation_numbers(abxi_small_dir, tmp_path, capsys):
    result = train(abxi_small_dir, tmp_path)
    checkpoint = tmp_path / "IFCDSR-fk_abxi-seed3-best_X.pth"
    capsys.readouterr()
    assert score_mix().main(["--checkpoint", str(checkpoint), "--data-path", str(abxi_small_dir),
                             "--mixes", "1,0.1,0.4", "0,0,1"]) == 0
    output = capsys.readouterr().out
    assert f"epoch {result['best_epoch']['X']}, validation" in output
    rows = table_rows(output)
    valid = result["sampled"]["valid"]
    assert rows["1, 0.1, 0.4"][:2] == [round(100 * valid["X"]["MRR"], 2), round(100 * valid["Y"]["MRR"], 2)]
    assert rows["0, 0, 1"] != rows["1, 0.1, 0.4"]


def test_bad_input_is_one_clear_error(abxi_small_dir, tmp_path, capsys):
    train(abxi_small_dir, tmp_path / "multi")
    with pytest.raises(SystemExit):
        score_mix().main(["--checkpoint", str(tmp_path / "multi" / "IFCDSR-fk_abxi-seed3-best_X.pth"),
                          "--data_path", str(abxi_small_dir), "--mixes", "1,0.1"])
    assert "each mix is three numbers: w_own,w_other,w_merged" in capsys.readouterr().err
    train(abxi_small_dir, tmp_path / "single", multiple_attention=False, epochs=1)
    with pytest.raises(SystemExit):
        score_mix().main(["--checkpoint", str(tmp_path / "single" / "IFCDSR-fk_abxi-seed3-best_X.pth"),
                          "--data-path", str(abxi_small_dir), "--mixes", "1,0.1,0.4"])
    assert "a single merged encoder (multiple_attention False) has one branch: nothing to mix" in capsys.readouterr().err

"""Each expected problem is one ``error: ...`` line and exit status 2 at the command line (the main CLI
run in-process with its real argv parsing); an unexpected exception keeps its traceback."""
import json
import shutil
import sys
import zipfile

import numpy as np
import pytest

from recbole_ifcdsr.errors import CDSRError, ConfigError, DataError, one_line, run_cli
from recbole_ifcdsr.features.store import feature_path, save_features
from recbole_ifcdsr.run import main as run_main

from conftest import SMALL_RUN


def cli(monkeypatch, capsys, tmp_path, *args) -> tuple[int, str]:
    """(exit status, stderr) of ``python -m recbole_ifcdsr.run *args`` run in this process."""
    monkeypatch.chdir(tmp_path)  # RecBole writes log/ into the working directory
    monkeypatch.setattr(sys, "argv", ["run_recbole_ifcdsr.py", "--show_progress=False", "--state=WARNING",
                                      f"--checkpoint_dir={tmp_path / 'saved'}", *args])
    code = run_main()
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.unit
def test_run_cli_reports_expected_errors_and_lets_bugs_through(capsys):
    def expected():
        raise DataError("a.inter:3: timestamp: 'x' is not a number")

    assert run_cli(expected) == 2 and capsys.readouterr().err == "error: a.inter:3: timestamp: 'x' is not a number\n"
    assert run_cli(lambda: (_ for _ in ()).throw(FileNotFoundError("b.yaml not found")), expected_exit=1) == 1
    with pytest.raises(ZeroDivisionError):
        run_cli(lambda: 1 / 0)
    assert one_line(CDSRError("two\n  lines")) == "two lines"
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)


@pytest.mark.integration
def test_seed_that_is_not_a_number(monkeypatch, capsys, tmp_path, abxi_small_dir):
    code, err = cli(monkeypatch, capsys, tmp_path, "--model=Pop", f"--data_path={abxi_small_dir}", "--seed=abc")
    assert code == 2 and one_error_line(err) == "error: --seed=abc: seed must be an integer (default 2020)"


@pytest.mark.unit
def test_mistyped_values_from_a_file_or_dict_name_their_source(tmp_path):
    from recbole_ifcdsr.config import Config

    settings = tmp_path / "run.yaml"
    settings.write_text("epochs: ten\n")
    with pytest.raises(ConfigError, match=f"^{settings}: epochs: 'ten': epochs must be an integer"):
        Config("Pop", "fk_abxi", config_file_list=[str(settings)])
    with pytest.raises(ConfigError, match=r"^config_dict learning_rate='fast': learning_rate must be a number"):
        Config("SASRec", "fk_abxi", config_dict={"learning_rate": "fast"})


@pytest.mark.integration
def test_yaml_syntax_error_names_the_file_and_line(monkeypatch, capsys, tmp_path, abxi_small_dir):
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: 2\nlearning_rate: [0.1\n")
    code, err = cli(monkeypatch, capsys, tmp_path, "--model=Pop", f"--data_path={abxi_small_dir}",
                    f"--config_files={broken}")
    assert code == 2
    assert one_error_line(err) == f"error: {broken}:3: YAML syntax error: expected ',' or ']', but got '<stream end>'"


@pytest.mark.integration
def test_epochs_minus_one_fails_and_keeps_the_results_file(monkeypatch, capsys, tmp_path, abxi_small_dir):
    results = tmp_path / "results.json"
    results.write_text('{"earlier": "run"}')
    code, err = cli(monkeypatch, capsys, tmp_path, "--model=SASRec", f"--data_path={abxi_small_dir}", "--epochs=-1",
                    f"--results_file={results}", "--hidden_size=8", "--inner_size=16")
    assert code == 2 and one_error_line(err) == (
        "error: epochs=-1: no training epoch would run and nothing would be evaluated; give --epochs=N with N >= 1")
    assert results.read_text() == '{"earlier": "run"}'


@pytest.fixture
def with_store(abxi_small_dir, tmp_path):
    """A copy of the small slice; tests put an image store next to it."""
    root = tmp_path / "data"
    shutil.copytree(abxi_small_dir, root)
    tokens = [line.split("\t", 1)[0] for line in (root / "fk_abxi" / "fk_abxi.item").read_text().splitlines()[1:]]
    return root, tokens, feature_path(root / "fk_abxi", "fk_abxi", "image")


def ifcdsr(monkeypatch, capsys, tmp_path, root, *extra):
    return cli(monkeypatch, capsys, tmp_path, "--model=IFCDSR", f"--data_path={root}", "--epochs=1",
               "--id_embedding_size=8", f"--cdsr_negatives={SMALL_RUN['cdsr_negatives']}", "--MAX_ITEM_LIST_LENGTH=20",
               *extra)


@pytest.mark.integration
def test_truncated_feature_store(monkeypatch, capsys, tmp_path, with_store):
    root, tokens, store = with_store
    save_features(store, tokens, np.ones((len(tokens), 8)), np.ones(len(tokens), dtype=bool), {})
    store.write_bytes(store.read_bytes()[:1000])
    with pytest.raises(zipfile.BadZipFile):  # what a truncated store raised before, as a traceback
        np.load(store)["vectors"]
    code, err = ifcdsr(monkeypatch, capsys, tmp_path, root)
    assert code == 2 and one_error_line(err).startswith(
        f"error: {store}: not a feature store, or a truncated or corrupt one (BadZipFile: ")


@pytest.mark.integration
def test_one_dimensional_feature_vectors(monkeypatch, capsys, tmp_path, with_store):
    root, tokens, store = with_store
    np.savez(store, tokens=np.asarray(tokens), vectors=np.ones(len(tokens), dtype=np.float32),
             mask=np.ones(len(tokens), dtype=bool), meta=np.array("{}"))
    code, err = ifcdsr(monkeypatch, capsys, tmp_path, root)
    assert code == 2 and one_error_line(err) == (
        f"error: {store}: vectors have shape ({len(tokens)},); a store holds one row per item ([n, dim])")


@pytest.mark.integration
def test_store_width_that_does_not_fit_the_model(monkeypatch, capsys, tmp_path, with_store):
    root, tokens, store = with_store
    save_features(store, tokens, np.ones((len(tokens), 7)), np.ones(len(tokens), dtype=bool), {})
    code, err = ifcdsr(monkeypatch, capsys, tmp_path, root, "--n_heads=2")
    assert code == 2 and one_error_line(err) == (
        f"error: {store}: width 7 does not fit IFCDSR: its encoders over this table keep the table's width, which must "
        f"be a multiple of n_heads=2 (set by image_feature: image)")


@pytest.mark.unit
def test_store_width_that_disagrees_with_its_own_meta(tmp_path):
    from recbole_ifcdsr.features.store import FeatureStoreError, load_features

    path = tmp_path / "d.image.npz"
    np.savez(path, tokens=np.array(["a"]), vectors=np.ones((1, 7), dtype=np.float32), mask=np.array([True]),
             meta=np.array(json.dumps({"dim": 512})))
    with pytest.raises(FeatureStoreError, match="vectors have width 7 but its meta says dim 512"):
        load_features(path)


@pytest.mark.integration
def test_truncated_checkpoint_at_the_command_line(monkeypatch, capsys, tmp_path, abxi_small_dir):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "Pop-fk_abxi-seed2020-last.pth").write_bytes(b"PK\x03\x04 cut short")
    code, err = cli(monkeypatch, capsys, tmp_path, "--model=Pop", f"--data_path={abxi_small_dir}", "--resume=True",
                    f"--cdsr_negatives={SMALL_RUN['cdsr_negatives']}")
    assert code == 2 and one_error_line(err).startswith(
        f"error: {saved / 'Pop-fk_abxi-seed2020-last.pth'}: not a readable checkpoint, truncated or corrupt (")


@pytest.mark.integration
def test_corrupt_local_clip_checkpoint(tmp_path, capsys, tiny_clip):
    from recbole_ifcdsr.features.__main__ import main as features_main

    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"\x80\x04 not a torch file")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "d.item").write_text("item_id:token\tdomain:token\ttitle:token_seq\nA\tX\t\n")
    code = features_main(["extract", "--dataset=d", "--feature=image", "--modality=image", "--encoder=clip",
                          "--clip_model=tiny-clip", f"--model_config={tiny_clip}", f"--pretrained={weights}",
                          f"--image_dir={tmp_path}", f"--data_path={tmp_path}", "--device=cpu", "--no_progress"])
    err = capsys.readouterr().err
    assert code == 2 and one_error_line(err).startswith(
        f"error: CLIP checkpoint file {weights} cannot be loaded as tiny-clip weights, corrupt or for another model (")

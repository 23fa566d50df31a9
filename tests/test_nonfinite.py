"""Non-finite is an error: NaN or inf in a score, a loss, a gradient or a feature store stops the run
with one line instead of ranking the target first (NaN compares False both ways) and reporting 1.0."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.utils import init_seed

from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset, DatasetError
from recbole_ifcdsr.errors import EmptyRunError, NonFiniteError
from recbole_ifcdsr.evaluation.metrics import metrics_from_ranks, ranks_against
from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
from recbole_ifcdsr.evaluation.selection import ModelSelector
from recbole_ifcdsr.features.store import FeatureStoreError, feature_path, load_aligned, load_features, save_features
from recbole_ifcdsr.model.pop import Pop
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr
from recbole_ifcdsr.registry import get_model
from recbole_ifcdsr.trainer import CrossDomainTrainer

from conftest import SMALL_RUN, load

NON_FINITE = (float("nan"), float("inf"), float("-inf"))


# ---- ranks_against: every position, every non-finite value ------------------------------------
@pytest.mark.unit
def test_ranks_against_raises_for_a_non_finite_score_in_every_counted_position():
    generator = torch.Generator().manual_seed(0)
    target, others = torch.rand(3, generator=generator), torch.rand(3, 6, generator=generator)
    valid = torch.rand(3, 6, generator=generator) > 0.4
    assert torch.isfinite(ranks_against(target, others, valid)).all()
    for value in NON_FINITE:
        for row in range(3):
            bad_target = target.clone()
            bad_target[row] = value
            with pytest.raises(NonFiniteError, match=f"non-finite scores in 1 of 3 cases .first: row {row}"):
                ranks_against(bad_target, others)
            for column in range(6):
                bad_others = others.clone()
                bad_others[row, column] = value
                with pytest.raises(NonFiniteError):
                    ranks_against(target, bad_others)  # no mask: every column counts
                if valid[row, column]:
                    with pytest.raises(NonFiniteError):
                        ranks_against(target, bad_others, valid)
                else:  # an uncounted column (padding, another domain) may hold anything, e.g. -inf
                    assert ranks_against(target, bad_others, valid).tolist() == ranks_against(target, others, valid).tolist()


@pytest.mark.unit
def test_a_nan_target_used_to_rank_first():
    """The finding: both comparisons with NaN are False, so the old rule gave rank 1 (MRR 1.0)."""
    with pytest.raises(NonFiniteError):
        ranks_against(torch.tensor([float("nan")]), torch.tensor([[0.3, 0.9, 0.1]]))


@pytest.mark.unit
def test_no_ranks_and_non_finite_selection_scores_are_errors():
    with pytest.raises(EmptyRunError, match="no evaluation case"):
        metrics_from_ranks(np.array([]), ["MRR"])
    selector = ModelSelector({"mode": "joint", "metric": "MRR"})
    with pytest.raises(NonFiniteError, match="validation MRR of 'joint' is nan"):
        selector.update({"X": {"MRR": float("nan")}, "Y": {"MRR": 0.1}})


# ---- the protocol evaluator on a tiny real-format dataset, Pop's scores poked item by item -------------
ITEMS = "".join(f"{t}\tX\tGrocery\t\n" for t in "abcde") + "".join(f"{t}\tY\tKitchen\t\n" for t in "fghij")
INTER = "u1\ta\t1\nu1\tf\t2\nu1\tb\t3\nu1\tg\t4\nu2\tf\t1\nu2\ta\t2\nu2\tg\t3\nu2\tb\t4\nu3\tc\t1\nu3\th\t2\nu3\td\t3\nu3\ti\t4\n"
NEGATIVES = {"num": 2, "replacement": False, "exclude": "target", "redraw": "once", "rng": "generator", "seed": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    (root / "fk_abxi").mkdir()
    (root / "fk_abxi" / "fk_abxi.item").write_text("item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq\n" + ITEMS)
    (root / "fk_abxi" / "fk_abxi.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + INTER)
    config, data = load("Pop", "fk_abxi", data_path=str(root), cdsr_negatives=NEGATIVES)
    return config, data


@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.integration
def test_evaluator_raises_for_a_non_finite_score_of_any_target_or_competitor(tiny, split):
    config, data = tiny
    model = Pop(config, data)
    evaluator = ProtocolEvaluator(data, config)
    clean = model.item_score.clone()
    cases = data.eval_cases(split)
    negatives = evaluator.sampler.negatives(split)
    in_sampled = set(cases.targets.tolist()) | set(negatives.ravel().tolist())
    assert evaluator.evaluate(model, split)["sampled"]["X"]["MRR"] > 0
    for item in range(data.item_num):
        for value in NON_FINITE:
            model.item_score.copy_(clean)
            model.item_score[item] = value
            if item == 0:  # padding is nobody's competitor
                assert math.isfinite(evaluator.evaluate(model, split)["full"]["Y"]["MRR"])
                continue
            with pytest.raises(NonFiniteError):  # full ranking: every item of a domain competes in its cases
                evaluator.evaluate(model, split, protocols=("full",))
            with pytest.raises(NonFiniteError):
                evaluator.evaluate(model, split)
            if item in in_sampled:
                with pytest.raises(NonFiniteError):
                    evaluator.evaluate(model, split, protocols=("sampled",))
            else:
                assert math.isfinite(evaluator.evaluate(model, split, protocols=("sampled",))["sampled"]["X"]["MRR"])


@pytest.mark.integration
def test_evaluator_names_model_split_epoch_and_case(tiny):
    config, data = tiny
    model = Pop(config, data)
    model.item_score[data.field2token_id["item_id"]["g"]] = float("nan")  # u1's test target
    with pytest.raises(NonFiniteError) as info:
        ProtocolEvaluator(data, config).evaluate(model, "test", pass_index=3)
    assert str(info.value).startswith("Pop on fk_abxi, test split, epoch 3: 2 of 3 cases in a batch score NaN or inf "
                                      "for their target or a competitor (first: user 'u1', target 'g', target score nan)")


@pytest.mark.integration
def test_a_split_without_cases_of_a_domain_fails_before_training(tiny, tmp_path):
    """Every user's validation target is a Grocery item: the Kitchen domain has no validation case.
    Its metrics used to be NaN, so joint selection never improved and neither domain had results."""
    root = tmp_path / "data"
    shutil.copytree(tiny[0]["data_path"], root / "fk_abxi")
    (root / "fk_abxi" / "fk_abxi.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n" + "u1\tf\t1\nu1\ta\t2\nu1\tg\t3\nu2\th\t1\nu2\tb\t2\nu2\ti\t3\n")
    results = tmp_path / "results.json"
    results.write_text("{}")
    with pytest.raises(DatasetError, match=r"the valid split has no case whose target is in domain Y \(Kitchen\); "
                                           r"recipe leave_one_out evaluates both domains \(2 X / 0 Y cases\)"):
        run_recbole_ifcdsr("Pop", "fk_abxi", config_dict={**SMALL_RUN, "data_path": str(root), "cdsr_negatives": NEGATIVES,
                                                          "checkpoint_dir": str(tmp_path), "results_file": str(results)})
    assert results.read_text() == "{}"


# ---- training: the first non-finite loss or gradient, named by batch --------------------------------
def small_trainer(data_dir, tmp_path, model_name="SASRec"):
    config = Config(model_name, "fk_abxi", config_dict={**SMALL_RUN, "data_path": str(data_dir), "epochs": 1,
                                                         "checkpoint_dir": str(tmp_path), "hidden_size": 8,
                                                         "inner_size": 16, "n_layers": 1, "n_heads": 1, "seed": 1})
    init_seed(1, True)
    data = CrossDomainSequentialDataset(config)
    model = get_model(model_name)(config, data)
    trainer = CrossDomainTrainer(config, model)
    loader = TrainDataLoader(config, data.recbole_train_dataset(), None, shuffle=False)
    return trainer, loader, ProtocolEvaluator(data, config), ModelSelector(config["cdsr_selection"])


@pytest.mark.integration
def test_clipping_under_the_loss_scaler_clips_the_true_gradients(abxi_small_dir, tmp_path):
    """With AMP's loss scaler on (RecBole turns it on only with CUDA; forced on here with a CPU scaler), one epoch
    with tight clipping takes the same steps as without it: the gradients are unscaled before they are clipped.
    Clipping the scaled ones made every clipped step 65,536 times too small. The scale is a power of two, so
    scaling and unscaling are exact."""
    weights = []
    for scaled in (False, True):
        trainer, loader, *_ = small_trainer(abxi_small_dir, tmp_path / str(scaled))
        trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.5)  # steps in proportion to gradients
        trainer.clip_grad_norm = {"max_norm": 0.01}
        if scaled:
            trainer.enable_scaler, trainer.scaler = True, torch.amp.GradScaler("cpu")
        trainer._train_epoch(loader, 0)
        weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
    assert trainer.scaler.get_scale() == 65536.0  # it scaled, and no step was skipped
    assert all(torch.allclose(weights[0][k], weights[1][k], rtol=1e-5, atol=1e-8) for k in weights[0])


@pytest.mark.integration
def test_training_stops_at_a_nan_loss_naming_the_batch(abxi_small_dir, tmp_path):
    trainer, loader, evaluator, selector = small_trainer(abxi_small_dir, tmp_path)
    with torch.no_grad():
        trainer.model.item_embedding.weight[5] = float("nan")  # any batch that scores all items sees it
    with pytest.raises(NonFiniteError, match=r"^SASRec on fk_abxi, epoch 0, batch 0: training loss is nan; stopped "
                                             r"before the step \(the last good checkpoint is .*SASRec-fk_abxi-seed1-last\.pth\)$"):
        trainer.fit_cdsr(loader, evaluator, selector)
    assert not (tmp_path / "SASRec-fk_abxi-seed1-last.pth").exists()  # nothing of the poisoned epoch is kept


@pytest.mark.integration
def test_training_stops_at_a_nan_gradient_naming_batch_and_parameter(abxi_small_dir, tmp_path):
    trainer, loader, evaluator, selector = small_trainer(abxi_small_dir, tmp_path)
    calls = []

    def poison_second_batch(grad):  # a finite loss whose backward yields NaN in one tensor
        calls.append(1)
        return grad * float("nan") if len(calls) == 2 else grad

    trainer.model.position_embedding.weight.register_hook(poison_second_batch)
    before = trainer.model.item_embedding.weight.detach().clone()
    with pytest.raises(NonFiniteError, match=r"^SASRec on fk_abxi, epoch 0, batch 1: the gradient of "
                                             r"position_embedding\.weight holds NaN or inf; stopped before the step"):
        trainer.fit_cdsr(loader, evaluator, selector)
    assert torch.isfinite(trainer.model.position_embedding.weight).all()  # the NaN step was never taken
    assert not torch.equal(before, trainer.model.item_embedding.weight)  # batch 0 was


@pytest.mark.integration
def test_the_gradient_check_names_an_inf_and_passes_finite_gradients_whose_sum_overflows(abxi_small_dir, tmp_path):
    """The check sums each gradient first; a finite total proves every element finite, and a non-finite total
    is searched element by element, so overflowing finite values are no error and an inf is named."""
    trainer, *_ = small_trainer(abxi_small_dir, tmp_path)
    params = dict(trainer.model.named_parameters())
    for p in params.values():
        p.grad = torch.zeros_like(p)
    params["item_embedding.weight"].grad.fill_(3e38)  # each element finite, their sum is inf in float32
    assert not torch.isfinite(params["item_embedding.weight"].grad.sum())
    trainer._check_gradients(0, 0)
    params["position_embedding.weight"].grad[2, 1] = float("-inf")
    with pytest.raises(NonFiniteError, match=r"epoch 0, batch 0: the gradient of position_embedding\.weight holds NaN or inf"):
        trainer._check_gradients(0, 0)
    params["item_embedding.weight"].grad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the gradient of item_embedding\.weight holds"):  # the first named
        trainer._check_gradients(0, 0)


# ---- feature stores: every row checked, masked rows stored and returned as zeros ---------------------
def write_raw_store(path, tokens, vectors, mask):
    """A store as another program might write it (save_features would refuse or zero it)."""
    np.savez(path, tokens=np.asarray(tokens), vectors=np.asarray(vectors, dtype=np.float32), mask=np.asarray(mask),
             meta=np.array(json.dumps({"dim": np.asarray(vectors).shape[1]})))


@pytest.mark.unit
def test_masked_rows_are_stored_as_zeros_and_a_nan_anywhere_is_named(tmp_path):
    path = tmp_path / "d.image.npz"
    save_features(path, ["a", "b"], np.array([[1.0, 2.0], [np.nan, 5.0]]), np.array([True, False]), {})
    _, vectors, _, _ = load_features(path)
    assert vectors.tolist() == [[1.0, 2.0], [0.0, 0.0]]
    write_raw_store(path, ["a", "b", "c"], [[1.0, 2.0], [np.nan, 5.0], [3.0, 4.0]], [True, False, True])
    with pytest.raises(FeatureStoreError, match=r"d\.image\.npz: NaN or inf in 1 of 3 rows, e\.g\. item 'b' \(row 1\)"):
        load_aligned(path, {"[PAD]": 0, "a": 1, "b": 2, "c": 3}, 4)
    write_raw_store(path, ["a", "b"], [[1.0, 2.0], [7.0, 5.0]], [True, False])  # finite garbage under a mask
    vectors, mask, _ = load_aligned(path, {"[PAD]": 0, "a": 1, "b": 2}, 3)
    assert vectors[2].tolist() == [0.0, 0.0] and mask.tolist() == [False, True, False]


@pytest.mark.integration
def test_one_nan_in_a_masked_image_row_fails_the_run_instead_of_perfect_metrics(abxi_small_dir, tmp_path, monkeypatch):
    """The finding: IFCDSR with such a store exited 0 with MRR = NDCG = HR = 1.0 in both domains."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    shutil.copytree(abxi_small_dir, root)
    lines = (root / "fk_abxi" / "fk_abxi.item").read_text().splitlines()[1:]
    tokens = [line.split("\t", 1)[0] for line in lines]
    vectors = np.random.default_rng(0).normal(size=(len(tokens), 8))
    mask = np.arange(len(tokens)) % 3 > 0
    vectors[0] = np.nan  # row 0 is masked
    store = feature_path(root / "fk_abxi", "fk_abxi", "image")
    write_raw_store(store, tokens, vectors, mask)
    results = tmp_path / "results.json"
    with pytest.raises(FeatureStoreError, match=f"{store}: NaN or inf in 1 of {len(tokens)} rows, e.g. item '{tokens[0]}' \\(row 0\\)"):
        run_recbole_ifcdsr("IFCDSR", "fk_abxi", config_dict={
            **SMALL_RUN, "data_path": str(root), "checkpoint_dir": str(tmp_path), "epochs": 1, "id_embedding_size": 8,
            "n_heads": 1, "results_file": str(results)})
    assert not results.exists()

"""run_recbole_ifcdsr: one run (model, dataset, seed) from config to per-domain results under both protocols.

The steps are RecBole's ``run_recbole`` steps, in its order, each with its comment. Everything that can be
checked before training is checked first (settings, every atomic-file line, evaluation cases in both
domains, feature stores), so a bad input fails in seconds with one line (errors.py). A run that ends
without results for both domains raises and never writes or replaces ``results_file``.
"""
from __future__ import annotations

import time
from logging import getLogger

from recbole.data.dataloader import TrainDataLoader
from recbole.utils import init_logger, init_seed, set_color

from recbole_ifcdsr import io
from recbole_ifcdsr.checkpoint import run_identity
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.errors import CDSRError, ConfigError, one_line
from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
from recbole_ifcdsr.evaluation.selection import ModelSelector
from recbole_ifcdsr.features.auto import ensure_feature
from recbole_ifcdsr.features.store import check_stores_fit
from recbole_ifcdsr.model.abstract import training_view
from recbole_ifcdsr.registry import get_model, get_trainer
from recbole_ifcdsr.results import results_json
from recbole_ifcdsr.serving.model_file import UnservableModelError, write_for_run


def build_train_data(config, dataset: CrossDomainSequentialDataset, model_class):
    """The training view the model declares (``cdsr_training``): whole sequences for ours, RecBole's
    prefix-augmented view for RecBole's; None for a model with nothing to train (Pop)."""
    view = training_view(model_class)
    if view == "none":
        return None
    if view == "sequence":  # our models: whole sequences
        return TrainDataLoader(config, dataset.sequence_train_dataset(), None, shuffle=config["shuffle"])
    return TrainDataLoader(config, dataset.recbole_train_dataset(), None, shuffle=config["shuffle"])


def build_model(model_class, config, dataset):
    """The model on its device. Building depends only on settings and data, so a ValueError here
    (RecBole's "hidden size not a multiple of n_heads", bad fusion weights) is a setting's fault."""
    try:
        return model_class(config, dataset).to(config["device"])
    except CDSRError:
        raise
    except ValueError as error:
        raise ConfigError(f"{config['model']} cannot be built with these settings: {one_line(error)}") from error


def prepare_features(config, dataset: CrossDomainSequentialDataset) -> None:
    """The feature stores the YAML names under ``item_features``, built on first use where the encoder is at
    hand; then every store the model will read is checked against the data, before the model is built."""
    for feature in config["item_features"] or {}:
        ensure_feature(config, config["dataset"], feature)
    check_stores_fit(config, dataset.field2token_id[dataset.iid_field], dataset.item_num)


def run_recbole_ifcdsr(model=None, dataset=None, config_file_list=None, config_dict=None, saved: bool = True,
                       argv: list[str] | None = None) -> dict:
    """Train ``model`` on ``dataset`` per the dataset's recipe and return the results dict (results.py; also
    written to ``results_file`` when set). ``argv``: command-line ``--key=value`` settings (None: RecBole's
    reading of ``sys.argv``)."""
    wall_start = time.monotonic()
    # configurations initialization
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict, argv=argv)
    init_seed(config["seed"], config["reproducibility"])
    # logger initialization
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    # dataset loading: every atomic-file line checked, the recipe's evaluation cases in both domains
    dataset = CrossDomainSequentialDataset(config)
    dataset.check_eval_domains()
    logger.info(dataset.summary())

    # dataset splitting: the training view the model trains on (the recipe fixed valid and test)
    model_class = get_model(config["model"])
    train_data = build_train_data(config, dataset, model_class)

    # item feature stores: built on first use, checked before the model reads them
    prepare_features(config, dataset)

    # model loading and initialization
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = build_model(model_class, config, dataset)
    logger.info(model)

    # trainer loading and initialization (a resume continues the checkpoint of this very run)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.set_run(run_identity(config, dataset, model), process_start=wall_start)
    selector = ModelSelector(config["cdsr_selection"])
    evaluator = ProtocolEvaluator(dataset, config)
    if config["resume"]:
        trainer.resume_from_last(selector)

    # model training and evaluation: the recipe's selection on the sampled protocol, both protocols reported
    run = trainer.fit_cdsr(train_data, evaluator, selector, show_progress=config["show_progress"], saved=saved)

    if saved:  # what serving needs, next to the selected checkpoints (recbole_ifcdsr/serving)
        try:
            logger.info(f"model file written to {write_for_run(config, dataset, model, trainer.best_model_file)}")
        except UnservableModelError as error:  # the run's results stand; only serving is out of reach
            logger.warning(f"no model file written: {error}")

    # results: the table in the log, the JSON in results_file
    result = results_json(config, run, wall_seconds=time.monotonic() - wall_start)
    logger.info(set_color("results", "yellow") + "\n" + run["result"].table(config["domains"], result["protocols"]))
    if config["results_file"]:
        io.write_json(config["results_file"], result)
        logger.info(f"results written to {config['results_file']}")
    return result

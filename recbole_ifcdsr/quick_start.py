"""run_recbole_ifcdsr: one run (model, dataset, seed) from config to per-domain results under both protocols.

Everything that can be checked before training is checked first (settings, every atomic-file line,
evaluation cases in both domains, feature stores), so a bad input fails in seconds with one line
(errors.py). A run that ends without results for both domains raises and never writes or replaces
``results_file``.
"""
from __future__ import annotations

import json
import os
import platform
import time
from logging import getLogger

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.utils import init_logger, init_seed, set_color

from recbole_ifcdsr.checkpoint import run_identity
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import DOMAINS, CrossDomainSequentialDataset
from recbole_ifcdsr.errors import CDSRError, ConfigError, one_line
from recbole_ifcdsr.evaluation.protocol import ALL_PROTOCOLS, ProtocolEvaluator
from recbole_ifcdsr.evaluation.selection import ModelSelector
from recbole_ifcdsr.features.auto import ensure_feature
from recbole_ifcdsr.features.store import check_stores_fit
from recbole_ifcdsr.model.abstract import training_view
from recbole_ifcdsr.registry import get_model, get_trainer
from recbole_ifcdsr.serving.model_file import write_for_run


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def results_table(result: dict) -> str:
    """Markdown table: one row per (protocol, split, domain), one column per metric."""
    domain_names = result["domains"]
    lines = []
    for protocol in result["protocols"]:
        for split in ("valid", "test"):
            per_domain = result[protocol][split]
            for d in DOMAINS:
                if d not in per_domain:
                    continue
                metrics = per_domain[d]
                if not lines:
                    lines.append("| protocol | split | domain | epoch | " + " | ".join(metrics) + " |")
                    lines.append("|" + "---|" * (4 + len(metrics)))
                values = " | ".join(f"{v:.4f}" for v in metrics.values())
                lines.append(f"| {protocol} | {split} | {domain_names.get(d, d)} | {result['best_epoch'].get(d)} | {values} |")
    return "\n".join(lines)


def _write_json_atomically(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


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


def run_recbole_ifcdsr(model=None, dataset=None, config_file_list=None, config_dict=None, saved: bool = True) -> dict:
    """Train ``model`` on ``dataset`` per the dataset's recipe and return the results dict
    (also written to ``results_file`` when set)."""
    wall_start = time.time()
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    data = CrossDomainSequentialDataset(config)
    data.check_eval_domains()
    logger.info(data.summary())
    model_class = get_model(config["model"])
    train_data = build_train_data(config, data, model_class)

    for feature in config["item_features"] or {}:  # build missing feature stores the YAML names (first use)
        ensure_feature(config, config["dataset"], feature)
    check_stores_fit(config, data.field2token_id[data.iid_field], data.item_num)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = build_model(model_class, config, data)
    logger.info(net)

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer.set_run(run_identity(config, data, net))
    selector = ModelSelector(config["cdsr_selection"])
    evaluator = ProtocolEvaluator(data, config)
    if config["resume"]:
        trainer.resume_from_last(selector)
    run = trainer.fit_cdsr(train_data, evaluator, selector, show_progress=config["show_progress"], saved=saved)

    if saved:  # what serving needs, next to the selected checkpoints (recbole_ifcdsr/serving)
        logger.info(f"model file written to {write_for_run(config, data, net, trainer.best_model_file)}")

    protocol = config["protocol"]
    protocols = list(ALL_PROTOCOLS) if protocol == "both" else [protocol]
    records = run["records"]
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "protocol": protocol,
        "protocols": protocols,
        "seed": config["seed"],
        "domains": dict(config["domains"]),
        "best_epoch": run["best_epoch"],
        "epochs_run": run["epochs_run"],
        "stop_reason": run["stop_reason"],
        "train_seconds": run["train_seconds"],
        "train_cpu_seconds": run["train_cpu_seconds"],
        "eval_seconds": run["eval_seconds"],
        "wall_seconds": round(time.time() - wall_start, 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}, device {config['device']}",
    }
    for p in protocols:
        result[p] = {split: {d: records[d][split][p] for d in DOMAINS if d in records} for split in ("valid", "test")}
    # The first requested protocol also sits at the top level: {"valid"|"test": {domain: {metric: value}}}.
    result["valid"], result["test"] = result[protocols[0]]["valid"], result[protocols[0]]["test"]
    result["config"] = _jsonable({k: config[k] for k in config.final_config_dict})

    logger.info(set_color("results", "yellow") + "\n" + results_table(result))
    if config["results_file"]:
        _write_json_atomically(config["results_file"], result)
        logger.info(f"results written to {config['results_file']}")
    return result

"""Config: RecBole's Config with the plug-in's models and YAML layered on top.

Precedence (lowest first), as in RecBole: RecBole's own properties, then ours
(``properties/overall.yaml``, ``properties/model/<M>.yaml``, ``properties/dataset/<d>.yaml``),
then ``config_file_list``, then ``config_dict``, then ``--key=value`` on the command line.
Model YAML is inherited along the class hierarchy: for LLMEMF (a subclass of IFCDSR),
``IFCDSR.yaml`` is read first and ``LLMEMF.yaml`` holds only what differs.
"""
from __future__ import annotations

import os

from recbole.config import Config as RecBoleConfig

from recbole_ifcdsr.paths import DATASET_DIR, PROPERTIES_DIR, known_datasets
from recbole_ifcdsr.registry import UnknownNameError, get_model

PROTOCOLS = ("sampled", "full", "both")


def model_yaml_names(model: str, model_class: type) -> list[str]:
    """Names whose ``properties/model/<name>.yaml`` a model reads: each class of its hierarchy, base
    class first, and ``model`` last (later files win)."""
    return [n for n in (klass.__name__ for klass in reversed(model_class.__mro__)) if n != model] + [model]


def model_yaml_files(model: str, model_class: type) -> list:
    """The existing model YAML files of ``model_yaml_names``, in reading order."""
    return [p for p in (PROPERTIES_DIR / "model" / f"{n}.yaml" for n in model_yaml_names(model, model_class)) if p.is_file()]


class Config(RecBoleConfig):
    """RecBole Config that knows the plug-in's models, datasets and defaults."""

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given: argument, config file, config dict or --model=...")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given: argument, config file, config dict or --dataset=...")
        if dataset not in known_datasets() and "cdsr_recipe" not in self.external_config_dict:
            raise UnknownNameError(
                f"Unknown dataset '{dataset}'. Valid datasets: {', '.join(known_datasets())} "
                f"(or give a properties file that sets cdsr_recipe for your own)"
            )
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        self.internal_config_dict["data_path"] = str(DATASET_DIR)
        for path in (
            PROPERTIES_DIR / "overall.yaml",
            *model_yaml_files(model, model_class),
            PROPERTIES_DIR / "dataset" / f"{dataset}.yaml",
        ):
            if path.is_file():
                loaded = self._update_internal_config_dict(str(path)) or {}
                if path.parent.name == "dataset":
                    self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    def _set_default_parameters(self):
        super()._set_default_parameters()
        protocol = self.final_config_dict.get("protocol", "both")
        if protocol not in PROTOCOLS:
            raise ValueError(f"Unknown protocol '{protocol}'. Valid protocols: {', '.join(PROTOCOLS)}")
        data_path = self.final_config_dict["data_path"]
        if not os.path.isdir(data_path):
            raise FileNotFoundError(
                f"Dataset folder {data_path} not found: run the converter "
                f"(python -m recbole_ifcdsr.data.converters {self.dataset}) first"
            )

"""Config: RecBole's Config with the plug-in's models and YAML layered on top.

Precedence (lowest first), as in RecBole: RecBole's own properties, then ours
(``properties/overall.yaml``, ``properties/model/<M>.yaml``, ``properties/dataset/<d>.yaml``; each the
working directory's if it has one, else the plug-in's), then ``config_file_list``, then ``config_dict``,
then ``--key=value`` on the command line. ``data_path`` defaults to ``./dataset`` as in RecBole.
"""
from __future__ import annotations

import os

from recbole.config import Config as RecBoleConfig

from recbole_ifcdsr.paths import SHIPPED_DATASETS, default_data_path, default_properties, known_datasets
from recbole_ifcdsr.registry import UnknownNameError, get_model

PROTOCOLS = ("sampled", "full", "both")


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
        self.internal_config_dict["data_path"] = str(default_data_path())
        for name, path in default_properties(model, dataset).items():
            loaded = self._update_internal_config_dict(str(path)) or {}
            if name.startswith("dataset/"):
                self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    def _set_default_parameters(self):
        super()._set_default_parameters()
        protocol = self.final_config_dict.get("protocol", "both")
        if protocol not in PROTOCOLS:
            raise ValueError(f"Unknown protocol '{protocol}'. Valid protocols: {', '.join(PROTOCOLS)}")
        data_path = self.final_config_dict["data_path"]
        if not os.path.isdir(data_path) and self.dataset not in SHIPPED_DATASETS:  # those unpack on first use
            raise FileNotFoundError(
                f"Dataset folder {data_path} not found: run the converter "
                f"(python -m recbole_ifcdsr.data.converters {self.dataset}) first"
            )

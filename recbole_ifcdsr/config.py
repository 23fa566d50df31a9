"""Config: RecBole's Config with the plug-in's models and YAML layered on top.

Precedence (lowest first), as in RecBole: RecBole's own properties, then ours
(``properties/overall.yaml``, ``properties/model/<M>.yaml``, ``properties/dataset/<d>.yaml``; each the
working directory's if it has one, else the plug-in's), then ``config_file_list``, then ``config_dict``,
then ``--key=value`` on the command line (``argv`` when given, else ``sys.argv`` as RecBole reads it).
``data_path`` defaults to ``./dataset`` as in RecBole (the folder holding dataset folders; after loading,
``config["data_path"]`` is RecBole's ``<data_path>/<dataset>``, the dataset's own folder).
Model YAML is inherited along the class hierarchy: for LLMEMF (a subclass of IFCDSR),
``IFCDSR.yaml`` is read first and ``LLMEMF.yaml`` holds only what differs.

Every problem with a setting is a :class:`ConfigError` that names where the setting came from: a
YAML syntax error names the file and line, and a value whose type does not fit the key's default
(``--seed=abc``) names the key and its source, before anything runs; so do a key that no property file
defines (only warned about in a config file), a recipe dict's unknown field, and a selection, budget or
``eval_step`` that cannot work.
"""
from __future__ import annotations

import difflib
import functools
import logging
import os
from pathlib import Path

import recbole
from recbole.config import Config as RecBoleConfig

from recbole_ifcdsr.constants import NEGATIVE_FIELDS, PROTOCOL_SETTINGS, SELECTION_FIELDS
from recbole_ifcdsr.errors import CDSRError, ConfigError, one_line
from recbole_ifcdsr.evaluation.selection import is_count, selection_problem
from recbole_ifcdsr.lr_decay import PlateauDecay
from recbole_ifcdsr.paths import (PROPERTIES_DIR, SHIPPED_DATASETS, default_data_path, default_properties,
                                  known_datasets, properties_file, user_properties_dir)
from recbole_ifcdsr.registry import USER_EMBEDDING_MODELS, UnknownNameError, get_model
from recbole_ifcdsr.yamlfile import read_yaml

logger = logging.getLogger(__name__)

#: Settings read by code that no property file defines: RecBole 1.2.1's (its Config sets them, or a model reads
#: them with a fallback) and the plug-in's. With every key of RecBole's, the plug-in's and the user's property
#: files they are the settings a run knows; any other key is a misspelling (``--max_train_cpu_minute=10`` ran
#: without a budget) unless the user's own files define it.
READ_WITHOUT_DEFAULT = frozenset({
    "CROP_ITEM_SEQ", "CROP_ITEM_SEQ_LEN", "INVERSE_ITEM_SEQ", "MASK_INDEX", "MASK_ITEM_SEQ", "MODEL_INPUT_TYPE",
    "MODEL_TYPE", "NEG_ITEMS", "POS_ITEMS", "REORDER_ITEM_SEQ", "cin", "contrast", "dataset", "device", "encoding",
    "eta", "eval_type", "feature_num", "has_residual", "local_rank", "model", "norm", "sim", "single_spec",
    "tail_ratio", "test_neg_sample_args", "token_num_threshold", "use_filter", "valid_neg_sample_args", "world_size",
    "xgb_early_stopping_rounds", "nproc", "ip", "port", "offset", "verbose", "config_files", "lr_decay",
    "neg_sampling", "training_neg_sample_num",  # deprecated; RecBole reads them to say what replaces them
})
#: A recipe's dict settings and their fields: one given in part keeps the recipe's other fields.
RECIPE_DICTS = {"cdsr_selection": SELECTION_FIELDS, "cdsr_negatives": NEGATIVE_FIELDS}
#: The property files whose keys are settings (not anchors.yaml's published numbers or enrich.yaml's prompts).
SETTING_FILES = ("overall.yaml", "budget_*.yaml", "model/*.yaml", "dataset/*.yaml")


@functools.lru_cache(maxsize=None)
def _yaml_keys(path: str, size: int, mtime_ns: int) -> frozenset:
    try:
        loaded = read_yaml(path)
    except Exception:  # a broken file is reported where it is read, by the layer that uses it
        return frozenset()
    return frozenset(loaded) if isinstance(loaded, dict) else frozenset()


def did_you_mean(key: str, known) -> str:
    """``'; did you mean <nearest known key>?'``, or '' when none is near."""
    near = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {near[0]}?" if near else ""


def known_settings() -> frozenset:
    """Every key that RecBole's, the plug-in's or the working directory's property files define, and
    :data:`READ_WITHOUT_DEFAULT`."""
    keys = set(READ_WITHOUT_DEFAULT)
    paths = list(Path(recbole.__file__).parent.joinpath("properties").rglob("*.yaml"))
    for folder in (PROPERTIES_DIR, user_properties_dir()):
        paths += [path for pattern in SETTING_FILES for path in folder.glob(pattern)]
    for path in paths:
        stat = path.stat()
        keys |= _yaml_keys(str(path), stat.st_size, stat.st_mtime_ns)
    return frozenset(keys)


def model_yaml_names(model: str, model_class: type) -> list[str]:
    """Names whose ``properties/model/<name>.yaml`` a model reads: each class of its hierarchy, base
    class first, and ``model`` last (later files win)."""
    return [n for n in (klass.__name__ for klass in reversed(model_class.__mro__)) if n != model] + [model]


def model_yaml_files(model: str, model_class: type) -> list:
    """The existing model YAML files of ``model_yaml_names``, in reading order."""
    return [p for p in (properties_file(f"model/{n}.yaml") for n in model_yaml_names(model, model_class)) if p.is_file()]


def _type_problem(default, value) -> str | None:
    """Why ``value`` cannot stand where RecBole or we default to ``default``; None when it fits.
    Only scalar defaults are checked (None, lists and dicts accept what their users parse)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be True or False"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    return None


# setting -> (the recipe's cdsr_selection field it replaces, its least valid value, what it counts)
SELECTION_OVERRIDES = {
    "selection_patience": ("patience", 1, "validations without improvement before stopping"),
    "selection_warmup": ("warmup_epochs", 0, "epochs trained before the first validation"),
}


class Config(RecBoleConfig):
    """RecBole Config that knows the plug-in's models, datasets and defaults."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None,
                 argv: list[str] | None = None):
        self._file_of_key: dict[str, str] = {}
        self._argv = argv
        try:
            super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        except (CDSRError, FileNotFoundError):
            raise
        except KeyError as error:  # RecBole's and ours: a missing model or dataset name
            raise ConfigError(f"configuration: {error.args[0] if error.args else error}") from error
        except (ValueError, TypeError, NotImplementedError, SyntaxError) as error:  # RecBole's checks of values
            raise ConfigError(f"configuration: {one_line(error)}") from error

    # ---- YAML files: every error names its file ---------------------------------------------
    def _read_yaml(self, file) -> dict:
        return read_yaml(file, loader=self.yaml_loader)

    def _load_config_files(self, file_list):
        merged: dict = {}
        for file in file_list or []:
            loaded = self._read_yaml(file)
            merged.update(loaded)
            self._file_of_key.update({key: str(file) for key in loaded})
        return merged

    def _update_internal_config_dict(self, file):
        loaded = self._read_yaml(file)
        self.internal_config_dict.update(loaded)
        return loaded

    def _load_cmd_line(self):
        """``--key=value`` options from ``argv`` when the command line gave them, else RecBole's reading of
        ``sys.argv`` (a script that calls run_recbole_ifcdsr directly, as RecBole's run_recbole does)."""
        if self._argv is None:
            return super()._load_cmd_line()
        values: dict = {}
        for arg in self._argv:
            key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
            if not key or not sep:
                raise ConfigError(f"'{arg}': a setting is --key=value")
            if values.get(key, value) != value:
                raise ConfigError(f"--{key} is given twice with different values ({values[key]!r}, {value!r})")
            values[key] = value
        return self._convert_config_dict(values)

    # ---- model and dataset ------------------------------------------------------------------
    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("model must be given: argument, config file, config dict or --model=...")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("dataset must be given: argument, config file, config dict or --dataset=...")
        if dataset not in known_datasets() and "cdsr_recipe" not in self.external_config_dict:
            raise UnknownNameError(
                f"Unknown dataset '{dataset}'. Valid datasets: {', '.join(known_datasets())} "
                f"(or give a properties file that sets cdsr_recipe for your own)"
            )
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        self.internal_config_dict["data_path"] = str(default_data_path())
        for name, path in default_properties(model, dataset, model_yaml_names(model, model_class)).items():
            loaded = self._update_internal_config_dict(str(path)) or {}
            if name.startswith("dataset/"):
                self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    # ---- values -----------------------------------------------------------------------------
    def _source_of(self, key: str) -> str:
        """Where the user's value of ``key`` came from (command line wins, as in the merge)."""
        if key in self.cmd_config_dict:
            return f"--{key}={self.cmd_config_dict[key]}"
        if key in self.variable_config_dict:
            return f"config_dict {key}={self.variable_config_dict[key]!r}"
        if key in self.file_config_dict:
            return f"{self._file_of_key.get(key, 'config file')}: {key}: {self.file_config_dict[key]!r}"
        return f"{key}: {self.final_config_dict.get(key)!r} (property files)"

    def _check_value_types(self) -> None:
        """A user value must have the type of the key's default (``--seed=abc`` stays a string in
        RecBole's parser and fails deep inside numpy otherwise)."""
        for key, value in self.external_config_dict.items():
            default = self.internal_config_dict.get(key)
            problem = None if default is None else _type_problem(default, value)
            if problem:
                raise ConfigError(f"{self._source_of(key)}: {key} {problem} (default {default!r})")

    def _check_unknown_keys(self) -> None:
        """A setting no property file defines and no code reads is refused where the user named it (the command
        line of our commands, a config dict) and warned about in a config file (which may hold a model's own
        settings, which the command line may then override) or in a ``sys.argv`` that RecBole reads for a
        script of its own."""
        known = known_settings()
        for key in self.external_config_dict:
            if key in known or key in self.internal_config_dict:
                continue
            hint = f"unknown setting '{key}' (no property file of RecBole or the plug-in defines it)" + \
                did_you_mean(key, known)
            if key in self.file_config_dict:  # the file's own setting, which the layers above may set again
                logger.warning(f"{self._file_of_key.get(key, 'config file')}: {key}: {hint}")
                continue
            if key in self.variable_config_dict or (key in self.cmd_config_dict and self._argv is not None):
                raise ConfigError(f"{self._source_of(key)}: {hint}")
            logger.warning(f"{self._source_of(key)}: {hint}")

    def _merge_recipe_dicts(self) -> None:
        """A dict setting of the recipe given in part (``--cdsr_selection={'patience':5}``) keeps the recipe's
        other fields: RecBole's merge replaced the whole dict, and the missing fields fell to the code's
        defaults (joint MRR instead of LLMCDSR's per-domain HR@10). Fields are checked by name."""
        for key, fields in RECIPE_DICTS.items():
            layers = {"the dataset's recipe": self.internal_config_dict.get(key),
                      self._file_of_key.get(key, "config file"): self.file_config_dict.get(key),
                      f"config_dict {key}": self.variable_config_dict.get(key),
                      f"--{key}": self.cmd_config_dict.get(key)}
            if not any(key in layer for layer in (self.file_config_dict, self.variable_config_dict,
                                                  self.cmd_config_dict)):
                continue
            merged: dict = {}
            for where, value in layers.items():
                if value is None:  # ~ (None on the command line) keeps what the layers below give
                    continue
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {key} {value!r} must be a mapping of {', '.join(fields)}")
                unknown = [field for field in value if field not in fields]
                if unknown:
                    raise ConfigError(f"{where}: {key}: unknown field {', '.join(map(repr, unknown))}; "
                                      f"fields: {', '.join(fields)}")
                merged.update(value)
            self.final_config_dict[key] = merged

    def _check_run_settings(self) -> None:
        """Budgets, the validation step and the model selection, before any data loads."""
        for key in ("max_train_cpu_minutes", "max_train_minutes"):
            value = self.final_config_dict.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"{self._source_of(key)}: {key} must be a number of minutes >= 0 (0: one batch), "
                                  f"or ~ for none")
        step = self.final_config_dict.get("eval_step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ConfigError(f"{self._source_of('eval_step')}: eval_step must be an integer >= 1 (epochs between "
                              f"validations)")
        metrics = self.final_config_dict.get("cdsr_metrics")
        problem = selection_problem(self.final_config_dict.get("cdsr_selection") or {},
                                    list(metrics) if isinstance(metrics, (list, tuple)) else None)
        if problem:
            given = "cdsr_selection" in self.external_config_dict
            raise ConfigError(problem + (f" (from {self._source_of('cdsr_selection')})" if given
                                         else " (the dataset's recipe)"))
        warmup, epochs = (self.final_config_dict.get("cdsr_selection") or {}).get("warmup_epochs"), \
            self.final_config_dict.get("epochs")
        if isinstance(warmup, int) and isinstance(epochs, int) and 0 < epochs <= warmup:
            logger.warning(f"the selection's warm-up ({warmup} epochs) is not shorter than epochs ({epochs}): only the "
                           f"last epoch is validated, so it is the one selected")

    def _check_model_fits_recipe(self) -> None:
        """A model with user embeddings cannot score the held-out users of a user_split recipe."""
        model, recipe = self.final_config_dict.get("model"), self.final_config_dict.get("cdsr_recipe")
        if recipe == "user_split" and model in USER_EMBEDDING_MODELS:
            raise ConfigError(f"{model} learns an embedding per training user, but dataset {self.dataset}'s recipe "
                              f"(user_split) validates and tests users held out of training: it would score them "
                              f"with untrained random vectors. Use a model without user embeddings (e.g. SASRec, "
                              f"GRU4Rec) or a leave_one_out dataset")

    def _apply_selection_overrides(self) -> None:
        """``selection_patience`` and ``selection_warmup`` replace the recipe's ``cdsr_selection.patience``
        and ``warmup_epochs`` and keep the rest of it (mode, metric, comparison), so one setting changes
        every dataset's recipe the same way."""
        replaced = {}
        for key, (field, least, meaning) in SELECTION_OVERRIDES.items():
            value = self.final_config_dict.get(key)
            if value is None:
                continue
            if not is_count(value, least):
                raise ConfigError(f"{key} {value!r} invalid; valid: an integer >= {least} ({meaning}), or ~ to keep "
                                  f"the recipe's")
            replaced[field] = value
        if replaced:
            self.final_config_dict["cdsr_selection"] = {**(self.final_config_dict.get("cdsr_selection") or {}),
                                                        **replaced}

    def _set_default_parameters(self):
        self._check_value_types()
        self._check_unknown_keys()
        super()._set_default_parameters()
        self._merge_recipe_dicts()
        self._apply_selection_overrides()
        self._check_run_settings()
        self._check_model_fits_recipe()
        PlateauDecay.from_config(self.final_config_dict.get("lr_decay"))  # a malformed one fails before any data loads
        protocol = self.final_config_dict.get("protocol", "both")
        if protocol not in PROTOCOL_SETTINGS:
            raise ConfigError(f"Unknown protocol '{protocol}'. Valid protocols: {', '.join(PROTOCOL_SETTINGS)}")
        data_path = self.final_config_dict["data_path"]
        if not os.path.isdir(data_path) and self.dataset not in SHIPPED_DATASETS:  # those unpack on first use
            raise FileNotFoundError(
                f"Dataset folder {data_path} not found: run the converter "
                f"(python -m recbole_ifcdsr convert {self.dataset}) first"
            )

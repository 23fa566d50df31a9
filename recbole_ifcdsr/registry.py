"""Find models and trainers by name: the plug-in's own first, then RecBole's sequential models."""
from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from typing import Type

from recbole.model.abstract_recommender import AbstractRecommender, SequentialRecommender

from recbole_ifcdsr.errors import ConfigError

# name -> "module:Class" of the plug-in's own models (imported lazily).
_OUR_MODELS = {
    "Pop": "recbole_ifcdsr.model.pop:Pop",
    "IFCDSR": "recbole_ifcdsr.model.ifcdsr:IFCDSR",
    "LLMEMF": "recbole_ifcdsr.model.llmemf:LLMEMF",
}


class UnknownNameError(ConfigError):
    """A model or dataset name that is not known; the message lists the valid names."""


#: RecBole's sequential models that learn one embedding per training user (or read the user count): a user they
#: never trained on, as in a user-split recipe's evaluation or a live history, is scored with a random vector
#: (checked against RecBole's code by tests/test_serving.py)
USER_EMBEDDING_MODELS = ("Caser", "FOSSIL", "FPMC", "HGN", "HRM", "NPE", "SHAN", "SINE", "TransRec")


@lru_cache(maxsize=1)
def recbole_sequential_models() -> dict[str, type]:
    """RecBole's sequential models by class name (only these fit the CDSR protocols)."""
    package = importlib.import_module("recbole.model.sequential_recommender")
    return {
        name: obj
        for name, obj in vars(package).items()
        if inspect.isclass(obj) and issubclass(obj, SequentialRecommender) and obj is not SequentialRecommender
    }


def model_names() -> list[str]:
    """Every model name ``get_model`` accepts."""
    return sorted(set(_OUR_MODELS) | set(recbole_sequential_models()))


def get_model(name: str) -> Type[AbstractRecommender]:
    """Return the model class for ``name``: ours first, then RecBole's sequential models."""
    if name in _OUR_MODELS:
        module_name, class_name = _OUR_MODELS[name].split(":")
        return getattr(importlib.import_module(module_name), class_name)
    recbole_models = recbole_sequential_models()
    if name in recbole_models:
        return recbole_models[name]
    raise UnknownNameError(f"Unknown model '{name}'. Valid models: {', '.join(model_names())}")


def get_trainer(model_type=None, model_name: str | None = None):
    """Return the trainer class. Every model goes through :class:`CrossDomainTrainer` (RecBole's Trainer
    with the CDSR protocols and model selection), so baselines and our models share one code path."""
    from recbole_ifcdsr.trainer import CrossDomainTrainer

    return CrossDomainTrainer

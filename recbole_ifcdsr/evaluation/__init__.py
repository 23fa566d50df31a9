"""Evaluation: per-recipe negatives, ranks and metrics, both protocols, model selection."""
from recbole_ifcdsr.evaluation.protocol import ALL_PROTOCOLS, ProtocolEvaluator
from recbole_ifcdsr.evaluation.selection import ModelSelector

__all__ = ["ALL_PROTOCOLS", "ModelSelector", "ProtocolEvaluator"]

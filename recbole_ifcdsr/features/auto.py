"""Build a missing feature store on first use, when its encoder is available on this machine.

The run's YAML names features under ``item_features`` (feature name -> spec, as for the extraction
command). Before the model is built, each missing store is built if its encoder can be had without
a download (MiniLM ships as a package; CLIP needs a local checkpoint or cached weights); otherwise
the run goes on without it and the log says why and how to provide it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from recbole_ifcdsr.features.encoders import EncoderUnavailable
from recbole_ifcdsr.features.extract import ExtractionJob, extract
from recbole_ifcdsr.features.store import feature_path

logger = logging.getLogger(__name__)


def ensure_feature(config, dataset_name: str, feature: str) -> Path | None:
    """Path of the store ``<data_path>/<dataset>/<dataset>.<feature>.npz`` (``config["data_path"]`` is the
    dataset's folder once the config is loaded), built now if missing and possible; else None."""
    path = feature_path(config["data_path"], dataset_name, feature)
    if path.is_file():
        return path
    spec = (config["item_features"] or {}).get(feature)
    if spec is None:
        return None
    logger.info(f"feature store {path} missing: building it now (first use) from item_features.{feature}")
    job = ExtractionJob(str(config["data_path"]), dataset_name, feature, dict(spec))
    try:
        extract(job, show_progress=bool(config["show_progress"]), allow_download=False)
    except (EncoderUnavailable, FileNotFoundError) as e:  # what this machine lacks; a bad spec or bad data
        # (ConfigError, DataError) stops the run instead of turning the model's branch off without a word
        logger.warning(f"feature '{feature}' not built: {e}")
        return None
    return path

"""Resumable, batched extraction of one item feature into the feature store.

The item list (the dataset's ``.item`` file order) is cut into fixed chunks (chunks.py: the one place
that encodes a chunk and writes its part, for the local engine here and the Ray engine alike). Each
finished chunk is written atomically to ``<store>.partial/part-<n>.npz``; a re-run with the same job
skips finished chunks, so killing the process at any moment loses at most the chunks in flight and
never leaves a corrupt store, and a resumed run gives byte-identical vectors. At the end the parts are
assembled into the store (atomic), missing and corrupt items are listed in
``<dataset>.<feature>.report.tsv``, and the partial folder is removed.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recbole_ifcdsr import io
from recbole_ifcdsr.errors import ConfigError
from recbole_ifcdsr.features.chunks import OK, STATUS_NAMES, chunk_bounds, finished_parts, part_path, process_chunk
from recbole_ifcdsr.features.encoders import build_encoder
from recbole_ifcdsr.features.inputs import inputs_record, recorded_path, stale_reason
from recbole_ifcdsr.features.sources import TextSource, build_source, read_item_file
from recbole_ifcdsr.features.store import FeatureStoreError, feature_path, load_features, save_features

RUN_KEYS = ("device", "workers", "engine", "ray_address", "ray_actors")  # how to run, not what to compute

logger = logging.getLogger(__name__)


@dataclass
class ExtractionJob:
    """What to compute: one feature of one dataset, per ``spec`` (modality, encoder, inputs, sizes)."""

    dataset_dir: str  # <data_path>/<dataset>
    dataset: str
    feature: str
    spec: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return feature_path(self.dataset_dir, self.dataset, self.feature)

    @property
    def partial_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    @property
    def report_path(self) -> Path:
        return self.path.with_name(f"{self.dataset}.{self.feature}.report.tsv")

    @property
    def batch_size(self) -> int:
        return int(self.spec.get("batch_size", 64))

    @property
    def chunk_size(self) -> int:
        return int(self.spec.get("chunk_size", 1024))

    @property
    def workers(self) -> int:
        return int(self.spec.get("workers") or min(8, os.cpu_count() or 1))


@dataclass
class ExtractionReport:
    path: Path
    items: int
    encoded: int
    missing: int
    corrupt: int
    computed: int  # items processed by this run (the rest came from finished chunks of an earlier run)
    seconds: float
    problems: list  # (token, status, reason) for masked items

    def summary(self) -> str:
        rate = self.computed / self.seconds if self.seconds > 0 else float("nan")
        return (f"{self.path.name}: {self.items} items, encoded {self.encoded}, missing {self.missing}, "
                f"corrupt {self.corrupt}; this run processed {self.computed} items in {self.seconds:.1f} s "
                f"({rate:.1f} items/s)")


def _inputs(job: ExtractionJob, tokens: list, source) -> dict:
    """The store's ``inputs`` meta (inputs.py): its items, and for a text store its text file and every item's
    text."""
    return inputs_record(tokens, source.texts if isinstance(source, TextSource) else None,
                         recorded_path(job.spec.get("text_file"), job.dataset_dir))


def _signature(job: ExtractionJob, tokens: list, encoder_meta: dict, inputs: dict) -> dict:
    """What a partial folder's chunks were computed from: a resumed run whose texts changed starts over."""
    return {
        "dataset": job.dataset, "feature": job.feature,
        "spec": {k: v for k, v in sorted(job.spec.items()) if k not in RUN_KEYS},
        "encoder": encoder_meta, "n_items": len(tokens),
        "tokens_sha256": hashlib.sha256("\n".join(tokens).encode()).hexdigest(),
        "inputs": inputs,
    }


def _without_inputs(signature: dict) -> dict:
    return {key: value for key, value in signature.items() if key != "inputs"}


def _open_partial(job: ExtractionJob, signature: dict) -> dict:
    """Create or reuse the partial folder; a folder left by a different job is discarded (with a warning)."""
    manifest = job.partial_dir / "manifest.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("signature") in (signature, _without_inputs(signature)):  # the latter: a folder left by a
            return old  # version that did not record inputs (its chunks are as valid: the job is the same)
        logger.warning(f"{job.partial_dir}: left by a different extraction job; starting over")
        shutil.rmtree(job.partial_dir)
    job.partial_dir.mkdir(parents=True, exist_ok=True)
    state = {"signature": signature, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    io.write_json(manifest, state, indent=1)
    return state


def run_chunks_locally(job, encoder, source, tokens, pending, progress) -> None:
    for index in pending:
        progress.update(process_chunk(job, encoder, source, tokens, index))


def extract(job: ExtractionJob, engine: str = "local", overwrite: bool = False, show_progress: bool = True,
            allow_download: bool = True) -> ExtractionReport:
    """Build (or finish building) the store ``job.path``; see the module docstring."""
    if job.path.is_file() and not overwrite:
        tokens, _, mask, meta = load_features(job.path)
        reason = stale_reason(meta, job.dataset_dir, job.dataset, job.spec)
        if reason:
            raise FeatureStoreError(f"{job.path}: {reason}; --overwrite rebuilds it")
        logger.info(f"{job.path} exists ({int(mask.sum())} of {len(tokens)} items encoded); --overwrite rebuilds it")
        counts = meta.get("counts", {})
        return ExtractionReport(job.path, len(tokens), int(mask.sum()), counts.get("missing", 0),
                                counts.get("corrupt", 0), 0, 0.0, [])
    tokens, titles = read_item_file(job.dataset_dir, job.dataset)
    encoder = build_encoder(job.spec, allow_download=allow_download)
    source = build_source(job.spec, titles)
    inputs = _inputs(job, tokens, source)
    state = _open_partial(job, _signature(job, tokens, encoder.meta(), inputs))
    chunks = chunk_bounds(len(tokens), job.chunk_size)
    done = finished_parts(job.partial_dir, len(chunks))
    pending = [i for i in range(len(chunks)) if i not in done]
    done_items = sum(chunks[i][1] - chunks[i][0] for i in done)
    if done:
        logger.info(f"resuming {job.path.name}: {len(done)} of {len(chunks)} chunks ({done_items} items) already done")
    logger.info(f"extracting {job.feature} for {len(tokens)} items of {job.dataset}: {encoder.meta()['encoder']} "
                f"on {encoder.device}, from {source.origin}, engine {engine}")
    started = time.perf_counter()
    with tqdm(total=len(tokens), initial=done_items, unit="item", desc=job.feature, disable=not show_progress,
              dynamic_ncols=True) as progress:
        if engine == "ray":
            from recbole_ifcdsr.features.ray_engine import run_chunks_on_ray

            run_chunks_on_ray(job, pending, progress)
        elif engine == "local":
            run_chunks_locally(job, encoder, source, tokens, pending, progress)
        else:
            raise ConfigError(f"Unknown engine '{engine}'. Valid engines: local, ray")
    seconds = time.perf_counter() - started
    return _assemble(job, tokens, chunks, encoder, source, inputs, state, seconds, len(tokens) - done_items)


def _assemble(job, tokens, chunks, encoder, source, inputs, state, seconds, computed) -> ExtractionReport:
    vectors, status, reasons = [], [], []
    for i in range(len(chunks)):
        with np.load(part_path(job.partial_dir, i)) as f:
            vectors.append(f["vectors"])
            status.append(f["status"])
            reasons.extend(f["reasons"].tolist())
    vectors, status = np.concatenate(vectors), np.concatenate(status)
    counts = {name: int((status == code).sum()) for code, name in STATUS_NAMES.items()}
    meta = {**encoder.meta(), "source": source.origin, "dataset": job.dataset, "feature": job.feature,
            "modality": encoder.modality, "date": state["date"], "inputs": inputs,
            "counts": {"encoded": counts["ok"], "missing": counts["missing"], "corrupt": counts["corrupt"]}}
    problems = [(tokens[i], STATUS_NAMES[int(status[i])], reasons[i]) for i in np.flatnonzero(status != OK)]
    with io.atomic_file(job.report_path, "w") as f:
        f.write("item_id\tstatus\treason\n")
        f.writelines(f"{t}\t{s}\t{' '.join(r.split())}\n" for t, s, r in problems)
    save_features(job.path, tokens, vectors, status == OK, meta)
    shutil.rmtree(job.partial_dir)
    report = ExtractionReport(job.path, len(tokens), counts["ok"], counts["missing"], counts["corrupt"],
                              computed, seconds, problems)
    logger.info(report.summary() + (f"; masked items listed in {job.report_path}" if problems else ""))
    return report

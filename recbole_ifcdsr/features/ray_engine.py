"""``--engine=ray``: the same chunked extraction spread over a Ray cluster.

Each pending chunk is one task for a pool of Ray actors (one encoder each, one GPU each when the
cluster has GPUs); an actor encodes a chunk with the very function the local engine uses and
writes the part file itself. So the result is byte-identical to a local run, resuming works the
same way, and the store folder must be on a file system every node sees (NFS, a mounted bucket).

Ray core actors, not Ray Data: RecBole 1.2.1 caps ray at 2.6.3, whose Ray Data fails to import
with pandas >= 2.2 (``ExtensionArrayFormatter``) and setuptools >= 70 (``pkg_resources._vendor``);
its core API works with both. Needs the ``ray`` extra: ``pip install -e ".[ray]"``.
"""
from __future__ import annotations

from recbole_ifcdsr.errors import ConfigError


class ChunkWorker:
    """Loads the encoder once, then encodes and writes one chunk per call."""

    def __init__(self, job):
        from recbole_ifcdsr.features.encoders import build_encoder
        from recbole_ifcdsr.features.sources import build_source, read_item_file

        self.job = job
        self.tokens, titles = read_item_file(job.dataset_dir, job.dataset)
        self.encoder = build_encoder(job.spec)
        self.source = build_source(job.spec, titles)

    def run(self, index: int) -> int:
        from recbole_ifcdsr.features.extract import encode_chunk, write_part

        start = index * self.job.chunk_size
        stop = min(start + self.job.chunk_size, len(self.tokens))
        vectors, status, reasons = encode_chunk(self.encoder, self.source, self.tokens[start:stop],
                                                self.job.batch_size, self.job.workers)
        write_part(self.job.partial_dir, index, vectors, status, reasons)
        return stop - start


def run_chunks_on_ray(job, pending: list, progress) -> None:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as e:
        raise ConfigError('--engine=ray needs the ray extra: pip install -e ".[ray]"') from e
    if not pending:
        return
    if not ray.is_initialized():
        ray.init(address=job.spec.get("ray_address"), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = int(job.spec.get("ray_actors") or max(1, gpus))
    remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(ChunkWorker)
    pool = ActorPool([remote.remote(job) for _ in range(min(actors, len(pending)))])
    for items in pool.map_unordered(lambda actor, index: actor.run.remote(index), pending):
        progress.update(items)

"""--engine=ray on a local Ray instance (2 actors): the same chunks, the same bytes as the local engine.

Marked slow: starting Ray on a 2-core machine takes tens of seconds (run with -m slow)."""
from __future__ import annotations

import pytest

from recbole_ifcdsr.features.extract import ExtractionJob, extract
from recbole_ifcdsr.features.store import load_features

from test_features import ABO, ASINS, clip_spec, make_dataset

pytestmark = pytest.mark.integration

pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_engine_matches_local_engine(tmp_path, tiny_clip):
    import ray

    tokens = ASINS + ["NOFILE"]
    for name in ("on_ray", "local"):
        make_dataset(tmp_path, name, tokens)
    spec = clip_spec(tiny_clip, image_dir=str(ABO), chunk_size=1, ray_actors=2)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ABO.parents[2])}})
        on_ray = extract(ExtractionJob(str(tmp_path / "on_ray"), "on_ray", "image", spec), engine="ray",
                         show_progress=False)
    finally:
        ray.shutdown()
    local = extract(ExtractionJob(str(tmp_path / "local"), "local", "image", spec), show_progress=False)
    assert (on_ray.encoded, on_ray.missing) == (local.encoded, local.missing) == (3, 1)
    a, b = load_features(on_ray.path), load_features(local.path)
    for x, y in zip(a[:3], b[:3]):
        assert x.tobytes() == y.tobytes()

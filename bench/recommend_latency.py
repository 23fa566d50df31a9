"""Serving latency: ``Recommender.recommend`` (one history) and ``recommend_batch`` (many, one forward
pass per batch) from a model file, against a naive loop that builds a RecBole ``Interaction`` from the
dataset and calls ``full_sort_predict`` once per request, on fk_abxi's whole catalog, same process.

    .venv/bin/python bench/recommend_latency.py [--requests 300] [--batch 256] [--threads 1] [--models IFCDSR,LLMEMF]

Latency does not depend on what a model learned, so each model keeps its seeded initial weights (no
training) and is saved as a model file the way ``run`` saves one. No text store of fk_abxi is shipped
and building MiniLM's (384-d, every titled item) costs CPU-minutes, so LLMEMF gets a store of the same
shape filled with seeded random vectors (cost depends on the shape only). The requests are the first
``--requests`` test histories of fk_abxi (real item tokens, both domains), each asking for the top 10
of its target's domain with the history excluded; both paths do the same work per request (the naive
loop also ranks within the domain and excludes the history). Results: bench/out/recommend_latency.json
and a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out" / "recommend_latency.json"


def percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="IFCDSR,LLMEMF")
    args = parser.parse_args()

    import numpy as np
    import torch
    from recbole.data.interaction import Interaction
    from recbole.utils import init_seed

    import recbole_ifcdsr  # noqa: F401
    from recbole_ifcdsr.config import Config
    from recbole_ifcdsr.data.dataset import DOMAINS, CrossDomainSequentialDataset
    from recbole_ifcdsr.features.store import feature_path, save_features
    from recbole_ifcdsr.registry import get_model
    from recbole_ifcdsr.serving.model_file import build_payload, save_model_file
    from recbole_ifcdsr.serving.recommender import Recommender

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="recommend_latency_"))
    rows = []
    try:
        Config("SASRec", "fk_abxi", config_dict={"state": "WARNING"})  # unpacks the shipped dataset if needed
        data_dir = work / "data" / "fk_abxi"
        data_dir.mkdir(parents=True)
        from recbole_ifcdsr.paths import default_data_path
        for name in ("fk_abxi.inter", "fk_abxi.item"):
            shutil.copy(default_data_path() / "fk_abxi" / name, data_dir / name)
        items = [line.split("\t") for line in (data_dir / "fk_abxi.item").read_text().splitlines()[1:]]
        titled = np.array([len(r) > 3 and r[3].strip() != "" for r in items])
        vectors = np.random.default_rng(0).normal(size=(len(items), 384)).astype(np.float32)
        save_features(feature_path(data_dir, "fk_abxi", "bench_text"), [r[0] for r in items], vectors, titled,
                      {"encoder": "seeded random vectors (shape of MiniLM's), latency bench only"})
        for model_name in args.models.split(","):
            settings = {"data_path": str(work / "data"), "state": "WARNING", "show_progress": False,
                        "text_feature": "bench_text", "item_features": {}}
            config = Config(model_name, "fk_abxi", config_dict=settings)
            init_seed(config["seed"], True)
            data = CrossDomainSequentialDataset(config)
            net = get_model(model_name)(config, data).eval()
            state = net.state_dict()
            path = save_model_file(work / f"{model_name}-model.pth",
                                   build_payload(config, data, net, {d: state for d in DOMAINS}))
            recommender = Recommender.load(path)

            cases = data.eval_cases("test")
            n = min(args.requests, len(cases))
            token = data.field2id_token[data.iid_field]
            histories = [[str(token[i]) for i in cases.histories[c]] for c in range(n)]
            domains = [DOMAINS[int(cases.target_domains[c])] for c in range(n)]
            max_len = config["MAX_ITEM_LIST_LENGTH"]
            seq_field, len_field = net.ITEM_SEQ, net.ITEM_SEQ_LEN
            domain_items = [torch.as_tensor(items_) for items_ in data.domain_items]

            def naive(c: int) -> list:
                """Per request: an Interaction from the dataset's ids, full_sort_predict, top 10 of the domain."""
                hist = np.asarray(cases.histories[c][-max_len:])
                seq = torch.zeros((1, max_len), dtype=torch.long)
                seq[0, : len(hist)] = torch.as_tensor(hist)
                batch = Interaction({seq_field: seq, len_field: torch.tensor([len(hist)])})
                with torch.no_grad():
                    scores = net.full_sort_predict(batch)[0]
                candidates = domain_items[int(cases.target_domains[c])]
                in_domain = scores[candidates].clone()
                in_domain[torch.isin(candidates, torch.as_tensor(cases.histories[c]))] = -torch.inf
                return [str(token[i]) for i in candidates[in_domain.topk(10).indices].tolist()]

            for c in range(3):  # warm-up both paths
                naive(c), recommender.recommend(histories[c], domains[c])
            naive_ms, single_ms = [], []
            for c in range(n):  # interleaved, so load on the shared machine hits both alike
                start = time.perf_counter()
                expected = naive(c)
                naive_ms.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                got = recommender.recommend(histories[c], domains[c])
                single_ms.append((time.perf_counter() - start) * 1000)
                if [r["item"] for r in got.items] != expected:
                    raise SystemExit(f"{model_name}: request {c} differs between the two paths")
            by_domain = {d: [c for c in range(n) if domains[c] == d] for d in DOMAINS}
            start = time.perf_counter()
            for d, members in by_domain.items():
                for s in range(0, len(members), args.batch):
                    recommender.recommend_batch([histories[c] for c in members[s:s + args.batch]], d)
            batch_seconds = time.perf_counter() - start
            row = {"model": model_name, "requests": n, "catalog_items": int(data.item_num - 1),
                   "naive_p50_ms": percentile(naive_ms, 50), "naive_p99_ms": percentile(naive_ms, 99),
                   "recommend_p50_ms": percentile(single_ms, 50), "recommend_p99_ms": percentile(single_ms, 99),
                   "naive_per_s": n / (sum(naive_ms) / 1000), "batch_per_s": n / batch_seconds, "batch": args.batch}
            row["batch_vs_naive"] = row["batch_per_s"] / row["naive_per_s"]
            row["p50_ratio_recommend_over_naive"] = row["recommend_p50_ms"] / row["naive_p50_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps({"threads": args.threads, "machine": f"{os.cpu_count()} cpu, torch {torch.__version__}",
                               "rows": rows}, indent=2))
    os.replace(tmp, OUT)
    print("\n| model | catalog | requests | naive p50 / p99 ms | recommend p50 / p99 ms | naive req/s | "
          f"batch ({args.batch}) req/s | batch / naive |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['catalog_items']:,} | {r['requests']} | {r['naive_p50_ms']:.1f} / {r['naive_p99_ms']:.1f} | "
              f"{r['recommend_p50_ms']:.1f} / {r['recommend_p99_ms']:.1f} | {r['naive_per_s']:.1f} | "
              f"{r['batch_per_s']:.1f} | {r['batch_vs_naive']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

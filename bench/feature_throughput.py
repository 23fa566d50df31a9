"""Item-feature extraction throughput: the batched, resumable extractor against a plain
one-item-at-a-time open_clip loop, same model and inputs, same run; plus the store's load time.

    .venv/bin/python bench/feature_throughput.py [--images 96] [--texts 1024] [--clip_model ViT-B-32]

Images: the 12 real ABO JPEGs (../shared/data/abo-product-samples) cycled to --images items.
Texts: the first --texts titles of fk_llmcdsr. CLIP weights are random (``pretrained=random``):
throughput does not depend on the weights, and no real weights exist here. Writes
bench/out/feature_throughput.json; exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recbole_ifcdsr.features.encoders import SentenceTextEncoder, _load_clip  # noqa: E402
from recbole_ifcdsr.features.extract import ExtractionJob, extract  # noqa: E402
from recbole_ifcdsr.features.sources import read_item_file  # noqa: E402
from recbole_ifcdsr.features.store import import_float_seq, export_float_seq, load_aligned, save_features  # noqa: E402
from recbole_ifcdsr.paths import REPO_ROOT, SHARED_DATA_DIR, default_data_path  # noqa: E402

OUT = REPO_ROOT / "bench" / "out"


def make_dataset(root: Path, name: str, tokens: list, titles: dict) -> None:
    (root / name).mkdir(parents=True)
    rows = "".join(f"{t}\tX\tA\t{titles.get(t, '')}\n" for t in tokens)
    (root / name / f"{name}.item").write_text("item_id:token\tdomain:token\tdomain_name:token\ttitle:token_seq\n" + rows)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_images(root: Path, n: int, clip_model: str, batch: int) -> dict:
    from PIL import Image

    jpegs = sorted((SHARED_DATA_DIR / "abo-product-samples").glob("*/*.jpg"))
    images = root / "images"
    images.mkdir()
    tokens = [f"I{i:06d}" for i in range(n)]
    for i, t in enumerate(tokens):
        (images / f"{t}.jpg").symlink_to(jpegs[i % len(jpegs)])
    make_dataset(root, "img", tokens, {})
    spec = {"modality": "image", "encoder": "clip", "clip_model": clip_model, "pretrained": "random",
            "batch_size": batch, "image_dir": str(images), "device": "cpu"}
    model, preprocess, _ = _load_clip(clip_model, "random", "cpu", None)
    extract(ExtractionJob(str(root / "img"), "img", "warm", spec), show_progress=False)  # warm-up (first-call allocations)
    report, ours = timed(lambda: extract(ExtractionJob(str(root / "img"), "img", "image", spec), show_progress=False))

    def loop():
        rows = []
        with torch.no_grad():
            for t in tokens:
                x = preprocess(Image.open(images / f"{t}.jpg").convert("RGB"))[None]
                rows.append(model.encode_image(x, normalize=True)[0].numpy())
        return np.stack(rows)

    baseline_vectors, base = timed(loop)
    from recbole_ifcdsr.features.store import load_features

    ours_vectors = load_features(report.path)[1]
    return {"items": n, "clip_model": clip_model, "batch_size": batch, "ours_s": round(ours, 3),
            "baseline_s": round(base, 3), "ours_per_s": round(n / ours, 2), "baseline_per_s": round(n / base, 2),
            "ratio": round(base / ours, 2), "encoded": report.encoded,
            "max_abs_diff": float(np.abs(ours_vectors - baseline_vectors).max())}


def bench_texts(root: Path, n: int, clip_model: str, batch: int) -> dict:
    tokens, titles = read_item_file(default_data_path() / "fk_llmcdsr", "fk_llmcdsr")
    tokens = [t for t in tokens if t in titles][:n]
    make_dataset(root, "txt", tokens, titles)
    texts = [titles[t] for t in tokens]
    results = {}
    model, _, tokenizer = _load_clip(clip_model, "random", "cpu", None)
    clip_spec = {"modality": "text", "encoder": "clip", "clip_model": clip_model, "pretrained": "random",
                 "batch_size": batch, "device": "cpu"}
    mini_spec = {"modality": "text", "encoder": "minilm", "batch_size": batch, "device": "cpu"}
    minilm = SentenceTextEncoder(device="cpu").model

    def clip_loop():
        with torch.no_grad():
            return np.stack([model.encode_text(tokenizer([t]), normalize=True)[0].numpy() for t in texts])

    def minilm_loop():
        return np.stack([minilm.encode([t], normalize_embeddings=True, show_progress_bar=False)[0] for t in texts])

    from recbole_ifcdsr.features.store import load_features

    for name, spec, loop in (("clip_text", clip_spec, clip_loop), ("minilm", mini_spec, minilm_loop)):
        extract(ExtractionJob(str(root / "txt"), "txt", f"warm_{name}", {**spec, "chunk_size": batch}), show_progress=False)
        report, ours = timed(lambda: extract(ExtractionJob(str(root / "txt"), "txt", name, spec), show_progress=False))
        base_vectors, base = timed(loop)
        ours_vectors = load_features(report.path)[1]
        results[name] = {"items": len(texts), "batch_size": batch, "ours_s": round(ours, 3),
                         "baseline_s": round(base, 3), "ours_per_s": round(len(texts) / ours, 1),
                         "baseline_per_s": round(len(texts) / base, 1), "ratio": round(base / ours, 2),
                         "max_abs_diff": float(np.abs(ours_vectors - base_vectors).max())}
    return results


def bench_store(root: Path, n: int, dim: int, n_text: int) -> dict:
    rng = np.random.default_rng(0)
    tokens = [f"T{i:07d}" for i in range(n)]
    path = root / "big.image.npz"
    save_features(path, tokens, rng.normal(size=(n, dim)).astype(np.float32), np.ones(n, bool), {"encoder": "bench"})
    token2id = {"[PAD]": 0, **{t: i + 1 for i, t in enumerate(tokens)}}
    (_, mask, _), load_s = timed(lambda: load_aligned(path, token2id, n + 1, dim=dim))
    small = root / "small.image.npz"
    save_features(small, tokens[:n_text], rng.normal(size=(n_text, dim)).astype(np.float32), np.ones(n_text, bool), {})
    export_float_seq(small, root / "small.item", "img")
    _, text_s = timed(lambda: import_float_seq(root / "small.item", "img"))
    return {"items": n, "dim": dim, "npz_bytes": path.stat().st_size, "load_aligned_s": round(load_s, 3),
            "float_seq_items": n_text, "float_seq_import_s": round(text_s, 3),
            "npz_items_per_s": round(n / load_s), "float_seq_items_per_s": round(n_text / text_s),
            "ratio_per_item": round((n / load_s) / (n_text / text_s), 1), "goal_s": 2.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--clip_model", default="ViT-B-32")
    parser.add_argument("--image_batch", type=int, default=32)
    parser.add_argument("--text_batch", type=int, default=128)
    parser.add_argument("--store_items", type=int, default=100_000)
    parser.add_argument("--float_seq_items", type=int, default=5_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = {"machine": f"{os.cpu_count()} cpu, torch {torch.__version__}, {torch.get_num_threads()} threads, cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "s").mkdir()
        result["store"] = bench_store(root / "s", args.store_items, 512, args.float_seq_items)
        print(json.dumps(result["store"]), flush=True)
        result["images"] = bench_images(root, args.images, args.clip_model, args.image_batch)
        print(json.dumps(result["images"]), flush=True)
        result["texts"] = bench_texts(root, args.texts, args.clip_model, args.text_batch)
        print(json.dumps(result["texts"]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "feature_throughput.json").write_text(json.dumps(result, indent=1))
    checks = [result["store"]["load_aligned_s"] < 2.0, result["images"]["encoded"] == args.images,
              result["images"]["max_abs_diff"] < 1e-3] + [r["max_abs_diff"] < 1e-3 for r in result["texts"].values()]
    print(json.dumps(result, indent=1))
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Throughput and peak memory of the raw-Amazon converter at two input sizes.

Generates 2014-schema review files (``reviews_<Cat>.json``, one JSON object per line with a short
review text) for two categories in a temporary folder, with a fixed population of users and items,
so that a bigger input means more lines, not more distinct ids. Each measurement runs in a fresh
subprocess that reports its own peak RSS (``ru_maxrss``). Baselines in the same run and process
setup: the parse floor (reading and ``json.loads`` of every line, nothing else) and, for memory,
``pandas.read_json(lines=True)`` on the same files (the in-memory way); and the peak RSS of
importing the package alone (it imports torch and RecBole), which the converter cannot go below.

    .venv/bin/python bench/amazon_convert.py --lines 1000000,3000000

Results (JSON) go to bench/out/amazon_convert.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = "good great fine tasty handy sturdy cheap value fresh works nice love would buy again".split()

CONVERT = """
import resource, sys, time
from recbole_ifcdsr.data.amazon import main
t = time.perf_counter()
rc = main(sys.argv[1:])
print("RESULT", time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc)
"""
PARSE_FLOOR = """
import json, resource, sys, time
t = time.perf_counter(); n = 0
for path in sys.argv[1:]:
    with open(path, "rb") as fh:
        for line in fh:
            json.loads(line); n += 1
print("RESULT", time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n)
"""
IMPORT_FLOOR = """
import resource, time
t = time.perf_counter()
import recbole_ifcdsr.data.amazon  # the package imports torch and RecBole (compat patches)
print("RESULT", time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0)
"""
PANDAS = """
import resource, sys, time
import pandas as pd
t = time.perf_counter()
frames = [pd.read_json(p, lines=True)[["reviewerID", "asin", "unixReviewTime"]] for p in sys.argv[1:]]
print("RESULT", time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sum(map(len, frames)))
"""


def generate(folder: Path, n_lines: int, n_users: int, n_items: int, seed: int) -> list:
    """Two categories, half the lines each; users shared, items per category."""
    rng = random.Random(seed)
    paths = []
    for cat, prefix in (("Grocery_and_Gourmet_Food", "G"), ("Home_and_Kitchen", "H")):
        path = folder / f"reviews_{cat}.json"
        with open(path, "w", encoding="utf-8") as fh:
            for _ in range(n_lines // 2):
                ts = 1_262_304_000 + rng.randrange(5 * 365) * 86_400
                fh.write(json.dumps({
                    "reviewerID": f"A{rng.randrange(n_users):013d}",
                    "asin": f"{prefix}{rng.randrange(n_items):09d}",
                    "reviewerName": "Some Reviewer", "helpful": [0, 0],
                    "reviewText": " ".join(rng.choice(WORDS) for _ in range(30)),
                    "overall": float(rng.randint(1, 5)), "summary": "Five stars",
                    "unixReviewTime": ts, "reviewTime": "01 1, 2012"}) + "\n")
        paths.append(path)
    return paths


def run(code: str, args: list) -> tuple:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")]
    if proc.returncode != 0 or not line or (code is CONVERT and line[0].split()[-1] != "0"):
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-2000:]}")
    _, seconds, rss_kib, extra = line[0].split()
    return float(seconds), int(rss_kib) / 1024, extra


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="1000000,3000000", help="comma-separated total review lines")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000, help="items per category")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas memory baseline")
    args = parser.parse_args()
    results = []
    _, import_rss, _ = run(IMPORT_FLOOR, [])
    print(f"import floor (package import only): peak RSS {import_rss:.1f} MB", flush=True)
    for n in [int(v) for v in args.lines.split(",")]:
        with tempfile.TemporaryDirectory(prefix="amazon-bench-") as tmp:
            tmp = Path(tmp)
            t = time.perf_counter()
            x, y = generate(tmp, n, args.users, args.items, seed=n)
            gen_s = time.perf_counter() - t
            size_mb = (x.stat().st_size + y.stat().st_size) / 2**20
            floor_s, floor_rss, _ = run(PARSE_FLOOR, [str(x), str(y)])
            conv_s, conv_rss, rc = run(CONVERT, [f"--x={x}", f"--y={y}", "--name=bench",
                                                 f"--out={tmp / 'out' / 'bench'}", "--no_properties"])
            meta = json.loads((tmp / "out" / "bench" / "bench.meta.json").read_text())
            row = {"lines": n, "input_mb": round(size_mb, 1), "generate_s": round(gen_s, 1),
                   "parse_floor_s": round(floor_s, 2), "parse_floor_lines_per_s": round(n / floor_s),
                   "convert_s": round(conv_s, 2), "convert_lines_per_s": round(n / conv_s),
                   "convert_vs_parse_floor": round(floor_s / conv_s, 3),
                   "convert_peak_rss_mb": round(conv_rss, 1),
                   "convert_rss_above_import_mb": round(conv_rss - import_rss, 1), "parse_floor_peak_rss_mb": round(floor_rss, 1),
                   "sequences": meta["n_sequences"], "users_after_filter": meta["funnel"]["users_after_filter"]}
            if not args.no_pandas:
                pd_s, pd_rss, _ = run(PANDAS, [str(x), str(y)])
                row.update(pandas_read_s=round(pd_s, 2), pandas_peak_rss_mb=round(pd_rss, 1))
            results.append(row)
            print(json.dumps(row), flush=True)
    if len(results) >= 2:
        a, b = results[0], results[-1]
        print(f"lines x{b['lines'] / a['lines']:.1f}: converter peak RSS x{b['convert_peak_rss_mb'] / a['convert_peak_rss_mb']:.2f}"
              + ("" if args.no_pandas else f", pandas peak RSS x{b['pandas_peak_rss_mb'] / a['pandas_peak_rss_mb']:.2f}"))
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "amazon_convert.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

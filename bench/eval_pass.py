"""One evaluation pass of our models, this checkout against a baseline revision, in the same run.

Why: an evaluation pass (both protocols, every validation case) runs after every training epoch, and on
a CPU it costs a large share of an epoch's wall time; this says what a change to that path bought.

Each side runs in its own process, with its own code on ``PYTHONPATH`` (the baseline from a temporary
``git worktree`` of ``--baseline``) and the same data (``--data-path``, default this checkout's
``dataset/``). A process builds the model untrained from seed 0 (time does not depend on quality),
runs one untimed pass, then ``--repeats`` timed passes of ``ProtocolEvaluator.evaluate`` on ``--split``
with the same negatives (pass index 0), and reports the CPU seconds of each. The sides alternate
(baseline, current, baseline, current, ...) ``--rounds`` times so that a change in machine load hits
both; the table gives the median per side and their ratio. Both sides' ranks are compared case by
case: a faster pass must rank the same (the share of cases whose rank differs, and the largest metric
difference, are printed; float rounding can move a near-tie).

    .venv/bin/python bench/eval_pass.py --baseline 0e18925 [--models IFCDSR,LLMEMF] [--dataset fk_abxi]

Writes bench/out/eval_pass.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_FILE = BENCH_DIR / "out" / "eval_pass.json"


def worker(args) -> None:
    """Runs inside one side's process: time the passes, save the ranks, print one JSON line."""
    import time

    import torch
    from recbole.utils import init_seed

    from recbole_ifcdsr.config import Config
    from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
    from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
    from recbole_ifcdsr.quick_start import build_model, prepare_features
    from recbole_ifcdsr.registry import get_model

    torch.set_num_threads(args.threads)
    config = Config(model=args.model, dataset=args.dataset,
                    config_dict={"data_path": args.data_path, "show_progress": False, "state": "ERROR"})
    dataset = CrossDomainSequentialDataset(config)
    prepare_features(config, dataset)  # LLMEMF's text store, built on first use as a run builds it
    init_seed(0, True)
    model = build_model(get_model(args.model), config, dataset)
    evaluator = ProtocolEvaluator(dataset, config)
    metrics = evaluator.evaluate(model, args.split, 0)  # untimed: builds the padded inputs
    seconds = []
    for _ in range(args.repeats):
        start = time.process_time()
        evaluator.evaluate(model, args.split, 0)
        seconds.append(time.process_time() - start)
    np.savez(args.ranks_out, **evaluator.last_ranks[args.split])
    print(json.dumps({"cpu_seconds": seconds, "metrics": metrics, "tables": ["id", *model.frozen],
                      "cases": int(len(evaluator.last_ranks[args.split]["sampled"]))}))


def run_side(root: Path, args, model: str, ranks_out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", model, "--dataset", args.dataset,
               "--split", args.split, "--repeats", str(args.repeats), "--threads", str(args.threads),
               "--data-path", args.data_path, "--ranks-out", ranks_out]
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{root} ({model}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def largest_metric_difference(a: dict, b: dict) -> float:
    return max(abs(a[p][d][m] - b[p][d][m]) for p in a for d in a[p] for m in a[p][d])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--models", default="IFCDSR,LLMEMF")
    parser.add_argument("--dataset", default="fk_abxi")
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per side, alternating")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-path", default=str(ROOT / "dataset"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--ranks-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        baseline_root = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline_root), args.baseline],
                       check=True, capture_output=True)
        try:
            rows = []
            for model in args.models.split(","):
                sides = {"baseline": (baseline_root, []), "current": (ROOT, [])}
                results = {}
                for round_ in range(args.rounds):
                    for name, (root, seconds) in sides.items():
                        ranks = str(Path(tmp) / f"{name}-{model}.npz")
                        results[name] = run_side(root, args, model, ranks)
                        seconds.extend(results[name]["cpu_seconds"])
                        print(f"{model} {name} round {round_}: {results[name]['cpu_seconds']}", file=sys.stderr)
                before, after = (np.load(str(Path(tmp) / f"{n}-{model}.npz")) for n in ("baseline", "current"))
                moved = {p: float(np.mean(before[p] != after[p])) for p in before.files}
                median = {name: statistics.median(seconds) for name, (_, seconds) in sides.items()}
                rows.append({"model": model, "cases": results["current"]["cases"], "tables": results["current"]["tables"],
                             "baseline_cpu_s": median["baseline"], "current_cpu_s": median["current"],
                             "ratio": median["current"] / median["baseline"],
                             "share_of_cases_whose_rank_moved": moved,
                             "largest_metric_difference": largest_metric_difference(results["baseline"]["metrics"],
                                                                                     results["current"]["metrics"]),
                             "seconds": {name: seconds for name, (_, seconds) in sides.items()}})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline_root)],
                           capture_output=True)
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    print(f"\n{args.dataset} {args.split}, one evaluation pass (both protocols), CPU seconds, median of "
          f"{args.rounds * args.repeats}; {args.threads} thread(s); current = {revision} + working tree, "
          f"baseline = {args.baseline}")
    print("| model (tables) | cases | baseline | current | current / baseline | cases whose rank moved (sampled, full) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        moved = row["share_of_cases_whose_rank_moved"]
        print(f"| {row['model']} ({', '.join(row['tables'])}) | {row['cases']:,} | {row['baseline_cpu_s']:.2f} | {row['current_cpu_s']:.2f} | "
              f"{row['ratio']:.2f}x | {moved.get('sampled', 0):.4%}, {moved.get('full', 0):.4%} |")
    OUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUT_FILE.write_text(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cpu", "args": vars(args),
                                    "revision": revision, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

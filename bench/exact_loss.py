"""The exact loss (``loss_type: full``) of IFCDSR and LLMEMF on fk_abxi: this checkout against a baseline
revision, in one run, as CPU seconds per training step and their ratio.

    .venv/bin/python bench/exact_loss.py [--baseline-commit f86bad8] [--models IFCDSR,LLMEMF] [--repeats 2]
        [--steps 3] [--threads 1]

Each configuration is one subprocess of ``train_cost.py --one`` (the CLI's trainer and optimiser, fused Adam,
batch 256, seed 0, shuffled batches, one warm-up step, then ``--steps`` timed steps; its loss-phase working
memory from one more step), with the baseline's package (``git archive``) or this checkout's first on
PYTHONPATH. Baseline and current alternate, ``--repeats`` times each, so that a change in the machine's
load falls on both; the table gives the median over repeats of each configuration's mean CPU-s per step.
Check (exit status 1 when it fails): both revisions start from the same weights and batches, so their first
timed step's losses agree to 1e-4 (relative; float32 sums in another order). Results:
bench/out/exact_loss.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_cost  # noqa: E402  (a sibling script: bench/ is not a package)

OUT = train_cost.REPO / "bench" / "out" / "exact_loss.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-commit", default="f86bad8", help="the revision to compare with (default: the "
                        "last one whose exact loss recomputed each tile's logits in backward)")
    parser.add_argument("--models", default="IFCDSR,LLMEMF")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    common = {"steps": args.steps, "warmup": 1, "threads": args.threads, "data_path": str(train_cost.REPO / "dataset"),
              "overrides": {"loss_type": "full"}}
    record = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_at_start": os.getloadavg(), "args": vars(args),
              "runs": []}
    print(f"exact_loss: baseline {args.baseline_commit}, load average at start {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        baseline = train_cost.baseline_source(args.baseline_commit, Path(scratch))
        for model in args.models.split(","):
            for repeat in range(args.repeats):
                for revision, path in (("baseline", baseline), ("current", str(train_cost.REPO))):
                    result = train_cost.launch({**common, "model": model}, path, f"{model} {revision} #{repeat + 1}")
                    record["runs"].append({"model": model, "revision": revision, **result})
    record["load_at_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2))

    failed = False
    print(f"\nfk_abxi, loss_type full, batch 256, {args.threads} thread(s), {args.steps} timed steps after 1 warm-up, "
          f"median of {args.repeats} runs each; load average {record['load_at_start']} -> {record['load_at_end']}\n")
    print("| model | baseline CPU-s / step | current CPU-s / step | current / baseline | loss working MB "
          "(baseline, current) | first-step loss (baseline, current) |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        runs = {r: [x for x in record["runs"] if x["model"] == model and x["revision"] == r]
                for r in ("baseline", "current")}
        cpu = {r: statistics.median(train_cost.summarise(x)["step_cpu"] for x in xs) for r, xs in runs.items()}
        working = {r: max(train_cost.summarise(x)["loss_working"] for x in xs) / train_cost.MB for r, xs in runs.items()}
        first = {r: xs[0]["steps"][0]["loss"] for r, xs in runs.items()}
        agree = abs(first["current"] - first["baseline"]) <= 1e-4 * abs(first["baseline"])
        failed |= not agree
        print(f"| {model} | {cpu['baseline']:.2f} | {cpu['current']:.2f} | **{cpu['current'] / cpu['baseline']:.3f}** | "
              f"{working['baseline']:,.0f}, {working['current']:,.0f} | {first['baseline']:.6g}, {first['current']:.6g}"
              f"{'' if agree else ' DIFFER'} |")
    print(f"\nwritten to {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

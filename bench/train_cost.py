"""Training cost of IFCDSR and LLMEMF with ``loss_type`` full and sampled, next to RecBole's SASRec and the
model code before issue 13, on fk_abxi in one run; then a catalog-size sweep (30k / 300k / 1M items).

    .venv/bin/python bench/train_cost.py [--steps 6] [--threads 1] [--baseline-commit 5ab85c1]
        [--baseline-models IFCDSR] [--sweep 30000,300000,1000000] [--sweep-losses sampled,full]
        [--skip-models] [--skip-sweep]

Every configuration runs in its own subprocess (this script with ``--one``), so one configuration's
memory never counts in another's peak. A subprocess loads the data, builds the model and the optimiser
of the CLI's trainer (``CrossDomainTrainer``: RecBole's Adam with the model's lr and weight decay; fused
since issue 13, the loop implementation at the baseline commit) and runs training steps (zero_grad,
``calculate_loss``, backward, optimiser step) on shuffled batches: ``--warmup`` steps (default 1)
untimed, then ``--steps`` timed. CPU seconds are this process's, all threads; per epoch = mean step CPU
x batches per epoch (the timed steps extrapolated to an epoch; the tables say how many). Memory comes
from /proc/self/status:

- ``peak RSS``: the process's resident high-water mark, data loading included; ``training-step
  peak``: the same over the training steps only (the mark is reset, clear_refs 5, before each phase).
- One more step (untimed; the timed step itself when only one is timed) hands freed memory back
  (glibc ``malloc_trim``) before its loss phase (forward + backward) and before its optimiser step:
  ``loss working`` = loss-phase peak - resident memory before it - the gradients it leaves behind
  (activations, scores, temporaries); ``optimiser temporaries`` = optimiser-phase peak - resident
  memory before it - optimiser state it creates.
- ``peak less ID table + Adam state``: training-step peak - 3 x the ID table's bytes (the table and
  Adam's two moments of it).

The baseline is the package as it was at ``--baseline-commit`` (``git archive`` into a temporary
folder, run with that folder first on PYTHONPATH, reading this checkout's data and feature stores).
The sweep writes fk_abxi's training sequences with each real item mapped to a random distinct id of
its own domain in a catalog of N items (domain shares as in fk_abxi), and trains IFCDSR (ID tables only)
on it. Results: bench/out/train_cost.json and Markdown tables on stdout.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "train_cost.json"
MB = 1024 * 1024


# ---- inside one configuration's subprocess ------------------------------------------------------
def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _trim() -> None:
    """Hand freed heap memory back to the system (glibc), so resident memory is memory in use."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _grad_bytes(model) -> int:
    return sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)


def _state_bytes(optimizer) -> int:
    return sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values()
               if hasattr(v, "numel"))


def _tensor_bytes(model, optimizer) -> int:
    """Parameters, their gradients, buffers and optimiser state."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) + _grad_bytes(model) + _state_bytes(optimizer)


def run_one(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    import recbole_ifcdsr  # noqa: F401  (compat patches)
    from recbole.data.dataloader import TrainDataLoader
    from recbole.utils import init_seed

    from recbole_ifcdsr.config import Config
    from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
    from recbole_ifcdsr.features.auto import ensure_feature
    from recbole_ifcdsr.registry import get_model, get_trainer

    config = Config(spec["model"], "fk_abxi", config_dict={
        "show_progress": False, "state": "WARNING", "checkpoint_dir": os.getcwd(), "seed": 0,
        "data_path": spec["data_path"], **spec["overrides"]})
    init_seed(0, True)
    data = CrossDomainSequentialDataset(config)
    for feature in config["item_features"] or {}:
        ensure_feature(config, config["dataset"], feature)
    model_class = get_model(spec["model"])
    whole = getattr(model_class, "cdsr_training", "prefix") == "sequence"
    view = data.sequence_train_dataset() if whole else data.recbole_train_dataset()
    loader = TrainDataLoader(config, view, None, shuffle=True)
    floor, load_peak = _status("VmRSS"), _status("VmHWM")

    init_seed(0, True)
    model = model_class(config, data)
    optimizer = get_trainer(config["MODEL_TYPE"], spec["model"])(config, model).optimizer  # the CLI's trainer
    batches = iter(loader)

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    def step(batch, trim: bool) -> dict:
        """One training step; with ``trim``, freed memory goes back to the system before each phase so
        that the phase's peak less the resident memory before it is what the phase needs."""
        optimizer.zero_grad()
        if trim:
            _trim()
        _reset_peak()
        before_loss = _status("VmRSS")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        loss = model.calculate_loss(batch)
        loss.backward()
        cpu1, wall1 = time.process_time(), time.perf_counter()
        loss_peak, grads = _status("VmHWM"), _grad_bytes(model)
        if trim:
            _trim()
        _reset_peak()
        before_opt, states = _status("VmRSS"), _state_bytes(optimizer)
        cpu2, wall2 = time.process_time(), time.perf_counter()
        optimizer.step()
        cpu3, wall3 = time.process_time(), time.perf_counter()
        opt_peak = _status("VmHWM")
        return {"cpu": cpu1 - cpu0 + cpu3 - cpu2, "loss_cpu": cpu1 - cpu0, "opt_cpu": cpu3 - cpu2,
                "wall": wall1 - wall0 + wall3 - wall2, "loss": float(loss), "loss_peak": loss_peak, "opt_peak": opt_peak,
                "loss_working": loss_peak - before_loss - grads,
                "opt_temporaries": opt_peak - before_opt - (_state_bytes(optimizer) - states), "trimmed": trim}

    for _ in range(spec["warmup"]):
        step(next_batch(), trim=False)
    steps = [step(next_batch(), trim=spec["steps"] == 1) for _ in range(spec["steps"])]
    memory = steps[0] if spec["steps"] == 1 else step(next_batch(), trim=True)  # untimed when extra
    persistent = _tensor_bytes(model, optimizer)
    embedding = getattr(model, "item_embedding", None)
    return {
        "model": spec["model"], "overrides": spec["overrides"], "n_items": data.item_num - 1,
        "batches_per_epoch": len(loader), "batch_size": config["train_batch_size"], "instances": len(view),
        "floor": floor, "load_peak": load_peak, "steps": steps, "memory_step": memory, "persistent": persistent,
        "id_table_bytes": embedding.weight.numel() * embedding.weight.element_size() if embedding is not None else 0,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "package": str(Path(recbole_ifcdsr.__file__).resolve().parent),
    }


# ---- the driver ---------------------------------------------------------------------------------
def launch(spec: dict, pythonpath: str, label: str) -> dict:
    """Run one configuration in a fresh subprocess (in a temporary working directory)."""
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": str(spec["threads"])}
    with tempfile.TemporaryDirectory() as cwd:
        start = time.time()
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)],
                              cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["label"], result["subprocess_wall"] = label, time.time() - start
    print(f"  {label}: {summarise(result)['step_cpu']:.2f} CPU-s/step, peak {summarise(result)['peak'] / MB:,.0f} MB "
          f"({result['subprocess_wall']:.0f} s)", flush=True)
    return result


def summarise(r: dict) -> dict:
    steps, memory = r["steps"], r["memory_step"]
    mean = lambda key: sum(s[key] for s in steps) / len(steps)  # noqa: E731
    train_peak = max(max(s["loss_peak"], s["opt_peak"]) for s in steps + [memory])
    return {
        "step_cpu": mean("cpu"), "loss_cpu": mean("loss_cpu"), "opt_cpu": mean("opt_cpu"), "step_wall": mean("wall"),
        "epoch_cpu": mean("cpu") * r["batches_per_epoch"], "peak": max(train_peak, r["load_peak"]),
        "train_peak": train_peak, "loss_working": memory["loss_working"], "opt_temporaries": memory["opt_temporaries"],
        "peak_less_id_state": train_peak - 3 * r["id_table_bytes"],  # the ID table and Adam's two moments of it
    }


def baseline_source(commit: str, into: Path) -> str:
    """The package and properties as they were at ``commit``, extracted under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "recbole_ifcdsr", "properties"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into)


def write_catalog(data_dir: Path, n_items: int, seed: int = 0) -> Path:
    """fk_abxi's sequences with item ids spread over ``n_items`` items (see the module docstring)."""
    import numpy as np

    src = REPO / "dataset" / "fk_abxi"
    rows = [line.split("\t") for line in (src / "fk_abxi.item").read_text().splitlines()[1:]]
    real = {d: [r[0] for r in rows if r[1] == d] for d in ("X", "Y")}
    share_x = len(real["X"]) / len(rows)
    sizes = {"X": round(n_items * share_x), "Y": n_items - round(n_items * share_x)}
    rng = np.random.default_rng(seed)
    mapping = {}
    for d in ("X", "Y"):
        ids = rng.choice(sizes[d], size=len(real[d]), replace=False)
        mapping.update({token: f"{d.lower()}{i:07d}" for token, i in zip(real[d], ids)})
    out = data_dir / "fk_abxi"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "fk_abxi.item", "w") as f:
        f.write("item_id:token\tdomain:token\n")
        for d in ("X", "Y"):
            f.writelines(f"{d.lower()}{i:07d}\t{d}\n" for i in range(sizes[d]))
    lines = (src / "fk_abxi.inter").read_text().splitlines(keepends=True)
    with open(out / "fk_abxi.inter", "w") as f:
        f.write(lines[0])
        for line in lines[1:]:
            user, item, rest = line.split("\t", 2)
            f.write(f"{user}\t{mapping[item]}\t{rest}")
    return data_dir


def model_rows(results: list) -> list[str]:
    base = next((r for r in results if r["label"].startswith("IFCDSR before")), None)
    lines = ["| configuration | batches / epoch | CPU-s / step (loss + optimiser) | CPU-s / epoch | x IFCDSR before | "
             "peak RSS MB | training-step peak MB |", "|---|---|---|---|---|---|---|"]
    for r in results:
        s = summarise(r)
        ratio = f"{s['step_cpu'] / summarise(base)['step_cpu']:.3f}" if base else "-"
        lines.append(f"| {r['label']} | {r['batches_per_epoch']} | {s['step_cpu']:.2f} ({s['loss_cpu']:.2f} + "
                     f"{s['opt_cpu']:.2f}) | {s['epoch_cpu']:,.0f} | {ratio} | {s['peak'] / MB:,.0f} | "
                     f"{s['train_peak'] / MB:,.0f} |")
    return lines


def sweep_rows(results: list) -> list[str]:
    lines = ["| loss | items | timed steps | CPU-s / step (loss + optimiser) | peak RSS MB | ID table + Adam state MB | "
             "peak less ID table + Adam state MB | floor MB | loss working MB | optimiser temporaries MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = summarise(r)
        lines.append(f"| {r['overrides']['loss_type']} | {r['n_items']:,} | {len(r['steps'])} | "
                     f"{s['step_cpu']:.2f} ({s['loss_cpu']:.2f} + {s['opt_cpu']:.2f}) | {s['train_peak'] / MB:,.0f} | "
                     f"{3 * r['id_table_bytes'] / MB:,.0f} | {s['peak_less_id_state'] / MB:,.0f} | "
                     f"{r['floor'] / MB:,.0f} | {s['loss_working'] / MB:,.0f} | {s['opt_temporaries'] / MB:,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration (default 6)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time stays "
                        "comparable when other work shares the cores)")
    parser.add_argument("--baseline-commit", default="5ab85c1", help="the model code to compare with ('' for none)")
    parser.add_argument("--baseline-models", default="IFCDSR", help="models run at the baseline commit")
    parser.add_argument("--baseline-steps", type=int, default=None, help="timed steps of baseline runs (default --steps)")
    parser.add_argument("--sweep", default="30000,300000,1000000", help="catalog sizes")
    parser.add_argument("--sweep-full-steps", default="3,1,1", help="timed steps of loss_type full per catalog "
                        "size (no warm-up when 1)")
    parser.add_argument("--sweep-losses", default="sampled,full", help="loss types in the sweep")
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return

    here = str(REPO)
    data_path = str(REPO / "dataset")
    common = {"steps": args.steps, "warmup": args.warmup, "threads": args.threads, "data_path": data_path}
    record = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_at_start": os.getloadavg(), "args": vars(args),
              "cpus": os.cpu_count(), "models": [], "sweep": []}
    print(f"train_cost: {args.threads} torch thread(s), load average at start {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if not args.skip_models:
            configs = [("SASRec (RecBole defaults)", "SASRec", {}, here)]
            if args.baseline_commit:
                src = baseline_source(args.baseline_commit, scratch)
                for name in args.baseline_models.split(","):
                    configs.append((f"{name} before ({args.baseline_commit}, exact)", name, {}, src))
            for name in ("IFCDSR", "LLMEMF"):
                for loss_type in ("full", "sampled"):
                    configs.append((f"{name} {loss_type}", name, {"loss_type": loss_type}, here))
            for label, model, overrides, path in configs:
                spec = {**common, "model": model, "overrides": overrides}
                if path != here and args.baseline_steps:
                    spec["steps"] = args.baseline_steps
                record["models"].append(launch(spec, path, label))
        if not args.skip_sweep:
            full_steps = [int(s) for s in args.sweep_full_steps.split(",")]
            for k, n_items in enumerate(int(n) for n in args.sweep.split(",")):
                data_dir = write_catalog(scratch / f"catalog{n_items}", n_items)
                for loss_type in args.sweep_losses.split(","):
                    steps = args.steps if loss_type == "sampled" else full_steps[min(k, len(full_steps) - 1)]
                    spec = {**common, "data_path": str(data_dir), "model": "IFCDSR", "steps": steps,
                            "warmup": args.warmup if steps > 1 else 0,
                            "overrides": {"loss_type": loss_type, "image_fusion": False}}
                    record["sweep"].append(launch(spec, here, f"IFCDSR {loss_type} {n_items:,} items"))
    record["load_at_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2))
    print(f"\nload average at start {record['load_at_start']}, at end {record['load_at_end']}")
    if record["models"]:
        print(f"\nfk_abxi, batch 256, {args.threads} thread(s), {args.steps} timed steps after {args.warmup} warm-up\n")
        print("\n".join(model_rows(record["models"])))
    if record["sweep"]:
        print("\ncatalog sweep (IFCDSR, ID tables, fk_abxi sequences)\n")
        print("\n".join(sweep_rows(record["sweep"])))
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()

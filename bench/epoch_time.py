"""One training epoch: IFCDSR (whole sequences, six encoders when images exist) vs RecBole's SASRec
(RecBole's one-instance-per-prefix view) on the same dataset, same machine, same run.

    .venv/bin/python bench/epoch_time.py [--dataset fk_abxi] [--threads 2] [key=value IFCDSR overrides]

Both epochs go through RecBole's own Trainer._train_epoch with RecBole's TrainDataLoader. Reports
wall and CPU seconds (this process, all threads) per epoch and the ratio IFCDSR / SASRec; the issue's
goal is <= 2x. Writes bench/out/epoch_time.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.trainer import Trainer
from recbole.utils import init_seed

import recbole_ifcdsr  # noqa: F401  (compat patches)
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.registry import get_model

OUT = Path(__file__).resolve().parent / "out" / "epoch_time.json"


def one_epoch(model_name: str, dataset: str, overrides: dict, workdir: str) -> dict:
    config = Config(model_name, dataset, config_dict={"show_progress": False, "state": "WARNING",
                                                      "checkpoint_dir": workdir, **overrides})
    init_seed(0, True)
    data = CrossDomainSequentialDataset(config)
    model_class = get_model(model_name)
    view = data.sequence_train_dataset() if getattr(model_class, "cdsr_training", None) == "sequence" \
        else data.recbole_train_dataset()
    loader = TrainDataLoader(config, view, None, shuffle=True)
    model = model_class(config, data)
    trainer = Trainer(config, model)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer._train_epoch(loader, 0, show_progress=False)
    return {"model": model_name, "instances": len(view), "batches": len(loader),
            "batch_size": config["train_batch_size"], "wall_seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fk_abxi")
    parser.add_argument("--threads", type=int, default=2)
    args, rest = parser.parse_known_args()
    overrides = dict(kv.split("=", 1) for kv in rest)
    overrides = {k: (v.lower() == "true" if v.lower() in ("true", "false") else float(v) if v.replace(".", "", 1).isdigit() else v)
                 for k, v in overrides.items()}
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        cwd = os.getcwd()
        os.chdir(workdir)  # RecBole writes log_tensorboard/ into the working directory
        try:
            sasrec = one_epoch("SASRec", args.dataset, {}, workdir)
            ifcdsr = one_epoch("IFCDSR", args.dataset, overrides, workdir)
        finally:
            os.chdir(cwd)
    rows = [sasrec, ifcdsr]
    print(f"{args.dataset}, torch {torch.__version__}, {args.threads} threads, IFCDSR overrides {overrides}")
    print("| model | instances | batches | wall s | CPU s | parameters |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['instances']} | {r['batches']} | {r['wall_seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['parameters']} |")
    ratio_wall = ifcdsr["wall_seconds"] / sasrec["wall_seconds"]
    ratio_cpu = ifcdsr["cpu_seconds"] / sasrec["cpu_seconds"]
    print(f"IFCDSR / SASRec per epoch: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU (goal <= 2x)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"dataset": args.dataset, "threads": args.threads, "overrides": overrides,
                               "runs": rows, "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu}, indent=2))


if __name__ == "__main__":
    main()

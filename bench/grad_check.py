"""The trainer's per-batch gradient check: one sum per gradient (what CrossDomainTrainer does) against an
element-wise isfinite mask per gradient (what it did before), on the real gradients of one training batch of
a real model and dataset, in the same run; also the batch's whole training step, for scale.

    .venv/bin/python bench/grad_check.py [--dataset fk_llmcdsr] [--model IFCDSR] [--threads 1] [--repeats 30]

Reports the median milliseconds of each check and of one training step (forward, backward, check, optimiser
step) and the ratios; exits with status 1 if the two checks disagree. Writes bench/out/grad_check.json.
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

import torch
from recbole.utils import init_seed

import recbole_ifcdsr  # noqa: F401  (compat patches)
from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.errors import NonFiniteError
from recbole_ifcdsr.quick_start import build_train_data
from recbole_ifcdsr.registry import get_model
from recbole_ifcdsr.trainer import CrossDomainTrainer

OUT = Path(__file__).resolve().parent / "out" / "grad_check.json"


def elementwise_check(model: torch.nn.Module) -> bool:
    """The check as it was: one isfinite mask per gradient, all reduced."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def trainer_check(trainer: CrossDomainTrainer) -> bool:
    try:
        trainer._check_gradients(0, 0)
    except NonFiniteError:
        return False
    return True


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fk_llmcdsr")
    parser.add_argument("--model", default="IFCDSR")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        cwd = os.getcwd()
        os.chdir(workdir)  # RecBole writes log_tensorboard/ into the working directory
        try:
            config = Config(args.model, args.dataset, config_dict={"show_progress": False, "state": "WARNING",
                                                                   "checkpoint_dir": workdir, "shuffle": False})
            init_seed(0, True)
            data = CrossDomainSequentialDataset(config)
            model_class = get_model(args.model)
            batch = next(iter(build_train_data(config, data, model_class)))  # the view the model declares
            model = model_class(config, data)
            trainer = CrossDomainTrainer(config, model)
        finally:
            os.chdir(cwd)

    def step() -> None:
        trainer.optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        sum(loss if isinstance(loss, tuple) else (loss,)).backward()
        trainer._check_gradients(0, 0)
        trainer.optimizer.step()

    step_ms = median_ms(step, max(3, args.repeats // 5))
    agree = elementwise_check(model) and trainer_check(trainer)  # a real batch: both must find all finite
    old_ms = median_ms(lambda: elementwise_check(model), args.repeats)
    new_ms = median_ms(lambda: trainer_check(trainer), args.repeats)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    row = {"dataset": args.dataset, "model": args.model, "threads": args.threads, "torch": torch.__version__,
           "gradient_tensors": len(grads), "gradient_elements": sum(g.numel() for g in grads),
           "batch_size": config["train_batch_size"], "elementwise_ms": old_ms, "sum_ms": new_ms,
           "train_step_ms": step_ms, "speedup": old_ms / new_ms,
           "step_share_before": old_ms / (step_ms - new_ms + old_ms), "step_share_after": new_ms / step_ms,
           "checks_agree": agree}
    print(f"{args.model} on {args.dataset}, torch {torch.__version__}, {args.threads} thread(s): "
          f"{row['gradient_tensors']} gradients, {row['gradient_elements']:,} elements, batch {row['batch_size']}")
    print(f"element-wise check {old_ms:.2f} ms, sum check {new_ms:.2f} ms ({row['speedup']:.1f}x); "
          f"one training step {step_ms:.0f} ms, of which the check was {row['step_share_before']:.1%} "
          f"and is {row['step_share_after']:.1%}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(row, indent=2))
    if not agree:
        print("FAIL: the two checks disagree on finite gradients", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

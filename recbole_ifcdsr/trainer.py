"""CrossDomainTrainer: RecBole's Trainer (optimiser, epochs, AMP, gradient clipping, checkpoints)
with the CDSR protocols and the dataset recipe's model selection in place of RecBole's evaluator.

Per evaluation pass both protocols are computed from one forward pass; selection uses the sampled
protocol. When a domain's selection score improves, the test split is evaluated and kept as that
domain's reported result (the sources do this too), so no model is trained twice. A ``-last``
checkpoint (model, optimiser, selection state, results so far) is written after every epoch, and
``resume=True`` continues from it after a crash.
"""
from __future__ import annotations

import os
import time

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_ifcdsr import compat
from recbole_ifcdsr.data.dataset import DOMAINS
from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
from recbole_ifcdsr.evaluation.selection import ModelSelector


def format_domain_metrics(result: dict, domain_names: dict) -> str:
    """One line per protocol and domain: 'sampled Grocery: MRR 0.1234 ...'."""
    lines = []
    for protocol, per_domain in result.items():
        for d in DOMAINS:
            values = "  ".join(f"{k} {v:.4f}" for k, v in per_domain[d].items())
            lines.append(f"{protocol:>7} {domain_names.get(d, d):>10}: {values}")
    return "\n".join(lines)


class TrainingBudget:
    """Training time budget in minutes, checked after every batch (exact to one batch, not one epoch).

    ``cpu``: CPU time of this process (all threads, user + system), so other work on a shared
    machine does not shrink a run's budget; otherwise wall-clock time.
    """

    def __init__(self, minutes: float | None, cpu: bool):
        self.limit = None if minutes is None else float(minutes) * 60.0
        self.clock = time.process_time if cpu else time.time
        self.used = 0.0

    def exhausted(self, extra: float = 0.0) -> bool:
        return self.limit is not None and self.used + extra >= self.limit

    def describe(self) -> str:
        return f"{self.limit / 60:g} {'CPU' if self.clock is time.process_time else 'wall'}-minute budget"


class _UntilBudget:
    """Wraps a RecBole DataLoader so an epoch ends at the first batch past the budget."""

    def __init__(self, loader, budget: TrainingBudget):
        self._loader, self._budget = loader, budget

    def __iter__(self):
        start = self._budget.clock()
        for batch in self._loader:
            yield batch
            if self._budget.exhausted(self._budget.clock() - start):
                break
        self._budget.used += self._budget.clock() - start

    def __len__(self):
        return len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __len__(self):
        return len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def fused_adam(optimizer):
    """RecBole's Adam / AdamW as torch's fused implementation: the same update, one pass over each
    parameter and no per-parameter temporaries. With a 1M-item ID table (256M parameters) the loop
    implementation took 3.65 CPU-s and 2.9 GB of temporaries a step, the fused one 0.13 CPU-s and none
    (bench/README.md, train_cost.py)."""
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or len(optimizer.param_groups) != 1:
        return optimizer
    group = optimizer.param_groups[0]
    if not all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in group["params"]):
        return optimizer
    return type(optimizer)(group["params"], lr=group["lr"], weight_decay=group["weight_decay"], fused=True)


class CrossDomainTrainer(Trainer):
    """RecBole Trainer driven by the CDSR recipe; see the module docstring."""

    def __init__(self, config, model):
        super().__init__(config, model)
        compat.trust_checkpoint_dir(self.checkpoint_dir)
        stem = f"{config['model']}-{config['dataset']}-seed{config['seed']}"
        self.saved_model_file = os.path.join(self.checkpoint_dir, f"{stem}-last.pth")
        self.best_model_file = {d: os.path.join(self.checkpoint_dir, f"{stem}-best_{d}.pth") for d in DOMAINS}
        self.domain_names = dict(config["domains"] or {})
        self.records: dict = {}
        self.history: list = []
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.budget_used = 0.0  # seconds of the training budget spent (kept across resume)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    def _build_optimizer(self, **kwargs):
        if not any(p.requires_grad for p in self.model.parameters()):
            return None  # e.g. Pop: nothing to learn, evaluated once
        return fused_adam(super()._build_optimizer(**kwargs))

    # ---- checkpoints -------------------------------------------------------------------------
    def _cdsr_state(self, epoch: int, selector: ModelSelector) -> dict:
        return {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "selector": selector.state_dict(),
            "records": self.records,
            "history": self.history,
            "seconds": (self.train_seconds, self.eval_seconds, self.budget_used),
        }

    def _write(self, state: dict, path: str) -> None:
        tmp = path + ".tmp"
        torch.save(state, tmp, pickle_protocol=4)
        os.replace(tmp, path)  # never leave a half-written checkpoint behind

    def resume_from_last(self, selector: ModelSelector) -> bool:
        """Restore model, optimiser, selection state and results from the ``-last`` checkpoint."""
        if not os.path.isfile(self.saved_model_file):
            return False
        state = compat.load_checkpoint(self.saved_model_file, map_location=self.device)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        if self.optimizer and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        selector.load_state_dict(state["selector"])
        self.records, self.history = state["records"], state["history"]
        self.train_seconds, self.eval_seconds, self.budget_used = state["seconds"]
        self.start_epoch = state["epoch"] + 1
        self.logger.info(set_color(f"Resumed from {self.saved_model_file} at epoch {self.start_epoch}", "blue"))
        return True

    # ---- training with recipe selection ------------------------------------------------------
    def _evaluate_split(self, evaluator: ProtocolEvaluator, split: str, pass_index: int, show_progress: bool) -> dict:
        start = time.time()
        result = evaluator.evaluate(self.model, split, pass_index=pass_index, show_progress=show_progress)
        self.eval_seconds += time.time() - start
        return result

    def fit_cdsr(self, train_data, evaluator: ProtocolEvaluator, selector: ModelSelector,
                 show_progress: bool = False, saved: bool = True) -> dict:
        """Train, validate per the recipe, and return the per-domain results at the selected epochs."""
        cpu_minutes = self.config["max_train_cpu_minutes"]
        budget = TrainingBudget(cpu_minutes if cpu_minutes is not None else self.config["max_train_minutes"],
                                cpu=cpu_minutes is not None)
        budget.used = self.budget_used
        epochs = self.epochs if self.trainable else 1
        stop_reason = "max epochs"
        for epoch in range(self.start_epoch, epochs):
            out_of_time = False
            if self.trainable:
                start = time.time()
                loader = _UntilBudget(train_data, budget) if budget.limit is not None else train_data
                loss = self._train_epoch(loader, epoch, show_progress=show_progress)
                self.train_seconds += time.time() - start
                self.logger.info(self._generate_train_loss_output(epoch, start, time.time(), loss))
                self.budget_used = budget.used
                out_of_time = budget.exhausted()
            last = epoch + 1 == epochs or out_of_time  # the last epoch is always validated
            if last or (selector.wants_validation(epoch) and (epoch + 1) % self.eval_step == 0):
                valid = self._evaluate_split(evaluator, "valid", epoch, show_progress)
                improved = selector.update(valid["sampled"])
                self.history.append({"epoch": epoch, "valid": valid})
                self.logger.info(set_color(f"epoch {epoch} valid", "green") + "\n" + format_domain_metrics(valid, self.domain_names))
                if improved:
                    test = self._evaluate_split(evaluator, "test", epoch, show_progress)
                    for d in improved:
                        self.records[d] = {"epoch": epoch, "valid": {p: valid[p][d] for p in valid},
                                           "test": {p: test[p][d] for p in test}}
                        if saved:
                            self._write({"config": self.config, "epoch": epoch, "state_dict": self.model.state_dict()},
                                        self.best_model_file[d])
                    self.logger.info(set_color(f"improved {improved}; test", "blue") + "\n" + format_domain_metrics(test, self.domain_names))
            if saved:
                self._write(self._cdsr_state(epoch, selector), self.saved_model_file)
            if selector.should_stop:
                stop_reason = "early stopping"
                break
            if out_of_time:
                stop_reason = budget.describe()
                break
        self.logger.info(f"Finished training ({stop_reason}); train {self.train_seconds:.0f}s, eval {self.eval_seconds:.0f}s")
        return {
            "best_epoch": {d: self.records[d]["epoch"] for d in self.records},
            "records": self.records,
            "epochs_run": (self.history[-1]["epoch"] + 1) if self.history else 0,
            "stop_reason": stop_reason,
            "train_seconds": round(self.train_seconds, 2),
            "train_cpu_seconds": round(budget.used, 2) if budget.limit is not None else None,
            "eval_seconds": round(self.eval_seconds, 2),
        }

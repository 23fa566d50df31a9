"""CrossDomainTrainer: RecBole's Trainer (optimiser, epochs, AMP, gradient clipping, checkpoints)
with the CDSR protocols and the dataset recipe's model selection in place of RecBole's evaluator.

Per evaluation pass both protocols are computed from one forward pass; selection uses the sampled
protocol. When a domain's selection score improves, that epoch's weights are kept (the ``-best_<D>``
checkpoint, or a copy in memory for a run that saves nothing); when training ends, the test split is
evaluated once per selected epoch, from those weights, with that epoch's negatives. The numbers are
those of evaluating test at the improving epoch itself, as the sources do, without a test pass at every
improvement (which cost as much again as validation: most epochs improve). A ``-last``
checkpoint (model, optimiser, selection state, results so far, random states and data order, seconds
spent (training, budget, evaluation, wall) and the record of its run: see checkpoint.py) is written after
every epoch, and ``resume=True`` continues from it after a crash exactly as the uninterrupted run would
have gone on; a run that had already stopped (budget, early stopping) trains no more and reports what it had.

Nothing wrong is reported: training stops at the first non-finite loss or gradient, naming the
batch, and a run that trained or evaluated nothing, or selected no epoch for a domain, fails.
"""
from __future__ import annotations

import math
import os
import time

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.nn.utils import clip_grad_norm_
from tqdm import tqdm

from recbole_ifcdsr import checkpoint, compat, io
from recbole_ifcdsr.constants import BUDGET_STOP_SUFFIX, DOMAINS
from recbole_ifcdsr.errors import CheckpointError, CheckpointMismatchError, EmptyRunError, NonFiniteError
from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
from recbole_ifcdsr.evaluation.selection import ModelSelector
from recbole_ifcdsr.lr_decay import PlateauDecay
from recbole_ifcdsr.paths import run_checkpoint_stem
from recbole_ifcdsr.results import RunResult


#: the setting that sets each budget clock's limit
BUDGET_KEYS = {"cpu": "max_train_cpu_minutes", "wall": "max_train_minutes"}


def format_domain_metrics(result: dict, domain_names: dict) -> str:
    """One line per protocol and domain: 'sampled Grocery: MRR 0.1234 ...'."""
    lines = []
    for protocol, per_domain in result.items():
        for d in DOMAINS:
            values = "  ".join(f"{k} {v:.4f}" for k, v in per_domain[d].items())
            lines.append(f"{protocol:>7} {domain_names.get(d, d):>10}: {values}")
    return "\n".join(lines)


def copy_state(model: torch.nn.Module) -> dict:
    """A copy of the model's weights that later steps do not change."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class TrainingBudget:
    """Training time budget in minutes, checked after every batch (exact to one batch, not one epoch).

    ``cpu``: CPU time of this process (all threads, user + system), so other work on a shared
    machine does not shrink a run's budget; otherwise wall-clock time.
    """

    def __init__(self, minutes: float | None, cpu: bool):
        self.limit = None if minutes is None else float(minutes) * 60.0
        self.cpu = cpu
        self.clock = time.process_time if cpu else time.monotonic
        self.used = 0.0

    @property
    def clock_name(self) -> str:
        """What its seconds count, as checkpoints record it."""
        return "cpu" if self.cpu else "wall"

    def exhausted(self, extra: float = 0.0) -> bool:
        return self.limit is not None and self.used + extra >= self.limit

    def describe(self) -> str:
        return f"{self.limit / 60:g} {'CPU' if self.cpu else 'wall'}{BUDGET_STOP_SUFFIX}"

    def spent_line(self, epoch: int, seconds: float) -> str:
        """One log line per epoch: what it cost on the budget's clock and what is left, so a log shows how
        many epochs a cap buys on this machine (the same step cost 3.1x the CPU seconds on one VM as on another)."""
        return (f"epoch {epoch} budget [{self.clock_name} time: {seconds:.1f}s, used {self.used:.0f}s of "
                f"{self.limit:.0f}s]")


def why_training_stops(selection_stopped: bool, out_of_time: bool, budget: TrainingBudget,
                       cut: bool = True) -> str | None:
    """Why training ends after this epoch, or None. ``out_of_time``: the budget ends training here (it ran
    out before the epochs did); ``cut``: this epoch stopped before its last batch. When the selection's
    patience runs out at the validation of an epoch the budget cut short, the selection ended the run (no
    budget mark in compare's tables), and the reason still says the last epoch was cut, so the results file
    does not hide it."""
    if selection_stopped:
        return f"early stopping (last epoch cut short by the {budget.describe()})" if out_of_time and cut \
            else "early stopping"
    return budget.describe() if out_of_time else None


class _UntilBudget:
    """Wraps a RecBole DataLoader so an epoch ends at the first batch past the budget."""

    def __init__(self, loader, budget: TrainingBudget):
        self._loader, self._budget = loader, budget
        self.cut = False  # the last epoch ended before its last batch
        self.spent = 0.0  # the last epoch's seconds on the budget's clock

    def __iter__(self):
        start, self.cut = self._budget.clock(), False
        for done, batch in enumerate(self._loader, 1):
            yield batch
            if self._budget.exhausted(self._budget.clock() - start):
                self.cut = done < len(self._loader)  # spent on the epoch's last batch: nothing was cut
                break
        self.spent = self._budget.clock() - start
        self._budget.used += self.spent

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
        stem = run_checkpoint_stem(config['model'], config['dataset'], config['seed'])
        self.saved_model_file = os.path.join(self.checkpoint_dir, f"{stem}-last.pth")
        self.best_model_file = {d: os.path.join(self.checkpoint_dir, f"{stem}-best_{d}.pth") for d in DOMAINS}
        # an improving epoch's weights wait here until that epoch's -last is written (see _keep_best)
        self.pending_best_file = {d: os.path.join(self.checkpoint_dir, f"{stem}-best_{d}.pending.pth") for d in DOMAINS}
        self.domain_names = dict(config["domains"] or {})
        self.result = RunResult()  # each domain's numbers at its selected epoch
        self.history: list = []
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.budget_used = 0.0  # seconds of the training budget spent (kept across resume)
        self.budget_clock: str | None = None  # what those seconds count: "cpu", "wall", None (no budget yet)
        self.epoch_losses: list = []  # training loss of every epoch (kept across resume)
        self.run_identity: dict | None = None  # what this run is; set_run before checkpoints are written
        self.process_start = time.monotonic()  # when this process started the run (set_run: before data loading)
        self.earlier_wall_seconds: float | None = 0.0  # wall time of the run's earlier processes, to their last
        # checkpoint (kept across resume); None: resumed from a checkpoint written before checkpoints recorded it
        self._resumed_random: dict | None = None  # random states and data order to restore when fit starts
        self._resumed_stop: str | None = None  # why the resumed run had stopped (budget, early stopping), if it had
        self._best_states: dict = {}  # epoch -> weights, for runs that write no -best checkpoint (saved=False)
        self.lr_decay = PlateauDecay.from_config(config["lr_decay"])  # None: the learning rate stays as set
        # one loss scaler for the whole run (its scale carries over epochs and a resume), on the run's device
        # (RecBole turns enable_scaler on wherever CUDA exists, also for a run on the CPU)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=bool(self.enable_scaler))

    def set_run(self, identity: dict, process_start: float | None = None) -> None:
        """The record of this run (checkpoint.run_identity) that each checkpoint carries; ``process_start``:
        ``time.monotonic()`` when this process began the run, so its wall time includes loading the data."""
        self.run_identity = identity
        if process_start is not None:
            self.process_start = process_start

    def wall_seconds_so_far(self) -> float | None:
        """Wall time of the run over all its processes (each to its last checkpoint, this one to now); None
        when an earlier process's is unknown."""
        if self.earlier_wall_seconds is None:
            return None
        return self.earlier_wall_seconds + time.monotonic() - self.process_start

    def _where(self, epoch: int, batch: int | None = None) -> str:
        where = f"{self.config['model']} on {self.config['dataset']}, epoch {epoch}"
        return where if batch is None else f"{where}, batch {batch}"

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    def _build_optimizer(self, **kwargs):
        if not any(p.requires_grad for p in self.model.parameters()):
            return None  # e.g. Pop: nothing to learn, evaluated once
        return fused_adam(super()._build_optimizer(**kwargs))

    # ---- one epoch: RecBole's step (AMP, clipping) with a non-finite check on loss and gradients --
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """Train one epoch; the first NaN or inf in a loss or gradient stops the run, naming the batch
        (a single process: RecBole's distributed hooks are not used by this plug-in)."""
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        batches = tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink")) \
            if show_progress else train_data
        scaler = self.scaler
        total = None
        for batch_idx, interaction in enumerate(batches):
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad()
            with torch.autocast(device_type=self.device.type, enabled=self.enable_amp):
                losses = loss_func(interaction)
            parts = losses if isinstance(losses, tuple) else (losses,)
            values = tuple(part.item() for part in parts)
            if not all(math.isfinite(v) for v in values):
                raise NonFiniteError(f"{self._where(epoch_idx, batch_idx)}: training loss is "
                                     f"{values if len(values) > 1 else values[0]}; stopped before the step "
                                     f"(the last good checkpoint is {self.saved_model_file})")
            total = (values if len(values) > 1 else values[0]) if total is None else (
                tuple(a + b for a, b in zip(total, values)) if len(values) > 1 else total + values[0])
            scaler.scale(sum(parts)).backward()
            if not self.enable_scaler:  # with AMP the scaler skips inf-gradient steps on purpose
                self._check_gradients(epoch_idx, batch_idx)
            if self.clip_grad_norm:
                scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones (a no-op when off)
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
        return total

    def _check_gradients(self, epoch: int, batch: int) -> None:
        named = [(name, p.grad) for name, p in self.model.named_parameters() if p.grad is not None]
        # One sum per tensor instead of an element-wise isfinite mask: a NaN or inf anywhere makes the sum
        # non-finite (IEEE), so a finite total proves every element finite, at a fraction of the cost on a
        # large item table (bench/grad_check.py). Only a non-finite total, which finite values can also reach
        # by overflowing, pays for the exact element-wise search below.
        if not named or bool(torch.isfinite(torch.stack([g.sum(dtype=torch.float32) for _, g in named]).sum())):
            return
        name = next((name for name, g in named if not bool(torch.isfinite(g).all())), None)
        if name is None:
            return
        raise NonFiniteError(f"{self._where(epoch, batch)}: the gradient of {name} holds NaN or inf; stopped before "
                             f"the step (the last good checkpoint is {self.saved_model_file})")

    # ---- checkpoints -------------------------------------------------------------------------
    def _cdsr_state(self, epoch: int, selector: ModelSelector, train_data=None, stopped: str | None = None) -> dict:
        generator = getattr(train_data, "generator", None)
        return {
            "format": checkpoint.FORMAT,
            "run": self.run_identity,
            "stopped": stopped,  # why training ended before its last epoch; a resume then trains no more
            "random": checkpoint.rng_state(),
            "data_order": generator.get_state() if generator is not None else None,
            "losses": list(self.epoch_losses),
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "selector": selector.state_dict(),
            "lr_decay": self.lr_decay.state_dict() if self.lr_decay else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "result": self.result.to_json(),
            "history": self.history,
            "seconds": (self.train_seconds, self.eval_seconds, self.budget_used),
            "budget_clock": self.budget_clock,
            "wall_seconds": self.wall_seconds_so_far(),
        }

    def _write(self, state: dict, path: str) -> None:
        with io.atomic_file(path) as handle:  # never leave a half-written checkpoint behind
            torch.save(state, handle, pickle_protocol=4)

    def resume_from_last(self, selector: ModelSelector) -> bool:
        """Restore model, optimiser, selection state, results, random states and data order from the
        ``-last`` checkpoint, after checking it belongs to this run (CheckpointError otherwise)."""
        if not os.path.isfile(self.saved_model_file):
            self.logger.warning(set_color(f"resume=True but there is no checkpoint {self.saved_model_file}: "
                                          f"starting from epoch 0", "yellow"))
            return False
        state = checkpoint.load(self.saved_model_file, map_location=self.device)
        if self.run_identity is not None:
            checkpoint.check_belongs(self.saved_model_file, state, self.run_identity)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        if self.optimizer and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        selector.load_state_dict(state["selector"])
        if self.lr_decay and state.get("lr_decay"):  # the learning rate itself is in the optimiser's state
            self.lr_decay.load_state_dict(state["lr_decay"])
        if self.scaler.is_enabled() and state.get("scaler"):  # absent before the scaler was kept per run
            self.scaler.load_state_dict(state["scaler"])
        self.result, self.history = RunResult.from_json(state["result"]), state["history"]
        self.train_seconds, self.eval_seconds, self.budget_used = state["seconds"]
        self.budget_clock = state.get("budget_clock")  # absent in checkpoints written before it was kept
        if self.budget_clock is None and self.budget_used > 0:
            self.logger.info(set_color(f"{self.saved_model_file} does not say which clock its "
                                       f"{self.budget_used:.0f} budget seconds counted (written before checkpoints "
                                       f"recorded it); they are taken as this run's", "yellow"))
        self.earlier_wall_seconds = state.get("wall_seconds")  # absent in checkpoints written before it was kept
        self.epoch_losses = list(state["losses"])
        self._resumed_random = {"random": state["random"], "data_order": state["data_order"]}
        self._resumed_stop = state["stopped"]
        self.start_epoch = state["epoch"] + 1
        if self._resumed_stop:
            self.logger.info(set_color(f"Resumed from {self.saved_model_file}: that run had stopped after epoch "
                                       f"{state['epoch']} ({self._resumed_stop}); no more training", "blue"))
        else:
            self.logger.info(set_color(f"Resumed from {self.saved_model_file} at epoch {self.start_epoch}", "blue"))
        return True

    # ---- training with recipe selection ------------------------------------------------------
    def _check_budget_clock(self, budget: TrainingBudget) -> None:
        """A resumed run's budget must count what its checkpoint's spent seconds count: CPU seconds carried
        into a wall-clock budget (or the reverse) would stop it at the wrong time and report a sum of both."""
        if budget.limit is None:
            return  # nothing is counted against a limit; the spent seconds keep their kind
        was, now = self.budget_clock, budget.clock_name
        if was not in (None, now) and self.budget_used > 0:
            raise CheckpointMismatchError(
                f"{self.saved_model_file}: its training budget counted {was} seconds ({self.budget_used:.0f} s spent, "
                f"under {BUDGET_KEYS[was]}); this run's budget counts {now} seconds ({BUDGET_KEYS[now]}), and the two "
                f"would add up to neither. Resume under {BUDGET_KEYS[was]}"
                f"{' with max_train_cpu_minutes: ~' if was == 'wall' else ''}, or run without --resume=True")
        self.budget_clock = now

    def _evaluate_split(self, evaluator: ProtocolEvaluator, split: str, pass_index: int, show_progress: bool) -> dict:
        start = time.monotonic()
        result = evaluator.evaluate(self.model, split, pass_index=pass_index, show_progress=show_progress)
        self.eval_seconds += time.monotonic() - start
        return result

    def _keep_best(self, domains: list, epoch: int, saved: bool) -> None:
        """Keep this epoch's weights as the selected ones of ``domains``: their ``-best`` checkpoints, or
        (saved=False) a copy in memory, dropped once no domain selects that epoch any more.

        The weights go to a ``.pending`` file that becomes the ``-best`` one only after this epoch's ``-last``
        is written (:meth:`_promote_pending_best`): written straight over ``-best``, a crash before ``-last``
        left a ``-best`` of an epoch the resumed run had not selected, and when the resumed epoch did not
        improve again (a budget cut at another batch, fewer epochs) its test pass refused the run."""
        if saved:
            state = self.model.state_dict()
            for d in domains:
                self._write({"config": self.config, "run": self.run_identity, "epoch": epoch, "state_dict": state},
                            self.pending_best_file[d])
            return
        self._best_states[epoch] = copy_state(self.model)
        selected = set(self.result.best_epoch.values())
        self._best_states = {e: s for e, s in self._best_states.items() if e in selected}

    def _promote_pending_best(self) -> None:
        """After an epoch's ``-last`` is written: its improving weights become the ``-best`` checkpoints."""
        for d in DOMAINS:
            if os.path.isfile(self.pending_best_file[d]):
                os.replace(self.pending_best_file[d], self.best_model_file[d])

    def _settle_pending_best(self) -> None:
        """Before training: a ``.pending`` file left by a crash is promoted when the ``-last`` this run resumed
        from selected its epoch (the crash came between that ``-last`` and the promotion), and removed
        otherwise (its epoch's ``-last`` was never written, so that epoch trains again; or this run did not
        resume and selected nothing yet)."""
        for d in DOMAINS:
            path = self.pending_best_file[d]
            if not os.path.isfile(path):
                continue
            selected = self.result.best_epoch.get(d)
            if selected is not None and compat.load_checkpoint(path, map_location="cpu").get("epoch") == selected:
                os.replace(path, self.best_model_file[d])
            else:
                os.remove(path)

    def _selected_state(self, domain: str, epoch: int) -> dict:
        """The weights ``domain`` selected at ``epoch``: kept in memory, or its ``-best`` checkpoint (also
        after a resume), which must hold that very epoch."""
        if epoch in self._best_states:
            return self._best_states[epoch]
        path = self.best_model_file[domain]
        if not os.path.isfile(path):
            raise CheckpointError(f"{path} is missing: domain {domain}'s test numbers come from the weights of its "
                                  f"selected epoch {epoch}, which that file holds; run again without --resume=True")
        state = compat.load_checkpoint(path, map_location=self.device)
        if state.get("epoch") != epoch:
            raise CheckpointError(f"{path} holds epoch {state.get('epoch')}, but domain {domain} selected epoch {epoch}; "
                                  f"its test numbers would come from other weights. Run again without --resume=True")
        # the same epoch of another run (other settings, same file names: two runs at once over one
        # --checkpoint_dir). -best files written before they carried their run are checked on the epoch only
        difference = checkpoint.mismatch(state["run"], self.run_identity) \
            if state.get("run") is not None and self.run_identity is not None else None
        if difference:
            raise CheckpointMismatchError(
                f"{path} was written by another run ({difference}), though for the same epoch {epoch}: domain "
                f"{domain}'s test numbers would come from its weights. Another process with other settings shares "
                f"this --checkpoint_dir? Give each run its own, and run again")
        return state["state_dict"]

    def _test_selected(self, evaluator: ProtocolEvaluator, show_progress: bool) -> None:
        """Evaluate test once per selected epoch still without test numbers, with that epoch's weights and
        negatives (pass index = epoch, as a test pass at that epoch would have drawn); the model then holds
        its last epoch's weights again."""
        pending = self.result.pending_test()
        if not pending:
            return
        last = copy_state(self.model)
        for epoch in sorted(set(pending.values())):
            domains = [d for d in DOMAINS if pending.get(d) == epoch]
            self.model.load_state_dict(self._selected_state(domains[0], epoch))
            test = self._evaluate_split(evaluator, "test", epoch, show_progress)
            for d in domains:
                self.result.add_test(d, test)
            self.logger.info(set_color(f"epoch {epoch} test ({', '.join(domains)} selected it)", "blue") + "\n"
                             + format_domain_metrics(test, self.domain_names))
        self.model.load_state_dict(last)
        self._best_states = {}

    def fit_cdsr(self, train_data, evaluator: ProtocolEvaluator, selector: ModelSelector,
                 show_progress: bool = False, saved: bool = True) -> dict:
        """Train, validate per the recipe, and return the run: ``result`` (a RunResult: each domain's numbers
        at its selected epoch), epochs, stop reason and seconds."""
        cpu_minutes = self.config["max_train_cpu_minutes"]
        budget = TrainingBudget(cpu_minutes if cpu_minutes is not None else self.config["max_train_minutes"],
                                cpu=cpu_minutes is not None)
        budget.used = self.budget_used
        self._check_budget_clock(budget)
        epochs = self.epochs if self.trainable else 1
        if epochs < 1:
            raise EmptyRunError(f"epochs={epochs}: no training epoch would run and nothing would be evaluated; "
                                f"give --epochs=N with N >= 1")
        if self._resumed_random is not None:  # last, so nothing draws between the restore and the first batch
            checkpoint.set_rng_state(self._resumed_random["random"])
            if self._resumed_random["data_order"] is not None and getattr(train_data, "generator", None) is not None:
                train_data.generator.set_state(self._resumed_random["data_order"])
            self._resumed_random = None
        if saved or self.start_epoch > 0:  # a resumed run tests earlier epochs from the -best files, saving or not
            self._settle_pending_best()
        stop_reason = self._resumed_stop or "max epochs"
        for epoch in range(epochs if self._resumed_stop else self.start_epoch, epochs):
            out_of_time = cut = False
            if self.trainable:
                start = time.monotonic()
                loader = _UntilBudget(train_data, budget) if budget.limit is not None else train_data
                loss = self._train_epoch(loader, epoch, show_progress=show_progress)
                self.epoch_losses.append(loss)
                self.train_seconds += time.monotonic() - start
                self.logger.info(self._generate_train_loss_output(epoch, start, time.monotonic(), loss))
                if isinstance(loader, _UntilBudget):  # RecBole's line gives wall time; a CPU cap is spent in CPU time
                    self.logger.info(budget.spent_line(epoch, loader.spent))
                self.budget_used = budget.used
                cut = isinstance(loader, _UntilBudget) and loader.cut
                # spent on the final epoch's last batch, the epochs ended the run, not the budget
                out_of_time = budget.exhausted() and (cut or epoch + 1 < epochs)
            last = epoch + 1 == epochs or out_of_time  # the last epoch is always validated
            if last or (selector.wants_validation(epoch) and (epoch + 1) % self.eval_step == 0):
                valid = self._evaluate_split(evaluator, "valid", epoch, show_progress)
                improved = selector.update(valid["sampled"])
                decayed = self.lr_decay.step(bool(improved), self.optimizer) if self.lr_decay else None
                self.history.append({"epoch": epoch, "valid": valid})
                self.logger.info(set_color(f"epoch {epoch} valid", "green") + "\n" + format_domain_metrics(valid, self.domain_names))
                if improved:
                    for d in improved:
                        self.result.select(d, epoch, valid)  # its test numbers: _test_selected, from these weights
                    self._keep_best(improved, epoch, saved)
                    self.logger.info(set_color(f"improved {improved}", "blue") + " (tested when training ends)")
                if decayed is not None:
                    self.logger.info(set_color(f"no improvement in {self.lr_decay.patience} validations: learning rate "
                                               f"x {self.lr_decay.factor} = {decayed:.3g}", "blue"))
            stopped = why_training_stops(selector.should_stop, out_of_time, budget, cut)
            if saved:
                self._write(self._cdsr_state(epoch, selector, train_data, stopped), self.saved_model_file)
                self._promote_pending_best()
            if stopped:
                stop_reason = stopped
                break
        self.logger.info(f"Finished training ({stop_reason}); train {self.train_seconds:.0f}s, eval {self.eval_seconds:.0f}s")
        if not self.history:
            raise EmptyRunError(f"{self.config['model']} on {self.config['dataset']}: no epoch was evaluated "
                                f"(epochs={epochs}, started at epoch {self.start_epoch}); no results")
        unselected = [d for d in DOMAINS if d not in self.result.best_epoch]
        if unselected:
            names = ", ".join(f"{d} ({self.domain_names.get(d, d)})" for d in unselected)
            raise EmptyRunError(f"{self.config['model']} on {self.config['dataset']}: no epoch was selected for "
                                f"domain {names} in {len(self.history)} validations; no results")
        self._test_selected(evaluator, show_progress)
        return {
            "result": self.result,
            "epochs_run": (self.history[-1]["epoch"] + 1) if self.history else 0,
            "stop_reason": stop_reason,
            "train_seconds": round(self.train_seconds, 2),
            # the budget's own count, which is CPU time only under max_train_cpu_minutes (a wall budget's
            # seconds are train_seconds'); before, a wall budget's seconds were reported as CPU seconds
            "train_cpu_seconds": round(budget.used, 2) if budget.limit is not None and budget.cpu else None,
            "eval_seconds": round(self.eval_seconds, 2),
            "earlier_wall_seconds": self.earlier_wall_seconds,
        }

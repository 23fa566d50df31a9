"""Evaluation throughput: our sampled-protocol evaluator vs RecBole's own ``uni999`` path.

Both paths score the same trained SASRec on the same test cases of one dataset (default fk_abxi):

* **ours** -- ``ProtocolEvaluator.evaluate(model, 'test')`` over ALL test cases: each history is
  encoded once (``model.full_sort_predict``), the target and its 999 negatives are gathered from
  that row. The same pass also yields the full-ranking ranks, so the time reported here covers
  both protocols (it is an upper bound for the sampled protocol alone). The per-pass negative
  draw (``redraw: every_pass``) is included.
* **RecBole** -- RecBole 1.2.1's standard path for ``eval_args.mode: uni999`` on a sequential
  model: RecBole's ``SequentialDataset`` built from the same atomic files with
  ``eval_args {'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'mode': 'uni999'}``, its test split
  restricted to the users of our first ``--cases`` test cases, ``NegSampleEvalDataLoader`` and
  ``Trainer.evaluate``, which calls ``model.predict`` once per candidate row, i.e. the sequence
  encoder runs 1,000 times per case. Two samplers, both RecBole's ``RepeatableSampler`` (the one
  RecBole uses for sequential models):
    - ``recbole[our negatives]``: a subclass whose ``sample_by_user_ids`` returns our 999
      negatives of each case (the same candidates as ours; scores and ranks are compared);
    - ``recbole[own uni999]``: RecBole's own uniform draw (over all items, excluding the target).

Before timing anything the script checks that RecBole's histories (last MAX_ITEM_LIST_LENGTH
items, right-padded) and targets equal ours for every compared case, and that the item/user id
maps are identical. After timing it checks, per compared case, that the target's score is the
same in both paths (within 1e-4) and, with our negatives, that the candidate set and the sampled
rank agree too.

    .venv/bin/python bench/eval_throughput.py [--cases 32] [--dataset fk_abxi]

Writes bench/out/eval_throughput.json. Nothing is written into the repository otherwise
(RecBole's checkpoint and tensorboard folders go to a temporary working directory).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import recbole_ifcdsr  # noqa: F401  (applies the compat patches before RecBole is used)
from recbole.data.dataloader import NegSampleEvalDataLoader, TrainDataLoader
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.sampler import RepeatableSampler
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_ifcdsr.config import Config
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
from recbole_ifcdsr.registry import get_model

BENCH_DIR = Path(__file__).resolve().parent
OUT_FILE = BENCH_DIR / "out" / "eval_throughput.json"
SCORE_TOL = 1e-4


class _UntilDeadline:
    """A RecBole train loader that stops yielding at the first batch past a wall-clock deadline."""

    def __init__(self, loader, seconds: float):
        self._loader, self._seconds, self.batches = loader, seconds, 0

    def __iter__(self):
        deadline = time.time() + self._seconds
        for batch in self._loader:
            yield batch
            self.batches += 1
            if time.time() >= deadline:
                return

    def __len__(self):
        return len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class FixedNegativesSampler(RepeatableSampler):
    """RecBole's RepeatableSampler, but ``sample_by_user_ids`` returns our precomputed negatives.

    Layout as RecBole documents it: result[k * len(user_ids) + j] is the k-th negative of user j.
    """

    def __init__(self, phases, dataset, negatives_by_user: dict):
        super().__init__(phases, dataset, "uniform")
        self.negatives_by_user = negatives_by_user

    def sample_by_user_ids(self, user_ids, item_ids, num):
        negs = np.stack([self.negatives_by_user[int(u)] for u in user_ids], axis=1)  # [num, n_users]
        if negs.shape[0] != num:
            raise ValueError(f"asked for {num} negatives, have {negs.shape[0]}")
        return torch.from_numpy(negs.reshape(-1).copy())


class RecordingTrainer(Trainer):
    """RecBole's Trainer, unchanged, except that ``_neg_sample_batch_eval`` keeps, per user, the
    target's score, the candidate columns and the sampled rank (for the checks after timing)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.seen: dict[int, dict] = {}

    def _neg_sample_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._neg_sample_batch_eval(batched_data)
        row_idx = batched_data[1]
        uids = interaction[self.config["USER_ID_FIELD"]]
        for b, item in zip(positive_u.tolist(), positive_i.tolist()):
            row = scores[b]
            target = float(row[item])
            finite = torch.isfinite(row)
            uid = int(uids[(row_idx == b).nonzero()[0, 0]])
            self.seen[uid] = {
                "target": item,
                "target_score": target,
                "candidates": finite.nonzero().view(-1).numpy(),
                "rank": 1 + int((row[finite] > target).sum()),
            }
        return interaction, scores, positive_u, positive_i


def _train(config, data, model, seconds: float) -> dict:
    loader = _UntilDeadline(TrainDataLoader(config, data.recbole_train_dataset(), None, shuffle=True), seconds)
    trainer = Trainer(config, model)
    start = time.time()
    loss = trainer._train_epoch(loader, 0, show_progress=False)
    return {"batches": loader.batches, "seconds": round(time.time() - start, 2), "loss_sum": float(loss)}


def _time_ours(evaluator: ProtocolEvaluator, model, repeats: int) -> dict:
    start = time.perf_counter()
    evaluator.evaluate(model, "test", pass_index=0)  # cold: also builds the padded inputs once
    cold = time.perf_counter() - start
    times, times_both = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluator.evaluate(model, "test", pass_index=0, protocols=("sampled",))
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluator.evaluate(model, "test", pass_index=0)  # sampled + full ranks from one pass
        times_both.append(time.perf_counter() - start)
    # Breakdown (not part of the rate): the per-pass negative draw, and the encoder + all-item
    # scoring alone (full_sort_predict over the same batches); the rest is gathering and ranking.
    start = time.perf_counter()
    evaluator.sampler.negatives("test", 0)
    draw = time.perf_counter() - start
    inputs = evaluator._split_inputs("test")
    n = len(inputs["target"])
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, evaluator.batch_size):
            sl = slice(s, min(s + evaluator.batch_size, n))
            model.full_sort_predict(Interaction({evaluator.item_seq_field: inputs["seq"][sl],
                                                 evaluator.item_len_field: inputs["len"][sl],
                                                 evaluator.dataset.uid_field: inputs["user"][sl]}))
    forward = time.perf_counter() - start
    seconds = statistics.median(times)
    return {"cases": n, "seconds": seconds, "cases_per_s": n / seconds, "cold_seconds": cold,
            "repeat_seconds": times, "both_protocols_seconds": statistics.median(times_both),
            "both_protocols_cases_per_s": n / statistics.median(times_both), "breakdown_seconds": {
                "negative_draw": draw, "full_sort_predict": forward,
                "gather_and_rank_rest": max(seconds - draw - forward, 0.0)}}


def _recbole_test_subset(config, data: CrossDomainSequentialDataset, n_cases: int):
    """RecBole's own SequentialDataset test split (LS valid_and_test, TO), restricted to the users of
    our first ``n_cases`` test cases; checks ids, histories and targets against ours."""
    seq = SequentialDataset(config)
    for field in (data.uid_field, data.iid_field):
        if not np.array_equal(seq.field2id_token[field], data.field2id_token[field]):
            raise SystemExit(f"RecBole's {field} id map differs from ours; the model cannot be shared")
    test = seq.build()[2]
    cases = data.eval_cases("test")
    ours = {int(u): i for i, u in enumerate(cases.user_ids[:n_cases])}
    uids = test.inter_feat[test.uid_field].numpy()
    rows = np.flatnonzero(np.isin(uids, list(ours)))
    sub = test.copy(test.inter_feat[torch.from_numpy(rows)])
    max_len = int(config["MAX_ITEM_LIST_LENGTH"])
    seq_field = data.iid_field + config["LIST_SUFFIX"]
    len_field = config["ITEM_LIST_LENGTH_FIELD"]
    mismatches = []
    inter = sub.inter_feat
    for r in range(len(inter)):
        uid = int(inter[data.uid_field][r])
        i = ours[uid]
        hist = cases.histories[i][-max_len:]
        length = int(inter[len_field][r])
        padded = inter[seq_field][r].numpy()
        same = (
            int(inter[data.iid_field][r]) == int(cases.targets[i])
            and length == len(hist)
            and np.array_equal(padded[:length], hist)
            and not padded[length:].any()
        )
        if not same:
            mismatches.append(str(cases.users[i]))
    check = {
        "recbole_rows": int(len(inter)),
        "our_cases": int(len(ours)),
        "histories_and_targets_equal": int(len(inter)) - len(mismatches),
        "mismatched_users": mismatches[:10],
        "example": {
            "user": str(cases.users[0]),
            "target": str(data.field2id_token[data.iid_field][cases.targets[0]]),
            "history_len_untruncated": int(len(cases.histories[0])),
            "history_len_fed": int(min(len(cases.histories[0]), max_len)),
        },
    }
    if len(inter) != len(ours) or mismatches:
        raise SystemExit(f"RecBole's test cases differ from ours: {check}")
    return seq, sub, check


def _time_recbole(config, model, full_dataset, subset, sampler) -> tuple[dict, RecordingTrainer]:
    trainer = RecordingTrainer(config, model)
    start = time.perf_counter()
    loader = NegSampleEvalDataLoader(config, subset, sampler.set_phase("test"), shuffle=False)
    result = trainer.evaluate(loader, load_best_model=False, show_progress=False)
    seconds = time.perf_counter() - start
    n = len(trainer.seen)
    return {"cases": n, "seconds": seconds, "cases_per_s": n / seconds,
            "recbole_metrics": {k: float(v) for k, v in result.items()}}, trainer


def _check_scores(model, evaluator: ProtocolEvaluator, data, n_cases: int, negatives: np.ndarray,
                  seen_same: dict, seen_own: dict) -> dict:
    """Target scores from our path (full_sort_predict, as the evaluator calls it) vs RecBole's rows."""
    inputs = evaluator._split_inputs("test")
    sl = slice(0, n_cases)
    batch = Interaction({evaluator.item_seq_field: inputs["seq"][sl], evaluator.item_len_field: inputs["len"][sl],
                         data.uid_field: inputs["user"][sl]})
    with torch.no_grad():
        model.eval()
        scores = model.full_sort_predict(batch).view(n_cases, -1)
    target = inputs["target"][sl]
    ours = scores.gather(1, target.unsqueeze(1)).squeeze(1).numpy()
    our_ranks = evaluator.last_ranks["test"]["sampled"][:n_cases]
    out = {"cases": n_cases, "tolerance": SCORE_TOL}
    for name, seen in (("our_negatives", seen_same), ("own_uni999", seen_own)):
        diffs, cand_ok, rank_ok = [], 0, 0
        for i in range(n_cases):
            rec = seen[int(inputs["user"][i])]
            assert rec["target"] == int(target[i])
            diffs.append(abs(rec["target_score"] - float(ours[i])))
            if name == "our_negatives":
                cand_ok += np.array_equal(np.sort(rec["candidates"]), np.sort(np.r_[negatives[i], target[i]]))
                rank_ok += rec["rank"] == int(our_ranks[i])
        out[name] = {"max_abs_target_score_diff": max(diffs), "within_tolerance": int(sum(d <= SCORE_TOL for d in diffs))}
        if name == "our_negatives":
            out[name].update({"same_candidate_set": int(cand_ok), "same_sampled_rank": int(rank_ok)})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fk_abxi")
    parser.add_argument("--cases", type=int, default=32, help="test cases scored by RecBole's path (the first N)")
    parser.add_argument("--train-seconds", type=float, default=20.0, help="wall-clock training budget for SASRec")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of our evaluator (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both paths")
    parser.add_argument("--recbole-eval-batch-size", type=int, default=None,
                        help="RecBole's eval_batch_size (rows per model.predict call); default: the config's, as ours")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--skip-own-uni999", action="store_true", help="time RecBole only with our negatives")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole 1.2.1 on today's pandas/torch
    torch.set_num_threads(args.threads)
    workdir = tempfile.TemporaryDirectory(prefix="eval_throughput_")
    os.chdir(workdir.name)  # RecBole's Trainer creates saved/ and log_tensorboard/ in the working directory
    config = Config(model="SASRec", dataset=args.dataset, config_dict={
        "show_progress": False, "seed": args.seed, "checkpoint_dir": os.path.join(workdir.name, "saved"),
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni999"},
        "use_gpu": False,
    })
    init_seed(config["seed"], config["reproducibility"])
    wall = time.time()

    data = CrossDomainSequentialDataset(config)
    model = get_model("SASRec")(config, data).to(config["device"])
    print(f"{args.dataset}: {len(data.eval_cases('test'))} test cases, {data.item_num - 1} items; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    train = _train(config, data, model, args.train_seconds)
    print(f"trained SASRec: {train['batches']} batches in {train['seconds']} s", flush=True)

    evaluator = ProtocolEvaluator(data, config)
    ours = _time_ours(evaluator, model, args.repeats)
    b = ours["breakdown_seconds"]
    print(f"ours: {ours['cases']} cases in {ours['seconds']:.2f} s (median of {args.repeats}); breakdown: negative draw "
          f"{b['negative_draw']:.2f} s, full_sort_predict {b['full_sort_predict']:.2f} s, gather+rank "
          f"{b['gather_and_rank_rest']:.2f} s; sampled+full from the same pass: {ours['both_protocols_seconds']:.2f} s "
          f"({ours['both_protocols_cases_per_s']:.0f} cases/s)", flush=True)

    n = min(args.cases, len(data.eval_cases("test")))
    if args.recbole_eval_batch_size:
        config["eval_batch_size"] = args.recbole_eval_batch_size  # read by RecBole's loader and Trainer only
    seq, subset, input_check = _recbole_test_subset(config, data, n)
    print(f"RecBole's test split: {input_check['histories_and_targets_equal']}/{n} histories and targets equal ours", flush=True)
    negatives = evaluator.sampler.negatives("test", 0)
    by_user = {int(u): negatives[i] for i, u in enumerate(data.eval_cases("test").user_ids[:n])}

    init_seed(config["seed"], config["reproducibility"])
    same, trainer_same = _time_recbole(config, model, seq, subset,
                                       FixedNegativesSampler(["train", "valid", "test"], seq, by_user))
    print(f"recbole[our negatives]: {same['cases']} cases in {same['seconds']:.2f} s", flush=True)
    own, seen_own = None, trainer_same.seen
    if not args.skip_own_uni999:
        init_seed(config["seed"], config["reproducibility"])
        own, trainer_own = _time_recbole(config, model, seq, subset,
                                         RepeatableSampler(["train", "valid", "test"], seq, "uniform"))
        seen_own = trainer_own.seen
        print(f"recbole[own uni999]: {own['cases']} cases in {own['seconds']:.2f} s", flush=True)

    scores = _check_scores(model, evaluator, data, n, negatives, trainer_same.seen, seen_own)

    rows = [("ours (ProtocolEvaluator, sampled)", ours), ("recbole[our negatives]", same)]
    if own:
        rows.append(("recbole[own uni999]", own))
    print()
    print(f"| {'path':<40} | {'cases':>6} | {'seconds':>8} | {'cases/s':>9} | {'ours / this':>11} |")
    print(f"|{'-' * 42}|{'-' * 8}|{'-' * 10}|{'-' * 11}|{'-' * 13}|")
    for name, r in rows:
        ratio = "-" if r is ours else f"{ours['cases_per_s'] / r['cases_per_s']:.0f}x"
        print(f"| {name:<40} | {r['cases']:>6} | {r['seconds']:>8.2f} | {r['cases_per_s']:>9.2f} | {ratio:>11} |")
    print()
    ok = all(scores[k]["within_tolerance"] == n for k in ("our_negatives", "own_uni999"))
    ok &= scores["our_negatives"]["same_candidate_set"] == n and scores["our_negatives"]["same_sampled_rank"] == n
    print(f"check on the {n} compared cases: target score |diff| <= {SCORE_TOL} "
          f"(max {max(scores['our_negatives']['max_abs_target_score_diff'], scores['own_uni999']['max_abs_target_score_diff']):.2e}); "
          f"same candidates {scores['our_negatives']['same_candidate_set']}/{n}; "
          f"same sampled rank {scores['our_negatives']['same_sampled_rank']}/{n} -> {'OK' if ok else 'MISMATCH'}")

    payload = {
        "dataset": args.dataset,
        "model": "SASRec",
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}, "
                   f"threads {torch.get_num_threads()}, device {config['device']}",
        "eval_batch_size": {"ours": evaluator.batch_size, "recbole": int(config["eval_batch_size"])},
        "max_item_list_length": int(config["MAX_ITEM_LIST_LENGTH"]),
        "train": train,
        "ours": ours,
        "recbole_our_negatives": same,
        "recbole_own_uni999": own,
        "ratio_ours_over_recbole_our_negatives": ours["cases_per_s"] / same["cases_per_s"],
        "ratio_ours_over_recbole_own_uni999": (ours["cases_per_s"] / own["cases_per_s"]) if own else None,
        "input_check": input_check,
        "score_check": scores,
        "checks_ok": bool(ok),
        "wall_seconds": round(time.time() - wall, 1),
        "command": " ".join([Path(sys.executable).name, "bench/eval_throughput.py", *sys.argv[1:]]),
    }
    OUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUT_FILE.write_text(json.dumps(payload, indent=2))
    print(f"written {OUT_FILE} (wall {payload['wall_seconds']} s)")
    os.chdir(BENCH_DIR)
    workdir.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

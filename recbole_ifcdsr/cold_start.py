"""Cold-start measurement (issue 17): how well models rank test targets they never saw in training.

    python -m recbole_ifcdsr.cold_start [--out results/cold_start] [--models Pop,SASRec,IFCDSR,LLMEMF]
        [--seeds 3] [--fraction 0.1] [--max_train_cpu_minutes 2] [--any_config_key=value ...]

(``--any_config_key=value`` or ``--any_config_key value`` reaches every run's Config; the settings this
script sets itself (seed, data_path, checkpoint_dir, results_file) are refused there.)

1. ``<out>/data/fk_llmcdsr``: the shipped fk_llmcdsr with ``--fraction`` of its distinct test-target items
   (drawn with numpy seed 0, listed in ``cold_items.txt``) removed from every training sequence. Valid and
   test files and the item file (titles, so the text store covers them) are unchanged.
2. Each (model, seed) is one ``run`` on it (results JSON in ``<out>/runs``; a finished run is reused, and one
   made with another budget or options is refused, as is a held-out copy of another ``--fraction``: one
   ``--out`` holds one measurement).
3. Test cases are re-scored with each domain's selected weights through the same evaluator (full ranking
   and the dataset's sampled protocol), then split into cases whose target is a held-out item (cold) and
   the rest (the re-scored cases must reproduce each run's own test numbers, or the script stops).
   LLMEMF is scored twice: as trained (held-out items' ID rows were trained only as softmax negatives,
   never as a target or history item, which pushes their scores down) and with the untrained rule
   (``model/losses.py``: their ID slot takes the text table's probability, as for items added at serving
   time). IFCDSR here has no image store, so it has no content table and no
   rule variant.
4. ``<out>/cold_start.md`` / ``.json``: HR@10, NDCG@10 and MRR (mean and std over seeds, both domains'
   cases pooled, each ranked within its own domain), cold vs other, per protocol.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from recbole_ifcdsr import io
from recbole_ifcdsr.cli import CommandParser, number_option

METRICS = ["HR@10", "NDCG@10", "MRR"]


def prepare_data(out: Path, fraction: float) -> tuple[Path, list[str]]:
    """The held-out copy of fk_llmcdsr under ``out/data``; returns (data_path, held-out tokens). A finished copy
    is reused only if it holds the items this ``fraction`` draws (a copy made with another fraction was reused
    as it was, under the new fraction's name)."""
    from recbole_ifcdsr.config import Config
    from recbole_ifcdsr.data.packing import prepare_dataset_dir
    from recbole_ifcdsr.errors import ConfigError
    from recbole_ifcdsr.paths import default_data_path

    data_path = out / "data"
    target = data_path / "fk_llmcdsr"
    listing = target / "cold_items.txt"
    Config("SASRec", "fk_llmcdsr", config_dict={"state": "WARNING"}, argv=[])
    source = default_data_path() / "fk_llmcdsr"
    prepare_dataset_dir(source)
    test = (source / "fk_llmcdsr.test.inter").read_text().splitlines()
    last = {}
    for line in test[1:]:
        user, item = line.split("\t")[:2]
        last[user] = item  # rows of a user are contiguous and in time order: the last one is the target
    targets = sorted(set(last.values()))
    rng = np.random.default_rng(0)
    cold = sorted(rng.choice(targets, size=max(1, round(fraction * len(targets))), replace=False).tolist())
    if listing.is_file():
        held = listing.read_text().split()
        if held != cold:
            raise ConfigError(f"{target} holds out {len(held)} items, not the {len(cold)} that --fraction {fraction} "
                              f"draws: it was made with another --fraction; give another --out (or remove {out})")
        return data_path, held
    target.mkdir(parents=True, exist_ok=True)
    for split in ("valid", "test"):
        io.copy_file(source / f"fk_llmcdsr.{split}.inter", target / f"fk_llmcdsr.{split}.inter")
    io.copy_file(source / "fk_llmcdsr.item", target / "fk_llmcdsr.item")
    cold_set = set(cold)
    train = (source / "fk_llmcdsr.train.inter").read_text().splitlines(keepends=True)
    kept = [train[0]] + [line for line in train[1:] if line.split("\t")[1].rstrip("\n") not in cold_set]
    io.write_text(target / "fk_llmcdsr.train.inter", "".join(kept))
    io.write_text(listing, "\n".join(cold) + "\n")  # last: its presence means the folder is complete
    print(f"held out {len(cold)} of {len(targets)} test-target items; removed {len(train) - len(kept)} training rows")
    return data_path, cold


def case_ranks(model_name: str, settings: dict, checkpoint_dir: Path, seed: int, cold: list, rule: bool,
               options: list[str]) -> dict:
    """{protocol: (ranks of every test case, cold-target mask)} with each domain's selected weights;
    ``options``: the runs' ``--key=value`` settings, so the model is built as it was trained."""
    import torch
    from recbole.utils import init_seed

    from recbole_ifcdsr import compat
    from recbole_ifcdsr.config import Config
    from recbole_ifcdsr.data.dataset import DOMAINS, CrossDomainSequentialDataset
    from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
    from recbole_ifcdsr.registry import get_model

    config = Config(model_name, "fk_llmcdsr", config_dict={**settings, "seed": seed}, argv=options)
    init_seed(seed, True)
    data = CrossDomainSequentialDataset(config)
    net = get_model(model_name)(config, data)
    token2id = data.field2token_id[data.iid_field]
    cold_ids = torch.as_tensor([token2id[t] for t in cold])
    if rule:
        net.untrained = torch.zeros(data.item_num, dtype=torch.bool)
        net.untrained[cold_ids] = True
    evaluator = ProtocolEvaluator(data, config)
    cases = data.eval_cases("test")
    domains = np.asarray(cases.target_domains)
    is_cold = np.isin(np.asarray(cases.targets), cold_ids.numpy())
    compat.trust_checkpoint_dir(checkpoint_dir)  # this script's own runs wrote them
    out = {}
    for d, name in enumerate(DOMAINS):
        path = checkpoint_dir / f"{model_name}-fk_llmcdsr-seed{seed}-best_{name}.pth"
        net.load_state_dict(compat.load_checkpoint(path, map_location="cpu")["state_dict"])
        evaluator.evaluate(net, "test")
        for protocol, ranks in evaluator.last_ranks["test"].items():
            out.setdefault(protocol, np.zeros(len(domains)))[domains == d] = ranks[domains == d]
    return {p: (r, is_cold, domains) for p, r in out.items()}


def check_reproduces_run(results: dict, protocol: str, ranks: np.ndarray, domains: np.ndarray, metric_fn) -> None:
    """The re-scored cases must give the run's own test numbers per domain, or the split is not of them."""
    for d, name in enumerate(("X", "Y")):
        own = results[protocol]["test"][name]
        again = metric_fn(ranks[domains == d], METRICS)
        if any(abs(own[m] - again[m]) > 1e-9 for m in METRICS):
            raise RuntimeError(f"{results['model']} seed {results['seed']} {protocol} {name}: re-scored {again} "
                               f"differ from the run's {({m: own[m] for m in METRICS})}")


#: settings this script gives each run itself: a pass-through option would silently override them
OWN_SETTINGS = {"seed": "--seeds N runs seeds 0..N-1", "data_path": "the held-out copy under --out",
                "checkpoint_dir": "<out>/saved", "results_file": "<out>/runs"}


def run_options(extra: list[str]) -> list[str]:
    """The pass-through options as ``--key=value`` (cli.config_options); one of :data:`OWN_SETTINGS`
    is a ConfigError."""
    from recbole_ifcdsr.cli import config_options
    from recbole_ifcdsr.errors import ConfigError

    options = config_options(extra)
    for option in options:
        key = option[2:].partition("=")[0]
        if key in OWN_SETTINGS:
            raise ConfigError(f"{option}: cold_start sets {key} itself ({OWN_SETTINGS[key]}); leave it out")
    return options


def stored_run_problem(results: Path, settings: dict) -> str | None:
    """Why a finished run under ``<out>/runs`` is not one of these ``settings`` (budget and pass-through
    options), None when it is: it was reused whatever they were. Runs from before their settings were
    recorded are checked on the budget their results' config holds."""
    recorded = results.with_suffix(".settings.json")
    if recorded.is_file():
        stored = json.loads(recorded.read_text())
        if stored == settings:
            return None
        changed = sorted(k for k in settings.keys() | stored.keys() if stored.get(k) != settings.get(k))
        return f"{results} was run with other {', '.join(changed)} ({stored} against {settings})"
    budget = json.loads(results.read_text()).get("config", {}).get("max_train_cpu_minutes")
    if budget != settings["max_train_cpu_minutes"]:
        return f"{results} was run with max_train_cpu_minutes {budget}, not {settings['max_train_cpu_minutes']}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m recbole_ifcdsr.cold_start", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/cold_start")
    parser.add_argument("--models", default="Pop,SASRec,IFCDSR,LLMEMF")
    parser.add_argument("--seeds", type=number_option(int, lambda n: n >= 1, "at least 1"), default=3)
    parser.add_argument("--fraction", default=0.1, type=number_option(
        float, lambda f: 0 < f <= 1, "the share of test-target items to hold out, in (0, 1]"))
    parser.add_argument("--max_train_cpu_minutes", type=number_option(float, lambda m: m > 0, "above 0"), default=2.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = build_parser().parse_known_args(argv)

    import recbole_ifcdsr  # noqa: F401
    from recbole_ifcdsr.errors import ConfigError, run_cli
    from recbole_ifcdsr.evaluation.metrics import metrics_from_ranks
    from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

    def measure() -> int:
        options = run_options(extra)
        out = Path(args.out).resolve()
        data_path, cold = prepare_data(out, args.fraction)
        settings = {"data_path": str(data_path), "checkpoint_dir": str(out / "saved"), "show_progress": False,
                    "state": "INFO", "max_train_cpu_minutes": args.max_train_cpu_minutes}
        rows: dict = {}
        for model in args.models.split(","):
            for seed in range(args.seeds):
                results = out / "runs" / f"{model}-seed{seed}.json"
                wanted = {"max_train_cpu_minutes": args.max_train_cpu_minutes, "options": options}
                if results.is_file():
                    problem = stored_run_problem(results, wanted)
                    if problem:
                        raise ConfigError(f"{problem}: give another --out (or remove {out / 'runs'})")
                else:
                    run_recbole_ifcdsr(model, "fk_llmcdsr", config_dict={**settings, "seed": seed,
                                                                         "results_file": str(results)}, argv=options)
                    io.write_json(results.with_suffix(".settings.json"), wanted)
                variants = [(model, False)] + ([(f"{model} + untrained rule", True)] if model == "LLMEMF" else [])
                for label, rule in variants:
                    for protocol, (ranks, is_cold, domains) in case_ranks(model, settings, out / "saved", seed, cold, rule, options).items():
                        if not rule:
                            check_reproduces_run(json.loads(results.read_text()), protocol, ranks, domains, metrics_from_ranks)
                        for group, mask in (("cold", is_cold), ("other", ~is_cold)):
                            rows.setdefault((label, protocol, group), []).append(metrics_from_ranks(ranks[mask], METRICS))
                            rows[(label, protocol, group, "n")] = int(mask.sum())
        table = ["| model | protocol | cases | n | " + " | ".join(METRICS) + " |", "|---|---|---|---|" + "---|" * len(METRICS)]
        summary = []
        for key, runs in rows.items():
            if len(key) != 3:
                continue
            label, protocol, group = key
            cells = []
            entry = {"model": label, "protocol": protocol, "cases": group, "n": rows[(*key, "n")], "seeds": len(runs)}
            for metric in METRICS:
                values = np.array([r[metric] for r in runs])
                entry[metric] = {"mean": float(values.mean()), "std": float(values.std())}
                cells.append(f"{values.mean():.4f} ± {values.std():.4f}")
            summary.append(entry)
            table.append(f"| {label} | {protocol} | {group} | {entry['n']} | " + " | ".join(cells) + " |")
        io.write_json(out / "cold_start.json", {"cold_items": len(cold), "settings": {
            "fraction": args.fraction, "seeds": args.seeds, "max_train_cpu_minutes": args.max_train_cpu_minutes,
            "command_line": argv}, "rows": summary})
        io.write_text(out / "cold_start.md", "\n".join(table) + "\n")
        print("\n".join(table))
        return 0

    return run_cli(measure)


if __name__ == "__main__":
    sys.exit(main())

"""RunResult: one run's numbers in one nesting order, protocol -> split -> domain -> metric.

The trainer fills it while it trains (each domain keeps the numbers of the epoch its recipe selected),
quick_start writes it as the results JSON, compare reads that back and checks it is complete before a
cell goes into a table, and compare / report keep the same order in a grid's summary (a row label on
top, ``[mean, std, n]`` at the bottom). The results JSON holds, besides the run's description::

    "protocols": ["sampled", "full"],            the protocols reported (the first is also at the top level)
    "best_epoch": {"X": 4, "Y": 6},              the epoch each domain's numbers come from
    "sampled": {"valid": {"X": {"MRR": ...}, "Y": {...}}, "test": {...}},
    "full": {...},
    "valid": {...}, "test": {...}                the first protocol's, as {domain: {metric: value}}
"""
from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field

import torch

from recbole_ifcdsr.constants import DOMAINS, PROTOCOLS, SPLITS


@dataclass
class RunResult:
    """``metrics[protocol][split][domain][metric]`` at ``best_epoch[domain]``."""

    metrics: dict = field(default_factory=dict)
    best_epoch: dict = field(default_factory=dict)

    def select(self, domain: str, epoch: int, valid: dict, test: dict | None = None) -> None:
        """Keep ``domain``'s numbers from ``epoch``: ``valid`` and ``test`` are one evaluation pass each,
        ``{protocol: {domain: {metric: value}}}`` as ProtocolEvaluator returns them. Without ``test`` the
        domain's test numbers are pending (:meth:`pending_test`) until :meth:`add_test` gives them; the
        previous epoch's are dropped, so a pending domain never reports another epoch's test numbers."""
        for protocol, per_domain in valid.items():
            self.metrics.setdefault(protocol, {}).setdefault("valid", {})[domain] = dict(per_domain[domain])
            self.metrics[protocol].setdefault("test", {}).pop(domain, None)
        self.best_epoch[domain] = epoch
        if test is not None:
            self.add_test(domain, test)

    def add_test(self, domain: str, test: dict) -> None:
        """``domain``'s test numbers at its selected epoch (one evaluation pass, as for :meth:`select`)."""
        for protocol, per_domain in test.items():
            self.metrics.setdefault(protocol, {}).setdefault("test", {})[domain] = dict(per_domain[domain])

    def pending_test(self) -> dict:
        """{domain: selected epoch} for the domains whose test numbers are not in yet."""
        return {d: e for d, e in self.best_epoch.items()
                if any(d not in (splits.get("test") or {}) for splits in self.metrics.values())}

    @property
    def protocols(self) -> list[str]:
        return [p for p in PROTOCOLS if p in self.metrics] + [p for p in self.metrics if p not in PROTOCOLS]

    def problem(self, protocols: list[str] | None = None) -> str | None:
        """Why these numbers cannot be reported (None when they can): every protocol (default: those held)
        needs valid and test numbers for both domains, all finite, and a selected epoch per domain."""
        protocols = self.protocols if protocols is None else protocols
        if not protocols:
            return "no protocols"
        for protocol in protocols:
            for split in SPLITS:
                per_domain = (self.metrics.get(protocol) or {}).get(split) or {}
                for domain in DOMAINS:
                    values = per_domain.get(domain)
                    if not values:
                        return f"no {protocol} {split} results for domain {domain}"
                    bad = [m for m, v in values.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
                    if bad:
                        return f"{protocol} {split} {domain}: {bad[0]} is {values[bad[0]]!r}"
        missing = [d for d in DOMAINS if d not in self.best_epoch]
        return f"no selected epoch for domain {missing[0]}" if missing else None

    # ---- the results JSON ----------------------------------------------------------------------
    def to_json(self, protocols: list[str] | None = None) -> dict:
        """The results JSON's numbers for ``protocols`` (default: all held); see the module docstring."""
        protocols = self.protocols if protocols is None else list(protocols)
        data: dict = {"protocols": protocols, "best_epoch": dict(self.best_epoch)}
        for protocol in protocols:
            data[protocol] = {split: dict(self.metrics.get(protocol, {}).get(split, {})) for split in SPLITS}
        if protocols:
            data.update({split: data[protocols[0]][split] for split in SPLITS})
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RunResult":
        """The numbers of a results JSON (anything it lacks stays missing, for :meth:`problem` to name)."""
        protocols = data.get("protocols") or []
        metrics = {p: {s: dict((data.get(p) or {}).get(s) or {}) for s in SPLITS} for p in protocols}
        return cls(metrics, dict(data.get("best_epoch") or {}))

    def table(self, domain_names: dict | None = None, protocols: list[str] | None = None) -> str:
        """Markdown: one row per (protocol, split, domain), one column per metric."""
        domain_names = domain_names or {}
        lines: list[str] = []
        for protocol in self.protocols if protocols is None else protocols:
            for split in SPLITS:
                per_domain = self.metrics.get(protocol, {}).get(split) or {}
                for domain in (d for d in DOMAINS if d in per_domain):
                    values = per_domain[domain]
                    if not lines:
                        lines.append("| protocol | split | domain | epoch | " + " | ".join(values) + " |")
                        lines.append("|" + "---|" * (4 + len(values)))
                    cells = " | ".join(f"{v:.4f}" for v in values.values())
                    lines.append(f"| {protocol} | {split} | {domain_names.get(domain, domain)} | "
                                 f"{self.best_epoch.get(domain)} | {cells} |")
        return "\n".join(lines)


# ---- the results JSON of one run -------------------------------------------------------------------
def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def results_json(config, run: dict, wall_seconds: float) -> dict:
    """The results JSON of one run: what ran (model, dataset, seed, protocols, machine, every setting),
    how long and how far it trained (``run`` as the trainer's fit_cdsr returns it) and its numbers
    for the requested protocols (:meth:`RunResult.to_json`). ``wall_seconds``: this process's; a resumed
    run adds its earlier processes' (``run['earlier_wall_seconds']``), and when those are unknown (resumed
    from an older checkpoint) says so with ``wall_seconds_partial``, as the number then undercounts."""
    earlier = run["earlier_wall_seconds"]
    protocol = config["protocol"]
    protocols = list(PROTOCOLS) if protocol == "both" else [protocol]
    numbers = run["result"].to_json(protocols)
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "protocol": protocol,
        "protocols": protocols,
        "seed": config["seed"],
        "domains": dict(config["domains"]),
        "best_epoch": numbers.pop("best_epoch"),
        "epochs_run": run["epochs_run"],
        "stop_reason": run["stop_reason"],
        "train_seconds": run["train_seconds"],
        "train_cpu_seconds": run["train_cpu_seconds"],
        "eval_seconds": run["eval_seconds"],
        "wall_seconds": round(wall_seconds + (earlier or 0.0), 2),
        "wall_seconds_partial": earlier is None,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}, device {config['device']}",
        **numbers,
        "config": _jsonable({k: config[k] for k in config.final_config_dict}),
    }

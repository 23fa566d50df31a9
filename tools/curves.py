"""Validation learning curves of finished or running runs, read from their ``-last`` checkpoints.

Why: a run's results JSON keeps only the selected epochs, but whether a model has converged, and how
far apart two settings are beyond epoch-to-epoch noise, is read from the whole curve. Every ``-last``
checkpoint carries the run's validation history, so the curves cost no extra training or evaluation.
Validation only: the history holds no test numbers.

    .venv/bin/python tools/curves.py results/tune15/fk_abxi [--png curves.png] [--metric MRR]

Arguments are compare ``--out`` folders (their ``saved/<label>/*-last.pth``) or ``-last`` checkpoint
files. Prints one Markdown row per run: validations, the best mean of the two domains and its epoch, the
mean of the last five validations, and each domain at the best epoch; ``--png`` also plots the curves, and
``--csv`` writes every validation of every run, so that the curves outlive the checkpoints (which are
weights, not kept in the repository).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from recbole_ifcdsr import compat
from recbole_ifcdsr.constants import DOMAINS

TAIL = 5  # validations averaged at the end of a curve: one epoch's number moves by about +-0.4 MRR


def checkpoint_files(paths: list[str]) -> list[Path]:
    """Each ``-last`` checkpoint named, or found under ``saved/*/`` of a compare output folder."""
    files = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.glob("saved/*/*-last.pth")) or sorted(path.glob("*-last.pth"))
            if not found:
                raise FileNotFoundError(f"{path}: no -last checkpoint in it or in its saved/<label>/ folders")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such checkpoint or folder")
    return files


def read_curve(path: Path, protocol: str, metric: str) -> dict:
    """The run's label, seed, domain names and per-validation ``metric`` (percent) of each domain; empty
    for a run not validated yet."""
    compat.trust_checkpoint_dir(path.resolve().parent)
    state = compat.load_checkpoint(path, map_location="cpu")
    history = state.get("history") or []
    if not history:
        return {}  # a run still inside its first epochs or its warm-up
    config = state["config"]
    if protocol not in history[0]["valid"]:
        raise ValueError(f"{path}: no '{protocol}' protocol in its history "
                         f"(it has {', '.join(sorted(history[0]['valid']))})")
    first = history[0]["valid"][protocol][DOMAINS[0]]
    if metric not in first:
        raise ValueError(f"{path}: no metric '{metric}' in its history (it has {', '.join(first)})")
    values = {d: [100 * entry["valid"][protocol][d][metric] for entry in history] for d in DOMAINS}
    values["mean"] = [sum(v) / len(DOMAINS) for v in zip(*(values[d] for d in DOMAINS))]
    return {
        "label": path.parent.name,
        "seed": config["seed"],
        "names": dict(config["domains"] or {d: d for d in DOMAINS}),
        "epochs": [entry["epoch"] for entry in history],
        "values": values,  # per domain and their mean
        "stopped": state.get("stopped"),
    }


def summary_row(curve: dict) -> str:
    """One Markdown row: best mean and its epoch, the tail mean, each domain at the best epoch."""
    means = curve["values"]["mean"]
    best = max(range(len(means)), key=lambda i: (means[i], i))  # the later epoch on a tie, as ``>=`` selects
    tail = means[-TAIL:]
    domains = " | ".join(f"{curve['values'][d][best]:.2f}" for d in DOMAINS)
    return (f"| {curve['label']} | {curve['seed']} | {len(means)} (to epoch {curve['epochs'][-1]}) | "
            f"{means[best]:.2f} (epoch {curve['epochs'][best]}) | {sum(tail) / len(tail):.2f} | {domains} | "
            f"{curve['stopped'] or '-'} |")


def write_csv(curves: list[dict], path: Path, protocol: str, metric: str) -> None:
    """One row per run and validation: the run, the epoch, each domain and their mean (percent)."""
    names = curves[0]["names"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "seed", "epoch", "protocol", "metric", *(names.get(d, d) for d in DOMAINS), "mean"])
        for curve in curves:
            for i, epoch in enumerate(curve["epochs"]):
                values = [f"{curve['values'][d][i]:.4f}" for d in (*DOMAINS, "mean")]
                writer.writerow([curve["label"], curve["seed"], epoch, protocol, metric, *values])


def plot(curves: list[dict], path: Path, title: str) -> None:
    """One panel per domain and one for their mean; one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(DOMAINS) + ["mean"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for curve in curves:
            ax.plot(curve["epochs"], curve["values"][panel], linewidth=1, label=f"{curve['label']} s{curve['seed']}")
        name = curves[0]["names"].get(panel, panel)
        ax.set_title(f"{name}: {title}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="compare --out folders or -last checkpoint files")
    parser.add_argument("--protocol", default="sampled", choices=("sampled", "full"))
    parser.add_argument("--metric", default="MRR")
    parser.add_argument("--png", help="also write the curves to this PNG file")
    parser.add_argument("--csv", help="also write every validation of every run to this CSV file")
    args = parser.parse_args(argv)
    try:
        curves = []
        for path in checkpoint_files(args.paths):
            curve = read_curve(path, args.protocol, args.metric)
            if curve:
                curves.append(curve)
            else:
                print(f"skipped {path}: not validated yet", file=sys.stderr)
        if not curves:
            raise ValueError("no run named has been validated yet")
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    names = curves[0]["names"]
    title = f"{args.protocol} {args.metric}, validation (%)"
    print(title)
    print(f"| run | seed | validations | best mean (epoch) | mean of last {TAIL} | "
          + " | ".join(f"{names.get(d, d)} at best" for d in DOMAINS) + " | stopped |")
    print("|---|---|---|---|---|" + "---|" * len(DOMAINS) + "---|")
    for curve in curves:
        print(summary_row(curve))
    if args.png:
        plot(curves, Path(args.png), title)
        print(f"written: {args.png}")
    if args.csv:
        write_csv(curves, Path(args.csv), args.protocol, args.metric)
        print(f"written: {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Outputs of a comparison grid: CSV, a bar chart, published anchors, and Markdown result blocks (docs/results.md).

``compare.py`` runs the cells and summarises them; this module only renders a summary
(``{row: {protocol: {split: {domain: {metric: [mean, std, n]}}}}}``, the RunResult order of results.py
under a row label) so each output can be tested on known numbers.
"""
from __future__ import annotations

import csv
import os
import re
from io import BytesIO, StringIO
from pathlib import Path

from recbole_ifcdsr import io
from recbole_ifcdsr.constants import DOMAINS
from recbole_ifcdsr.errors import DataError
from recbole_ifcdsr.paths import PROPERTIES_DIR
from recbole_ifcdsr.yamlfile import read_yaml

ANCHORS_FILE = PROPERTIES_DIR / "anchors.yaml"


class ReportError(DataError):
    """An anchors file or Markdown result block that cannot be used."""


def load_anchors(dataset: str, path: str | os.PathLike = ANCHORS_FILE) -> dict | None:
    """Published numbers for ``dataset`` ({label, source, protocol, split, X: {metric: value}, Y: ...}) or None."""
    path = Path(path)
    if not path.is_file():
        return None
    entries = read_yaml(path)
    anchor = entries.get(dataset)
    if anchor is None:
        return None
    missing = [k for k in ("label", "source", "protocol", "split") if k not in anchor]
    if missing:
        raise ReportError(f"{path}: anchor for {dataset} lacks {', '.join(missing)}")
    return anchor


def write_csv(summary: dict, domain_names: dict, path: str | os.PathLike) -> None:
    """One row per (model, protocol, split, domain, metric): mean, std, n (fractions, not percent)."""
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "protocol", "split", "domain", "domain_name", "metric", "mean", "std", "n"])
    for model, entry in summary.items():
        for protocol, splits in entry.items():
            if protocol.startswith("_"):
                continue
            for split, domains in splits.items():
                for d, metrics in domains.items():
                    for metric, (mean, std, n) in metrics.items():
                        writer.writerow([model, protocol, split, d, domain_names.get(d, d), metric,
                                         f"{mean:.6f}", f"{std:.6f}", n])
    io.write_text(path, buffer.getvalue())


def anchor_applies(anchor: dict | None, protocol: str, split: str) -> bool:
    """Whether published numbers can stand beside a table or chart of this protocol and split."""
    return bool(anchor) and anchor.get("protocol") == protocol and anchor.get("split") == split


def plot(summary: dict, domain_names: dict, path: str | os.PathLike, metric: str = "MRR", split: str = "test",
         anchor: dict | None = None, title: str = "") -> None:
    """Bars of ``metric`` per model with std error bars: one panel per (protocol, domain); the
    published anchor, where it has that protocol and metric, as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(summary)
    protocols = [p for p in next(iter(summary.values())) if not p.startswith("_")]
    fig, axes = plt.subplots(len(protocols), len(DOMAINS), figsize=(5.5 * len(DOMAINS), 3.2 * len(protocols)),
                             squeeze=False)
    for row, protocol in enumerate(protocols):
        for col, d in enumerate(DOMAINS):
            ax = axes[row][col]
            means = [100 * summary[m][protocol][split][d][metric][0] for m in models]
            stds = [100 * summary[m][protocol][split][d][metric][1] for m in models]
            ax.bar(range(len(models)), means, yerr=stds, capsize=3, color="#4C72B0")
            ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{domain_names.get(d, d)}: {protocol} {metric} ({split}, %)", fontsize=9)
            value = (anchor or {}).get(d, {}).get(metric)
            shown = value is not None and anchor_applies(anchor, protocol, split)
            top = max([m + s for m, s in zip(means, stds)] + ([100 * value] if shown else []))
            ax.set_ylim(0, 1.15 * top if top > 0 else 1)
            if shown:
                ax.axhline(100 * value, color="#C44E52", linestyle="--", linewidth=1)
                ax.text(len(models) - 0.5, 100 * value, f" {anchor['label']}", color="#C44E52", fontsize=7,
                        va="bottom", ha="right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    io.write_bytes(path, buffer.getvalue())


def anchor_row(anchor: dict, columns: list[tuple[str, str]]) -> str:
    """A table row of published numbers (percent, no std), '-' where the source gives none."""
    cells = []
    for d, metric in columns:
        value = anchor.get(d, {}).get(metric)
        cells.append("-" if value is None else f"*{100 * value:.2f}*")
    return f"| *{anchor['label']}* | " + " | ".join(cells) + " | | | |"


def replace_readme_block(readme: str | os.PathLike, key: str, content: str) -> None:
    """Replace the text between ``<!-- results:KEY:start -->`` and ``<!-- results:KEY:end -->``."""
    path = Path(readme)
    text = path.read_text()
    start, end = f"<!-- results:{key}:start -->", f"<!-- results:{key}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ReportError(f"{path}: no block '{start}' ... '{end}' to fill; add both markers where the table goes")
    io.write_text(path, pattern.sub(lambda _: f"{start}\n{content.strip()}\n{end}", text))

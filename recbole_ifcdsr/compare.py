"""Side-by-side grid: models x seeds on one dataset, each cell a separate run of the main CLI.

python -m recbole_ifcdsr compare --dataset=fk_abxi --models=Pop,GRU4Rec,SASRec,SRGNN --seeds=3
    [--config_files=a.yaml,b.yaml] [--out=results/fk_abxi] [--jobs=1] [--any_config_key=value]

A model entry may carry its own settings and a row label, so variants of one model sit in one table:
``IFCDSR:multiple_attention=False`` or ``IFCDSR-single=IFCDSR:multiple_attention=False``; a value may be
a dict (``LLMEMF-t30=LLMEMF:fusion_weights={'id':0.7,'txt':0.3}``).

Choosing a setting: ``--split=valid --select=MRR`` shows validation tables and names the row with the
best validation MRR (mean over the two domains) per protocol, also in ``<out>/selection.json``.

Each cell runs in its own process (a crash fails one cell, not the grid) and writes
``<out>/<label>-seed<k>.json``, its checkpoints in ``<checkpoint_dir>/<label>/`` (``<out>/saved/<label>/``
unless ``--checkpoint_dir`` is given); a cell whose JSON exists with the same requested settings is
reused, so an interrupted grid resumes; with ``--resume`` a cell cut off mid-run also continues from its
last checkpoint (its results equal an uninterrupted run's; its ``<label>-seed<k>.log`` goes on below the
interrupted run's lines). A cell is stored only with complete results (both domains,
both splits, every requested protocol, finite numbers); anything else is a failed cell, listed as
such, and a stored cell that is not complete is run again. Model names and ``--seeds`` are checked
before any cell starts. ``--jobs`` runs that many cells at once (a GPU machine
with many cores; on a 2-core CPU keep 1). Two ``compare`` processes over one ``--out`` share the work: a
cell the other one is running is skipped and listed as not finished (``cell_lock.py``). The summary
(mean and population std over seeds, per protocol, domain and metric) goes to ``<out>/summary.md`` and
``<out>/summary.json``, and its table is printed last. Exit status (cli.py): 0 when every cell finished, 1 when a cell failed (listed; a rerun runs
only the missing cells), 2 for a usage error before any cell starts.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import functools
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from recbole_ifcdsr import io, report
from recbole_ifcdsr.cell_lock import CellBusy, hold_cell, holder
from recbole_ifcdsr.cli import PROG, CommandParser, config_options, number_option
from recbole_ifcdsr.constants import DOMAINS, SPLITS, budget_stopped
from recbole_ifcdsr.errors import ConfigError, run_cli
from recbole_ifcdsr.paths import SHIPPED_DATASETS, default_data_path, default_properties, run_checkpoint_stem
from recbole_ifcdsr.results import RunResult
from recbole_ifcdsr.yamlfile import read_yaml

TABLE_METRICS = ("MRR", "NDCG@10", "HR@10")
#: Settings compare gives each cell itself; as a grid option or a row's setting they would silently replace
#: the cell's own (``--seed=7`` ran every seed as seed 7) or split one table's protocols.
CELL_KEYS = ("model", "dataset", "seed", "results_file", "resume", "config_files", "show_progress")
ROW_ONLY_FORBIDDEN = ("protocol",)
ATOMIC_SUFFIXES = (".inter", ".item", ".user")


class ModelSpecError(ConfigError):
    """A --models entry that cannot be read."""


def split_top_level(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets and quotes, so a value may be a dict or list
    (``LLMEMF:fusion_weights={'id':0.8,'txt':0.2}`` inside ``--models=a,b``)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
            if depth < 0:
                raise ModelSpecError(f"'{text}': unbalanced '{char}'")
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth or quote:
        raise ModelSpecError(f"'{text}': unclosed bracket or quote")
    parts.append(text[start:])
    return parts


def parse_model_spec(spec: str) -> tuple[str, str, list[str]]:
    """``[label=]Model[:key=value...]`` -> (row label, model name, ``--key=value`` overrides)."""
    head, *settings = split_top_level(spec, ":")
    label, _, model = head.rpartition("=")
    if not model:
        raise ModelSpecError(f"model entry '{spec}': no model name")
    overrides = []
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise ModelSpecError(f"model entry '{spec}': '{setting}' is not key=value")
        if key in CELL_KEYS or key in ROW_ONLY_FORBIDDEN:
            raise ModelSpecError(f"model entry '{spec}': {cell_key_problem(key)}")
        overrides.append(f"--{key}={value}")
    return label or spec, model, overrides


def cell_key_problem(key: str) -> str:
    """Why ``key`` cannot be a setting of a row (or, for a cell's own keys, of the grid)."""
    if key == "seed":
        return "compare sets each cell's seed (seeds 0..N-1: --seeds=N)"
    if key == "protocol":
        return ("one table shows the same protocols for every row: give --protocols=sampled|full|sampled,full "
                "for the whole grid")
    return f"compare sets each cell's {key} itself"


def refused_grid_option(overrides: list[str]) -> str | None:
    """The first grid-wide ``--key=value`` that would replace a cell's own setting, as a usage message."""
    for option in overrides:
        key = option[2:].partition("=")[0]
        if key in CELL_KEYS:
            return f"--{key}: {cell_key_problem(key)}"
    return None


def unknown_setting(overrides: list[str], config_files: list[str]) -> str | None:
    """The first ``--key=value`` of the grid or a row that no property file nor ``--config_files`` file defines,
    as a usage message: each cell's run would refuse it, after the grid had started."""
    from recbole_ifcdsr.config import did_you_mean, known_settings  # imports RecBole: only once the arguments parsed

    known = set(known_settings())
    for path in config_files:
        loaded = read_yaml(Path(path), loader=_recbole_yaml_loader())
        known |= set(loaded) if isinstance(loaded, dict) else set()
    for option in overrides:
        key = option[2:].partition("=")[0]
        if key not in known:
            return f"--{key}: unknown setting (no property file defines it)" + did_you_mean(key, known)
    return None


def shared_cell_files(labels: list[str]) -> str | None:
    """Why two rows would share cell files (None when none do): a cell's files are named by its label's
    stem, so two such rows would overwrite each other's results and both read the last one."""
    seen: dict[str, str] = {}
    for label in labels:
        stem = file_stem(label)
        if stem in seen:
            return (f"'{seen[stem]}' and '{label}' would share the cell files {stem}-seed<k>.json; give each entry "
                    f"its own label: LABEL=MODEL:key=value")
        seen[stem] = label
    return None


def file_stem(label: str) -> str:
    """A row label as a safe file-name stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")


def cell_request(model: str, dataset: str, seed: int, config_files: list[str], overrides: list[str],
                 label: str | None = None) -> dict:
    """What defines a cell; its hash decides whether a stored result can be reused."""
    files = {f: _digest(Path(f)) for f in config_files}
    request = {"model": model, "dataset": dataset, "seed": seed, "config_files": files, "overrides": sorted(overrides)}
    # the plug-in's own defaults the run reads (model YAML along the class hierarchy): a changed default
    # must not reuse an old result
    default_files = default_properties(model, dataset, _model_yaml_names(model))
    defaults = {name: _digest(path) for name, path in default_files.items()}
    if defaults:
        request["defaults"] = defaults
    if label and label != model:
        request["label"] = label
    data = data_fingerprint(dataset, data_path_of(config_files, overrides, default_files))
    if data:
        request["data"] = data
    return request


def same_request(stored, request: dict) -> bool:
    """Whether a stored cell request (a results file's or a checkpoint folder's mark) is ``request``. Requests
    stored before cells recorded their data files carry no ``data`` and are compared on the rest, so those
    cells stay reusable (for them a dataset converted again since is not noticed)."""
    if not isinstance(stored, dict):
        return False
    if "data" not in stored:
        request = {key: value for key, value in request.items() if key != "data"}
    return stored == request


def data_path_of(config_files: list[str], overrides: list[str], defaults: dict[str, Path]) -> Path:
    """The ``data_path`` a cell's run reads, by RecBole's precedence: its command line, then its config
    files (the last one that sets it), then the plug-in's property files, else ``./dataset``."""
    given = [o.partition("=")[2] for o in overrides if o.startswith("--data_path=")]
    if given:
        return Path(given[-1])
    for path in [*reversed([Path(f) for f in config_files]), *reversed(list(defaults.values()))]:
        value = read_yaml(path, loader=_recbole_yaml_loader()).get("data_path") if path.is_file() else None
        if value:
            return Path(str(value))
    return default_data_path()


def data_fingerprint(dataset: str, data_path: Path) -> dict[str, str]:
    """{atomic file name: SHA-256 prefix} of the dataset folder a cell reads: a dataset converted again (other
    filters, split or source files) must not reuse results of the old files. The folder is prepared as a
    run prepares it (shipped files unpacked), so cells before and after the first run see the same files;
    {} when there is no folder (the run itself reports it)."""
    from recbole_ifcdsr.data.packing import prepare_dataset_dir

    folder = data_path / dataset
    if not folder.is_dir() and dataset not in SHIPPED_DATASETS:
        return {}
    prepare_dataset_dir(folder)
    return {path.name: io.file_sha256(path)[:16] for path in sorted(folder.iterdir())
            if path.name.startswith(f"{dataset}.") and path.suffix in ATOMIC_SUFFIXES and path.is_file()}


def _model_yaml_names(model: str) -> list[str]:
    from recbole_ifcdsr.config import model_yaml_names  # imports torch and RecBole: only when a cell is planned
    from recbole_ifcdsr.registry import UnknownNameError, get_model

    try:
        return model_yaml_names(model, get_model(model))
    except UnknownNameError:
        return [model]  # the cell itself will report the unknown name


@functools.lru_cache(maxsize=None)
def _recbole_yaml_loader():
    """RecBole's YAML loader (it reads 1e-5 as a float), built once: each build adds its resolver to
    yaml.FullLoader again."""
    from recbole.config.configurator import Config as RecBoleConfig

    return RecBoleConfig._build_yaml_loader(None)


def _digest(path: Path) -> str:
    """Of the settings a YAML file holds, read as RecBole reads them, not of its bytes: a comment, spacing or
    key order keeps a cell's stored result (a pointer edit re-ran hours of grid before); a value does not."""
    settings = read_yaml(path, loader=_recbole_yaml_loader())
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def row_label(record: dict) -> str:
    """The table row of a cell request or result: its label, else its model name."""
    return record.get("label", record["model"])


def cell_path(out_dir: Path, request: dict, suffix: str) -> Path:
    return out_dir / f"{file_stem(row_label(request))}-seed{request['seed']}{suffix}"


def cell_checkpoint_dir(out_dir: Path, request: dict, overrides: list[str]) -> Path:
    """``<base>/<label>``: each row's own checkpoint folder under the user's ``--checkpoint_dir`` (default
    ``<out>/saved``), so variants of one model at one seed never share, overwrite or resume each other's
    ``<model>-<dataset>-seed<N>-*.pth`` files."""
    given = [o.partition("=")[2] for o in overrides if o.startswith("--checkpoint_dir=")]
    base = Path(given[-1]) if given else out_dir / "saved"
    return base / file_stem(row_label(request))


def result_problem(result: dict) -> str | None:
    """Why a cell's results JSON cannot go into a table (None when it can): see RunResult.problem."""
    if not isinstance(result, dict):
        return "not a JSON object"
    return RunResult.from_json(result).problem()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


CELL_MARK = "cell_request.json"  # in a row's checkpoint folder, after the cell: the request whose run wrote them


def _cell_file(checkpoints: Path, request: dict, name: str) -> Path:
    """A file of one cell in its row's checkpoint folder, which the row's seeds (and the same label on other
    datasets, under one ``--checkpoint_dir``) share."""
    return checkpoints / f"{request['dataset']}-seed{request['seed']}.{name}"


def _same_cell_started(request: dict, checkpoints: Path) -> bool:
    """Whether the cell's checkpoints were written for this very request. Budget and epoch keys are not in
    a checkpoint's run record, so only this guards a resume against continuing (or, when it had stopped,
    reporting) a run made with another budget under the same label. The mark is per cell, so seeds run at
    once do not overwrite each other's; a folder from before that has one mark for the row, the request of
    the cell that started last, which is still read."""
    own = _cell_file(checkpoints, request, CELL_MARK)
    return same_request(_read_json(own if own.is_file() else checkpoints / CELL_MARK), request)


def _stored_result(out_dir: Path, request: dict) -> tuple[str, str | None]:
    """("reused", None) for a complete stored result of this very request, ("incomplete", why) for an
    incomplete one, ("none", None) otherwise (none stored, or one of other settings)."""
    result_path = cell_path(out_dir, request, ".json")
    if result_path.is_file():
        stored = _read_json(result_path)
        if isinstance(stored, dict) and same_request(stored.get("cell_request"), request):
            problem = result_problem(stored)
            return ("reused", None) if problem is None else ("incomplete", problem)
    return "none", None


def plan_cell(request: dict, out_dir: Path, overrides: list[str], resume: bool = False) -> tuple[str, str]:
    """(kind, line): what ``run_cell`` would do with the cell now, found without doing it (``compare --plan``),
    kind one of reused, busy, resumes, trains: a grid of hours should say which cells it will train before
    it starts, not after."""
    stored, problem = _stored_result(out_dir, request)
    if stored == "reused":
        return "reused", "reused"
    checkpoints = cell_checkpoint_dir(out_dir, request, overrides)
    held = holder(_cell_file(checkpoints, request, "lock"))
    if held:
        return "busy", f"left alone: running in {held}"
    last = checkpoints / f"{run_checkpoint_stem(request['model'], request['dataset'], request['seed'])}-last.pth"
    if resume and _same_cell_started(request, checkpoints) and last.is_file():
        kind, how = "resumes", f"resumes from {last}"
    else:
        kind, how = "trains", "trains from the start"
    if stored == "incomplete":
        how += f" (its stored results are incomplete: {problem})"
    elif cell_path(out_dir, request, ".json").is_file():
        how += " (its results file holds another request's run, which it replaces)"
    return kind, how


def run_cell(request: dict, out_dir: Path, config_files: list[str], overrides: list[str],
             resume: bool = False) -> tuple[bool, str]:
    """Run one cell through the installed package's run command unless an identical finished run is stored.
    ``resume``: the run continues from the cell's last checkpoint (not part of the request: a resumed run
    gives the results of an uninterrupted one, so it is the same cell). A cell that another process is
    running (another ``compare`` over the same folders) is not touched and counts as not finished here."""
    if _stored_result(out_dir, request)[0] == "reused":  # finished cells are only read: no lock needed
        return True, "reused"
    checkpoints = cell_checkpoint_dir(out_dir, request, overrides)
    try:
        with hold_cell(_cell_file(checkpoints, request, "lock")):
            return _run_held_cell(request, out_dir, config_files, overrides, resume, checkpoints)
    except CellBusy as busy:
        return False, str(busy)


def _run_held_cell(request: dict, out_dir: Path, config_files: list[str], overrides: list[str], resume: bool,
                   checkpoints: Path) -> tuple[bool, str]:
    result_path = cell_path(out_dir, request, ".json")
    stored, problem = _stored_result(out_dir, request)  # again: another process may have finished it meanwhile
    if stored == "reused":
        return True, "reused"
    rerun = ""
    if stored == "incomplete":
        rerun = f" (stored results were incomplete: {problem})"
        result_path.unlink()
    log_path = cell_path(out_dir, request, ".log")
    tmp_result = cell_path(out_dir, request, ".partial.json")
    command = [sys.executable, "-m", "recbole_ifcdsr", "run",
               f"--model={request['model']}", f"--dataset={request['dataset']}", f"--seed={request['seed']}",
               f"--results_file={tmp_result}", "--show_progress=False",
               *[o for o in overrides if not o.startswith("--checkpoint_dir=")],
               f"--checkpoint_dir={checkpoints}"]
    resumed = resume and _same_cell_started(request, checkpoints)
    if resumed:
        command.append("--resume=True")
    if config_files:
        command.append("--config_files=" + ",".join(config_files))
    checkpoints.mkdir(parents=True, exist_ok=True)
    io.write_json(_cell_file(checkpoints, request, CELL_MARK), request)
    with open(log_path, "a" if resumed else "w") as log:  # a resumed run keeps the interrupted run's epochs
        if resumed:
            log.write(f"\n==== {time.strftime('%d %b %H:%M')}  resumed: the lines above are the interrupted run's, "
                      f"the run goes on from {checkpoints}'s -last checkpoint ====\n")
            log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not tmp_result.is_file():
        return False, f"exit code {code}, see {log_path}"
    result = _read_json(tmp_result)
    problem = result_problem(result)
    if problem is not None:
        tmp_result.unlink()
        return False, f"results incomplete ({problem}), see {log_path}"
    result["cell_request"] = request
    result["label"] = row_label(request)
    io.write_json(result_path, result)
    tmp_result.unlink()
    return True, ("ran with --resume=True" if resumed else "ran") + rerun


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def summarise(results: list[dict], seeds_asked: int | None = None) -> dict:
    """{row: {protocol: {split: {domain: {metric: [mean, std, n]}}}, '_runs': {...}}}: the RunResult order
    (results.py) under a row label. ``seeds_asked``: the grid's seeds, so a row with fewer finished runs is
    marked where its mean is shown."""
    summary: dict = {}
    for model in dict.fromkeys(row_label(r) for r in results):
        runs = [r for r in results if row_label(r) == model]
        entry: dict = {"_runs": {
            "seeds": [r["seed"] for r in runs],
            "epochs_run": [r["epochs_run"] for r in runs],
            "train_seconds": mean_std([r["train_seconds"] for r in runs]),
            "train_cpu_seconds": mean_std([r["train_cpu_seconds"] for r in runs])
            if all(r.get("train_cpu_seconds") is not None for r in runs) else None,
            "wall_seconds": mean_std([r["wall_seconds"] for r in runs]),
            "wall_partial_seeds": [r["seed"] for r in runs if r.get("wall_seconds_partial")],
            "best_epoch": [r["best_epoch"] for r in runs],
            "stop_reasons": [r.get("stop_reason") for r in runs],
            "seeds_asked": seeds_asked,
        }}
        for protocol in runs[0]["protocols"]:
            for split in SPLITS:
                for d in DOMAINS:
                    metrics = runs[0][protocol][split].get(d, {})
                    for metric in metrics:
                        values = [r[protocol][split][d][metric] for r in runs if d in r[protocol][split]]
                        m, s = mean_std(values)
                        entry.setdefault(protocol, {}).setdefault(split, {}).setdefault(d, {})[metric] = [m, s, len(values)]
        summary[model] = entry
    return summary


BUDGET_MARK = "†"  # after a run's epoch count: the budget ended the run, not the model selection
FEW_SEEDS_MARK = "‡"  # after a row's label: its mean is over fewer seeds than the grid asked (the others failed)
PARTIAL_WALL_MARK = "≥"  # before a row's wall seconds: a run's count misses the processes before its resume


def few_seeds(entry: dict) -> bool:
    """Whether a row's mean is over fewer seeds than the grid asked."""
    asked = entry["_runs"].get("seeds_asked")
    return bool(asked) and len(entry["_runs"]["seeds"]) < asked


def row_name(label: str, entry: dict) -> str:
    """A row's label as the tables show it, marked when its mean is over fewer seeds than asked."""
    return f"{label} {FEW_SEEDS_MARK}" if few_seeds(entry) else label


def _shown(mean: float) -> float:
    """A mean as its table cell prints it (percent, two decimals), as a number to compare."""
    return float(f"{100 * mean:.2f}")


def markdown_table(summary: dict, domain_names: dict, protocol: str, split: str = "test",
                   metrics: tuple = TABLE_METRICS, anchor: dict | None = None) -> str:
    """Rows = models; columns = domain x metric, 'mean ± std' in percent; best mean per column in bold, as
    shown (two means that print alike are both best); the published anchor (if it reports this protocol and
    split) as a last, italic row."""
    columns = [(d, m) for d in DOMAINS for m in metrics]
    best = {c: max(_shown(summary[mod][protocol][split][c[0]][c[1]][0]) for mod in summary) for c in columns}
    head = "| model | " + " | ".join(f"{domain_names.get(d, d)} {m}" for d, m in columns) + " | epochs | train s (CPU) | wall s |"
    lines = [head, "|" + "---|" * (len(columns) + 4)]
    for model, entry in summary.items():
        cells = []
        for c in columns:
            mean, std, _ = entry[protocol][split][c[0]][c[1]]
            text = f"{100 * mean:.2f} ± {100 * std:.2f}"
            cells.append(f"**{text}**" if _shown(mean) == best[c] else text)
        runs = entry["_runs"]
        cpu = "-" if runs["train_cpu_seconds"] is None else f"{runs['train_cpu_seconds'][0]:.0f}"
        epochs = ",".join(f"{e}{BUDGET_MARK if budget_stopped(r) else ''}"
                          for e, r in zip(runs["epochs_run"], runs["stop_reasons"]))
        wall = (PARTIAL_WALL_MARK if runs["wall_partial_seeds"] else "") + f"{runs['wall_seconds'][0]:.0f}"
        lines.append(f"| {row_name(model, entry)} | " + " | ".join(cells) + f" | {epochs} | {runs['train_seconds'][0]:.0f} ({cpu}) | {wall} |")
    if report.anchor_applies(anchor, protocol, split):
        lines.append(report.anchor_row(anchor, columns))
    return "\n".join(lines)


def anchor_gap_table(summary: dict, domain_names: dict, protocol: str, anchor: dict | None,
                     split: str = "test", metrics: tuple = TABLE_METRICS) -> str:
    """Each row's mean minus the published number, in points, for the columns the anchor publishes;
    bold where the mean reaches it, and a closing line naming the rows that reach it in all of them.
    Both numbers are taken as the tables print them (two decimals, as papers publish): a mean printed equal
    to the published number reaches it, and the gap never reads -0.00 beside two equal printed numbers.
    Empty when there is no anchor of this protocol and split."""
    if not report.anchor_applies(anchor, protocol, split):
        return ""
    columns = [(d, m) for d in DOMAINS for m in metrics if anchor.get(d, {}).get(m) is not None]
    if not columns:
        return ""
    head = "| model | " + " | ".join(f"{domain_names.get(d, d)} {m}" for d, m in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    reached = []
    for model, entry in summary.items():
        gaps = [round(_shown(entry[protocol][split][d][m][0]) - _shown(anchor[d][m]), 2) for d, m in columns]
        cells = [f"**{g:+.2f}**" if g >= 0 else f"{g:+.2f}" for g in gaps]
        lines.append(f"| {row_name(model, entry)} | " + " | ".join(cells) + " |")
        if all(g >= 0 for g in gaps):
            reached.append(row_name(model, entry))
    lines += ["", f"Rows whose mean reaches *{anchor['label']}* in every column above: "
              f"{', '.join(reached) if reached else 'none'}."]
    return "\n".join(lines)


def budget_stops(summary: dict) -> str:
    """The runs a training budget stopped, e.g. 'SASRec seeds 0, 2 (120 CPU-minute budget)'; '' if none."""
    cut: dict = {}
    for label, entry in summary.items():
        runs = entry["_runs"]
        for seed, reason in zip(runs["seeds"], runs["stop_reasons"]):
            if budget_stopped(reason):
                cut.setdefault((label, reason), []).append(seed)
    return "; ".join(f"{named_runs(label, seeds)} ({reason})" for (label, reason), seeds in cut.items())


def named_runs(label: str, seeds: list) -> str:
    """'SASRec seed 1' or 'SASRec seeds 0, 2': the runs a line under the tables names."""
    return f"{label} seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def select_on_validation(summary: dict, protocol: str, metric: str = "MRR") -> tuple[str, float]:
    """The row with the best validation ``metric`` averaged over the domains (ties: first row).
    Always validation: a setting chosen on test numbers would report an optimistic test score."""
    if metric not in TABLE_METRICS:
        raise ValueError(f"--select={metric}: choose one of {', '.join(TABLE_METRICS)}")
    scores = {label: float(np.mean([entry[protocol]["valid"][d][metric][0] for d in DOMAINS]))
              for label, entry in summary.items()}
    best = max(scores, key=scores.get)
    return best, scores[best]


def write_outputs(out_dir: Path, dataset: str, command: str, results: list[dict], failed: list[str],
                  anchor: dict | None, split: str = "test", select: str | None = None,
                  seeds_asked: int | None = None) -> str:
    """summary.json / .csv / .md / .png in ``out_dir``; returns the Markdown."""
    summary = summarise(results, seeds_asked)
    domain_names = results[0]["domains"]
    report.write_csv(summary, domain_names, out_dir / "summary.csv")
    report.plot(summary, domain_names, out_dir / "summary.png", anchor=anchor if split == "test" else None,
                split=split, title=f"{dataset}: {split} MRR, mean ± std over seeds")
    parts = [f"Produced on {time.strftime('%Y-%m-%d')} by `{command}`; {split} split, mean ± std (population) over "
             f"seeds, percent; best mean per column in bold.", ""]
    if anchor and split == "test":
        parts += [f"Published anchor ({anchor['protocol']} protocol): *{anchor['label']}*, {anchor['source']}", ""]
    for protocol in results[0]["protocols"]:
        parts += [f"**{protocol} protocol**", "",
                  markdown_table(summary, domain_names, protocol, split=split, anchor=anchor), ""]
        gaps = anchor_gap_table(summary, domain_names, protocol, anchor, split=split)
        if gaps:
            parts += [f"**{protocol} protocol, against *{anchor['label']}*** (row mean minus the published "
                      f"number, points; bold where the mean reaches it)", "", gaps, ""]
    cut = budget_stops(summary)
    if cut:
        parts += [f"{BUDGET_MARK} Stopped by the training budget before model selection stopped it: {cut}.", ""]
    partial = "; ".join(named_runs(label, entry["_runs"]["wall_partial_seeds"])
                        for label, entry in summary.items() if entry["_runs"]["wall_partial_seeds"])
    short = "; ".join(named_runs(label, entry["_runs"]["seeds"]) for label, entry in summary.items() if few_seeds(entry))
    if short:
        parts += [f"{FEW_SEEDS_MARK} Mean and std over fewer seeds than the {seeds_asked} asked (the other runs failed, "
                  f"listed below): only {short}.", ""]
    if partial:
        parts += [f"{PARTIAL_WALL_MARK} Wall seconds undercount: resumed from a checkpoint that did not record the "
                  f"earlier processes' wall time, these runs count only their last process: {partial}.", ""]
    if select:
        selected = {}
        for protocol in results[0]["protocols"]:
            label, score = select_on_validation(summary, protocol, select)
            selected[protocol] = {"label": label, "metric": select, "score": score}
            parts += [f"Selected on validation ({protocol} protocol, mean of the two domains' {select}): "
                      f"**{row_name(label, summary[label])}** ({100 * score:.2f})", ""]
        io.write_json(out_dir / "selection.json", selected)
    else:  # an earlier grid's choice must not stand beside this grid's table
        (out_dir / "selection.json").unlink(missing_ok=True)
    if failed:
        parts += ["Failed cells:", ""] + [f"- {f}" for f in failed] + [""]
    io.write_json(out_dir / "summary.json", summary)
    markdown = "\n".join(parts)
    io.write_text(out_dir / "summary.md", f"# {dataset}\n\n{markdown}")
    return markdown


_positive_int = number_option(int, lambda value: value >= 1, "at least 1")


SUMMARY_FILES = ("summary.md", "summary.csv", "summary.json", "summary.png", "selection.json")


def write_no_results(out_dir: Path, dataset: str, command: str, failed: list[str]) -> None:
    """No cell finished: summary.md says so and lists the failures; older summaries are removed so
    no stale table stands for this grid."""
    for name in SUMMARY_FILES:
        (out_dir / name).unlink(missing_ok=True)
    lines = [f"# {dataset}", "", f"No cell finished (`{command}`, {time.strftime('%Y-%m-%d')}).", "", "Failed cells:", ""]
    io.write_text(out_dir / "summary.md", "\n".join(lines + [f"- {f}" for f in failed]) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"{PROG} compare", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", default="Pop,GRU4Rec,SASRec,SRGNN",
                        help="comma-separated [label=]Model[:key=value...] entries")
    parser.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0..N-1 (N >= 1)")
    parser.add_argument("--config_files", default="", help="comma-separated YAML files every cell reads")
    parser.add_argument("--out", default=None, help="folder of the cells and the summary (default results/<dataset>)")
    parser.add_argument("--jobs", type=_positive_int, default=1, help="cells run at once")
    parser.add_argument("--resume", action="store_true",
                        help="a cell that was interrupted continues from its last checkpoint (run --resume=True) "
                             "instead of starting afresh; finished cells are reused either way")
    parser.add_argument("--protocols", default=None, help="sampled,full (default: the config's 'protocol', both)")
    parser.add_argument("--anchors", default=str(report.ANCHORS_FILE), help="YAML of published numbers per dataset")
    parser.add_argument("--readme", default=None,
                        help="also fill the block <!-- results:KEY:start/end --> of this Markdown file, e.g. "
                             "docs/results.md (KEY = --readme_key or the dataset); the chart goes to "
                             "results/KEY.png beside it")
    parser.add_argument("--readme_key", default=None)
    parser.add_argument("--split", default="test", choices=("valid", "test"), help="split the tables show")
    parser.add_argument("--select", default=None, choices=TABLE_METRICS,
                        help="name the row with the best validation METRIC (mean over domains), e.g. MRR")
    parser.add_argument("--plan", action="store_true",
                        help="say what each cell would do (reused, trains, resumes, left alone) and stop: "
                             "nothing is trained, nothing written under --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The grid from ``argv`` (default ``sys.argv[1:]``); exit status 1 when a cell failed (cli.py)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = config_options(extra)
    refused = refused_grid_option(overrides)
    if refused:
        parser.error(refused)
    command = f"{PROG} compare " + " ".join(argv)
    if args.protocols:
        wanted = set(args.protocols.split(","))
        if not wanted or not wanted <= {"sampled", "full"}:
            parser.error(f"--protocols={args.protocols}: use sampled, full or sampled,full")
        if any(o.startswith("--protocol=") for o in overrides):
            parser.error("--protocol and --protocols: give one (--protocols sets every cell's protocol)")
        overrides.append("--protocol=" + ("both" if len(wanted) == 2 else wanted.pop()))
    config_files = [f for f in args.config_files.split(",") if f]
    from recbole_ifcdsr.registry import get_model  # imports RecBole: only once the arguments parsed

    try:
        specs = [parse_model_spec(m) for m in split_top_level(args.models, ",") if m]
        for _, model, _ in specs:  # every name before any cell starts, not after hours of the others
            get_model(model)
    except ConfigError as error:
        parser.error(f"--models: {error}")
    if not specs:
        parser.error("--models: no model given")
    shared = shared_cell_files([label for label, _, _ in specs])
    if shared:
        parser.error(f"--models: {shared}")
    missing = [f for f in config_files if not Path(f).is_file()]
    if missing:
        parser.error(f"--config_files: {missing[0]} not found")
    unknown = unknown_setting(overrides + [o for _, _, own in specs for o in own], config_files)
    if unknown:
        parser.error(unknown)
    return run_cli(lambda: run_grid(args, specs, config_files, overrides, command))


def print_plan(cells: list, out_dir: Path, resume: bool) -> int:
    """One line per cell, then the counts; exit status 0 (a plan is not a failure)."""
    plans = [plan_cell(request, out_dir, own, resume) for request, own in cells]
    for (request, _), (_, how) in zip(cells, plans):
        print(f"{row_label(request)} seed {request['seed']}: {how}")
    kinds = [kind for kind, _ in plans]
    n = {kind: kinds.count(kind) for kind in ("reused", "busy", "resumes", "trains")}
    print(f"{len(plans)} cells: {n['reused']} reused, {n['trains'] + n['resumes']} to train "
          f"({n['resumes']} resuming), {n['busy']} running elsewhere")
    return 0


def run_grid(args: argparse.Namespace, specs: list, config_files: list[str], overrides: list[str], command: str) -> int:
    """Run (or reuse) every cell, write the summary and print its table last (with --plan: only say what
    each cell would do)."""
    out_dir = Path(args.out or f"results/{args.dataset}")
    cells = []
    for label, model, own in specs:
        for seed in range(args.seeds):
            cells.append((cell_request(model, args.dataset, seed, config_files, overrides + own, label), overrides + own))
    if args.plan:
        return print_plan(cells, out_dir, args.resume)
    out_dir.mkdir(parents=True, exist_ok=True)

    def run(cell):
        start = time.monotonic()
        ok, how = run_cell(cell[0], out_dir, config_files, cell[1], resume=args.resume)
        print(f"[{time.strftime('%H:%M:%S')}] {row_label(cell[0])} seed {cell[0]['seed']}: {how} "
              f"({time.monotonic() - start:.0f}s)", flush=True)
        return ok, how

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(run, cells))
    results, failed = [], []
    for (request, _), (ok, how) in zip(cells, outcomes):
        stored = json.loads(cell_path(out_dir, request, ".json").read_text()) if ok else None
        if ok and not same_request(stored.get("cell_request"), request):  # another compare on this --out replaced it meanwhile
            ok, how = False, "its results file now holds another request's run (another compare on this --out?)"
        if ok:
            results.append(stored)
        else:
            failed.append(f"{row_label(request)} seed {request['seed']}: {how}")
    if not results:
        write_no_results(out_dir, args.dataset, command, failed)
        print("no cell finished:\n" + "\n".join(failed), file=sys.stderr)
        return 1
    markdown = write_outputs(out_dir, args.dataset, command, results, failed,
                             report.load_anchors(args.dataset, args.anchors), split=args.split, select=args.select,
                             seeds_asked=args.seeds)
    print(f"written: {out_dir}/summary.md, summary.csv, summary.json, summary.png")
    if args.readme:
        key = args.readme_key or args.dataset
        link = f"results/{file_stem(key)}.png"  # relative to the Markdown file, committed beside it
        figure = Path(args.readme).resolve().parent / link
        io.copy_file(out_dir / "summary.png", figure)
        report.replace_readme_block(args.readme, key, markdown + f"\n![{key}: {args.split} MRR per model]({link})\n")
        print(f"block '{key}' filled in {args.readme}; figure {figure}")
    print()
    print(markdown)  # the table comes last, where a user looks when the grid ends
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

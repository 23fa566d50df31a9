"""python -m recbole_ifcdsr run --model=SASRec --dataset=fk_abxi [--config_files=a.yaml,b.yaml]
    [--protocol=sampled|full|both] [--seed=N] [--results_file=out.json] [--data_path=dataset] [--any_config_key=value]

One run: train ``--model`` on ``--dataset`` per the dataset's recipe and evaluate it under both protocols,
ending with a per-domain table (and ``--results_file`` as JSON). Every other ``--key=value`` (or
``--key value``) is a RecBole or plug-in config key and wins over the YAML files.
``python run_recbole_ifcdsr.py`` (in a checkout) and ``python -m recbole_ifcdsr.run`` are the same command.
Exit status as for every command (recbole_ifcdsr/cli.py): 0 with results; 2 with one 'error: ...' line for a
bad input or a run without results (nothing written).
"""
from __future__ import annotations

import argparse
import os
import sys

import recbole_ifcdsr  # noqa: F401  (applies the compat patches first)
from recbole_ifcdsr.cli import PROG, CommandParser, config_options
from recbole_ifcdsr.errors import run_cli


DEFAULTS = {"model": "SASRec", "dataset": "fk_abxi"}


def named_in_files(files: list[str] | None, key: str) -> str | None:
    """The ``model`` or ``dataset`` the config files set (the last one wins, as in the merge); None if none
    does. Without this the parser's default beat a config file's ``model: IFCDSR`` and SASRec ran."""
    from recbole_ifcdsr.yamlfile import read_yaml

    found = None
    for file in files or []:
        loaded = read_yaml(file) if os.path.isfile(file) else {}  # a missing file is the Config's to report
        if isinstance(loaded, dict) and loaded.get(key) is not None:
            found = str(loaded[key])
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"{PROG} run", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default=None,
                        help=f"ours (Pop, IFCDSR, LLMEMF) or a RecBole sequential model (default: the config files' "
                             f"model, else {DEFAULTS['model']})")
    parser.add_argument("--dataset", "-d", default=None,
                        help=f"a dataset with properties/dataset/<name>.yaml (default: the config files' dataset, "
                             f"else {DEFAULTS['dataset']})")
    parser.add_argument("--config_files", default=None, help="comma-separated YAML files")
    return parser


def main(argv: list[str] | None = None) -> int:
    """One run from ``argv`` (default ``sys.argv[1:]``); see the module docstring."""
    args, extra = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    settings = config_options(extra)
    files = [f for f in args.config_files.split(",") if f] if args.config_files else None

    def run() -> int:
        from recbole_ifcdsr.quick_start import run_recbole_ifcdsr

        model, dataset = (getattr(args, key) or named_in_files(files, key) or DEFAULTS[key] for key in DEFAULTS)
        run_recbole_ifcdsr(model=model, dataset=dataset, config_file_list=files, argv=settings)
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())

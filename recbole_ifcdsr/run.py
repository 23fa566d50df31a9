"""Command line: python -m recbole_ifcdsr.run --model=SASRec --dataset=fk_abxi [--config_files=a.yaml,b.yaml]
[--protocol=sampled|full|both] [--seed=N] [--results_file=out.json] [--any_config_key=value]

(``python run_recbole_ifcdsr.py`` in a source checkout is the same command.)
Any other --key=value is a RecBole/plug-in config key and wins over the YAML files.
Exit status: 0 with results; 2 with one 'error: ...' line for a bad input or a run without results
(nothing written); anything else is a bug and shows its traceback.
"""
import argparse
import sys

import recbole_ifcdsr  # noqa: F401  (applies the compat patches first)
from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr


def main() -> int:
    """One run from ``sys.argv`` (RecBole's Config reads the ``--key=value`` options from it too)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="SASRec")
    parser.add_argument("--dataset", "-d", default="fk_abxi")
    parser.add_argument("--config_files", default=None, help="comma-separated YAML files")
    args, _ = parser.parse_known_args()
    files = [f for f in args.config_files.split(",") if f] if args.config_files else None

    def run() -> int:
        run_recbole_ifcdsr(model=args.model, dataset=args.dataset, config_file_list=files)
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())

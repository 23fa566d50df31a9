"""Command line: python -m recbole_ifcdsr.run --model=SASRec --dataset=fk_abxi [--config_files=a.yaml,b.yaml]
[--protocol=sampled|full|both] [--seed=N] [--results_file=out.json] [--any_config_key=value]

(``python run_recbole_ifcdsr.py`` in a source checkout is the same command.)
Any other --key=value is a RecBole/plug-in config key and wins over the YAML files.
"""
import argparse
import sys

import recbole_ifcdsr  # noqa: F401  (applies the compat patches first)
from recbole_ifcdsr.quick_start import run_recbole_ifcdsr
from recbole_ifcdsr.registry import UnknownNameError


def main() -> int:
    """One run from ``sys.argv`` (RecBole's Config reads the ``--key=value`` options from it too)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="SASRec")
    parser.add_argument("--dataset", "-d", default="fk_abxi")
    parser.add_argument("--config_files", default=None, help="comma-separated YAML files")
    args, _ = parser.parse_known_args()
    files = [f for f in args.config_files.split(",") if f] if args.config_files else None
    try:
        run_recbole_ifcdsr(model=args.model, dataset=args.dataset, config_file_list=files)
    except (UnknownNameError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

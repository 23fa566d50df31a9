"""``python -m recbole_ifcdsr.features``: an alias of ``python -m recbole_ifcdsr features`` (features/cli.py)."""
import sys

from recbole_ifcdsr.features.cli import main

if __name__ == "__main__":
    sys.exit(main())

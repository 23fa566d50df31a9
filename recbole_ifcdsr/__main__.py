"""``python -m recbole_ifcdsr <command>``: the one command line (recbole_ifcdsr/cli.py)."""
import sys

from recbole_ifcdsr.cli import main

sys.exit(main())

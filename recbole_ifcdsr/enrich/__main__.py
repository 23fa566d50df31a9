"""``python -m recbole_ifcdsr.enrich``: an alias of ``python -m recbole_ifcdsr enrich`` (enrich/cli.py)."""
import sys

from recbole_ifcdsr.enrich.cli import main

if __name__ == "__main__":
    sys.exit(main())

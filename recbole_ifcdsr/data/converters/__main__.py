"""``python -m recbole_ifcdsr.data.converters``: an alias of ``python -m recbole_ifcdsr convert``."""
import sys

from recbole_ifcdsr.data.converters import main

sys.exit(main())

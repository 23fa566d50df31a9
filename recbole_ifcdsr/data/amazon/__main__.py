"""``python -m recbole_ifcdsr.data.amazon``: an alias of ``python -m recbole_ifcdsr convert amazon``."""
import sys

from recbole_ifcdsr.data.amazon import main

sys.exit(main())

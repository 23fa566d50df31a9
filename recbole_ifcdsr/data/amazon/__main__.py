"""Allow ``python -m recbole_ifcdsr.data.amazon``."""
import sys

from .cli import main

sys.exit(main())

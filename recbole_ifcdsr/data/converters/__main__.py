"""Allow ``python -m recbole_ifcdsr.data.converters``."""
import sys

from . import main

sys.exit(main())

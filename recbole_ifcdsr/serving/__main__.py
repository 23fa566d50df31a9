import sys

from recbole_ifcdsr.serving.cli import main

sys.exit(main())

"""python run_recbole_ifcdsr.py --model=SASRec --dataset=fk_abxi [--any_config_key=value]

A thin wrapper kept at the top level, like RecBole's run_recbole.py: the command lives in the package
(``python -m recbole_ifcdsr.run``, see recbole_ifcdsr/run.py for the options).
"""
import sys

from recbole_ifcdsr.run import main

if __name__ == "__main__":
    sys.exit(main())

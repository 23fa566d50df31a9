"""Raw Amazon review releases (2014, 2018, 2023) -> the IFCDSR paper's cross-domain scenario.

The paper (following C2DSR) keeps users with interactions in both domains, drops users and items
with fewer than 10 interactions, builds cross-domain sequences with at least 3 items of each
domain, puts each user's latest sequence into validation or test (equal halves) and the rest into
training. ``scenario.py`` states how each step is read where the paper is silent; ``readers.py``
the schemas; ``convert.py`` the outputs. CLI (options in recbole_ifcdsr/data/convert.py)::

    python -m recbole_ifcdsr convert amazon --name=amazon_food_kitchen \\
        --x=reviews_Grocery_and_Gourmet_Food.json.gz,meta_Grocery_and_Gourmet_Food.json.gz \\
        --y=reviews_Home_and_Kitchen.json.gz,meta_Home_and_Kitchen.json.gz
"""
from __future__ import annotations

import sys
from typing import List, Optional

from .convert import AMAZON_ITEM_HEADER, convert_amazon, properties_yaml
from .readers import ErrorPolicy, classify, image_urls, iter_interactions, iter_metadata
from .scenario import ScenarioOptions, build_scenario, cut_sequences

__all__ = [
    "AMAZON_ITEM_HEADER", "ErrorPolicy", "ScenarioOptions", "build_scenario", "classify",
    "convert_amazon", "cut_sequences", "image_urls", "iter_interactions", "iter_metadata", "main",
    "properties_yaml",
]


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m recbole_ifcdsr.data.amazon ...``: an alias of ``python -m recbole_ifcdsr convert amazon ...``."""
    from recbole_ifcdsr.data.convert import main as convert_main

    return convert_main(["amazon", *(sys.argv[1:] if argv is None else argv)])

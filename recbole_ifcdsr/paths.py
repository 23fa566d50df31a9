"""Where the plug-in's own files live (properties/, dataset/), resolved from the package location."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PROPERTIES_DIR = REPO_ROOT / "properties"
DATASET_DIR = REPO_ROOT / "dataset"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def known_datasets() -> list[str]:
    """Dataset names that have a properties/dataset/<name>.yaml."""
    return sorted(p.stem for p in (PROPERTIES_DIR / "dataset").glob("*.yaml"))

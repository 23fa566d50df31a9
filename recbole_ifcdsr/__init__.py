"""recbole-ifcdsr: multimodal cross-domain sequential recommendation as a RecBole plug-in."""
from recbole_ifcdsr import compat as _compat

_compat.apply()

__version__ = "0.1.0"

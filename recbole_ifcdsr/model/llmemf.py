r"""LLM-EMF: IFCDSR plus a frozen text table of LLM-enriched item text (same authors, 2025).

Reference: Wangyu Wu, Zhenhong Chen, Xianglin Qiu, Siqi Song, Xiaowei Huang, Fei Ma, Jimin Xiao.
"LLM-Enhanced Multimodal Fusion for Cross-Domain Sequential Recommendation." 2025 (arXiv:2506.17966).

Everything of IFCDSR (sub-sequences, encoders, cosine scores, loss types, loss and score weights, the
missing-feature rule) is inherited; this class adds one frozen table, ``txt``: text embeddings of each
item's title, or of the title as an LLM enriched it (``python -m recbole_ifcdsr.enrich``), from the
feature store ``<data_path>/<dataset>/<dataset>.<text_feature>.npz``, with its own encoder per sub-sequence.
Per branch ``P = w_id * P_id + w_img * P_img + w_txt * P_txt``.

Where the paper is silent (its fusion weights are not public), what this file does:

- The weights are YAML keys (``fusion_weights``); a table without a feature store (no images here)
  drops out and the remaining weights are renormalised, keeping their ratios. IFCDSR's ``alpha`` is
  not used (``properties/model/LLMEMF.yaml`` unsets it; setting it is an error).
- Defaults: ID and text weigh 0.5 : 0.5, chosen on validation data (text weights 0.1, 0.18, 0.3, 0.5
  on fk_abxi and fk_llmcdsr; docs/results.md "LLMEMF's fusion weights"); the image weight (0.15) is not tuned,
  as no image features exist here.
- Items without text (no title) follow IFCDSR's neutral rule: the text branch only redistributes
  probability among items that have text.
"""
from __future__ import annotations

from recbole_ifcdsr.model.ifcdsr import IFCDSR

TABLES = ("id", "img", "txt")


class LLMEMF(IFCDSR):
    """See the module docstring."""

    frozen_tables = {"txt": "text"}

    def read_fusion_weights(self, config) -> dict:
        if config["alpha"] is not None:
            raise ValueError("alpha is IFCDSR's ID weight; LLMEMF weighs its tables with fusion_weights "
                             "(keys id, img, txt)")
        weights = dict(config["fusion_weights"] or {})
        unknown = set(weights) - set(TABLES)
        if unknown or any(float(w) < 0 for w in weights.values()) or not any(float(w) > 0 for w in weights.values()):
            raise ValueError(f"fusion_weights {weights}: keys id, img, txt with weights >= 0, at least one > 0")
        return {k: float(weights.get(k, 0.0)) for k in TABLES}

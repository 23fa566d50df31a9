r"""LLM-EMF: IFCDSR plus a frozen text table of LLM-enriched item text (same authors, 2025).

Everything of IFCDSR (sub-sequences, encoders, cosine scores, loss and score weights, the
missing-feature rule) is inherited; this class adds one frozen modality, ``txt``: text embeddings
of each item's title, or of the title as an LLM enriched it (``python -m recbole_ifcdsr.enrich``),
from the feature store ``<data_path>/<dataset>.<text_feature>.npz``, with its own encoder per
sub-sequence. Per branch ``P = w_id * P_id + w_img * P_img + w_txt * P_txt``.

Where the paper is silent (its fusion weights are not public), what this file does:

- The weights are YAML keys (``fusion_weights``); a modality without a feature store (no images here)
  drops out and the remaining weights are renormalised, keeping their ratios.
- Defaults: ID and text weigh 0.5 : 0.5, chosen on validation data (text weights 0.1, 0.18, 0.3, 0.5
  on fk_abxi and fk_llmcdsr; README "LLMEMF's fusion weights"); the image weight (0.15) is not tuned,
  as no image features exist here.
- Items without text (no title) follow IFCDSR's neutral rule: the text branch only redistributes
  probability among items that have text.
"""
from __future__ import annotations

from recbole_ifcdsr.model.ifcdsr import IFCDSR


class LLMEMF(IFCDSR):
    """See the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        weights = dict(config["fusion_weights"] or {})
        unknown = set(weights) - {"id", "img", "txt"}
        if unknown or any(float(w) < 0 for w in weights.values()) or not any(float(w) > 0 for w in weights.values()):
            raise ValueError(f"fusion_weights {weights}: keys id, img, txt with weights >= 0, at least one > 0")
        self._weights = {k: float(weights.get(k, 0.0)) for k in ("id", "img", "txt")}
        self.text_fusion = self._add_frozen(config, dataset, "txt", bool(config["text_fusion"]))
        if self.text_fusion:
            self.text_encoders.apply(self._init_weights)
        if not any(self._active_weights().values()):
            raise ValueError("LLMEMF: every available modality has fusion weight 0")

    def fusion_weights(self) -> dict:
        return self._weights

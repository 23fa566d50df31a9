"""Pop: per-domain popularity, the floor every CDSR model must beat.

Scores an item by how often it occurs in the training sequences. Ranking is always within the
target's domain, so this is per-domain popularity. Many items share a count (most often 0); a
seeded jitter in [0, 0.5) breaks those ties at random instead of letting the recipes' tie rule
(ties go to the target) hand the floor free rank-1 hits.
"""
from __future__ import annotations

import numpy as np
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType


class Pop(SequentialRecommender):
    """Training-count popularity with seeded random tie-breaking; nothing to train."""

    input_type = InputType.POINTWISE
    cdsr_training = "none"  # evaluated directly, no training view

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        counts = dataset.train_item_counts().astype(np.float64)
        jitter = np.random.default_rng(config["seed"]).random(len(counts)) * 0.5
        self.register_buffer("item_score", torch.as_tensor(counts + jitter, dtype=torch.float32))

    def calculate_loss(self, interaction):
        raise RuntimeError("Pop has nothing to train; it is evaluated directly")

    def predict(self, interaction):
        return self.item_score[interaction[self.ITEM_ID]]

    def full_sort_predict(self, interaction):
        batch = interaction[self.ITEM_SEQ].shape[0]
        return self.item_score.unsqueeze(0).expand(batch, -1)

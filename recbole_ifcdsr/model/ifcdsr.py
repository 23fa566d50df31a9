r"""IFCDSR: Image Fusion for Cross-Domain Sequential Recommendation (WWW Companion 2025).

A learnable item-ID table over both domains and a frozen image table (CLIP features from the item
feature store, never trained); attention encoders (RecBole's TransformerEncoder, causal) over the
sub-sequences S^X, S^Y and S^{X+Y}, one for ID and one for image per sub-sequence (six); the last
position is the sequence vector; cosine similarity against the item tables; per branch
``P = alpha * softmax(sim_id / t) + (1 - alpha) * softmax(sim_img / t)``.

Where the paper is ambiguous, what this file does:

- Softmax sets: S^X scores X items only and S^Y scores Y items only (within-domain softmax, eqs. 3-4);
  S^{X+Y} scores all items of both domains (eq. 8), restricted to the target domain when ranking.
- Loss and score weights: the paper writes ``L = L_X + l1 * L_Y + l2 * L_XY`` and
  ``P = P_X + l1 * P_Y + l2 * P_XY`` with X the target domain. Both domains are targets here, so
  with ``symmetric_domains`` (default) each domain takes the X role in turn: training uses the mean of
  the two losses, ``(1 + l1) / 2 * (L_X + L_Y) + l2 * L_XY``, and an item of domain D is scored by
  ``P_D + l1 * P_other + l2 * P_XY``, where ``P_other`` is the other domain's sequence vector scored
  against D's items (the ID table is shared). ``symmetric_domains: False`` gives the literal loss.
- Every position of every training sequence is a target (causal attention, loss summed over positions
  and averaged over sequences); the sub-sequences come from the merged sequence cut to the model's
  length (``MAX_ITEM_LIST_LENGTH`` for histories), not cut separately.
- Sizes: q (``id_embedding_size``, 256) is the ID table and its encoders' width; e (512) is the image
  feature width, which the image encoders keep. One transformer layer per encoder (not stated).
- ``temperature`` divides the cosine (1.0 = the paper's plain cosine).
- Items without an image (feature mask False) are neither rewarded nor punished: the image softmax is
  taken over imaged items and scaled by the ID branch's total probability of those items, and an
  item without an image takes its ID probability in the image slot, so the image branch only
  redistributes probability among imaged items. A branch whose sub-sequence is empty for a case
  contributes the uniform distribution.
"""
from __future__ import annotations

import math
from logging import getLogger

import torch
import torch.nn.functional as F
from recbole.model.layers import TransformerEncoder
from torch import nn

from recbole_ifcdsr.features.store import feature_path, load_aligned
from recbole_ifcdsr.model.abstract import X, Y, CrossDomainSequentialRecommender

BRANCHES = {"x": X, "y": Y, "xy": None}
FROZEN = {"img": "image", "txt": "text"}  # frozen modality -> name of its buffers, encoders and YAML key
SWITCH = {"img": "image_fusion", "txt": "text_fusion"}  # the attribute that switches a modality on


class SequenceEncoder(nn.Module):
    """Position embedding + LayerNorm + dropout + RecBole's TransformerEncoder; all positions out."""

    def __init__(self, config, hidden_size: int, max_len: int):
        super().__init__()
        self.position_embedding = nn.Embedding(max_len, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.encoder = TransformerEncoder(
            n_layers=config["n_layers"], n_heads=config["n_heads"], hidden_size=hidden_size,
            inner_size=config["inner_size_factor"] * hidden_size, hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"], hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )

    def forward(self, embedded: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(embedded.size(1), device=embedded.device)
        hidden = self.dropout(self.layer_norm(embedded + self.position_embedding(positions)))
        return self.encoder(hidden, attention_mask, output_all_encoded_layers=False)[-1]


class IFCDSR(CrossDomainSequentialRecommender):
    """See the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()
        self.alpha = float(config["alpha"])
        self.lambda1 = float(config["lambda1"])
        self.lambda2 = float(config["lambda2"])
        self.temperature = float(config["temperature"])
        self.symmetric = bool(config["symmetric_domains"])
        self.multiple_attention = bool(config["multiple_attention"])
        self.branch_names = list(BRANCHES) if self.multiple_attention else ["xy"]
        id_size = int(config["id_embedding_size"])
        self.item_embedding = nn.Embedding(self.n_items, id_size, padding_idx=0)
        self.id_encoders = nn.ModuleDict({b: SequenceEncoder(config, id_size, self.max_seq_length) for b in self.branch_names})
        self.frozen_modalities: list[str] = []  # feature tables loaded, in FROZEN order
        self.image_fusion = self._add_frozen(config, dataset, "img", bool(config["image_fusion"]))
        # position of each item inside its domain's item list (for within-domain targets)
        position = torch.zeros(self.n_items, dtype=torch.long)
        for d in (X, Y):
            items = self.domain_items(d)
            position[items] = torch.arange(len(items))
        self.register_buffer("domain_position", position)
        self.register_buffer("all_items", torch.arange(1, self.n_items))
        self.initializer_range = config["initializer_range"]
        self.apply(self._init_weights)

    # ---- construction ------------------------------------------------------------------------
    def _add_frozen(self, config, dataset, modality: str, wanted: bool) -> bool:
        """Load a frozen feature table (buffers ``<name>_table``/``<name>_mask``) and give it one
        encoder per branch; False (with one warning) when the store is missing or empty."""
        if not wanted or not self._load_frozen(config, dataset, modality):
            return False
        name = FROZEN[modality]
        dim = getattr(self, f"{name}_table").size(1)
        encoders = nn.ModuleDict({b: SequenceEncoder(config, dim, self.max_seq_length) for b in self.branch_names})
        setattr(self, f"{name}_encoders", encoders)
        self.frozen_modalities.append(modality)
        return True

    def _load_frozen(self, config, dataset, modality: str) -> bool:
        name = FROZEN[modality]
        path = feature_path(config["data_path"], config["dataset"], config[f"{name}_feature"])
        model = type(self).__name__
        if not path.is_file():
            self.logger.warning(f"{model}: no {name} features at {path}; {name} branch off")
            return False
        vectors, mask, _ = load_aligned(path, dataset.field2token_id[dataset.iid_field], self.n_items)
        if not mask.any():
            self.logger.warning(f"{model}: {path} has no unmasked item; {name} branch off")
            return False
        table = F.normalize(torch.as_tensor(vectors), dim=1) * torch.as_tensor(mask).unsqueeze(1)
        self.register_buffer(f"{name}_table", table)  # a buffer: frozen, never in the optimiser
        self.register_buffer(f"{name}_mask", torch.as_tensor(mask))
        self.logger.info(f"{model}: {name} features for {int(mask.sum())} of {self.n_items - 1} items from {path}")
        return True

    def fusion_weights(self) -> dict:
        """Weight of each probability in a branch: ``alpha`` for IDs, the rest for the image."""
        return {"id": self.alpha, "img": 1 - self.alpha}

    def active_modalities(self) -> list[str]:
        """Frozen modalities loaded and switched on (``image_fusion`` / ``text_fusion``)."""
        return [m for m in self.frozen_modalities if getattr(self, SWITCH[m])]

    def _active_weights(self) -> dict:
        """Fusion weights of the ID table and the active modalities, renormalised to sum to 1
        (a modality without features drops out and the others keep their ratios)."""
        weights = self.fusion_weights()
        active = {k: float(weights[k]) for k in ["id", *self.active_modalities()] if weights[k] > 0}
        total = sum(active.values())
        return {k: v / total for k, v in active.items()}

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    @property
    def n_encoders(self) -> int:
        return len(self.id_encoders) + sum(len(getattr(self, f"{FROZEN[m]}_encoders")) for m in self.active_modalities())

    # ---- encoding ----------------------------------------------------------------------------
    def _encode(self, branch: str, item_seq: torch.Tensor, id_table: torch.Tensor) -> dict:
        """Normalised outputs at every position, per modality, for one branch's sub-sequence."""
        mask = self.get_attention_mask(item_seq)
        out = {"id": F.normalize(self.id_encoders[branch](self.item_embedding(item_seq), mask), dim=-1)}
        for m in self.active_modalities():
            name = FROZEN[m]
            encoder = getattr(self, f"{name}_encoders")[branch]
            out[m] = F.normalize(encoder(getattr(self, f"{name}_table")[item_seq], mask), dim=-1)
        return out

    def _log_probs(self, vectors: dict, items: torch.Tensor, id_table: torch.Tensor) -> torch.Tensor:
        """log P over ``items`` for sequence vectors [N, d] (fused per the module docstring)."""
        log_p_id = torch.log_softmax(vectors["id"] @ id_table[items].T / self.temperature, dim=-1)
        weights = self._active_weights()
        if len(weights) == 1:
            return log_p_id if "id" in weights else self._modality_log_probs(next(iter(weights)), vectors, items, log_p_id)
        terms = [math.log(w) + (log_p_id if k == "id" else self._modality_log_probs(k, vectors, items, log_p_id))
                 for k, w in weights.items()]
        return torch.logsumexp(torch.stack(terms), dim=0)

    def _modality_log_probs(self, modality: str, vectors: dict, items: torch.Tensor, log_p_id: torch.Tensor):
        """A frozen modality's log P: its softmax over the items that have features, scaled by the ID
        branch's mass on them; items without features keep their ID probability (neutral rule)."""
        name = FROZEN[modality]
        has_feature = getattr(self, f"{name}_mask")[items]
        if not has_feature.any():
            return log_p_id
        logits = (vectors[modality] @ getattr(self, f"{name}_table")[items].T / self.temperature)
        logits = logits.masked_fill(~has_feature, -math.inf)
        featured_mass = torch.logsumexp(log_p_id.masked_fill(~has_feature, -math.inf), dim=-1, keepdim=True)
        return torch.where(has_feature, torch.log_softmax(logits, dim=-1) + featured_mass, log_p_id)

    def _branch_items(self, branch: str) -> torch.Tensor:
        return self.all_items if BRANCHES[branch] is None else self.domain_items(BRANCHES[branch])

    def _target_index(self, branch: str, targets: torch.Tensor) -> torch.Tensor:
        return targets - 1 if BRANCHES[branch] is None else self.domain_position[targets]

    # ---- RecBole API -------------------------------------------------------------------------
    def _loss_weights(self) -> dict:
        if not self.multiple_attention:
            return {"xy": 1.0}
        own = (1 + self.lambda1) / 2 if self.symmetric else 1.0
        return {"x": own, "y": own if self.symmetric else self.lambda1, "xy": self.lambda2}

    def calculate_loss(self, interaction):
        sequences = interaction[self.ITEM_SEQ]  # whole training sequences, right-padded
        id_table = F.normalize(self.item_embedding.weight, dim=-1)  # once per step, reused by all branches
        total = sequences.new_zeros((), dtype=torch.float)
        for branch, weight in self._loss_weights().items():
            sub, _ = self.sub_sequence(sequences, BRANCHES[branch])
            inputs, targets = sub[:, :-1], sub[:, 1:]
            valid = targets > 0
            if not valid.any():
                continue
            encoded = self._encode(branch, inputs, id_table)
            vectors = {k: v[valid] for k, v in encoded.items()}
            log_p = self._log_probs(vectors, self._branch_items(branch), id_table)
            nll = -log_p.gather(1, self._target_index(branch, targets[valid]).unsqueeze(1)).sum()
            total = total + weight * nll / sequences.size(0)
        return total

    def _last_vectors(self, branch: str, item_seq: torch.Tensor, id_table: torch.Tensor):
        sub, lengths = self.sub_sequence(item_seq, BRANCHES[branch])
        encoded = self._encode(branch, sub, id_table)
        last = (lengths - 1).clamp(min=0)
        rows = torch.arange(sub.size(0), device=sub.device)
        return {k: v[rows, last] for k, v in encoded.items()}, lengths > 0

    def _probs(self, branch: str, vectors: dict, present: torch.Tensor, items: torch.Tensor, id_table) -> torch.Tensor:
        probs = self._log_probs(vectors, items, id_table).exp()
        return torch.where(present.unsqueeze(1), probs, torch.full_like(probs, 1.0 / len(items)))

    def full_sort_predict(self, interaction):
        """[B, n_items]: each item scored as if its own domain were the target domain (the protocols
        rank within the target domain); padding gets -inf."""
        item_seq = interaction[self.ITEM_SEQ]
        id_table = F.normalize(self.item_embedding.weight, dim=-1)
        scores = torch.full((item_seq.size(0), self.n_items), -math.inf, device=item_seq.device)
        merged, present = self._last_vectors("xy", item_seq, id_table)
        p_all = self._probs("xy", merged, present, self.all_items, id_table)  # softmax over all items
        if not self.multiple_attention:
            scores[:, 1:] = p_all
            return scores
        per_domain = {d: self._last_vectors(name, item_seq, id_table) for name, d in (("x", X), ("y", Y))}
        for target in (X, Y):
            items = self.domain_items(target)
            other = Y if target == X else X
            own = self._probs("x" if target == X else "y", *per_domain[target], items, id_table)
            aux = self._probs("y" if target == X else "x", *per_domain[other], items, id_table)
            scores[:, items] = own + self.lambda1 * aux + self.lambda2 * p_all[:, items - 1]
        return scores

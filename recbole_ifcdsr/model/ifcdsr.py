r"""IFCDSR: Image Fusion for Cross-Domain Sequential Recommendation (WWW Companion 2025).

Reference: Wangyu Wu, Siqi Song, Xianglin Qiu, Xiaowei Huang, Fei Ma, Jimin Xiao. "Image Fusion for
Cross-Domain Sequential Recommendation." WWW Companion 2025 (arXiv:2502.15694).

A learnable item-ID table over both domains and a frozen image table (CLIP features from the item
feature store, never trained); attention encoders (RecBole's TransformerEncoder, causal) over the
sub-sequences S^X, S^Y and S^{X+Y}, one per table and sub-sequence (six); the last position is the
sequence vector; cosine similarity against the item tables; per branch
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
- Training loss (``loss_type``): ``full`` is the paper's exact softmax over the branch's items;
  ``sampled`` is a sampled softmax over the target and ``num_negatives`` shared negatives with the logQ
  correction (``model/losses.py``). Evaluation is always exact over all items.

Equation tags (``# eq. (n)``): eqs. 3-4 (within-domain softmax of S^X and S^Y) and 8 (all-items softmax
of S^{X+Y}) are the paper's numbers as the project's method summary cites them; 1-2 (ID sequence
embedding, attention encoder), 5-6 (image softmax, fusion), 7 (the merged sequence S^{X+Y}) and 9 (loss
and score weights) follow the paper's order as we read it and were not re-checked against its text.
"""
from __future__ import annotations

import math
from logging import getLogger
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ifcdsr.constants import TARGET_DOMAIN_FIELD
from recbole_ifcdsr.errors import ConfigError
from recbole_ifcdsr.features.store import feature_path, load_aligned
from recbole_ifcdsr.model.abstract import X, Y, CrossDomainSequentialRecommender
from recbole_ifcdsr.model.layers import FrozenTable, RowLookup, branch_encoders, length_groups, scatter_rows
from recbole_ifcdsr.model.losses import NegativeSampler, check_loss_config, fused_log_probs, full_nll, sampled_nll

BRANCHES = {"x": X, "y": Y, "xy": None}  # S^X, S^Y, S^{X+Y}: the domain each sub-sequence keeps
BRANCH_NAMES = {"x": "S^X", "y": "S^Y", "xy": "S^{X+Y}"}


class BranchOutput(NamedTuple):
    """What ``forward`` gives per branch: normalised vectors per table, and what they predict."""

    vectors: dict  # table -> [B, d] (last item) or [N, d] (every position that has a next item)
    targets: torch.Tensor | None  # [N] next item of each position (every_position), else None
    present: torch.Tensor | None  # [B] the sub-sequence has an item (last item), else None


class IFCDSR(CrossDomainSequentialRecommender):
    """See the module docstring."""

    # Frozen tables this class adds to its parent's: table key -> YAML prefix (<prefix>_feature,
    # <prefix>_fusion). A subclass declares only its own; each class's tables are built and initialised
    # after its parent's, so a seed gives the parent's part the same weights in both models.
    frozen_tables = {"img": "image"}
    cdsr_score_scale = "probability"  # full_sort_predict returns eq. (9)'s fused probabilities, not logits

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()

        # load parameters
        self.lambda1 = float(config["lambda1"])
        self.lambda2 = float(config["lambda2"])
        self.temperature = float(config["temperature"])
        self.symmetric = bool(config["symmetric_domains"])
        self.multiple_attention = bool(config["multiple_attention"])
        self.branch_names = list(BRANCHES) if self.multiple_attention else ["xy"]
        self.table_weights = self.read_fusion_weights(config)
        branch_sizes = {BRANCH_NAMES[b]: len(self._branch_items_of(dataset, b)) for b in self.branch_names}
        self.loss_type, num_negatives, distribution, self.full_loss_tile = check_loss_config(config, branch_sizes)
        self.initializer_range = config["initializer_range"]

        # define layers: the ID table and its encoders, then each class's frozen tables (base class first)
        id_size = int(config["id_embedding_size"])
        self.item_embedding = nn.Embedding(self.n_items, id_size, padding_idx=0)
        self.id_encoders = branch_encoders(config, id_size, self.max_seq_length, self.branch_names)
        self.frozen = nn.ModuleDict()
        own_modules = [self.item_embedding, self.id_encoders]
        for tables in self._declared_tables():
            for key, prefix in tables.items():
                if config[f"{prefix}_fusion"]:
                    self._add_frozen_table(config, dataset, key, prefix)
            # parameters initialisation
            for module in own_modules + [self.frozen[k] for k in tables if k in self.frozen]:
                module.apply(self._init_weights)
            own_modules = []
        if not self.active_weights():  # e.g. alpha=0 without image features: nothing would score an item
            loaded = ", ".join(["id", *self.frozen])
            raise ConfigError(f"{type(self).__name__}: no table keeps a positive fusion weight (tables loaded: "
                              f"{loaded}; weights {self.table_weights}); give a loaded table a weight > 0")

        # item sets of the branches and the negatives of the sampled loss
        position = torch.zeros(self.n_items, dtype=torch.long)
        for d in (X, Y):
            items = self.domain_items(d)
            position[items] = torch.arange(len(items))
        self.register_buffer("domain_position", position)  # an item's index in its domain's item list
        self.register_buffer("all_items", torch.arange(1, self.n_items))
        counts = torch.as_tensor(dataset.train_item_counts()) if distribution == "popularity" else None
        self.untrained = None  # bool [n_items] once add_items has added items (serving only; not saved)
        self.sampler = NegativeSampler(distribution, num_negatives,
                                       {b: self.branch_items(b) for b in self.branch_names}, counts)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def _declared_tables(cls) -> list[dict]:
        """``frozen_tables`` of each class in the hierarchy, base class first."""
        return [klass.__dict__["frozen_tables"] for klass in reversed(cls.__mro__) if "frozen_tables" in klass.__dict__]

    @staticmethod
    def _branch_items_of(dataset, branch: str):
        return range(1, dataset.item_num) if BRANCHES[branch] is None else dataset.domain_items[BRANCHES[branch]]

    def _add_frozen_table(self, config, dataset, key: str, prefix: str) -> None:
        """Load the store ``<prefix>_feature`` as a frozen table with one encoder per branch; the table
        stays off (one warning) when the store is missing or has no unmasked item."""
        model = type(self).__name__
        carried = getattr(dataset, "feature_rows", None)
        if carried is not None:  # a serving catalog (serving/model_file.py) carries its tables' rows itself
            if prefix in carried:
                vectors, mask = carried[prefix]
                self.frozen[key] = FrozenTable.from_vectors(
                    vectors, mask, lambda dim: branch_encoders(config, dim, self.max_seq_length, self.branch_names))
            return
        path = feature_path(config["data_path"], config["dataset"], config[f"{prefix}_feature"])
        if not path.is_file():
            self.logger.warning(f"{model}: no {prefix} features at {path}; {prefix} branch off")
            return
        vectors, mask, _ = load_aligned(path, dataset.field2token_id[dataset.iid_field], self.n_items)
        if not mask.any():
            self.logger.warning(f"{model}: {path} has no unmasked item; {prefix} branch off")
            return
        self.frozen[key] = FrozenTable.from_vectors(
            vectors, mask, lambda dim: branch_encoders(config, dim, self.max_seq_length, self.branch_names))
        self.logger.info(f"{model}: {prefix} features for {int(mask.sum())} of {self.n_items - 1} items from {path}")

    def read_fusion_weights(self, config) -> dict:
        """Weight of each table's probability in a branch: ``alpha`` for IDs, the rest for the image
        (outside [0, 1] one of the two would be negative and silently drop out)."""
        alpha = config["alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ConfigError(f"alpha {alpha!r} invalid; valid: a number from 0 to 1 (the ID table's weight, "
                              f"the image table's is 1 - alpha)")
        return {"id": float(alpha), "img": 1 - float(alpha)}

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
        return len(self.id_encoders) + sum(len(table.encoders) for table in self.frozen.values())

    def active_weights(self) -> dict:
        """Fusion weights of the ID table and the loaded frozen tables, renormalised to sum to 1 (a table
        without features drops out and the others keep their ratios)."""
        active = {k: float(self.table_weights[k]) for k in ["id", *self.frozen] if self.table_weights[k] > 0}
        total = sum(active.values())
        return {k: v / total for k, v in active.items()}

    def branch_items(self, branch: str) -> torch.Tensor:
        """The items a branch's softmax runs over: its domain's items, or every item for S^{X+Y}."""
        return self.all_items if BRANCHES[branch] is None else self.domain_items(BRANCHES[branch])

    def _target_index(self, branch: str, targets: torch.Tensor) -> torch.Tensor:
        """Column of each target in ``branch_items(branch)``."""
        return targets - 1 if BRANCHES[branch] is None else self.domain_position[targets]

    # ---- encoding ----------------------------------------------------------------------------
    def _table_inputs(self, branch: str, id_rows: RowLookup) -> dict:
        """table -> (item ids -> encoder input rows, the branch's encoder for that table)."""
        inputs = {"id": (id_rows, self.id_encoders[branch])}  # eq. (1): ID sequence embedding
        for key, table in self.frozen.items():  # the frozen image (or text) rows, as in eq. (1)
            inputs[key] = (lambda items, rows=table.table: F.embedding(items, rows), table.encoders[branch])
        return inputs

    def _encode(self, branch: str, sub: torch.Tensor, lengths: torch.Tensor, every_position: bool,
                id_rows: RowLookup) -> dict:
        """Normalised encoder outputs per table for the first ``lengths`` items of each row of ``sub``: at
        every one of them (rows concatenated), or at the last one ([B, d], zeros for empty rows). Rows are
        encoded in groups of similar length, each only as wide as its longest row."""
        inputs = self._table_inputs(branch, id_rows)
        parts, destinations = {t: [] for t in inputs}, []
        starts = torch.cumsum(lengths, 0) - lengths
        for width, rows in length_groups(lengths.tolist()):
            rows = torch.as_tensor(rows, device=sub.device)
            block, n = sub[rows, :width], lengths[rows]
            mask = self.get_attention_mask(block)
            if every_position:
                keep = torch.arange(width, device=sub.device) < n.unsqueeze(1)
                destinations.append((starts[rows].unsqueeze(1) + torch.arange(width, device=sub.device))[keep])
            else:
                destinations.append(rows)
            for t, (embed, encoder) in inputs.items():  # eq. (2): attention encoder
                if every_position:
                    parts[t].append(encoder(embed(block), mask)[keep])
                else:  # only the vector after the last item, computed at that position alone
                    parts[t].append(encoder(embed(block), mask, last=n - 1))
        total = int(lengths.sum()) if every_position else sub.size(0)
        dims = {"id": self.item_embedding.embedding_dim, **{k: t.dim for k, t in self.frozen.items()}}
        if not destinations:
            return {t: sub.new_zeros((total, dims[t]), dtype=torch.float) for t in inputs}
        return {t: F.normalize(scatter_rows(parts[t], destinations, total), dim=-1) for t in inputs}

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, every_position: bool = False,
                id_rows: RowLookup | None = None) -> dict:
        """Sequence vectors per branch and table: ``{branch: BranchOutput}``.

        Default: the vector after each sub-sequence's last item ([B, d]; ``present`` False for an empty
        sub-sequence). ``every_position`` (training on whole sequences): the vector after every item of a
        sub-sequence that has a next item, row by row, with that next item as ``targets``. ``id_rows``:
        the batch's ID rows, looked up once (from ``item_seq`` when not given).
        """
        if id_rows is None:
            id_rows = RowLookup.of(self.item_embedding, item_seq)
        out = {}
        for branch in self.branch_names:
            sub, lengths = self.sub_sequence(item_seq, BRANCHES[branch])  # eq. (7) for S^{X+Y}
            if every_position:
                inputs = (lengths - 1).clamp(min=0)
                targets = sub[:, 1:][torch.arange(sub.size(1) - 1, device=sub.device) < inputs.unsqueeze(1)]
                out[branch] = BranchOutput(self._encode(branch, sub, inputs, True, id_rows), targets, None)
            else:
                out[branch] = BranchOutput(self._encode(branch, sub, lengths, False, id_rows), None, lengths > 0)
        return out

    # ---- cold start (serving) -----------------------------------------------------------------
    @torch.no_grad()
    def add_items(self, domains: torch.Tensor, rows: dict) -> torch.Tensor:
        """Append items nobody has interacted with (serving a trained model) and return their ids.

        ``domains``: [m] 0 (X) / 1 (Y); ``rows``: frozen table key -> (vectors [m, dim], mask [m]). Each new
        item needs a row in at least one loaded frozen table; its ID row is a zero placeholder that no
        candidate's score reads (``fused_log_probs``'s ``untrained``: the ID slot takes the frozen tables'
        probability); in a history, the ID encoders read that zero row as a blank item.
        """
        m = len(domains)
        unknown = set(rows) - set(self.frozen)
        if unknown or not self.frozen:
            raise ValueError(f"{type(self).__name__} has frozen tables {sorted(self.frozen) or 'none'}; "
                             f"new items need rows in one of them (got {sorted(rows)})")
        covered = torch.zeros(m, dtype=torch.bool)
        for key, (vectors, mask) in rows.items():
            if self.active_weights().get(key, 0) > 0:
                covered |= torch.as_tensor(mask, dtype=torch.bool)
        if not bool(covered.all()):
            raise ValueError(f"{int((~covered).sum())} new items have no row in a frozen table with fusion weight > 0")
        device = self.item_embedding.weight.device
        new_ids = torch.arange(self.n_items, self.n_items + m, device=device)
        self.item_embedding.weight = nn.Parameter(torch.cat([self.item_embedding.weight,
                                                             self.item_embedding.weight.new_zeros((m, self.item_embedding.embedding_dim))]))
        self.item_embedding.num_embeddings += m
        for key, table in self.frozen.items():
            vectors, mask = rows.get(key, (torch.zeros((m, table.dim)), torch.zeros(m, dtype=torch.bool)))
            mask = torch.as_tensor(mask, dtype=torch.bool, device=device)
            vectors = F.normalize(torch.as_tensor(vectors, dtype=table.table.dtype, device=device), dim=1) * mask.unsqueeze(1)
            table.table = torch.cat([table.table, vectors])
            table.mask = torch.cat([table.mask, mask])
        domains = torch.as_tensor(domains, dtype=torch.long, device=device)
        self.item_domain = torch.cat([self.item_domain, domains])
        self.domain_items_x = torch.cat([self.domain_items_x, new_ids[domains == X]])
        self.domain_items_y = torch.cat([self.domain_items_y, new_ids[domains == Y]])
        position = torch.zeros(self.n_items + m, dtype=torch.long, device=device)
        for d in (X, Y):
            items = self.domain_items(d)
            position[items] = torch.arange(len(items), device=device)
        self.domain_position = position
        self.all_items = torch.arange(1, self.n_items + m, device=device)
        untrained = self.untrained if self.untrained is not None else torch.zeros(self.n_items, dtype=torch.bool, device=device)
        self.untrained = torch.cat([untrained, torch.ones(m, dtype=torch.bool, device=device)])
        self.n_items += m
        return new_ids

    # ---- scores and losses -------------------------------------------------------------------
    def _item_rows(self, items: torch.Tensor, id_rows: RowLookup | None = None) -> tuple[dict, dict]:
        """Rows of ``items`` per table (the ID rows normalised: cosine similarity) and the feature masks;
        ID rows from ``id_rows`` when given, else from the table."""
        rows = {"id": F.normalize(id_rows(items) if id_rows is not None else self.item_embedding(items), dim=-1)}
        featured = {}
        for key, table in self.frozen.items():
            rows[key], featured[key] = table.table[items], table.mask[items]
        return rows, featured

    def _branch_probs(self, output: BranchOutput, items: torch.Tensor, cases: torch.Tensor | None = None) -> torch.Tensor:
        """P over ``items`` for each sequence (those of ``cases`` when given); the uniform distribution
        where the sub-sequence is empty."""
        weights = self.active_weights()
        vectors, present = output.vectors, output.present
        if cases is not None:
            vectors, present = {t: v.index_select(0, cases) for t, v in vectors.items()}, present.index_select(0, cases)
        rows, featured = self._item_rows(items)
        logits = {t: vectors[t] @ rows[t].T / self.temperature for t in rows if t == "id" or t in weights}
        untrained = self.untrained[items] if self.untrained is not None else None  # items added by add_items
        probs = fused_log_probs(logits, featured, weights, untrained=untrained).exp()  # eqs. (3)-(6), (8)
        return torch.where(present.unsqueeze(1), probs, torch.full_like(probs, 1.0 / len(items)))

    def _full_nll(self, branches: dict) -> dict:
        """Per branch: -sum over positions of log P(next item), exact over the branch's items."""
        weights, out = self.active_weights(), {}
        for branch, output in branches.items():
            rows, featured = self._item_rows(self.branch_items(branch))
            out[branch] = full_nll(output.vectors, self._target_index(branch, output.targets), rows, featured,
                                   weights, self.temperature, self.full_loss_tile)
        return out

    def _draw_negatives(self) -> dict:
        """Per branch: the batch's negatives (item ids) and their log expected counts in the draw."""
        draws = {}
        for branch in self.branch_names:
            positions, log_expected = self.sampler.draw(branch)
            draws[branch] = (self.branch_items(branch)[positions], log_expected)
        return draws

    def _sampled_nll(self, branches: dict, draws: dict, id_rows: RowLookup) -> dict:
        """Per branch: -sum over positions of log P(next item) over its target and the batch's negatives."""
        weights, out = self.active_weights(), {}
        for branch, output in branches.items():
            negatives, negative_log_q = draws[branch]
            target_rows, target_featured = self._item_rows(output.targets, id_rows)
            negative_rows, negative_featured = self._item_rows(negatives, id_rows)
            target_log_q = self.sampler.log_expected(branch, self._target_index(branch, output.targets))
            accidental = output.targets.unsqueeze(1) == negatives.unsqueeze(0)
            out[branch] = sampled_nll(output.vectors, target_rows, negative_rows, target_featured, negative_featured,
                                      accidental, (target_log_q, negative_log_q), weights, self.temperature)
        return out

    def _loss_weights(self) -> dict:
        if not self.multiple_attention:
            return {"xy": 1.0}
        own = (1 + self.lambda1) / 2 if self.symmetric else 1.0
        return {"x": own, "y": own if self.symmetric else self.lambda1, "xy": self.lambda2}

    def calculate_loss(self, interaction):
        sequences = interaction[self.ITEM_SEQ]  # whole training sequences, right-padded
        draws = self._draw_negatives() if self.loss_type == "sampled" else {}
        # one lookup of the ID table for the encoders and the sampled candidates: one table-sized gradient
        id_rows = RowLookup.of(self.item_embedding, torch.cat([sequences.flatten(), *[n for n, _ in draws.values()]]))
        branches = self.forward(sequences, interaction[self.ITEM_SEQ_LEN], every_position=True, id_rows=id_rows)
        branches = {b: out for b, out in branches.items() if out.targets.numel() > 0}
        nll = self._full_nll(branches) if self.loss_type == "full" else self._sampled_nll(branches, draws, id_rows)
        total = sequences.new_zeros((), dtype=torch.float)
        for branch, weight in self._loss_weights().items():
            if branch in nll:
                total = total + weight * nll[branch] / sequences.size(0)  # eq. (9): L = L_X + l1 L_Y + l2 L_XY
        return total

    def full_sort_predict(self, interaction):
        """[B, n_items]: each item scored as if its own domain were the target domain (the protocols
        rank within the target domain); padding gets -inf. With ``TARGET_DOMAIN_FIELD`` in the batch only
        each case's target-domain items are scored, the others stay -inf: the S^X and S^Y branches then
        score one domain per case instead of two (the merged branch's softmax needs every item anyway)."""
        item_seq = interaction[self.ITEM_SEQ]
        branches = self.forward(item_seq, interaction[self.ITEM_SEQ_LEN])
        scores = torch.full((item_seq.size(0), self.n_items), -math.inf, device=item_seq.device)
        p_all = self._branch_probs(branches["xy"], self.all_items)  # eq. (8): softmax over all items
        if not self.multiple_attention:
            scores[:, 1:] = p_all
            return scores
        wanted = interaction[TARGET_DOMAIN_FIELD] if TARGET_DOMAIN_FIELD in interaction else None
        for target, own, other in ((X, "x", "y"), (Y, "y", "x")):
            items = self.domain_items(target)
            cases = None if wanted is None else (wanted == target).nonzero().squeeze(1)
            if cases is not None and cases.numel() == 0:
                continue
            p_own = self._branch_probs(branches[own], items, cases)  # eqs. (3)-(4)
            p_other = self._branch_probs(branches[other], items, cases)
            p_merged = p_all.index_select(1, items - 1) if cases is None else p_all[cases.unsqueeze(1), items - 1]
            block = p_own + self.lambda1 * p_other + self.lambda2 * p_merged  # eq. (9)
            if cases is None:  # index_copy_ writes the same values as scores[:, items] = ... without advanced indexing
                scores.index_copy_(1, items, block)
            else:
                scores[cases.unsqueeze(1), items] = block
        return scores

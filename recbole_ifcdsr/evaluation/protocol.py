"""Both evaluation protocols through one code path, for every model.

Each eval case's history is encoded once (``model.full_sort_predict``: scores over all items);
the sampled protocol gathers the target and its negatives from that row, the full protocol ranks
the target against every item of the target's domain. Both come from the same forward pass, so
the full-ranking numbers are always reported at the very checkpoints the sampled protocol selects.
Full ranking keeps history items as competitors (no exclusion), as C2DSR's full-ranking re-run does.

Every pass checks its scores: a case whose target or competitor (a sampled negative, or an item of
the target's domain) scores NaN or infinity stops the run with :class:`NonFiniteError`, naming the
model, split and epoch; so does a split without cases of a domain.
"""
from __future__ import annotations

import numpy as np
import torch
from recbole.data.interaction import Interaction
from tqdm import tqdm

from recbole_ifcdsr.constants import DOMAINS, PROTOCOLS, TARGET_DOMAIN_FIELD
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.errors import ConfigError, NonFiniteError
from recbole_ifcdsr.evaluation.metrics import check_metric_names, metrics_from_ranks, nonfinite_cases, ranks_against
from recbole_ifcdsr.evaluation.negatives import NegativeSampler
from recbole_ifcdsr.model.abstract import score_scale

ALL_PROTOCOLS = PROTOCOLS  # the name this module always exported


class ProtocolEvaluator:
    """Scores eval cases of a dataset under the sampled and full protocols, per target domain."""

    def __init__(self, dataset: CrossDomainSequentialDataset, config, sampler: NegativeSampler | None = None):
        self.dataset = dataset
        self.config = config
        self.metrics = list(config["cdsr_metrics"])
        check_metric_names(self.metrics)
        self.tolerance = float(config["cdsr_tie_tolerance"] or 0.0)
        self.batch_size = int(config["eval_batch_size"])
        self.max_len = int(config["MAX_ITEM_LIST_LENGTH"])
        self.sampler = sampler or NegativeSampler(dataset, config["cdsr_negatives"])
        self.item_seq_field = dataset.iid_field + config["LIST_SUFFIX"]
        self.item_len_field = config["ITEM_LIST_LENGTH_FIELD"]
        domain = torch.as_tensor(dataset.item_domain)
        self.domain_mask = torch.stack([domain == d for d in range(len(DOMAINS))])  # [2, n_items]
        self._inputs: dict[str, dict] = {}
        self.last_ranks: dict[str, dict[str, np.ndarray]] = {}

    def _split_inputs(self, split: str) -> dict:
        if split not in self._inputs:
            cases = self.dataset.eval_cases(split)
            seq = np.zeros((len(cases), self.max_len), dtype=np.int64)
            lengths = np.zeros(len(cases), dtype=np.int64)
            for i, hist in enumerate(cases.histories):
                hist = hist[-self.max_len :]
                seq[i, : len(hist)] = hist
                lengths[i] = len(hist)
            self._inputs[split] = {
                "seq": torch.from_numpy(seq),
                "len": torch.from_numpy(lengths),
                "user": torch.as_tensor(cases.user_ids, dtype=torch.long),
                "target": torch.as_tensor(cases.targets),
                "domain": torch.as_tensor(cases.target_domains, dtype=torch.long),
            }
        return self._inputs[split]

    @torch.no_grad()
    def evaluate(self, model, split: str, pass_index: int = 0, show_progress: bool = False,
                 protocols: tuple = ALL_PROTOCOLS) -> dict:
        """{protocol: {domain: {metric: value}}} for the cases of ``split``; ``protocols`` picks which
        ranks to compute from the shared forward pass (both by default)."""
        unknown = set(protocols) - set(ALL_PROTOCOLS)
        if unknown:
            raise ConfigError(f"Unknown protocol {sorted(unknown)}; valid: {', '.join(ALL_PROTOCOLS)}")
        self.dataset.check_eval_domains()
        model.eval()
        device = next(iter(model.buffers()), next(iter(model.parameters()), torch.empty(0))).device
        inputs = self._split_inputs(split)
        sampled, full = "sampled" in protocols, "full" in protocols
        relative = score_scale(type(model)) == "probability"  # the tie margin on the log scale (abstract.py)
        negatives = torch.from_numpy(self.sampler.negatives(split, pass_index)) if sampled else None
        n = len(inputs["target"])
        ranks = {p: torch.empty(n, dtype=torch.float64) for p in ALL_PROTOCOLS if p in protocols}
        starts = range(0, n, self.batch_size)
        if show_progress:
            starts = tqdm(starts, desc=f"Evaluate {split:>5}", ncols=100, leave=False)
        mask = self.domain_mask.to(device)
        for start in starts:
            sl = slice(start, min(start + self.batch_size, n))
            batch = Interaction(
                {
                    self.item_seq_field: inputs["seq"][sl],
                    self.item_len_field: inputs["len"][sl],
                    self.dataset.uid_field: inputs["user"][sl],
                    TARGET_DOMAIN_FIELD: inputs["domain"][sl],  # only these items are ranked
                }
            ).to(device)
            scores = model.full_sort_predict(batch).view(sl.stop - sl.start, -1).float()
            target = inputs["target"][sl].to(device)
            target_score = scores.gather(1, target.unsqueeze(1)).squeeze(1)
            neg_scores = scores.gather(1, negatives[sl].to(device)) if sampled else None
            in_domain = mask[inputs["domain"][sl].to(device)] if full else None
            self._check_finite(model, split, pass_index, sl, target_score, scores, neg_scores, in_domain)
            if sampled:
                ranks["sampled"][sl] = ranks_against(target_score, neg_scores, None, self.tolerance, checked=True,
                                                     relative=relative).cpu()
            if full:
                in_domain[torch.arange(len(target), device=device), target] = False
                ranks["full"][sl] = ranks_against(target_score, scores, in_domain, self.tolerance, checked=True,
                                                  relative=relative).cpu()
        domains = inputs["domain"].numpy()
        self.last_ranks[split] = {p: r.numpy() for p, r in ranks.items()}
        return {
            p: {name: metrics_from_ranks(r.numpy()[domains == d], self.metrics) for d, name in enumerate(DOMAINS)}
            for p, r in ranks.items()
        }

    def _check_finite(self, model, split: str, pass_index: int, sl: slice, target_score: torch.Tensor,
                      scores: torch.Tensor, neg_scores: torch.Tensor | None, in_domain: torch.Tensor | None) -> None:
        """Raise when a case of this batch has a non-finite target or competitor score."""
        bad = ~torch.isfinite(target_score)
        if neg_scores is not None:
            bad |= nonfinite_cases(target_score, neg_scores)
        if in_domain is not None:
            bad |= nonfinite_cases(target_score, scores, in_domain)
        if not bool(bad.any()):
            return
        first = int(bad.nonzero()[0, 0])
        case = sl.start + first
        cases = self.dataset.eval_cases(split)
        target = self.dataset.field2id_token[self.dataset.iid_field][cases.targets[case]]
        raise NonFiniteError(
            f"{self.config['model']} on {self.config['dataset']}, {split} split, epoch {pass_index}: "
            f"{int(bad.sum())} of {len(bad)} cases in a batch score NaN or inf for their target or a competitor "
            f"(first: user '{cases.users[case]}', target '{target}', target score {float(target_score[first])}); "
            f"the model diverged or an input (a feature store) holds NaN, so no metric is reported")

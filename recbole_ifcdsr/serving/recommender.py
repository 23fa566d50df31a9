"""Recommendations from a model file for live histories: item tokens in, ranked items of a domain out.

A history is item tokens (ASINs), oldest first, from either domain. Unknown tokens are reported and
skipped; the rest become the model's merged sequence (the last ``MAX_ITEM_LIST_LENGTH`` items, as in
evaluation) and are scored with the selected weights of the asked domain. Many histories go through
one ``full_sort_predict`` per batch and domain.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from recbole_ifcdsr.constants import TARGET_DOMAIN_FIELD
from recbole_ifcdsr.data.dataset import DOMAINS
from recbole_ifcdsr.errors import CDSRError
from recbole_ifcdsr.features.encoders import build_encoder, spec_identity
from recbole_ifcdsr.serving.model_file import build_models, read_model_file


#: What a new item of :meth:`Recommender.add_items` may hold.
NEW_ITEM_KEYS = frozenset({"item", "domain", "title", "text", "vectors"})


class RecommendError(CDSRError, ValueError):
    """A request that cannot be answered: no known item in the history, an unknown domain, a bad k."""


@dataclass
class Recommendation:
    """Ranked items of one request (``item``, ``score``, ``domain`` name, ``title`` each) and the
    history tokens the model does not know."""

    items: list = field(default_factory=list)
    unknown: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"items": self.items, "unknown": self.unknown}


class Recommender:
    """A trained model ready to serve; build it with :meth:`load`."""

    def __init__(self, payload: dict, device: str = "cpu"):
        self.models, self.catalog = build_models(payload, device)
        self.model_name, self.dataset = payload["model"], payload["dataset"]
        self.device = device
        self._text_encoder = None  # built on the first title to encode
        self._domain_cache: dict = {}
        self.domain_names = dict(payload["config"].get("domains") or {})
        self.max_len = int(payload["config"]["MAX_ITEM_LIST_LENGTH"])
        first = self.models[DOMAINS[0]]
        self.seq_field, self.len_field = first.ITEM_SEQ, first.ITEM_SEQ_LEN

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "Recommender":
        """Read a model file written by ``run``; needs neither the dataset folder nor RecBole's data classes."""
        return cls(read_model_file(path), device)

    # ---- cold start ----------------------------------------------------------------------------
    def add_items(self, items: list) -> list:
        """Make items nobody has interacted with recommendable through the frozen tables.

        ``items``: dicts with ``item`` (a new token), ``domain`` (X, Y or its name), ``title`` (shown, and
        encoded with the encoder that built the text store, read from the model file), ``text`` (what is
        encoded instead when that store was built from an enriched ``text_file``: the trained rows are
        encodings of those texts, not of titles) and/or ``vectors`` (``{table prefix, e.g. "text" or "image":
        [floats]}``). Their untrained ID entry neither rewards nor punishes them (``model/losses.py``,
        ``_untrained_id_slot``). Returns their tokens.
        """
        token2id = self.catalog.field2token_id[self.catalog.iid_field]
        tables = self.catalog.tables
        seen, domains = set(), []
        for number, item in enumerate(items, 1):
            token = item.get("item")
            if not isinstance(token, str) or not token:
                raise RecommendError(f"new item {number}: 'item' must be a non-empty token")
            if token in token2id or token in seen:
                raise RecommendError(f"new item {number}: '{token}' is already in the catalog")
            extra = sorted(set(item) - NEW_ITEM_KEYS)
            if extra:
                raise RecommendError(f"new item {number} ('{token}'): unknown key {', '.join(map(repr, extra))}; "
                                     f"valid: {', '.join(sorted(NEW_ITEM_KEYS))}")
            unknown = set(item.get("vectors") or {}) - set(tables)
            if unknown:
                raise RecommendError(f"new item {number} ('{token}'): no frozen table {sorted(unknown)} in this "
                                     f"model; its tables: {sorted(tables) or 'none'}")
            seen.add(token)
            try:
                domains.append(self.domain_index(item.get("domain", "")))
            except RecommendError as error:
                raise RecommendError(f"new item {number} ('{token}'): {error}") from None
        rows = {}
        for prefix, info in tables.items():
            dim = info["vectors"].size(1)
            vectors, mask = torch.zeros((len(items), dim)), torch.zeros(len(items), dtype=torch.bool)
            for i, item in enumerate(items):
                given = (item.get("vectors") or {}).get(prefix)
                if given is None and prefix == "text" and (item.get("title") or item.get("text")):
                    given = self._encode_text(info, item)
                if given is not None:
                    given = torch.as_tensor(given, dtype=torch.float32).flatten()
                    if given.numel() != dim or not bool(torch.isfinite(given).all()):
                        raise RecommendError(f"new item '{item['item']}': {prefix} vector must be {dim} finite numbers")
                    vectors[i], mask[i] = given, True
            rows[info["key"]] = (vectors, mask)
        for model in {id(m): m for m in self.models.values()}.values():
            if not hasattr(model, "add_items"):
                raise RecommendError(f"{self.model_name} has no frozen content table, so it cannot score new items "
                                     f"(IFCDSR with image features, LLMEMF)")
            try:
                new_ids = model.add_items(torch.as_tensor(domains), rows)
            except ValueError as error:
                raise RecommendError(f"{self.model_name} cannot add items: {error}") from error
        self.catalog.append(items, domains, new_ids.tolist())
        self._domain_cache = {}
        return [item["item"] for item in items]

    def _encode_text(self, info: dict, item: dict) -> list:
        """An item's text through the text store's own encoder (its spec is in the model file), from what the
        store's rows were encoded from: titles, or for a store built from an enriched ``text_file`` the item's
        ``text``. Refused when the store's meta names another encoder or weights than the spec builds."""
        meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
        if not info.get("spec"):
            raise RecommendError(f"the text table's store '{info['feature']}' (encoder {meta.get('encoder', 'unknown')}) "
                                 f"names no encoder under item_features; give the new items' text vectors instead of titles")
        spec, token = info["spec"], item["item"]
        text_file = spec.get("text_file") or (meta.get("inputs") or {}).get("text_file")
        if text_file and not item.get("text"):
            raise RecommendError(f"new item '{token}': the text store '{info['feature']}' was encoded from the enriched "
                                 f"texts of {text_file}, not titles; give the item's enriched text as 'text' (a text "
                                 f"column in --new_items) or its text vector")
        if not text_file and item.get("text"):
            raise RecommendError(f"new item '{token}': the text store '{info['feature']}' was encoded from titles, not "
                                 f"enriched texts; give its title, not 'text'")
        if self._text_encoder is None:  # built once, after the store's encoder is checked against the spec
            built, stored = spec_identity(spec), {key: meta.get(key) for key in ("encoder", "weights")}
            if built != stored:
                raise RecommendError(f"the text store '{info['feature']}' was encoded by {stored['encoder']} (weights "
                                     f"{stored['weights']}), but its item_features spec builds {built['encoder']} "
                                     f"(weights {built['weights']}); give the new items' text vectors from the store's "
                                     f"encoder")
            self._text_encoder = build_encoder({**spec, "device": "cpu"}, allow_download=False)
        text = item["text"] if text_file else item["title"]
        return self._text_encoder.encode([self._text_encoder.prepare(text)])[0].tolist()

    def _domain_index(self, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(the domain's item ids, each item's column among them or -1), cached until items are added."""
        if d not in self._domain_cache:
            items = torch.as_tensor(self.catalog.domain_items[d])
            position = torch.full((self.catalog.item_num,), -1, dtype=torch.long)
            position[items] = torch.arange(len(items))
            self._domain_cache[d] = (items, position)
        return self._domain_cache[d]

    # ---- requests ------------------------------------------------------------------------------
    def domain_index(self, domain: str) -> int:
        """X, Y or a domain's name, each case-insensitive -> 0 / 1; an empty or non-string domain is refused
        (it used to match a domain with no name)."""
        valid = ", ".join(f"{n} ({self.domain_names[n]})" if n in self.domain_names else n for n in DOMAINS)
        if isinstance(domain, str) and not domain.strip():
            raise RecommendError(f"domain is empty; valid: {valid}")
        if isinstance(domain, str):
            for d, name in enumerate(DOMAINS):
                if domain.casefold() in (name.casefold(), str(self.domain_names.get(name) or name).casefold()):
                    return d
        raise RecommendError(f"unknown domain '{domain}'; valid: {valid}")

    def check_k(self, k, domain: int) -> int:
        size = len(self.catalog.domain_items[domain])
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k > size:
            raise RecommendError(f"k must be an integer from 1 to {size} (the items of domain "
                                 f"{DOMAINS[domain]}), got {k!r}")
        return k

    def split_history(self, history) -> tuple[list, list]:
        """(known item ids, unknown tokens) of a history; no known item is a RecommendError."""
        if isinstance(history, str):
            raise RecommendError("history must be a list of item tokens, oldest first, not one string")
        if not isinstance(history, (list, tuple)):
            raise RecommendError(f"history must be a list of item tokens, oldest first, not {type(history).__name__}")
        for n, token in enumerate(history, 1):
            if not isinstance(token, str):  # a number is not an item token either, however ASIN-like
                shown = repr(token) if len(repr(token)) <= 40 else repr(token)[:37] + "..."
                raise RecommendError(f"history item {n} must be an item token (a string), got {shown}")
        token2id = self.catalog.field2token_id[self.catalog.iid_field]
        known = [token2id[t] for t in history if t in token2id and token2id[t] != 0]
        unknown = [t for t in history if t not in token2id or token2id[t] == 0]
        if not known:
            shown = ", ".join(map(str, list(history)[:5])) or "(empty)"
            n = len(history)
            raise RecommendError(f"history has no item this model knows ({n} token{'' if n == 1 else 's'}: {shown})")
        return known, unknown

    def recommend(self, history: list, domain: str, k: int = 10, exclude_seen: bool = True) -> Recommendation:
        """The ``k`` best items of ``domain`` after ``history`` (item tokens, oldest first)."""
        return self.recommend_batch([history], domain, k, exclude_seen)[0]

    @torch.no_grad()
    def recommend_batch(self, histories: list, domain: str, k: int = 10, exclude_seen: bool = True) -> list:
        """:meth:`recommend` for many histories with one forward pass (every request is checked first)."""
        d = self.domain_index(domain)
        k = self.check_k(k, d)
        requests = [self.split_history(h) for h in histories]
        if not requests:
            return []
        seq = torch.zeros((len(requests), self.max_len), dtype=torch.long)
        lengths = torch.zeros(len(requests), dtype=torch.long)
        for i, (known, _) in enumerate(requests):
            kept = known[-self.max_len:]
            seq[i, : len(kept)] = torch.as_tensor(kept)
            lengths[i] = len(kept)
        batch = {self.seq_field: seq.to(self.device), self.len_field: lengths.to(self.device),
                 TARGET_DOMAIN_FIELD: torch.full((len(requests),), d, dtype=torch.long, device=self.device)}
        scores = self.models[DOMAINS[d]].full_sort_predict(batch).view(len(requests), -1).float().cpu()
        items, position = self._domain_index(d)
        scores = scores[:, items]
        if exclude_seen:
            for i, (known, _) in enumerate(requests):
                seen = position[torch.as_tensor(known)]
                scores[i, seen[seen >= 0]] = -torch.inf
        top_scores, top = scores.topk(k, dim=1)
        name = self.domain_names.get(DOMAINS[d], DOMAINS[d])
        out = []
        for i, (_, unknown) in enumerate(requests):
            ranked = []
            for score, j in zip(top_scores[i].tolist(), top[i].tolist()):
                if score == -torch.inf:  # fewer unseen items than k
                    break
                item = int(items[j])
                ranked.append({"item": self.catalog.tokens[item], "score": score, "domain": name,
                               "title": self.catalog.titles[item]})
            out.append(Recommendation(ranked, list(unknown)))
        return out

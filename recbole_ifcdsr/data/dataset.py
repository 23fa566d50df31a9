"""CrossDomainSequentialDataset: RecBole's Dataset plus the cross-domain sequences, views and eval cases.

RecBole loads and remaps the atomic files as usual. On top, this class keeps each sequence in
**file order** (the converters write rows in the order the source recipe defines; nothing is
re-sorted here), each item's domain (0 = X, 1 = Y), and builds:

- ``train_sequences``: whole training sequences (our models take the loss at every position);
- ``recbole_train_dataset()``: RecBole's usual prefix-augmented view of the same sequences, for
  RecBole's own sequential models (GRU4Rec, SASRec, SRGNN, ...);
- ``eval_cases('valid'|'test')``: (history, target, target domain) exactly as the recipe defines.

Recipes (``cdsr_recipe``): ``leave_one_out`` (ABXI: one inter file, per user train ``s[:-2]``,
valid ``s[:-2] -> s[-2]``, test ``s[:-1] -> s[-1]``) and ``user_split`` (LLMCDSR, C2DSR: benchmark
files ``train``/``valid``/``test``; the last item of a valid/test sequence is its target).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_ifcdsr.compat import refuse_pandas_copy_on_write
from recbole_ifcdsr.constants import DOMAINS, SPLITS
from recbole_ifcdsr.data.atomic import check_dataset_files
from recbole_ifcdsr.data.packing import prepare_dataset_dir
from recbole_ifcdsr.errors import DataError

__all__ = ["DOMAINS", "RECIPES", "CrossDomainSequentialDataset", "DatasetError", "EvalCases"]

RECIPES = ("leave_one_out", "user_split")
BENCHMARK_FILES = ("train", "valid", "test")  # user_split's .inter files, split codes 0, 1, 2


class DatasetError(DataError):
    """A dataset that does not satisfy the cross-domain contract; the message names file and field."""


@dataclass
class EvalCases:
    """Evaluation cases of one split, aligned by index."""

    split: str
    users: np.ndarray  # user tokens
    user_ids: np.ndarray  # internal user ids
    histories: list  # list of int64 arrays (internal item ids, oldest first, untruncated)
    targets: np.ndarray  # int64 internal ids
    target_domains: np.ndarray  # int8, 0 = X, 1 = Y
    seen: list = field(default_factory=list)  # per case: items of the sequence up to and including the target

    def __len__(self) -> int:
        return len(self.targets)

    def counts(self) -> dict[str, int]:
        return {d: int((self.target_domains == i).sum()) for i, d in enumerate(DOMAINS)}


_missing_logged: set = set()


def log_missing_release_files(meta_path: str) -> None:
    """A dataset converted with --allow_missing lacks part of its release: say so once per process, since
    its numbers are not comparable with the full release's."""
    if meta_path in _missing_logged or not os.path.isfile(meta_path):
        return
    with open(meta_path, encoding="utf-8") as handle:
        missing = json.load(handle).get("missing_files") or []
    if missing:
        _missing_logged.add(meta_path)
        logging.getLogger().warning(f"{meta_path}: converted without the release files {', '.join(missing)} "
                                    f"(--allow_missing); results are not comparable with the full release")


class CrossDomainSequentialDataset(Dataset):
    """RecBole Dataset for two-domain sequences; see the module docstring."""

    def __init__(self, config):
        self.recipe = config["cdsr_recipe"]
        if self.recipe not in RECIPES:
            raise DatasetError(f"cdsr_recipe '{self.recipe}' unknown; valid: {', '.join(RECIPES)}")
        prepare_dataset_dir(config["data_path"])  # shipped datasets come gzipped
        # every line checked before RecBole's reader can drop or misread it; the digests identify the data
        self.file_fingerprint = check_dataset_files(config, config["data_path"], config["dataset"])
        log_missing_release_files(os.path.join(config["data_path"], f"{config['dataset']}.meta.json"))
        refuse_pandas_copy_on_write()  # RecBole's in-place fills below must not fill a copy (compat.py)
        super().__init__(config)

    # ---- loading -------------------------------------------------------------------------------
    def _data_processing(self):
        item_path = os.path.join(self.dataset_path, f"{self.dataset_name}.item")
        if self.item_feat is None or "domain" not in self.item_feat:
            raise DatasetError(f"{item_path}: needs an item file with a 'domain' field (X/Y); load_col.item must list it")
        file_tokens = self.item_feat[self.iid_field].to_numpy().copy()
        file_domains = self.item_feat["domain"].to_numpy().copy()
        super()._data_processing()
        self._build_item_domains(item_path, file_tokens, file_domains)
        self._build_sequences()
        self._change_feat_format()  # DataFrames -> Interactions, as RecBole's build() would

    def _build_item_domains(self, item_path: str, file_tokens: np.ndarray, file_domains: np.ndarray) -> None:
        bad = sorted(set(file_domains) - set(DOMAINS))
        if bad:
            raise DatasetError(f"{item_path}: field 'domain' must be X or Y, found {bad[:5]}")
        token2id = self.field2token_id[self.iid_field]
        n_items = self.item_num
        self.item_domain = np.full(n_items, -1, dtype=np.int8)
        # canonical index: the item's row in the .item file (the source's own id order, X first)
        self.item_canonical = np.full(n_items, -1, dtype=np.int64)
        ids = np.fromiter((token2id[t] for t in file_tokens), dtype=np.int64, count=len(file_tokens))
        self.item_domain[ids] = np.where(file_domains == "X", 0, 1)
        self.item_canonical[ids] = np.arange(len(ids))
        unknown = np.flatnonzero(self.item_domain[1:] < 0) + 1
        if len(unknown):
            tokens = self.field2id_token[self.iid_field][unknown[:5]]
            raise DatasetError(f"{item_path}: {len(unknown)} interacted items have no row (no domain), e.g. {list(tokens)}")
        self.domain_items = []
        for d, name in enumerate(DOMAINS):
            members = np.flatnonzero(self.item_domain == d)
            if len(members) == 0:
                raise DatasetError(f"{item_path}: domain {name} has no items")
            self.domain_items.append(members[np.argsort(self.item_canonical[members], kind="stable")])

    def _split_of_rows(self) -> np.ndarray:
        n_rows = len(self.inter_feat)
        if self.recipe == "leave_one_out":
            if self.benchmark_filename_list is not None:
                raise DatasetError("cdsr_recipe leave_one_out reads one .inter file; unset benchmark_filename")
            return np.zeros(n_rows, dtype=np.int8)
        if list(self.benchmark_filename_list or []) != list(BENCHMARK_FILES):
            raise DatasetError("cdsr_recipe user_split needs benchmark_filename: [train, valid, test]")
        return np.repeat(np.arange(3, dtype=np.int8), self.file_size_list)

    def _build_sequences(self) -> None:
        users = self.inter_feat[self.uid_field].to_numpy()
        items = self.inter_feat[self.iid_field].to_numpy().astype(np.int64)
        splits = self._split_of_rows()
        # a run ends where the user or the file changes: a user last in train.inter and first in valid.inter
        # was one run before, tagged train, so its valid case vanished and its target was trained on
        starts = np.flatnonzero(np.r_[True, (users[1:] != users[:-1]) | (splits[1:] != splits[:-1])])
        ends = np.r_[starts[1:], len(users)]
        run_users = users[starts]
        if len(np.unique(run_users)) != len(run_users):
            top = run_users[np.argmax(np.bincount(run_users))]
            dup = self.field2id_token[self.uid_field][top]
            files = sorted({int(splits[s]) for s in starts[run_users == top]})
            if len(files) > 1:
                names = " and ".join(f"{self.dataset_name}.{BENCHMARK_FILES[f]}.inter" for f in files)
                raise DatasetError(f"{self.dataset_path}: user '{dup}' has rows in {names}; recipe user_split holds "
                                   f"each user's sequence in one file (held-out users)")
            raise DatasetError(
                f"{self.dataset_path}: rows of user '{dup}' are not contiguous; converters must write each sequence in one block"
            )
        self.sequences = [(int(u), items[s:e], int(splits[s])) for u, s, e in zip(run_users, starts, ends)]
        min_len = 3 if self.recipe == "leave_one_out" else 2
        short = [u for u, seq, sp in self.sequences if len(seq) < min_len and (sp > 0 or min_len == 3)]
        if short:
            token = self.field2id_token[self.uid_field][short[0]]
            raise DatasetError(f"{self.dataset_path}: sequence '{token}' is too short for recipe {self.recipe} (< {min_len} items)")

    # ---- views ---------------------------------------------------------------------------------
    def _train_rows(self) -> list:
        """(internal user id, training sequence) pairs, as the recipe splits them."""
        if self.recipe == "leave_one_out":
            return [(u, seq[:-2]) for u, seq, _ in self.sequences]
        return [(u, seq) for u, seq, split in self.sequences if split == 0]

    @property
    def train_sequences(self) -> list:
        """Training sequences (int64 arrays of internal item ids, oldest first)."""
        return [seq for _, seq in self._train_rows()]

    def eval_cases(self, split: str) -> EvalCases:
        """Evaluation cases of ``split`` ('valid' or 'test') as the recipe defines them."""
        if split not in SPLITS:
            raise ValueError(f"split must be 'valid' or 'test', not {split!r}")
        cached = getattr(self, "_eval_cases_cache", {})
        if split in cached:
            return cached[split]
        users, histories, targets, seen = [], [], [], []
        if self.recipe == "leave_one_out":
            cut = 2 if split == "valid" else 1
            for u, seq, _ in self.sequences:
                full = seq[: len(seq) - cut + 1]
                users.append(u), histories.append(full[:-1]), targets.append(full[-1]), seen.append(full)
        else:
            code = 1 if split == "valid" else 2
            for u, seq, sp in self.sequences:
                if sp == code:
                    users.append(u), histories.append(seq[:-1]), targets.append(seq[-1]), seen.append(seq)
        targets = np.asarray(targets, dtype=np.int64)
        cases = EvalCases(
            split=split,
            users=self.field2id_token[self.uid_field][np.asarray(users, dtype=np.int64)],
            user_ids=np.asarray(users, dtype=np.int64),
            histories=histories,
            targets=targets,
            target_domains=self.item_domain[targets],
            seen=seen,
        )
        cached[split] = cases
        self._eval_cases_cache = cached
        return cases

    def check_eval_domains(self) -> None:
        """Every recipe reports both domains on valid and test: a split without cases of a domain would
        give that domain NaN metrics (and, under joint selection, no selected epoch for either)."""
        for split in SPLITS:
            counts = self.eval_cases(split).counts()
            empty = [d for d in DOMAINS if counts[d] == 0]
            if empty:
                names = dict(self.config["domains"] or {})
                raise DatasetError(
                    f"{self.dataset_path}: the {split} split has no case whose target is in domain "
                    f"{empty[0]} ({names.get(empty[0], empty[0])}); recipe {self.recipe} evaluates both domains "
                    f"({counts['X']} X / {counts['Y']} Y cases)")

    def train_item_counts(self) -> np.ndarray:
        """How often each item occurs in the training sequences (index = internal id)."""
        counts = np.zeros(self.item_num, dtype=np.int64)
        for seq in self.train_sequences:
            np.add.at(counts, seq, 1)
        return counts

    def recbole_train_dataset(self) -> "CrossDomainSequentialDataset":
        """RecBole's usual training view: one instance per prefix of each training sequence
        (history = the last MAX_ITEM_LIST_LENGTH items before position i, target = item i)."""
        max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        seq_field = self.iid_field + self.config["LIST_SUFFIX"]
        len_field = self.config["ITEM_LIST_LENGTH_FIELD"]
        rows_user, rows_target, rows_len, rows_hist = [], [], [], []
        for u, seq in self._train_rows():
            for i in range(1, len(seq)):
                hist = seq[max(0, i - max_len) : i]
                rows_user.append(u), rows_target.append(seq[i]), rows_len.append(len(hist)), rows_hist.append(hist)
        n = len(rows_target)
        item_list = np.zeros((n, max_len), dtype=np.int64)
        for r, hist in enumerate(rows_hist):
            item_list[r, : len(hist)] = hist
        inter = Interaction(
            {
                self.uid_field: torch.as_tensor(np.asarray(rows_user, dtype=np.int64)),
                self.iid_field: torch.as_tensor(np.asarray(rows_target, dtype=np.int64)),
                seq_field: torch.from_numpy(item_list),
                len_field: torch.as_tensor(np.asarray(rows_len, dtype=np.int64)),
            }
        )
        self.set_field_property(seq_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, max_len)
        self.set_field_property(len_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        view = self.copy(inter)
        return view

    def sequence_train_dataset(self) -> "CrossDomainSequentialDataset":
        """Whole-sequence training view for our models: one row per training sequence with at least two
        items, its last MAX_ITEM_LIST_LENGTH + 1 items right-padded (inputs [:-1], targets [1:])."""
        width = self.config["MAX_ITEM_LIST_LENGTH"] + 1
        seq_field = self.iid_field + self.config["LIST_SUFFIX"]
        len_field = self.config["ITEM_LIST_LENGTH_FIELD"]
        owners, rows = [], []
        for u, seq in self._train_rows():
            if len(seq) >= 2:
                owners.append(u), rows.append(seq[-width:])
        item_list = np.zeros((len(rows), width), dtype=np.int64)
        for r, seq in enumerate(rows):
            item_list[r, : len(seq)] = seq
        inter = Interaction(
            {
                self.uid_field: torch.as_tensor(np.asarray(owners, dtype=np.int64)),
                seq_field: torch.from_numpy(item_list),
                len_field: torch.as_tensor(np.asarray([len(s) for s in rows], dtype=np.int64)),
            }
        )
        self.set_field_property(seq_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, width)
        self.set_field_property(len_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        return self.copy(inter)

    def summary(self) -> str:
        """One line per split: sequences and cases per domain."""
        lines = [f"{self.dataset_name}: {self.item_num - 1} items (X {len(self.domain_items[0])}, Y {len(self.domain_items[1])}), "
                 f"{len(self.train_sequences)} training sequences, recipe {self.recipe}"]
        for split in SPLITS:
            c = self.eval_cases(split).counts()
            lines.append(f"  {split}: {c['X']} X-target / {c['Y']} Y-target cases")
        return "\n".join(lines)

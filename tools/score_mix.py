"""Validation MRR of IFCDSR / LLMEMF under other score weights, from one trained checkpoint.

Why: the paper scores an item of target domain D with ``P_D + lambda1 * P_other + lambda2 * P_XY`` and
trains with the same weights. Rescoring a trained checkpoint with other weights costs one evaluation
pass per mix, so it shows cheaply whether the weights matter before any training run is spent on them.
Validation only: this tool never reads the test split, so nothing it prints can choose on test.

    .venv/bin/python tools/score_mix.py --checkpoint <run>-best_X.pth [--data_path dataset] \
        --mixes 1,0.1,0.4 0,0,1 1,0.1,4

Each mix is ``w_own,w_other,w_merged``; ``1,<lambda1>,<lambda2>`` is the model's own scoring. The
checkpoint's stored settings build the model (its own file: a ``-best`` or ``-last`` checkpoint that a
run of this program wrote; naming it here trusts its folder, as a run trusts its checkpoint folder).
The negatives are the ones of the checkpoint's epoch, as in the run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from recbole.utils import init_seed

from recbole_ifcdsr import compat
from recbole_ifcdsr.data.dataset import CrossDomainSequentialDataset
from recbole_ifcdsr.evaluation.protocol import ProtocolEvaluator
from recbole_ifcdsr.model.abstract import X, Y
from recbole_ifcdsr.quick_start import build_model
from recbole_ifcdsr.registry import get_model


def mixed_scores(model, w_own: float, w_other: float, w_merged: float):
    """A ``full_sort_predict`` for ``model`` with the given weights (the model's own parts, no copy)."""

    @torch.no_grad()
    def full_sort_predict(interaction):
        branches = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        scores = torch.full((interaction[model.ITEM_SEQ].size(0), model.n_items), -torch.inf)
        p_merged = model._branch_probs(branches["xy"], model.all_items)
        for target, own, other in ((X, "x", "y"), (Y, "y", "x")):
            items = model.domain_items(target)
            block = (w_own * model._branch_probs(branches[own], items)
                     + w_other * model._branch_probs(branches[other], items)
                     + w_merged * p_merged.index_select(1, items - 1))
            scores.index_copy_(1, items, block)
        return scores

    return full_sort_predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data_path", "--data-path", default="dataset",
                        help="folder holding the dataset folders (the plug-in's option style; --data-path kept)")
    parser.add_argument("--mixes", nargs="+", required=True, help="w_own,w_other,w_merged ...")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    mixes = [tuple(float(w) for w in mix.split(",")) for mix in args.mixes]
    if any(len(mix) != 3 for mix in mixes):
        parser.error("each mix is three numbers: w_own,w_other,w_merged")
    torch.set_num_threads(args.threads)
    compat.trust_checkpoint_dir(Path(args.checkpoint).resolve().parent)
    state = compat.load_checkpoint(args.checkpoint, map_location="cpu")
    config = state["config"]
    config["data_path"] = str(Path(args.data_path).resolve() / config["dataset"])  # RecBole keeps <data_path>/<dataset>
    config["device"] = torch.device("cpu")
    dataset = CrossDomainSequentialDataset(config)
    init_seed(config["seed"], True)
    model = build_model(get_model(config["model"]), config, dataset)
    if not model.multiple_attention:
        parser.error("a single merged encoder (multiple_attention False) has one branch: nothing to mix")
    model.load_state_dict(state["state_dict"])
    model.eval()
    evaluator = ProtocolEvaluator(dataset, config)
    names = config["domains"]
    print(f"{config['model']} on {config['dataset']}, epoch {state['epoch']}, validation, sampled protocol, MRR (%)")
    print(f"| w_own, w_other, w_merged | {names['X']} | {names['Y']} | mean |")
    print("|---|---|---|---|")
    for mix in mixes:
        model.full_sort_predict = mixed_scores(model, *mix)
        result = evaluator.evaluate(model, "valid", state["epoch"], protocols=("sampled",))["sampled"]
        x, y = 100 * result["X"]["MRR"], 100 * result["Y"]["MRR"]
        print(f"| {', '.join(f'{w:g}' for w in mix)} | {x:.2f} | {y:.2f} | {(x + y) / 2:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

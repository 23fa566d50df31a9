"""python -m recbole_ifcdsr features {extract,export_item,import_item} ...

extract: build ``<data_path>/<dataset>/<dataset>.<feature>.npz`` (resumable; see extract.py). The spec
comes from ``item_features.<feature>`` in --config_files YAML, overridden by the flags.
export_item / import_item: a store to / from a RecBole ``.item`` file's ``float_seq`` column (the
hyphenated ``export-item`` / ``import-item`` are kept as aliases). ``python -m recbole_ifcdsr.features``
is the same command. Exit status as for every command (recbole_ifcdsr/cli.py): 0 done, 2 usage or data error.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from recbole_ifcdsr.cli import PROG, CommandParser
from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.paths import default_data_path
from recbole_ifcdsr.yamlfile import read_yaml

SPEC_FLAGS = ("modality", "encoder", "clip_model", "pretrained", "model_config", "model_path", "image_dir",
              "image_urls", "image_cache", "text_file", "batch_size", "chunk_size", "device", "workers",
              "download_timeout", "download_retries", "ray_address", "ray_actors")


def _spec_from(args) -> dict:
    spec = {}
    for path in filter(None, (args.config_files or "").split(",")):
        loaded = read_yaml(path)
        spec.update(((loaded.get("item_features") or {}).get(args.feature)) or {})
    spec.update({k: getattr(args, k) for k in SPEC_FLAGS if getattr(args, k) is not None})
    return spec


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"{PROG} features", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{extract,export_item,import_item}")
    ex = sub.add_parser("extract", help="encode item images or texts into the feature store")
    ex.add_argument("--dataset", required=True)
    ex.add_argument("--feature", required=True, help="feature name, e.g. text_minilm or image")
    ex.add_argument("--data_path", default=str(default_data_path()), help="folder holding <dataset>/ (default: ./dataset)")
    ex.add_argument("--config_files", help="YAML files whose item_features.<feature> gives the spec")
    ex.add_argument("--modality", choices=("image", "text"))
    ex.add_argument("--encoder", choices=("clip", "minilm"))
    ex.add_argument("--clip_model", help="open_clip model name (default ViT-B-32)")
    ex.add_argument("--pretrained", help="open_clip tag, local checkpoint file, or 'random' (pipeline tests only)")
    ex.add_argument("--model_config", help="extra open_clip model config JSON (its file name is the model name)")
    ex.add_argument("--model_path", help="local sentence-transformers folder (default: bundled all-MiniLM-L6-v2)")
    ex.add_argument("--image_dir", help="folder of <token>.jpg files or <token>/ subfolders")
    ex.add_argument("--image_urls", help="token<TAB>url file")
    ex.add_argument("--image_cache", help="download cache folder (default: next to the URL file)")
    ex.add_argument("--text_file", help="token<TAB>text file (enriched text) instead of the dataset's titles")
    ex.add_argument("--batch_size", type=int)
    ex.add_argument("--chunk_size", type=int, help="items per resumable chunk (default 1024)")
    ex.add_argument("--device", help="auto (default: cuda when present), cpu, cuda, cuda:1")
    ex.add_argument("--workers", type=int, help="image decoding threads")
    ex.add_argument("--download_timeout", type=float)
    ex.add_argument("--download_retries", type=int)
    ex.add_argument("--engine", choices=("local", "ray"), default="local")
    ex.add_argument("--ray_address", help="Ray cluster address (default: start a local instance)")
    ex.add_argument("--ray_actors", type=int, help="encoder actors (default: one per GPU, else 1)")
    ex.add_argument("--overwrite", action="store_true", help="rebuild an existing store")
    ex.add_argument("--no_progress", action="store_true")
    out = sub.add_parser("export_item", aliases=["export-item"],
                         help="write a store as a RecBole .item file with a float_seq column")
    imp = sub.add_parser("import_item", aliases=["import-item"],
                         help="build a store from a RecBole .item file's float_seq column")
    for p, name in ((out, "export_item"), (imp, "import_item")):
        p.set_defaults(command=name)  # the same name whichever alias was typed
        p.add_argument("--dataset", required=True)
        p.add_argument("--feature", required=True)
        p.add_argument("--data_path", default=str(default_data_path()), help="folder holding <dataset>/ (default: ./dataset)")
        p.add_argument("--field", help="float_seq column name (default: the feature name)")
        p.add_argument("--item_file", required=True, help="the .item file to write / read")
    return parser


def main(argv: list[str] | None = None) -> int:
    """One features sub-command from ``argv`` (default ``sys.argv[1:]``)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    from recbole_ifcdsr.features.store import export_float_seq, feature_path, import_float_seq, save_features

    dataset_dir = Path(args.data_path) / args.dataset

    def run() -> int:
        if args.command == "extract":
            from recbole_ifcdsr.features.extract import ExtractionJob, extract

            job = ExtractionJob(str(dataset_dir), args.dataset, args.feature, _spec_from(args))
            report = extract(job, engine=args.engine, overwrite=args.overwrite, show_progress=not args.no_progress)
            print(report.summary())
            for token, status, reason in report.problems[:20]:
                print(f"  {status}: {token} ({reason})")
            if len(report.problems) > 20:
                print(f"  ... {len(report.problems) - 20} more in {job.report_path}")
        elif args.command == "export_item":
            n = export_float_seq(feature_path(dataset_dir, args.dataset, args.feature), args.item_file,
                                 args.field or args.feature)
            print(f"wrote {n} rows to {args.item_file}")
        else:
            tokens, vectors, mask = import_float_seq(args.item_file, args.field or args.feature)
            path = feature_path(dataset_dir, args.dataset, args.feature)
            save_features(path, tokens, vectors, mask, {"encoder": "imported", "weights": "unknown",
                                                        "preprocessing": "unknown", "source": str(args.item_file),
                                                        "inputs": {"imported_from": str(args.item_file)}})
            print(f"wrote {int(mask.sum())} of {len(tokens)} items to {path}")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())

"""``convert <format>``: any folder in a known release format -> a dataset ``run`` can use at once.

A release format (ABXI, LLMCDSR, C2DSR) is recognised by its file names, not by a scenario name, so
ABXI's ``abe`` or a user's own ABXI-style folder converts like ``afk``. Besides the atomic files the
conversion writes ``properties/dataset/NAME.yaml`` (the format's evaluation recipe, copied from the
preset that reproduces it, with this dataset's domain names and provenance) and a README with the
counts. Every bad input fails before anything is written.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from recbole_ifcdsr import io
from recbole_ifcdsr.cli import CommandParser
from recbole_ifcdsr.errors import run_cli
from recbole_ifcdsr.paths import PROPERTIES_DIR, default_data_path, user_properties_dir

from .abxi import ITEM_MAP, SEQ_PATTERN, convert_abxi, find_abxi_sequence_file, load_item_map
from .c2dsr import TRAIN_FILE, convert_c2dsr_folder, load_c2dsr_items
from .common import ConversionError, check_token
from .llmcdsr import check_missing, convert_llmcdsr, llmcdsr_titles, load_item_sets

FORMATS = ("abxi", "llmcdsr", "c2dsr")
# file patterns that identify each format's folder (any one of them is enough to claim it)
MARKERS: Dict[str, Tuple[str, ...]] = {
    "abxi": (SEQ_PATTERN, ITEM_MAP),
    "llmcdsr": ("item_set_*.pkl", "train_overlap.txt", "train_A.txt", "train_B.txt"),
    "c2dsr": ("Alist.txt", "Blist.txt", "*data_new.txt"),
}
DESCRIBED = {"abxi": f"ABXI ({SEQ_PATTERN} + {ITEM_MAP})",
             "llmcdsr": "LLMCDSR (train_*.txt, valid.txt, test.txt, item_set_*.pkl, num.txt)",
             "c2dsr": "C2DSR (Alist.txt, Blist.txt, validdata_new.txt, testdata_new.txt)"}
# the shipped preset whose YAML holds each format's evaluation recipe
RECIPE_PRESET = {"abxi": "fk_abxi", "llmcdsr": "fk_llmcdsr", "c2dsr": "food_kitchen"}
PRESETS = ("fk_abxi", "fk_llmcdsr", "food_kitchen", "movie_book", "mb_llmcdsr")


def detect_format(src: Path) -> str:
    """The one format whose files ``src`` holds; a folder of none or several formats is an error."""
    src = Path(src)
    if not src.is_dir():
        raise ConversionError(f"{src}: no such folder; pass --src the folder that holds the release's files")
    found = {fmt: sorted({p.name for pattern in patterns for p in src.glob(pattern)})
             for fmt, patterns in MARKERS.items()}
    matches = [fmt for fmt, names in found.items() if names]
    if not matches:
        raise ConversionError(f"{src}: matches no known format; expected the files of "
                              f"{'; or '.join(DESCRIBED.values())}")
    if len(matches) > 1:
        held = "; ".join(f"{fmt}: {', '.join(found[fmt][:3])}" for fmt in matches)
        raise ConversionError(f"{src}: holds files of {len(matches)} formats ({held}); put each release in its own folder")
    return matches[0]


def check_name(name: str) -> str:
    """A dataset name becomes file names: refuse empty/odd names and the shipped presets."""
    if name in PRESETS:
        raise ConversionError(f"--name {name} would overwrite the shipped preset {name}; choose another name "
                              f"(regenerate the preset with: python -m recbole_ifcdsr.data.converters {name})")
    if not name or name.startswith(".") or any(c in name for c in "/\\ \t\n"):
        raise ConversionError(f"--name {name!r}: use letters, digits, '_' or '-' (it names the dataset's files)")
    return name


def parse_domains(text: Optional[str], src: Path) -> Tuple[Tuple[str, str], str]:
    """Domain names (X, Y) and where they came from: ``--domains``, else the release folder's name when it
    is ``<X>-<Y>`` (C2DSR's ``Food-Kitchen``, LLMCDSR's ``movie-book``); never another dataset's names."""
    if text is not None:
        names = [part.strip() for part in text.split(",")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            raise ConversionError(f"--domains {text!r}: give exactly two different names, X first: --domains Food,Kitchen")
        for part in names:
            check_token(part, "--domains", "domain name")
        return (names[0], names[1]), "--domains"
    parts = Path(src).resolve().name.split("-")
    # a release's own name is not a domain: abxi-afk would have named Grocery and Kitchen 'Abxi' and 'Afk'
    if len(parts) == 2 and all(p.isalpha() and p.lower() not in FORMATS for p in parts):
        return (parts[0].capitalize(), parts[1].capitalize()), f"release folder name '{Path(src).resolve().name}'"
    raise ConversionError(f"{src}: the release names no domains; pass --domains X_NAME,Y_NAME (X = the release's "
                          f"domain A / 0)")


def check_map(fmt: str, src: Path) -> None:
    """Read the format's item map(s) (ids must be contiguous), so a bad map fails before anything is written."""
    if fmt == "abxi":
        load_item_map(src / ITEM_MAP)
    elif fmt == "llmcdsr":
        load_item_sets(src)
    else:
        for name in ("Alist.txt", "Blist.txt"):
            load_c2dsr_items(src / name)


def source_problems(src: Path, fmt: Optional[str], name: Optional[str], domains: Optional[str]) -> List[str]:
    """Every problem with a conversion's inputs, not only the first (``convert check --src``)."""
    problems: List[str] = []

    def attempt(step, *args):
        try:
            return step(*args)
        except ConversionError as error:
            problems.append(str(error))
            return None

    if name is not None:
        attempt(check_name, name)
    found = attempt(detect_format, src)
    if found is not None and fmt is not None and found != fmt:
        problems.append(f"{src}: holds {DESCRIBED[found]} files, not {fmt}; run convert {found}")
    if found is not None:
        attempt(parse_domains, domains, src)
        attempt(check_map, found, src)
        if found == "abxi":
            attempt(find_abxi_sequence_file, src)
    return problems


def recipe_yaml(fmt: str, name: str, domains: Tuple[str, str], provenance: Dict[str, str]) -> str:
    """The dataset YAML: the format preset's recipe with this dataset's domains and provenance."""
    template = (PROPERTIES_DIR / "dataset" / f"{RECIPE_PRESET[fmt]}.yaml").read_text(encoding="utf-8")
    body = [line for line in template.splitlines() if not line.startswith("#")]
    body = [f"domains: {{X: {json.dumps(domains[0])}, Y: {json.dumps(domains[1])}}}" if line.startswith("domains:")
            else line for line in body]
    head = [f"# {name}: {DESCRIBED[fmt]} folder converted by recbole_ifcdsr.",
            f"# Source: {provenance['source']}",
            f"# Domains from {provenance['domains_from']}; recipe copied from the {RECIPE_PRESET[fmt]} preset.",
            f"# Regenerate: {provenance['command']}"]
    return "\n".join(head + body) + "\n"


def dataset_readme(meta: dict, command: str) -> str:
    """A README with the dataset's provenance and counts, generated so it always matches the files."""
    dom = meta["domains"]
    lines = [f"# {meta['name']}: {meta['format']} format, {dom['X']} (X) + {dom['Y']} (Y)", "",
             f"**Source:** {meta['source']}" + (f" at commit `{meta['source_commit']}`" if meta.get("source_commit") else ""),
             f"**Domains from:** {meta['domains_from']}", f"**Regenerate:** `{command}`", ""]
    missing = meta.get("missing_files") or []
    if missing:
        lines += [f"**Missing release files:** {', '.join(missing)} (converted with --allow_missing: the "
                  f"sequences and titles they hold are absent; {meta.get('n_items_in_no_sequence', 0):,} items "
                  f"occur in no sequence)", ""]
    lines += [f"**Note:** {note}" for note in meta.get("notes", [])] + ([""] if meta.get("notes") else [])
    lines += ["## Counts", "", f"| | X ({dom['X']}) | Y ({dom['Y']}) |", "|---|---|---|",
              f"| items | {meta['n_items']['X']:,} | {meta['n_items']['Y']:,} |",
              f"| titled items | {meta['n_titled_items']['X']:,} | {meta['n_titled_items']['Y']:,} |"]
    for split, counts in meta["n_eval_cases"].items():
        lines.append(f"| {split} cases (target domain) | {counts['X']:,} | {counts['Y']:,} |")
    seqs = ", ".join(f"{k} {v:,}" for k, v in meta["n_sequences"].items())
    inters = ", ".join(f"{k} {v:,}" for k, v in meta["n_interactions"].items())
    lines += ["", f"Sequences: {seqs}. Interactions: {inters}.", ""]
    return "\n".join(lines)


def convert_folder(fmt: str, src: Path, name: str, domains: Optional[str] = None, titles: Sequence[Path] = (),
                   data_path: Optional[Path] = None, properties: Optional[Path] = None, train: Optional[Path] = None,
                   allow_missing: bool = False, command: str = "") -> dict:
    """Convert the ``fmt`` folder ``src`` into ``data_path/name/`` plus ``properties/dataset/name.yaml``."""
    src = Path(src)
    check_name(name)
    found = detect_format(src)
    if found != fmt:
        raise ConversionError(f"{src}: holds {DESCRIBED[found]} files, not {fmt}; run convert {found}")
    names, domains_from = parse_domains(domains, src)
    for path in titles:
        if not Path(path).is_file():
            raise ConversionError(f"--titles {path}: no such file")
    out = Path(data_path or default_data_path()) / name
    yaml_path = Path(properties or user_properties_dir()) / "dataset" / f"{name}.yaml"
    provenance = {"format": fmt, "source": f"{fmt} files in {src.resolve()}", "source_commit": None,
                  "domains_from": domains_from, "command": command or f"convert {fmt} --src {src} --name {name}"}
    if fmt == "abxi":
        meta = convert_abxi(src, out, name, names, titles, provenance=provenance)
    elif fmt == "llmcdsr":
        missing = check_missing(src, allow_missing)
        meta = convert_llmcdsr(src, out, name, names, llmcdsr_titles(src, titles), missing, provenance)
    else:
        meta = convert_c2dsr_folder(src, out, name, names, titles, Path(train) if train else src / TRAIN_FILE,
                                    provenance)
    io.write_text(out / "README.md", dataset_readme(meta, provenance["command"]))
    io.write_text(yaml_path, recipe_yaml(fmt, name, names, provenance))
    return meta


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m recbole_ifcdsr convert",
                           description="Convert a folder in a known CDSR release format, or check a dataset.")
    add_format_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def add_format_subcommands(sub) -> None:
    """The ``abxi|llmcdsr|c2dsr|check`` sub-parsers, added to ``sub`` (also by data/convert.py's parser)."""
    for fmt in FORMATS:
        p = sub.add_parser(fmt, help=f"convert a folder of {DESCRIBED[fmt]} files")
        p.add_argument("--src", type=Path, required=True, help="folder holding the release's files")
        p.add_argument("--name", required=True, help="dataset name: writes dataset/NAME/ and properties/dataset/NAME.yaml")
        p.add_argument("--domains", help="X_NAME,Y_NAME (default: the release folder's <X>-<Y> name)")
        p.add_argument("--titles", type=Path, nargs="+", default=[], help="TSVs with asin and title columns")
        p.add_argument("--data_path", type=Path, help="folder holding datasets (default ./dataset)")
        p.add_argument("--properties", type=Path, help="properties folder for the YAML (default ./properties)")
        if fmt == "c2dsr":
            p.add_argument("--train", type=Path, help=f"C2DSR {TRAIN_FILE} (default <src>/{TRAIN_FILE})")
        if fmt == "llmcdsr":
            p.add_argument("--allow_missing", action="store_true",
                           help="convert what is there when train_*/text_* files are absent (recorded in README and meta)")
    p = sub.add_parser("check", help="check a converted or hand-made dataset (--dataset) or a source folder (--src)")
    p.add_argument("--dataset", help="dataset name: checks data_path/NAME/ against properties/dataset/NAME.yaml")
    p.add_argument("--data_path", type=Path, help="folder holding datasets (default ./dataset)")
    p.add_argument("--src", type=Path, help="a release folder to check before converting it")
    p.add_argument("--format", choices=FORMATS, help="with --src: the format it should be")
    p.add_argument("--name", help="with --src: the dataset name to convert to")
    p.add_argument("--domains", help="with --src: X_NAME,Y_NAME")


def main_formats(argv: List[str]) -> int:
    """``convert abxi|llmcdsr|c2dsr|check ...``: exit 0 when done, 2 on a usage or data error (one line each)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        from .check import run_check

        if (args.dataset is None) == (args.src is None):
            parser.error("check needs exactly one of --dataset NAME or --src DIR")
        return run_check(args)

    def run() -> int:
        command = "python -m recbole_ifcdsr convert " + " ".join(argv)
        meta = convert_folder(args.command, args.src, args.name, args.domains, args.titles, args.data_path,
                              args.properties, getattr(args, "train", None), getattr(args, "allow_missing", False),
                              command)
        missing = meta.get("missing_files") or []
        print(f"wrote {Path(args.data_path or default_data_path()) / args.name} and "
              f"{Path(args.properties or user_properties_dir()) / 'dataset' / (args.name + '.yaml')}: "
              f"items {meta['n_items']}, sequences {meta['n_sequences']}, eval cases {meta['n_eval_cases']}"
              + (f"; missing {', '.join(missing)}" if missing else ""))
        return 0

    return run_cli(run)

"""recbole-ifcdsr: the one command line (``python -m recbole_ifcdsr <command>`` or ``recbole-ifcdsr <command>``).

Commands::

    run       train and evaluate one model on one dataset (RecBole's run_recbole, with both CDSR protocols)
    compare   a grid of models x seeds on one dataset, ending with its table
    features  build frozen item feature stores (CLIP images, MiniLM or CLIP texts)
    enrich    enrich item titles with an LLM, for text features
    convert   turn a CDSR release or raw Amazon reviews into RecBole atomic files
    recommend the next items of a domain for live histories, from a trained model file

``<command> --help`` lists a command's options.

Options: ``--key=value`` or ``--key value``, names with underscores as in RecBole's config keys. ``run`` and
``compare`` pass every option they do not know on to the run's config (``--epochs=5``), where it wins over
the YAML files, as on RecBole's command line; a key that no property file (nor a ``--config_files`` file)
defines is refused in one line that names the nearest known key.

``data_path`` means one thing everywhere, as in RecBole: the folder that *holds* dataset folders, so a
dataset's files are ``<data_path>/<name>/<name>.*``; it defaults to ``./dataset``.

Exit status, for every command:

- 0: done;
- 1: partial failure: the inputs were fine but part of the work failed and is listed (``compare``: a grid
  cell; ``enrich``: an item); rerunning the same command retries only what failed;
- 2: a usage or data error, reported in one ``error: ...`` line on stderr (a bad option, name, value,
  file or checkpoint; a run that would report no or non-finite numbers), nothing written;

anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, NamedTuple, NoReturn

PROG = "python -m recbole_ifcdsr"


class Command(NamedTuple):
    """A sub-command: the module whose ``main(argv) -> int`` runs it (imported only when used, so
    ``--help`` is quick) and its one-line summary."""

    module: str
    summary: str


#: The commands; a new one is one line here (its module needs ``main(argv: list[str] | None) -> int``).
COMMANDS: dict[str, Command] = {
    "run": Command("recbole_ifcdsr.run", "train and evaluate one model on one dataset"),
    "compare": Command("recbole_ifcdsr.compare", "a grid of models x seeds on one dataset, ending with its table"),
    "features": Command("recbole_ifcdsr.features.cli", "build frozen item feature stores (images, texts)"),
    "enrich": Command("recbole_ifcdsr.enrich.cli", "enrich item titles with an LLM, for text features"),
    "convert": Command("recbole_ifcdsr.data.convert", "turn a CDSR release or raw Amazon reviews into atomic files"),
    "recommend": Command("recbole_ifcdsr.serving.cli", "the next items of a domain for live histories, from a model file"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [options]   (or: recbole-ifcdsr <command> [options])", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    lines += ["", f"'{PROG} <command> --help' lists a command's options; exit status: 0 ok, 1 partial failure,",
              "2 usage or data error (see the docstring of recbole_ifcdsr/cli.py)."]
    return "\n".join(lines)


def config_options(extra: list[str]) -> list[str]:
    """Options meant for the run's config, each as ``--key=value`` (``--key value`` is joined).

    A usage error (``SystemExit(2)``, as argparse's) for anything that is not an option with a value."""
    options, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or len(arg) == 2 or arg[2] == "=":
            _usage_error(f"'{arg}' is not an option: give config settings as --key=value or --key value")
        if "=" in arg:
            options.append(arg)
            i += 1
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            options.append(f"{arg}={extra[i + 1]}")
            i += 2
        else:
            _usage_error(f"{arg} needs a value: {arg}=VALUE or {arg} VALUE")
    return options


def _usage_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def number_option(kind: type, accept: Callable[[float], bool], requirement: str) -> Callable[[str], int | float]:
    """An argparse ``type``: a ``kind`` number that ``accept`` takes, else the usage error ``<value>: <requirement>``."""
    name = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {name}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{value}: {requirement}")
        return value

    return parse


class CommandParser(argparse.ArgumentParser):
    """argparse's parser with the usage errors of the exit policy above: one ``error: ...`` line, status 2.

    argparse's own prints its usage block first and prefixes the program, so a script reading stderr's
    last line got the message but a person got three lines; the line here names the ``--help`` to read.

    Option names are never abbreviated: ``parse_known_args`` read ``compare --seed=7`` as ``--seeds=7`` (seven
    runs) instead of passing it on, so an option is either the command's own, spelled out, or a config key."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        _usage_error(f"{message} (see {self.prog} --help)")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to its command; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command '{name}'; valid commands: {', '.join(COMMANDS)}\n\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name].module).main(rest)


if __name__ == "__main__":
    sys.exit(main())

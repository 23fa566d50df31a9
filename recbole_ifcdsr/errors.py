"""Expected, user-facing errors, and the one place where a command line turns them into one line.

An *expected* error is a problem with what the user gave us (a name, a value, a file, a checkpoint)
or a run that must not report numbers (non-finite scores, nothing evaluated). Its message is one
line that names the file, line, field or setting at fault. Every command line runs its ``main``
through :func:`run_cli`: an expected error becomes ``error: ...`` on stderr and a non-zero exit
status; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Callable


class CDSRError(Exception):
    """Base of every expected error; the message is the whole explanation."""


class ConfigError(CDSRError, ValueError):
    """A setting that cannot be used: unknown name, wrong type, unreadable YAML (the source is named)."""


class DataError(CDSRError, ValueError):
    """Input data that is malformed or incomplete; the message says ``file:line: field: problem``."""


class CheckpointError(CDSRError):
    """A checkpoint that cannot be read (truncated, corrupt, or written by an older version)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that belongs to another run (dataset, model, data files or shapes differ)."""


class NonFiniteError(CDSRError, ArithmeticError):
    """NaN or infinity in a loss, gradient or score: the run stops instead of reporting numbers."""


class EmptyRunError(CDSRError):
    """A run that trained or evaluated nothing, so it has no numbers to report."""


#: What a command line reports in one line. FileNotFoundError names its file; the rest are ours.
EXPECTED: tuple = (CDSRError, FileNotFoundError)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(error).split()) or type(error).__name__


def brief(error: BaseException, limit: int = 160) -> str:
    """``Type: first sentence`` of a third-party error, for the parenthesis of a one-line message
    (torch and others append paragraphs of advice that would drown the line)."""
    return f"{type(error).__name__}: {one_line(error).split('. ')[0][:limit]}"


def run_cli(main: Callable[[], int], expected_exit: int = 2) -> int:
    """Run a command line's ``main``; an expected error prints ``error: <message>`` on stderr and
    returns ``expected_exit`` (2 unless a tool documents another), every other exception propagates."""
    try:
        return main()
    except EXPECTED as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return expected_exit

"""What every script's command line shares: the help format, argument checks, and one way to fail clearly.

A script builds its parser with `parser(__doc__)`, checks numbers with `int_at_least(n)` / `positive_float`,
and wraps its `main` in `@entry`: a UserError, CorpusError, StoreError or OutputError raised anywhere below
becomes one line `error: <file or flag>: <problem>` on stderr and exit code 1, never a traceback.
"""
from __future__ import annotations

import argparse
import functools
import sys

from corpora.records import CorpusError
from features.store import StoreError
from utils import OutputError


class UserError(Exception):
    """Bad input or settings the user can fix; the message names the file or flag and says what to do."""


CLEAR_ERRORS = (UserError, CorpusError, StoreError, OutputError)


def entry(main):
    """Decorate a script's `main(argv) -> int`: clear errors -> `error: ...` on stderr and return 1."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except CLEAR_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return wrapped


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the module docstring's layout and appends each option's default where its help does not say it."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.required or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.default is None or not (action.option_strings or action.nargs in ("?", "*")):
            return text
        if isinstance(action.default, (list, tuple)):
            shown = " ".join(map(str, action.default)).replace("%", "%%")
            return f"{text} (default: {shown})"
        return f"{text} (default: %(default)s)"


def parser(doc: str | None, **kw) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter, **kw)


def int_at_least(low: int):
    """argparse type: an integer >= low, with a message naming the bound."""
    def check(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} is too small (at least {low})")
        return v
    check.__name__ = f"integer >= {low}"
    return check


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} must be greater than 0")
    return v


def add_run_output_args(ap) -> None:
    """--out, --results, --device, --deterministic, --no-resume, --no-progress: the same flags, defaults and help
    for every script that trains and tests over folds or configurations (mdre.py, speech_text_mocap.py)."""
    from pathlib import Path
    ap.add_argument("--out", type=Path, default=Path("Models"), help="folder of the run folders")
    ap.add_argument("--results", type=Path, default=Path("results"), help="folder of the result files")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    ap.add_argument("--deterministic", action="store_true", help="one thread, deterministic kernels")
    ap.add_argument("--no-resume", action="store_true", help="start every run over")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")

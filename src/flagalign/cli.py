"""The ``flagalign`` command line.

Each sub-command lives in its own module under :mod:`flagalign.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.

Exit status: 0 success; 2 bad input (one line on stderr, never a traceback); 1 internal error;
3 ``--strict`` with non-ok rows. Set ``FLAGALIGN_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys

from ._version import __version__
from .errors import FlagalignError

# Sub-command modules, in the order `flagalign --help` lists them.
COMMANDS = (
    "analyze",
    "describe",
    "heads",
    "trajectory",
    "compare",
    "reproduce",
)


#: Other spellings accepted for a command (``flagalign analyse`` = ``flagalign analyze``).
ALIASES = {"analyze": ("analyse",)}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences: error lines stay plain text even when a colour
    terminal (FORCE_COLOR, rich, a library message) put escapes into a message."""
    return _ANSI.sub("", str(text))


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word).lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (exit 2), never the multi-line usage block."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        m = re.search(r"invalid choice: '([^']*)'", message)
        if m and "COMMAND" in message:
            names = [*COMMANDS, *(a for v in ALIASES.values() for a in v)]
            message = (f"unknown command {m.group(1)!r}{did_you_mean(m.group(1), names)}; "
                       f"commands: {', '.join(COMMANDS)}")
        self.exit(2, plain(f"{self.prog}: error: {message} (see '{self.prog} --help')\n"))


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="flagalign",
        description="Weight-only alignment geometry between adjacent layers.",
    )
    parser.add_argument("--version", action="version", version=f"flagalign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # by name: each command module is imported only to register its arguments
        importlib.import_module(f"flagalign.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) if exc.code in (0, None) else 2
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except FlagalignError as exc:
        if os.environ.get("FLAGALIGN_DEBUG"):
            raise
        print(plain(f"flagalign: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flagalign: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI must never show a bare traceback
        if os.environ.get("FLAGALIGN_DEBUG"):
            raise
        print(
            plain(f"flagalign: internal error: {type(exc).__name__}: {exc} "
                  "(set FLAGALIGN_DEBUG=1 for a traceback)"),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

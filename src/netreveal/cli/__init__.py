"""The ``netreveal`` command line: one module per command group.

- :mod:`~netreveal.cli.explain`: ``demo``, ``explain``, ``evaluate``
- :mod:`~netreveal.cli.study`: ``study create|export|import-labels|list|analyse``
- :mod:`~netreveal.cli.labels`: ``labels analyse|crowd``
- :mod:`~netreveal.cli.train_head`: ``train-head infodisent|xnn``
- :mod:`~netreveal.cli.web`: ``serve`` and ``account``

Arguments several commands share are declared once in :mod:`~netreveal.cli.args`. Handlers import
their work lazily so ``netreveal --help`` stays fast. Bad input (missing path, unreadable image,
unknown layer, ...) prints one line ``netreveal: error: ...`` and exits with code 2, without a
traceback and without leaving half-written output.
"""

from __future__ import annotations

import argparse
import sys
import time

from netreveal import __version__
from netreveal.errors import NetrevealError


class _Parser(argparse.ArgumentParser):
    """An argument parser that gives a method-running command its method flags (generated from the
    registered methods' options) when the command is parsed or its help shown."""

    runs_methods = False
    method_defaults: dict = {}  # option name -> this command's default, where it differs from the library's
    _method_flags = False

    def _ensure_method_flags(self) -> None:
        if self.runs_methods and not self._method_flags:
            from netreveal.methods import METHODS
            from netreveal.methods.flags import add_method_flags

            self._method_flags = True
            add_method_flags(self, defaults=self.method_defaults)
            self.epilog = "methods: " + ", ".join(f"{name} ({m.title})" for name, m in METHODS.items())

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_method_flags()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_method_flags()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``netreveal`` command (no heavy imports)."""
    from netreveal.cli import explain, labels, study, train_head, web

    parser = _Parser(prog="netreveal", description="Explain image classifiers from pixels up to named concepts.")
    parser.add_argument("--version", action="version", version=f"netreveal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    explain.add_parsers(sub)
    train_head.add_parser(sub)
    study.add_parser(sub)
    labels.add_parser(sub)
    web.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``netreveal`` with ``argv``; returns the exit code."""
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    args.started = started  # a command may say how long it took
    try:
        return args.handler(args)
    except NetrevealError as exc:
        print(f"netreveal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netreveal: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]

"""The ``lowbit`` command line: ``formats``, ``demo`` and ``gemm-error``.

Example:
    >>> from lowbit.cli import main
    >>> main(["formats"]) == 0  # doctest: +ELLIPSIS
    Floating-point formats
    ...
    True
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .formats import InvalidArgument, InvalidFormatError, UnknownFormatError

__all__ = ["main", "build_parser"]

_GEMM_ERROR = "gemm-error"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``gemm-error`` takes its own arguments, parsed by its module)."""
    from . import demo

    parser = argparse.ArgumentParser(
        prog="lowbit", description="Bit-exact emulation of low-precision number formats.")
    parser.add_argument("--version", action="version", version=f"lowbit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = sub.add_parser("formats", help="table of every catalogue format (exact facts)",
                         description="Table of every format in lowbit.FORMATS, derived from the "
                                     "records (docs/formats.md is the --markdown output).")
    fmt.add_argument("--markdown", action="store_true", help="print Markdown (docs/formats.md)")
    dem = sub.add_parser("demo", help="quantise a real image to every format; print the errors",
                         description="Quantise the Grace Hopper portrait (shipped with lowbit) "
                                     "to every catalogue format and print the error of each.")
    demo.add_arguments(dem)
    sub.add_parser(_GEMM_ERROR, add_help=False,
                   help="error of an emulated GEMM datapath vs exact (lowbit gemm-error --help)")
    return parser


def _gemm_error(argv: list[str]) -> int:
    try:
        gemm_error = importlib.import_module("lowbit.gemm_error")
    except ModuleNotFoundError as e:
        if e.name == "lowbit.gemm_error":
            print("lowbit gemm-error: not available in this build (module lowbit.gemm_error is "
                  "missing)", file=sys.stderr)
        else:
            print(f"lowbit gemm-error: needs the package {e.name!r}, which is not installed "
                  "(pip install 'lowbit[plot]' for matplotlib)", file=sys.stderr)
        return 2
    return int(gemm_error.main(argv))


def _run(args: argparse.Namespace) -> int:
    if args.command == "formats":
        from .formats import table
        text = table.render_markdown() if args.markdown else table.render_text()
        sys.stdout.write(text)
        return 0
    from . import demo
    return demo.main(args, sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lowbit`` command; returns the exit status (2 for usage and argument errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == _GEMM_ERROR:
            return _gemm_error(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        try:
            return _run(args)
        except (InvalidArgument, InvalidFormatError, UnknownFormatError) as e:
            parser.exit(2, f"lowbit {args.command}: error: {e}\n")
    except BrokenPipeError:  # `lowbit formats | head`
        sys.stderr.close()
        return 0
    except SystemExit as e:  # argparse: usage errors exit 2, --help/--version exit 0
        return e.code if isinstance(e.code, int) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

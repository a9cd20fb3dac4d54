"""The ``convhw`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _info(args) -> int:
    from .toolchain import survey
    tools = survey()
    width = max(len(t.name) for t in tools)
    for tool in tools:
        version = tool.version if tool.version is not None else "not installed"
        where = f"  ({tool.where})" if tool.where else ""
        print(f"{tool.name:<{width}}  {version}{where}")
    return 0


def _demo(args) -> int:
    from .demo import main as demo
    return demo(seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convhw", description="Systolic-array convolution engine: generate, prove, drive.")
    parser.add_argument("--version", action="version", version=f"convhw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="print the installed toolchain")
    info.set_defaults(func=_info)
    demo = sub.add_parser("demo", help="run a few layers of every op and check them")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

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
    from .demo import engine_demo
    from .demo import main as demo
    status = demo(seed=args.seed)
    if not args.golden_only:
        status |= engine_demo(seed=args.seed)
    return status


def _generate(args) -> int:
    import dataclasses

    from .config import EngineConfig
    from .generate import generate
    config = EngineConfig.preset(args.preset)
    changes = {name: getattr(args, name) for name in
               ("rows", "cols", "input_depth", "weight_depth", "acc_depth")
               if getattr(args, name) is not None}
    try:
        config = dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as error:
        print(f"convhw generate: {error}", file=sys.stderr)
        return 2
    for path in generate(config, args.output, args.name):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convhw", description="Systolic-array convolution engine: generate, prove, drive.")
    parser.add_argument("--version", action="version", version=f"convhw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="print the installed toolchain")
    info.set_defaults(func=_info)
    gen = sub.add_parser("generate", help="write the engine's Verilog and register map")
    gen.add_argument("--preset", default="default", choices=["small", "default"],
                     help="starting configuration (default: default)")
    for name in ("rows", "cols", "input-depth", "weight-depth", "acc-depth"):
        gen.add_argument(f"--{name}", type=int, help=f"override the preset's {name}")
    gen.add_argument("-o", "--output", required=True, help="output directory")
    gen.add_argument("--name", default="convhw", help="module and file name (default: convhw)")
    gen.set_defaults(func=_generate)
    demo = sub.add_parser("demo", help="run a few layers of every op and check them")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--golden-only", action="store_true",
                      help="skip generating and simulating the engine")
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

"""The ``convhw`` command line."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from . import __version__
from .config import COMMAND_LINE_OVERRIDES as _OVERRIDES
from .serial_protocol import MEMORY_KINDS


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
        status |= engine_demo(seed=args.seed, out_dir=args.output)
    return status


def _profile(args) -> int:
    from .profile import profile_file
    try:
        return profile_file(args.file, device=args.device, preset=args.preset or "quantized",
                            reference=args.reference, out_dir=args.output)
    except (OSError, ValueError, TypeError, ImportError) as error:
        print(f"convhw profile: {error}", file=sys.stderr)
        return 2


def _explore(args) -> int:
    from . import explore
    from .memory_model import MemoryModel
    part = args.part
    defaults = explore.DEFAULT_RANGES[part]
    try:
        points = explore.grid(part, explore.parse_range(args.rows or defaults[0], "rows"),
                              explore.parse_range(args.cols or defaults[1], "cols"),
                              [explore.parse_depths(d) for d in args.depths or ()] or None)
        memory = MemoryModel(bytes_per_cycle=args.bytes_per_cycle, latency=args.latency)
        net = explore.network(args.network, args.size)
    except (OSError, ValueError, TypeError, ImportError) as error:
        print(f"convhw explore: {error}", file=sys.stderr)
        return 2
    out = args.output or f"build/explore/{Path(args.network).stem}-{part}"
    try:
        report = explore.run(net, points, out, memory=memory, exact=not args.bounds_only,
                             synth=args.synth,
                             scheduler=args.scheduler, workers=args.workers)
    except ImportError as error:
        print(f"convhw explore: {error} (pip install 'convhw[explore]')", file=sys.stderr)
        return 2
    print(explore.markdown(report), end="")
    print(f"convhw explore: report in {out}/report.md, report.html, pareto.png")
    return 0



def _config(args, command: str, default: str | None = None):
    """The preset named by ``--preset`` (or ``default``) with the command line's overrides;
    None (after printing why) if they are invalid."""
    import dataclasses

    from .config import EngineConfig
    config = EngineConfig.preset(args.preset or default)
    changes = {name: getattr(args, name) for name in _OVERRIDES
               if getattr(args, name) is not None}
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as error:
        print(f"convhw {command}: {error}", file=sys.stderr)
        return None


def _generate(args) -> int:
    from .generate import generate
    config = _config(args, "generate")
    if config is None:
        return 2
    for path in generate(config, args.output, args.name, args.family):
        print(path)
    return 0


def _report(summary, directory) -> int:
    print(summary.markdown(), end="")
    print(f"\nwritten to {directory}")
    return 0 if summary.passed else 1


def _build(args) -> int:
    from pathlib import Path

    from .boards import board
    from .boards.flow import build_board
    target = board(args.board)
    config = _config(args, "build", target.preset)
    if config is None:
        return 2
    try:
        target.check_memory(args.memory)
    except ValueError as error:
        print(f"convhw build: {error}", file=sys.stderr)
        return 2
    summary = build_board(target, config, clock_hz=args.clock and args.clock * 1e6,
                          baudrate=args.baudrate, build_dir=args.build_dir, seed=args.seed,
                          memory=args.memory)
    return _report(summary, Path(args.build_dir) / target.name)


def _synth(args) -> int:
    from pathlib import Path

    from .boards.flow import PARTS, synthesize
    status = 0
    for part in args.part or list(PARTS):
        config = _config(args, "synth", PARTS[part].default_preset)
        if config is None:
            return 2
        summary = synthesize(part, config, clock_hz=args.clock and args.clock * 1e6,
                             build_dir=args.build_dir, seed=args.seed)
        status |= _report(summary, Path(args.build_dir) / part)
    return status


def _add_config_options(parser, default: str | None) -> None:
    from .config import PRESETS
    parser.add_argument("--preset", default=default, choices=list(PRESETS),
                        help="starting configuration (default: "
                             f"{default or 'the board or part preset'})")
    for name in _OVERRIDES:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            help=f"override the preset's {name}")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convhw", description="Systolic-array convolution engine: generate, prove, drive.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("convhw info", "convhw generate --preset small -o rtl/small",
                         "convhw demo", "convhw COMMAND --help"))
    parser.add_argument("--version", action="version", version=f"convhw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help, description, examples):
        return sub.add_parser(name, help=help, description=textwrap.fill(description, 79),
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=_examples(*examples))

    info = command("info", "print the installed toolchain",
                   "The versions of convhw, Amaranth, NumPy, the simulators (Verilator, Icarus), "
                   "cocotb, the YoWASP FPGA tools, amaranth-boards and torch in this "
                   "environment, with the path of each simulator.",
                   ["convhw info"])
    info.set_defaults(func=_info)
    gen = command("generate", "write the engine's Verilog and register map",
                  "Elaborates the engine of a preset (and overrides) and writes its Verilog "
                  "(host-fed and list engine), the register map and descriptor format as "
                  "Markdown, C header and JSON into a directory.",
                  ["convhw generate --preset default -o rtl/default",
                   "convhw generate --preset small --rows 8 -o build/small8",
                   "convhw generate --preset default --family ecp5 -o build/ecp5"])
    _add_config_options(gen, "default")
    gen.add_argument("-o", "--output", required=True, help="output directory")
    gen.add_argument("--name", default="convhw", help="module and file name (default: convhw)")
    from .generate import FAMILIES
    gen.add_argument("--family", choices=FAMILIES, default=None,
                     help="adapt the Verilog to this FPGA family (ecp5: the DSP blocks as "
                          "primitives with their own registers; ice40: fewer multipliers); "
                          "default: vendor-neutral Verilog")
    gen.set_defaults(func=_generate)
    from .boards import BOARDS
    from .boards.flow import PARTS
    build = command("build", "build a board's bitstream with the YoWASP toolchain",
                    "Yosys, nextpnr and the packer on the engine + UART bridge for a board; "
                    "writes the bitstream and summary.md/summary.json (resources, fmax); "
                    "exit status 1 if timing fails at the target clock.",
                    ["convhw build --board icebreaker",
                     "convhw build --board ulx3s --clock 40 --build-dir /tmp/ulx3s"])
    build.add_argument("--board", required=True, choices=list(BOARDS))
    _add_config_options(build, None)
    build.add_argument("--clock", type=float, help="engine clock in MHz (default: the board's)")
    build.add_argument("--baudrate", type=int, help="UART rate (default: the board's)")
    build.add_argument("--build-dir", default="build/boards",
                       help="output directory (default: build/boards)")
    build.add_argument("--seed", type=int, default=1, help="nextpnr seed (default: 1)")
    build.add_argument("--memory", choices=MEMORY_KINDS,
                       help="where the list engine's device memory is: block_ram, or sdram "
                            "(the ULX3S's, through LiteDRAM; its default)")
    build.set_defaults(func=_build)
    synth = command("synth", "area and timing of the engine alone on an FPGA part",
                    "Yosys and nextpnr on the engine without pins (ECP5: out of context; "
                    "iCE40: with its serial bridge, as nextpnr-ice40 has no out-of-context "
                    "mode); writes summary.md/summary.json per part.",
                    ["convhw synth --part ecp5-85f",
                     "convhw synth --part up5k --preset up5k"])
    synth.add_argument("--part", action="append", choices=list(PARTS),
                       help="part (repeatable; default: all)")
    _add_config_options(synth, None)
    synth.add_argument("--clock", type=float, help="target clock in MHz (default: the part's)")
    synth.add_argument("--build-dir", default="build/synth",
                       help="output directory (default: build/synth)")
    synth.add_argument("--seed", type=int, default=1, help="nextpnr seed (default: 1)")
    synth.set_defaults(func=_synth)
    demo = command("demo", "run a few layers of every op and check them",
                   "Runs one layer of each of the six ops (every padding mode, groups, "
                   "dilation, stride) on the golden model, then through convhw.nn on "
                   "Device('verilator'), and compares each with torch (or the golden model "
                   "without torch). Exit status 1 if any result differs.",
                   ["convhw demo", "convhw demo --golden-only --seed 3",
                    "convhw demo -o /tmp/demo"])
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--golden-only", action="store_true",
                      help="skip generating and simulating the engine")
    demo.add_argument("-o", "--output", default="build/demo",
                      help="where the generated Verilog goes (default: build/demo)")
    demo.set_defaults(func=_demo)
    prof = command("profile", "run a torch model on the engine, layer by layer",
                   "Loads a Python file that defines `model` (a torch.nn.Module, float or "
                   "quantised by torch.ao.quantization) and `inputs` (a tensor or a tuple of "
                   "them), or a function `build()` returning both, and optionally "
                   "`calibration` (a list of input tuples); quantises a float model with "
                   "torch's FX quantisation (convhw.quantize, calibrated on `calibration` or "
                   "`inputs`), offloads its convolutions to the device, runs it once and "
                   "prints per layer the wall time, the engine's cycles, efficiency and bytes, "
                   "and each layer's share; checks the outputs against the quantised torch "
                   "model's and writes the table (profile.md, profile.json) and a plot "
                   "(profile.png). Exit status 1 if an output element differs.",
                   ["convhw profile mymodel.py",
                    "convhw profile mymodel.py --device amaranth --reference qnnpack",
                    "convhw profile mymodel.py -o /tmp/profile"])
    prof.add_argument("file", help="a Python file defining model and inputs (or build())")
    prof.add_argument("--device", choices=("verilator", "amaranth", "golden"),
                      default="verilator", help="where the convolutions run (default: "
                                               "verilator)")
    prof.add_argument("--preset", default=None,
                      help="the engine's preset (default: quantized)")
    prof.add_argument("--reference", choices=("x86", "fbgemm", "qnnpack"), default="x86",
                      help="torch's quantised engine whose arithmetic a float model is "
                           "quantised for (default: x86)")
    prof.add_argument("-o", "--output", default=None,
                      help="where the table and plot go (default: build/profile/FILE_STEM)")
    prof.set_defaults(func=_profile)
    expl = command("explore", "which array for a network and a part (a sweep on Dask)",
                   "Runs the network's convolutions through the compiler's cycle model on "
                   "every configuration of the grid (rows x cols x buffer depths): a fast "
                   "lower bound everywhere, the exact model where it can change the Pareto "
                   "front of cycles against DSP blocks (--bounds-only: not at all); drops "
                   "the configurations whose estimated DSP blocks or block RAMs exceed the "
                   "part; with --synth synthesises and places the front (fmax, resources, "
                   "latency, GOPS). Every result is cached in "
                   "OUTPUT/results: an interrupted sweep resumes. Runs on a Dask LocalCluster "
                   "(one worker per core, --workers) or on an existing scheduler "
                   "(--scheduler). Writes report.md, report.json, report.html and pareto.png.",
                   ["convhw explore --network resnet18 --part ecp5-85f --rows 4:16:4 "
                    "--cols 4:16:4",
                    "convhw explore --network mymodel.py --synth -o /tmp/dse",
                    "convhw explore --network mobilenet_v2 --scheduler tcp://10.0.0.2:8786"])
    expl.add_argument("--network", required=True,
                      help="a benchmark network (resnet18, mobilenet_v2, dcgan_generator, "
                           "wav2vec2_encoder, r3d_block) or a Python file defining model and "
                           "inputs (or build())")
    expl.add_argument("--size", choices=("full", "small"), default="full",
                      help="a benchmark network's size (default: full)")
    expl.add_argument("--part", choices=("ecp5-85f", "up5k"), default="ecp5-85f",
                      help="the FPGA part (default: ecp5-85f)")
    expl.add_argument("--rows", help="N, LOW:HIGH or LOW:HIGH:STEP (default: 4:16:4 on the "
                                     "ecp5-85f, 1:2 on the up5k)")
    expl.add_argument("--cols", help="as --rows")
    expl.add_argument("--depths", action="append", metavar="INPUT,WEIGHT,ACC",
                      help="buffer depths in words (repeatable; default: the part's preset)")
    expl.add_argument("--bytes-per-cycle", type=int, default=8,
                      help="the memory model's bandwidth (default: 8)")
    expl.add_argument("--latency", type=int, default=20,
                      help="the memory model's latency in cycles (default: 20)")
    expl.add_argument("--bounds-only", action="store_true",
                      help="the cycle model's lower bounds only (fast; the exact model not "
                           "run on the front)")
    expl.add_argument("--synth", action="store_true",
                      help="synthesise and place the Pareto front (needs the fpga extra)")
    expl.add_argument("--scheduler", help="a Dask scheduler's address (default: a "
                                          "LocalCluster on this machine)")
    expl.add_argument("--workers", type=int, default=None,
                      help="the LocalCluster's workers (default: one per core)")
    expl.add_argument("-o", "--output", default=None,
                      help="output directory (default: build/explore/NETWORK-PART)")
    expl.set_defaults(func=_explore)
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

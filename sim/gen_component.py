"""Verilog tops for the cocotb benches, generated from the Amaranth components.

Usage::

    python sim/gen_component.py NAME OUTDIR [--config CONFIG]

writes ``OUTDIR/<top>.v`` for one bench: ``engine`` (the whole engine, exactly the text of
``convhw generate``, top ``convhw``), ``pe``, ``array``, ``streamer``, ``wishbone`` (the
Wishbone slave with the register file behind it, windows as ports), ``axi4_master`` or
``wishbone_master`` (the memory-port bus adapters), ``list_engine`` (the engine that runs
descriptor lists from memory; the bus family of its ports is the configuration's). The file is
only rewritten when its text changes, so that make and Verilator rebuild only when the design
does.

The configurations (:data:`CONFIGS`, engine configurations; :data:`BUS_WIDTHS`, the data width
of a bus adapter, ``w32`` ... ``w512``) are named here so that the Makefile, the benches and the
generated Verilog agree on them; a bench reads its configuration's name from the environment
variable ``BENCH_CONFIG`` (see :func:`bench_config`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from convhw.config import EngineConfig

__all__ = ["BENCHES", "BUS_WIDTHS", "CONFIGS", "bench_config", "bench_data_width", "top_name",
           "verilog_for"]

#: Engine configurations the benches are built for.
CONFIGS = {
    "small": EngineConfig.preset("small"),
    "default": EngineConfig.preset("default"),
    # Tiny buffers (as in tests/test_engine.py) so that layers tile, split their input channels
    # into runs and use two-segment windows.
    "tiny": EngineConfig(rows=4, cols=4, input_depth=64, weight_depth=144, acc_depth=16),
    # Non-power-of-two windows (INPUT 20 words in a span of 32): the bus slave must refuse the
    # unmapped tail of a window's span.
    "bus": EngineConfig(rows=3, cols=2, input_depth=20, weight_depth=16, acc_depth=16),
    # The list engine's (as in tests/test_gateware_list_engine.py): small buffers, so that a
    # layer takes several tiles, windows and weight loads; one per bus family of its ports.
    "list-axi4": EngineConfig(rows=4, cols=4, input_depth=256, weight_depth=256, acc_depth=64,
                              bus="axi4"),
    "list-wishbone": EngineConfig(rows=4, cols=4, input_depth=256, weight_depth=256,
                                  acc_depth=64, bus="wishbone"),
}

#: Data widths of the bus-adapter benches (their "configuration").
BUS_WIDTHS = {f"w{width}": width for width in (32, 64, 128, 256, 512)}

#: Benches and their Verilog top modules.
BENCHES = {"engine": "convhw", "pe": "pe", "array": "array", "streamer": "streamer",
           "wishbone": "wishbone", "axi4_master": "axi4_master",
           "wishbone_master": "wishbone_master", "list_engine": "list_engine",
           "sdram_initializer": "sdram_initializer", "litedram_master": "litedram_master",
           "list_engine_port": "list_engine"}

#: The SDRAM controllers of the boards (the SDRAM initialiser bench's "configuration").
SDRAM_CORES = ("ulx3s",)


def top_name(bench: str) -> str:
    """The Verilog top module of ``bench``."""
    return BENCHES[bench]


def bench_config(default: str = "small") -> tuple[str, EngineConfig]:
    """The configuration a running bench was built for: ``$BENCH_CONFIG`` (set by the
    Makefile), or ``default``."""
    name = os.environ.get("BENCH_CONFIG") or default
    if name not in CONFIGS:
        raise ValueError(f"BENCH_CONFIG must be one of {', '.join(CONFIGS)}, not {name!r}")
    return name, CONFIGS[name]


def bench_data_width(default: str = "w64") -> int:
    """The data width a running bus-adapter bench was built for: ``$BENCH_CONFIG`` (a key of
    :data:`BUS_WIDTHS`, set by the Makefile), or ``default``."""
    name = os.environ.get("BENCH_CONFIG") or default
    if name not in BUS_WIDTHS:
        raise ValueError(f"BENCH_CONFIG must be one of {', '.join(BUS_WIDTHS)}, not {name!r}")
    return BUS_WIDTHS[name]


def _bus_top(config: EngineConfig):
    """The Wishbone slave and the register file of ``config``'s register map, as one
    component: the bus, every window port and every register field are top-level ports."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from convhw.gateware.register_file import RegisterFile, fields_signature
    from convhw.gateware.wishbone import WindowSignature, WishboneSignature, WishboneSlave
    from convhw.registers import engine_register_map

    regmap = engine_register_map(config)

    class BusTop(wiring.Component):
        def __init__(self):
            windows = {w.name.lower(): Out(WindowSignature(w.offset_width))
                       for w in regmap.windows}
            super().__init__({
                "wb": In(WishboneSignature(regmap.bus_address_width)),
                "windows": Out(wiring.Signature(windows)),
                "regs": Out(fields_signature(regmap)),
            })

        def elaborate(self, platform):
            m = Module()
            m.submodules.slave = slave = WishboneSlave(regmap)
            m.submodules.regfile = regfile = RegisterFile(regmap)
            wiring.connect(m, slave.registers, regfile.bus)
            wiring.connect(m, wiring.flipped(self.wb), slave.wb)
            wiring.connect(m, wiring.flipped(self.windows), slave.windows)
            wiring.connect(m, wiring.flipped(self.regs), regfile.regs)
            return m

    return BusTop()


def verilog_for(bench: str, config: EngineConfig | int) -> str:
    """The Verilog text of ``bench``'s top for ``config`` (a data width for the bus
    adapters)."""
    if bench == "engine":
        from convhw.generate import verilog_text
        return verilog_text(config, top_name(bench))

    from amaranth.back import verilog

    if bench == "pe":
        from convhw.gateware.pe import ProcessingElement
        component = ProcessingElement(config)
    elif bench == "array":
        from convhw.gateware.systolic_array import SystolicArray
        component = SystolicArray(config)
    elif bench == "streamer":
        from convhw.gateware.streamer import Streamer
        component = Streamer(config)
    elif bench == "wishbone":
        component = _bus_top(config)
    elif bench == "axi4_master":
        from convhw.gateware.axi4 import Axi4Master
        component = Axi4Master(config)
    elif bench == "wishbone_master":
        from convhw.gateware.wishbone_master import WishboneMaster
        component = WishboneMaster(config)
    elif bench == "list_engine":
        from convhw.gateware.list_engine import ListEngine
        component = ListEngine(config)
    elif bench == "list_engine_port":
        # (the list engine with its memory port bare, for a master of the system's choosing)
        from convhw.gateware.list_engine import ListEngine
        component = ListEngine(config, memory_port=True)
    elif bench == "sdram_initializer":
        # (config: a board of SDRAM_CORES; the ULX3S's is the only one)
        from convhw.boards.litedram import init_writes, load
        from convhw.gateware.sdram_initializer import SdramInitializer
        component = SdramInitializer(init_writes(load()))
    elif bench == "litedram_master":
        from convhw.boards.litedram import load
        from convhw.gateware.litedram_master import LiteDramMaster
        core = load()
        component = LiteDramMaster(core["engine_port"]["data_width"], core["memory_bytes"])
    else:
        raise ValueError(f"bench must be one of {', '.join(BENCHES)}, not {bench!r}")
    text = verilog.convert(component, name=top_name(bench), emit_src=False)
    # Yosys's banner names its version and nothing else: drop it so the file is stable.
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith("/* Generated by"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=sorted(BENCHES))
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--config", default="small",
                        choices=sorted(CONFIGS) + sorted(BUS_WIDTHS) + list(SDRAM_CORES))
    args = parser.parse_args(argv)
    bus_adapter = args.bench in ("axi4_master", "wishbone_master")
    sdram = args.bench in ("sdram_initializer", "litedram_master")
    if bus_adapter != (args.config in BUS_WIDTHS) or sdram != (args.config in SDRAM_CORES):
        parser.error(f"--config {args.config} does not fit bench {args.bench}: the bus "
                     f"adapters take {', '.join(BUS_WIDTHS)}, the SDRAM initialiser "
                     f"{', '.join(SDRAM_CORES)}, the others an engine configuration")
    config = (BUS_WIDTHS[args.config] if bus_adapter else args.config if sdram
              else CONFIGS[args.config])
    text = verilog_for(args.bench, config)
    args.outdir.mkdir(parents=True, exist_ok=True)
    path = args.outdir / f"{top_name(args.bench)}.v"
    # Rewritten only on change: the .v's timestamp is what make and Verilator rebuild on.
    if path.exists() and path.read_text() == text:
        print(f"{path}: unchanged")
    else:
        path.write_text(text)
        print(f"{path}: written ({args.bench}, {args.config}: {config})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

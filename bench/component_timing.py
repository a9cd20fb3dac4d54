"""Each block of the list engine placed and routed alone on ECP5: where the clock is lost.

``convhw synth --part ecp5-85f`` places the whole list engine and takes an hour or more on two
cores; this places one component at a time (out of context, ports unregistered, the same Yosys
and nextpnr options) in minutes, so a timing fix can be checked on the block it touches. A
block's fmax is an upper bound on the engine's: paths that cross blocks (a stream's payload
from one block into another's decision) only show in the whole engine.

Per component: LUT4, flip-flops, DSP and block RAM after placement, fmax, and the critical
path's first and last cell. Run from the repository root::

    .venv/bin/python bench/component_timing.py                 # every component
    .venv/bin/python bench/component_timing.py controller checker   # some
    .venv/bin/python bench/component_timing.py --no-write ...  # leave bench/results/ alone

writes ``bench/results/ecp5-85f-components.{md,json}`` (rows of components not run this time
are kept from the previous file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import markdown, render

from convhw import progress
from convhw.boards.flow import (
    PARTS,
    SCRIPT_AFTER_SYNTH,
    SYNTH_OPTIONS,
    _read_report,
    critical_paths,
    tool_environment,
)
from convhw.config import EngineConfig

RESULTS = Path(__file__).parent / "results"
PART = PARTS["ecp5-85f"]


def _components(config: EngineConfig) -> dict:
    """name -> (what it is, a function building it)."""
    from convhw import timing
    from convhw.gateware.accumulator import Accumulator
    from convhw.gateware.axi4 import Axi4Master
    from convhw.gateware.compute_core import ComputeCore
    from convhw.gateware.descriptor_fetcher import DescriptorFetcher
    from convhw.gateware.float32_requantizer import Float32Requantizer
    from convhw.gateware.input_loader import BufferFormat, InputLoader
    from convhw.gateware.job_checker import JobChecker
    from convhw.gateware.list_controller import ListController
    from convhw.gateware.list_engine import ADDR_WIDTH
    from convhw.gateware.output_writer import OutputWriter
    from convhw.gateware.read_arbiter import ReadArbiter
    from convhw.gateware.wishbone_master import WishboneMaster
    return {
        "controller": ("ListController", lambda: ListController(config)),
        "checker": ("JobChecker", lambda: JobChecker(config)),
        "fetcher": ("DescriptorFetcher", lambda: DescriptorFetcher(config, ADDR_WIDTH)),
        "input_loader": ("InputLoader (input windows)", lambda: InputLoader(config, ADDR_WIDTH)),
        "weight_loader": ("InputLoader (weights)", lambda: InputLoader(
            config, ADDR_WIDTH, buffer=BufferFormat.for_weights(config))),
        "params_loader": ("InputLoader (column parameters)", lambda: InputLoader(
            config, ADDR_WIDTH, queue_depth=timing.PARAMS_QUEUE,
            buffer=BufferFormat.for_params(config, timing.LIST_SLOTS))),
        "arbiter": ("ReadArbiter (4 clients)", lambda: ReadArbiter(
            4, config.memory_width, ADDR_WIDTH, depth=timing.ARBITER_DEPTH)),
        "output_writer": ("OutputWriter", lambda: OutputWriter(
            config, ADDR_WIDTH, acc_read_latency=Accumulator.host_read_latency_for(config))),
        "axi4_master": ("Axi4Master", lambda: Axi4Master(config.memory_width, ADDR_WIDTH)),
        "wishbone_master": ("WishboneMaster", lambda: WishboneMaster(config.memory_width,
                                                                       ADDR_WIDTH)),
        "compute_core": ("ComputeCore (banked)", lambda: ComputeCore(config, banked=True)),
        # (not yet in the engine: torch's float32 output processing, one sum per cycle)
        "float32_requantizer": ("Float32Requantizer", Float32Requantizer),
    }


def run_one(name: str, build, directory: Path, seed: int) -> dict:
    from amaranth.back import verilog

    from convhw.generate import TargetFamily
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # With the ECP5's primitives, as `convhw synth` builds the whole engine.
    (directory / "top.v").write_text(verilog.convert(build(), name="top",
                                                     platform=TargetFamily("ecp5")))
    env = tool_environment()
    subprocess.run([env["YOSYS"], "-q", "-l", "yosys.log", "-p",
                    f"read_verilog top.v; synth_ecp5 -top top {SYNTH_OPTIONS['ecp5']}; "
                    f"{SCRIPT_AFTER_SYNTH['ecp5']}; write_json top.json"], cwd=directory,
                   env=env, check=True, capture_output=True)
    subprocess.run([env["NEXTPNR_ECP5"], *PART.nextpnr, "--json", "top.json", "--freq", "100",
                    "--report", "report.json", "--timing-allow-fail", "--seed", str(seed),
                    "--log", "nextpnr.log", "--quiet"], cwd=directory, env=env, check=True,
                   capture_output=True)
    resources, fmax = _read_report(directory / "report.json", "ecp5")
    path = next(iter(critical_paths(directory / "report.json").values()), None)
    return {
        "component": name,
        "LUT4": resources.get("LUT4", [0])[0],
        "FF": resources.get("FF", [0])[0],
        "DSP": resources.get("DSP (MULT18X18D)", [0])[0],
        "BRAM": resources.get("BRAM (DP16KD)", [0])[0],
        "fmax_mhz": round(fmax.get("clk", 0.0), 1),
        "path_from": path["from"] if path else "",
        "path_to": path["to"] if path else "",
        "logic_levels": path["logic_levels"] if path else 0,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="components (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", help="build directory to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    config = EngineConfig()
    components = _components(config)
    unknown = [n for n in args.names if n not in components]
    if unknown:
        parser.error(f"unknown component(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(components)}")
    names = args.names or list(components)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.keep or scratch)
        for name in progress.items(names, "bench/component_timing.py", unit="component"):
            what, build = components[name]
            row = run_one(name, build, base / name, args.seed)
            row["what"] = what
            rows.append(row)
            progress.echo(f"{name}: {row['fmax_mhz']} MHz, {row['LUT4']} LUT4, {row['FF']} FF "
                          f"({row['path_from']} -> {row['path_to']}), {row['seconds']} s",
                          flush=True)
    if args.no_write:
        return 0
    json_path = RESULTS / "ecp5-85f-components.json"
    previous = {}
    if json_path.exists():
        previous = {r["component"]: r for r in json.loads(json_path.read_text())["rows"]}
    merged = {**previous, **{r["component"]: r for r in rows}}
    ordered = [merged[n] for n in components if n in merged]
    load = os.getloadavg()[0]
    meta = {
        "command": "python bench/component_timing.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}",
        "configuration": config.describe(),
        "part": f"{PART.name}, nextpnr-ecp5 {' '.join(PART.nextpnr)}, seed {args.seed}",
    }
    json_path.write_text(json.dumps({"meta": meta, "rows": ordered}, indent=1) + "\n")
    columns = ["component", "what", "fmax_mhz", "LUT4", "FF", "DSP", "BRAM", "logic_levels",
               "path_from", "path_to", "seconds"]
    print(render(ordered, columns))
    lines = ["# List engine components, each placed alone on ECP5 (out of context)", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += ["", " ".join(__doc__.split("\n\n")[1].split()),
              "Rows of components not named in the command come from an earlier run of this "
              "script on the same machine.", "",
              markdown(ordered, columns), ""]
    (RESULTS / "ecp5-85f-components.md").write_text("\n".join(lines))
    print(f"written to {RESULTS / 'ecp5-85f-components.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

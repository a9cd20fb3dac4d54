"""Compute efficiency of the engine on the default 8x8 preset.

Efficiency = useful MACs / (rows x cols x cycles from START to DONE), summed over a layer's
jobs. Useful MACs exclude padding taps of zero-padded layers and a transposed layer's inserted
zeros (:meth:`convhw.spec.ConvSpec.useful_macs`).

Tables:

* **full-size layers on the RTL**: each layer runs on the generated Verilog compiled by Verilator
  (``Device("verilator")``'s driver and transport), results checked bit-exactly against the
  golden model; cycles are the engine's CYCLES register summed over the jobs, and must equal the
  compiler's exact cycle model (:func:`convhw.compiler.cycles.job_cycles`);
* **Amaranth check**: scaled-down layers of the same kinds on the Python description in the
  Amaranth simulator, the same checks.

Host-bus traffic per layer is the bytes the driver moves over the 32-bit bus: register writes,
input and weight buffer words, and result reads.

Run from the repository root: ``.venv/bin/python bench/efficiency.py`` (``--no-rtl`` skips the
simulation, ``--no-write`` leaves bench/results/ alone).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from report import markdown, render

from convhw import golden
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles, timing
from convhw.config import EngineConfig
from convhw.driver.program import register_writes
from convhw.registers import engine_register_map
from convhw.spec import ConvSpec

RESULTS = Path(__file__).resolve().parent / "results"

# (name, spec, input shape, conventional im2col ideal from the issue, target)
LAYERS = [
    ("ResNet-18 3x3 64->64 56x56 p1", ConvSpec(2, 64, 64, 3, padding=1, bias=False),
     (1, 64, 56, 56), 0.993, 0.95),
    ("3x3 s2 64->128 56x56 p1", ConvSpec(2, 64, 128, 3, stride=2, padding=1, bias=False),
     (1, 64, 56, 56), 0.973, 0.93),
    ("3x3 d2 64->64 56x56 p2", ConvSpec(2, 64, 64, 3, dilation=2, padding=2, bias=False),
     (1, 64, 56, 56), 0.358, 0.93),
    ("ConvT 4x4 s2 64->32 16->32", ConvSpec(2, 64, 32, 4, stride=2, padding=1, bias=False,
                                            transposed=True), (1, 64, 16, 16), 0.245, 0.85),
    ("Conv1d 32->64 k5 L1024 p2", ConvSpec(1, 32, 64, 5, padding=2, bias=False),
     (1, 32, 1024), 0.979, 0.90),
    ("Conv3d 16->32 k3 8x16x16 p1", ConvSpec(3, 16, 32, 3, padding=1, bias=False),
     (1, 16, 8, 16, 16), 0.989, 0.90),
    ("depthwise 3x3 64ch 56x56 p1", ConvSpec(2, 64, 64, 3, padding=1, groups=64, bias=False),
     (1, 64, 56, 56), 0.070, 0.30),
    ("pointwise 1x1 64->128 28x28", ConvSpec(2, 64, 128, 1, bias=False), (1, 64, 28, 28),
     0.973, 0.93),
]

# Scaled-down layers of the same kinds for the RTL check (each a few thousand cycles).
RTL_LAYERS = [
    ("3x3 16->8 10x10 p1", ConvSpec(2, 16, 8, 3, padding=1), (1, 16, 10, 10)),
    ("3x3 s2 8->16 12x12 p1", ConvSpec(2, 8, 16, 3, stride=2, padding=1), (1, 8, 12, 12)),
    ("3x3 d2 8->8 12x12 p2", ConvSpec(2, 8, 8, 3, dilation=2, padding=2), (1, 8, 12, 12)),
    ("ConvT 4x4 s2 16->8 6->12", ConvSpec(2, 16, 8, 4, stride=2, padding=1, transposed=True),
     (1, 16, 6, 6)),
    ("Conv1d 16->8 k5 L128 p2", ConvSpec(1, 16, 8, 5, padding=2), (1, 16, 128)),
    ("Conv3d 8->8 k3 4x6x6 p1", ConvSpec(3, 8, 8, 3, padding=1), (1, 8, 4, 6, 6)),
    ("depthwise 3x3 8ch 12x12 p1", ConvSpec(2, 8, 8, 3, padding=1, groups=8), (1, 8, 12, 12)),
    ("pointwise 1x1 16->8 10x10", ConvSpec(2, 16, 8, 1), (1, 16, 10, 10)),
]


def bus_bytes(steps, config) -> int:
    regmap = engine_register_map(config)
    total = 0
    for step in steps:
        job = step.job
        total += 4 * (len(register_writes(regmap, job, bias=None)) + 1)        # + START
        total += 4 * job.input_words * config.bus_words_per_input_word
        total += 4 * job.weight_words * config.bus_words_per_weight_word
        if step.read_out:
            total += 4 * job.acc_entries * step.oc_count
    return total


def model_table(config, rtl=True, seed=2):
    from convhw.driver.driver import Driver
    from convhw.driver.verilator_transport import VerilatorTransport
    constants = timing(config)
    rng = np.random.default_rng(seed)
    rows = []
    transport = VerilatorTransport(config) if rtl else None
    try:
        for name, spec, shape, ideal, target in LAYERS:
            steps = compile_layer(spec, shape, config)
            model = sum(job_cycles(step.job, constants) for step in steps)
            row = dict(layer=name, jobs=len(steps), model_cycles=model)
            cycles = model
            if rtl:
                x = rng.integers(-128, 128, shape)
                w = rng.integers(-128, 128, spec.weight_shape)
                start = time.perf_counter()
                result = Driver(transport, config).run(spec, x, w)
                row["rtl_seconds"] = round(time.perf_counter() - start, 1)
                row["bit_exact"] = bool(np.array_equal(result.output,
                                                       golden.convolution(spec, x, w)))
                cycles = row["rtl_cycles"] = result.cycles
            macs = spec.useful_macs(shape)
            efficiency = macs / (config.rows * config.cols * cycles)
            row.update(useful_macs=macs, efficiency=round(efficiency, 4), conventional=ideal,
                       target=target, met=efficiency >= target,
                       bus_bytes=bus_bytes(steps, config))
            rows.append(row)
    finally:
        if transport is not None:
            transport.close()
    return rows


def rtl_table(config, seed=1):
    from convhw.driver.amaranth_sim import run_layer
    rng = np.random.default_rng(seed)
    constants = timing(config)
    rows = []
    for name, spec, shape in RTL_LAYERS:
        x = rng.integers(-128, 128, shape)
        w = rng.integers(-128, 128, spec.weight_shape)
        b = rng.integers(-1000, 1000, spec.out_channels)
        start = time.perf_counter()
        y, steps, records = run_layer(spec, x, w, b, config)
        seconds = time.perf_counter() - start
        exact = bool(np.array_equal(y, golden.convolution(spec, x, w, b)))
        rtl = sum(r.cycles for r in records)
        model = sum(job_cycles(step.job, constants) for step in steps)
        macs = spec.useful_macs(shape)
        rows.append(dict(layer=name, rtl_cycles=rtl, model_cycles=model, equal=rtl == model,
                         bit_exact=exact,
                         efficiency=round(macs / (config.rows * config.cols * rtl), 4),
                         sim_seconds=round(seconds, 1)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-rtl", action="store_true",
                        help="cycle model only: no Verilator or Amaranth runs")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    config = EngineConfig.preset("default")
    model = model_table(config, rtl=not args.no_rtl)
    model_cols = ["layer", "jobs", "rtl_cycles", "model_cycles", "bit_exact", "useful_macs",
                  "efficiency", "conventional", "target", "met", "bus_bytes", "rtl_seconds"]
    if args.no_rtl:
        model_cols = [c for c in model_cols if c not in ("rtl_cycles", "bit_exact",
                                                         "rtl_seconds")]
    print(render(model, model_cols, f"Full-size layers, {config.describe()}"
                 + (", cycle model only" if args.no_rtl else ", on the RTL (Verilator)")))
    if not args.no_rtl and not all(r["bit_exact"] and r["rtl_cycles"] == r["model_cycles"]
                                   for r in model):
        print("RTL RUN FAILED", file=sys.stderr)
        return 2
    rtl, rtl_cols = [], ["layer", "rtl_cycles", "model_cycles", "equal", "bit_exact",
                         "efficiency", "sim_seconds"]
    if not args.no_rtl:
        rtl = rtl_table(config)
        print()
        print(render(rtl, rtl_cols, "Amaranth check: scaled layers on the default preset"))
        if not all(r["equal"] and r["bit_exact"] for r in rtl):
            print("RTL CHECK FAILED", file=sys.stderr)
            return 2
    if args.no_write:
        return 0
    RESULTS.mkdir(exist_ok=True)
    command = "python bench/efficiency.py" + (" " + shlex.join(argv or sys.argv[1:])).rstrip()
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}, {platform.platform()}")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = ["# Engine efficiency, default preset\n",
            f"- command: `{command}`", f"- date: {date}", f"- machine: {machine}",
            f"- configuration: {config.describe()}", "",
            "Efficiency = useful MACs / (rows x cols x cycles), START to DONE over all jobs, "
            "cycles read from the engine's CYCLES register on the generated Verilog compiled "
            "by Verilator (`rtl_cycles`; equal to the compiler's cycle model, `model_cycles`), "
            "outputs bit-exact against the golden model. `conventional` is the issue's figure "
            "for an im2col-style weight-stationary 8x8 array at its stall-free ideal. "
            "`bus_bytes`: host-bus traffic of the layer.", "", markdown(model, model_cols)]
    if rtl:
        text += ["", "## Amaranth simulator check (scaled layers)", "",
                 markdown(rtl, rtl_cols)]
    (RESULTS / "efficiency.md").write_text("\n".join(text) + "\n")
    (RESULTS / "efficiency.json").write_text(json.dumps(
        dict(command=command, date=date, machine=machine, config=repr(config), layers=model,
             rtl_check=rtl), indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'efficiency.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

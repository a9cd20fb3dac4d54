"""Simulation speed of the Verilator transport, beside the Amaranth simulator's.

Measured on the default 8x8 preset:

* **compute rate**: engine cycles per second of wall time while the engine computes, i.e. the
  cycles :meth:`VerilatorTransport.wait_idle` clocked divided by its wall time, summed over the
  48 jobs of the ResNet-18 3x3 64->64 56x56 pad-1 layer (target: >= 1,000,000 cycles/s);
* **ResNet layer end to end**: that layer from tensors to checked output (compile, pack, load
  the buffers, compute, read back) with its phases timed separately, one transfer per call
  (scattered register writes, buffer bursts, one gathered read of the results) (target: <= 30
  s); and the same layer through :class:`convhw.driver.driver.Driver`, the host flow of
  ``Device("verilator")``;
* **Amaranth simulator**, beside it: :func:`convhw.driver.amaranth_sim.run_layer` on a small
  layer (engine cycles / wall time), the same layer on Verilator through the driver, and the
  Amaranth compute rate (one job through :class:`~convhw.driver.transport.AmaranthTransport`,
  CYCLES / wall time of its ``wait_idle``).

Every result is checked bit-exact against the golden model and every job's CYCLES against the
cycle model. The machine's load average is recorded: the rates are those of one core.

Run from the repository root: ``.venv/bin/python bench/sim_speed.py`` (``--no-amaranth`` skips
the Amaranth measurements, ``--no-write`` leaves bench/results/ alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from report import markdown, provenance, render

from convhw import golden, progress
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles
from convhw.config import EngineConfig
from convhw.driver import verilator_build
from convhw.driver.driver import Driver
from convhw.driver.program import JobProgram
from convhw.driver.verilator_transport import VerilatorTransport
from convhw.registers import engine_register_map
from convhw.spec import ConvSpec

RESULTS = Path(__file__).resolve().parent / "results"

RESNET = ("ResNet-18 3x3 64->64 56x56 p1", ConvSpec(2, 64, 64, 3, padding=1, bias=False),
          (1, 64, 56, 56))
SMALL_LAYER = ("3x3 16->8 10x10 p1", ConvSpec(2, 16, 8, 3, padding=1), (1, 16, 10, 10))
RATE_TARGET = 1_000_000
RESNET_TARGET = 30.0
#: The measurements in order, for the progress bar.
STAGES = ("Verilator library", "ResNet layer, phased", "ResNet layer, Driver.run",
          "small layer, Driver.run", "Amaranth run_layer", "Amaranth compute rate")


def _stage(bar, name):
    if bar is not None:
        bar.stage(name)


def operands(spec, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None
    return x, w, b


def check(name, output, expected, cycles, steps):
    if not np.array_equal(output, expected):
        raise SystemExit(f"{name}: result differs from the golden model")
    model = [job_cycles(step.job) for step in steps]
    if list(cycles) != model:
        raise SystemExit(f"{name}: CYCLES {list(cycles)} differ from the cycle model {model}")


def phased_layer(transport, spec, x, w, b):
    """One layer, its phases timed: host preparation (compile, pack), load (registers and
    buffers), compute (START and wait_idle), read back (CYCLES, ERROR, results)."""
    config, regmap = transport.config, transport.register_map
    seconds = dict(prepare=0.0, load=0.0, compute=0.0, read=0.0)
    cycles = dict(load=0, compute=0, read=0)
    clock = time.perf_counter
    total = clock()
    start = clock()
    steps = compile_layer(spec, x.shape, config)
    seconds["prepare"] += clock() - start
    out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
    out3 = out.reshape(out.shape[0], out.shape[1], *(1,) * (5 - out.ndim), *out.shape[2:])
    job_counts = []
    for step in steps:
        start = clock()
        program = JobProgram.build(regmap, config, step, spec, x, w, b)
        addresses, values = zip(*program.registers)
        seconds["prepare"] += clock() - start

        start, begin = clock(), transport.cycles
        transport.write_many(addresses, values)
        transport.write_burst(program.input_base, program.input_words)
        transport.write_burst(program.weight_base, program.weight_words)
        seconds["load"] += clock() - start
        cycles["load"] += transport.cycles - begin

        start, begin = clock(), transport.cycles
        transport.write(program.start_address, 1)
        transport.wait_idle(4 * job_cycles(step.job) + 10_000)
        seconds["compute"] += clock() - start
        cycles["compute"] += transport.cycles - begin

        start, begin = clock(), transport.cycles
        if transport.read(regmap["ERROR"].address):
            raise SystemExit("engine error")
        job_counts.append(transport.read(regmap["CYCLES"].address))
        if program.output_addresses is not None:
            job = step.job
            values = transport.read_many(program.output_addresses).view(np.int32)
            block = values.astype(np.int64).reshape(*(a.out_len for a in job.axes),
                                                    step.oc_count)
            region = tuple(slice(a.out_start, a.out_start + a.out_len) for a in job.axes)
            out3[(step.batch, slice(step.oc_start, step.oc_start + step.oc_count),
                  *region)] = np.moveaxis(block, -1, 0)
        seconds["read"] += clock() - start
        cycles["read"] += transport.cycles - begin
    seconds["total"] = clock() - total
    return out, steps, job_counts, seconds, cycles


def verilator_rows(config, bar=None):
    rows, notes = [], {}
    _stage(bar, STAGES[0])
    start = time.perf_counter()
    library = verilator_build.build(config)
    notes["library"] = str(library)
    notes["build_seconds"] = verilator_build.build_info(library)["seconds"]
    notes["build_or_cache_seconds_this_run"] = round(time.perf_counter() - start, 2)
    with VerilatorTransport(config) as transport:
        _stage(bar, STAGES[1])
        name, spec, shape = RESNET
        x, w, b = operands(spec, shape, seed=0)
        expected = golden.convolution(spec, x, w, b)
        out, steps, counts, seconds, cycles = phased_layer(transport, spec, x, w, b)
        check(name, out, expected, counts, steps)
        rate = cycles["compute"] / seconds["compute"]
        rows.append(dict(simulator="verilator", measurement="compute rate (cycles/s)",
                         layer=name, value=round(rate), cycles=cycles["compute"],
                         seconds=round(seconds["compute"], 3), target=f">= {RATE_TARGET:,}",
                         met=rate >= RATE_TARGET))
        bus_cycles = cycles["load"] + cycles["read"]
        bus_seconds = seconds["load"] + seconds["read"]
        rows.append(dict(simulator="verilator", measurement="bus traffic rate (cycles/s)",
                         layer=name, value=round(bus_cycles / bus_seconds), cycles=bus_cycles,
                         seconds=round(bus_seconds, 3), target="", met=""))
        rows.append(dict(simulator="verilator", measurement="end to end, one call per transfer "
                         "(s)", layer=name, value=round(seconds["total"], 2),
                         cycles=sum(cycles.values()), seconds=round(seconds["total"], 2),
                         target=f"<= {RESNET_TARGET:g} s",
                         met=seconds["total"] <= RESNET_TARGET))
        notes["resnet_phases_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        notes["resnet_phases_cycles"] = cycles
        notes["resnet_jobs"] = len(steps)

        _stage(bar, STAGES[2])
        start, begin = time.perf_counter(), transport.cycles
        result = Driver(transport, config).run(spec, x, w, b)
        elapsed = time.perf_counter() - start
        check(name, result.output, expected, result.job_cycles, steps)
        rows.append(dict(simulator="verilator", measurement="end to end, Driver.run (s)",
                         layer=name, value=round(elapsed, 2), cycles=transport.cycles - begin,
                         seconds=round(elapsed, 2), target=f"<= {RESNET_TARGET:g} s",
                         met=elapsed <= RESNET_TARGET))

        _stage(bar, STAGES[3])
        name, spec, shape = SMALL_LAYER
        x, w, b = operands(spec, shape, seed=1)
        start = time.perf_counter()
        result = Driver(transport, config).run(spec, x, w, b)
        elapsed = time.perf_counter() - start
        steps = compile_layer(spec, shape, config)
        check(name, result.output, golden.convolution(spec, x, w, b), result.job_cycles, steps)
        rows.append(dict(simulator="verilator", measurement="small layer, Driver.run "
                         "(engine cycles/s)", layer=name,
                         value=round(result.cycles / elapsed), cycles=result.cycles,
                         seconds=round(elapsed, 3), target="", met=""))
    return rows, notes


def amaranth_rows(config, bar=None):
    from convhw.driver.amaranth_sim import run_layer
    from convhw.driver.transport import AmaranthTransport
    rows = []
    _stage(bar, STAGES[4])
    name, spec, shape = SMALL_LAYER
    x, w, b = operands(spec, shape, seed=1)
    start = time.perf_counter()
    out, steps, records = run_layer(spec, x, w, b, config)
    elapsed = time.perf_counter() - start
    check(name, out, golden.convolution(spec, x, w, b), [r.cycles for r in records], steps)
    engine_cycles = sum(r.cycles for r in records)
    rows.append(dict(simulator="amaranth", measurement="small layer, run_layer "
                     "(engine cycles/s)", layer=name, value=round(engine_cycles / elapsed),
                     cycles=engine_cycles, seconds=round(elapsed, 2), target="", met=""))

    # The compute rate the same way as Verilator's: one job started over the bus, the wall
    # time of wait_idle against the job's CYCLES.
    _stage(bar, STAGES[5])
    step = steps[0]
    transport = AmaranthTransport(config)
    try:
        regmap = engine_register_map(config)
        program = JobProgram.build(regmap, config, step, spec, x, w, b)
        for address, value in program.registers:
            transport.write(address, value)
        transport.write_burst(program.input_base, program.input_words)
        transport.write_burst(program.weight_base, program.weight_words)
        transport.write(program.start_address, 1)
        start = time.perf_counter()
        transport.wait_idle(regmap["STATUS"].address, 4 * job_cycles(step.job) + 1000)
        elapsed = time.perf_counter() - start
        cycles = transport.read(regmap["CYCLES"].address)
    finally:
        transport.close()
    rows.append(dict(simulator="amaranth", measurement="compute rate (cycles/s)",
                     layer=f"{name}, job 0", value=round(cycles / elapsed), cycles=cycles,
                     seconds=round(elapsed, 2), target="", met=""))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-amaranth", action="store_true",
                        help="skip the Amaranth simulator measurements")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    config = EngineConfig.preset("default")
    load_before = os.getloadavg()
    # Redrawn when a measurement starts only: no thread of ours wakes while one is timed.
    with progress.stages("bench/sim_speed.py", STAGES[:4] if args.no_amaranth else STAGES,
                         tick=None) as bar:
        rows, notes = verilator_rows(config, bar)
        if not args.no_amaranth:
            rows += amaranth_rows(config, bar)
    notes["load_average_before"] = [round(v, 2) for v in load_before]
    notes["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    columns = ["simulator", "measurement", "layer", "value", "cycles", "seconds", "target",
               "met"]
    print(f"Simulation speed, {config.describe()}")
    print(render(rows, columns))
    phases = notes["resnet_phases_seconds"]
    phase_cycles = notes["resnet_phases_cycles"]
    breakdown = (f"ResNet layer phases (one call per transfer): prepare (compile, pack) "
                 f"{phases['prepare']} s; load {phases['load']} s / {phase_cycles['load']} "
                 f"cycles; compute {phases['compute']} s / {phase_cycles['compute']} cycles; "
                 f"read back {phases['read']} s / {phase_cycles['read']} cycles; total "
                 f"{phases['total']} s")
    print(breakdown)
    print(f"library: {notes['library']} (built in {notes['build_seconds']} s; this run spent "
          f"{notes['build_or_cache_seconds_this_run']} s building or finding it); load average "
          f"{notes['load_average_before']} -> {notes['load_average_after']}")
    if args.no_write:
        return 0
    RESULTS.mkdir(exist_ok=True)
    command, machine, date = provenance("sim_speed.py", argv)
    text = ["# Simulation speed, default preset\n",
            f"- command: `{command}`", f"- date: {date}", f"- machine: {machine}",
            f"- configuration: {config.describe()}",
            f"- Verilator: {verilator_build.verilator_version()}",
            f"- load average (1, 5, 15 min) before / after: {notes['load_average_before']} / "
            f"{notes['load_average_after']}", "",
            "Compute rate: engine cycles clocked by `wait_idle` (in C++, STATUS polled over the "
            "bus) per second of its wall time. End to end: tensors to checked output, library "
            "already built. Engine cycles/s of a small layer: the CYCLES of its jobs per second "
            "of the whole run (bus traffic and Python included).", "",
            markdown(rows, columns), "", breakdown + ".", "",
            f"Library: built in {notes['build_seconds']} s (once per configuration and "
            f"design; Verilog generation not included); this run spent "
            f"{notes['build_or_cache_seconds_this_run']} s building or finding it."]
    (RESULTS / "sim_speed.md").write_text("\n".join(text) + "\n")
    (RESULTS / "sim_speed.json").write_text(json.dumps(
        dict(command=command, date=date, machine=machine, config=repr(config),
             verilator=verilator_build.verilator_version(), rows=rows, notes=notes),
        indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'sim_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The engine that feeds itself, end to end: the reference layers as descriptor lists on the list
engine's generated Verilog (Verilator), its master port served by the harness's memory model.

Per layer and memory (:class:`convhw.MemoryModel`: bytes per cycle, latency):

* ``cycles``: the CYCLES register, START to DONE of the layer's whole list (every descriptor,
  parameter, input, weight and output byte moved included); ``model_cycles`` the list cycle
  model's figure (:func:`convhw.compiler.cycles.list_cycles`);
* ``efficiency`` = useful MACs / (rows x cols x cycles); ``compute_only`` the same with the
  BUSY_CYCLES register (``busy_cycles``: the cycles in which the compute core was busy, from
  the same run; the model's figure must match it), what the datapath alone achieves;
* ``bytes``: what the engine moved on its master port (the harness's counters), ``minimum``
  each tensor once (input, weights, parameters, output), and their ratio;
* ``seconds``: wall time of the whole run on ``Device("verilator")``'s flow: tensors written
  into device memory, the list run, results read and checked against the golden model; the
  median of :data:`REPEATS` runs (a shared machine's runs of the same work differ by 10 % and
  more; all of them are in the JSON).

Outputs are int8, requantised (a network's layers chain that way); the ResNet layer also runs
with raw int32 results. Run from the repository root: ``.venv/bin/python bench/memory.py``
(``--no-write`` leaves bench/results/ alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from layers import LAYERS
from report import markdown, provenance, render

from convhw import golden, progress
from convhw.compiler.cycles import list_cycles
from convhw.compiler.image import Layer
from convhw.config import EngineConfig
from convhw.memory_model import MemoryModel

RESULTS = Path(__file__).resolve().parent / "results"
#: Runs of each layer; ``seconds`` is their median (cycles and bytes are the same every run).
REPEATS = 3

FAST = MemoryModel(bytes_per_cycle=8, latency=20)       # a DDR controller on a 64-bit bus
SDRAM = MemoryModel(bytes_per_cycle=2, latency=20)      # a 16-bit SDRAM
RESNET, DILATED, DEPTHWISE = LAYERS[0][0], LAYERS[2][0], LAYERS[6][0]
#: name -> (conventional ideal, the datapath's target)
REFERENCE = {name: (conventional, target) for name, _, _, conventional, target in LAYERS}


def cases():
    """(layer name, spec, input shape, memory, int8 results, target efficiency or None)."""
    for name, spec, shape, _, _ in LAYERS:
        yield name, spec, shape, FAST, True, None if name == DEPTHWISE else 0.95
    yield RESNET, LAYERS[0][1], LAYERS[0][2], FAST, False, None
    for name, spec, shape, _, _ in LAYERS:
        if name in (RESNET, DILATED):
            yield name, spec, shape, SDRAM, True, 0.90


def layer_operands(spec, shape, int8, rng):
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    bias = rng.integers(-2000, 2000, spec.out_channels)
    requantize = None
    if int8:
        # Scale each channel's sums (a few thousand for these layers) into int8.
        requantize = (rng.integers(1 << 14, 1 << 15, spec.out_channels),
                      np.full(spec.out_channels, 22))
    return x, Layer(spec, w, bias, requantize)


def run(config, seed=3):
    from convhw.driver.list_driver import ListDriver
    from convhw.driver.verilator_list import ListVerilatorTransport
    rng = np.random.default_rng(seed)
    rows, transports = [], {}
    try:
        for name, spec, shape, memory, int8, target in progress.items(
                list(cases()), "bench/memory.py", unit="layer"):
            if memory not in transports:
                transports[memory] = ListVerilatorTransport(config, memory=memory)
            transport = transports[memory]
            driver = ListDriver(transport, config, memory)
            x, layer = layer_operands(spec, shape, int8, rng)
            times, runs = [], []
            for _ in range(REPEATS):
                read0, written0 = transport.bytes_read, transport.bytes_written
                start = time.perf_counter()
                result = driver.run_layers(x, [layer])
                want = golden.convolution(spec, x, layer.weight, layer.bias)
                if int8:
                    multipliers, shifts = (np.asarray(v).reshape(-1, *(1,) * spec.dims)
                                           for v in layer.requantize)
                    want = golden.requantize(want, multipliers, shifts)
                exact = bool(np.array_equal(result.outputs[0], want))
                times.append(time.perf_counter() - start)
                moved = (transport.bytes_read - read0) + (transport.bytes_written - written0)
                runs.append((exact, result.cycles, result.busy_cycles, moved))
            # Every run the same work: exact, with the same cycles and traffic.
            exact = all(run[0] for run in runs) and len(set(runs)) == 1
            seconds = float(np.median(times))
            record = result.plan.records[0]
            minimum = record.minimum_bytes
            macs = spec.useful_macs(shape)
            efficiency = macs / (config.rows * config.cols * result.cycles)
            compute_only = macs / (config.rows * config.cols * result.busy_cycles)
            model = list_cycles(result.plan, config, memory)
            row = dict(layer=name, memory=f"{memory.bytes_per_cycle} B/c, lat {memory.latency}",
                       output="int8" if int8 else "int32", jobs=result.jobs,
                       cycles=result.cycles, model_cycles=model.cycles,
                       busy_cycles=result.busy_cycles, model_busy=model.busy_cycles,
                       bit_exact=exact, useful_macs=macs, efficiency=round(efficiency, 4),
                       compute_only=round(compute_only, 4),
                       compute_target=REFERENCE[name][1],
                       compute_met=compute_only >= REFERENCE[name][1],
                       conventional=REFERENCE[name][0], bytes=moved, minimum=minimum,
                       traffic=round(moved / minimum, 3), seconds=round(seconds, 2),
                       seconds_all=[round(t, 2) for t in times])
            if target is not None:
                row["target"] = target
                row["met"] = efficiency >= target
            elif name == DEPTHWISE:
                row["target"] = f">= {0.95 * compute_only:.4f} (0.95 x compute only)"
                row["met"] = efficiency >= 0.95 * compute_only
            rows.append(row)
            progress.echo(render([row], list(row)), flush=True)
    finally:
        for transport in transports.values():
            transport.close()
    return rows


COLUMNS = ["layer", "memory", "output", "jobs", "cycles", "model_cycles", "busy_cycles",
           "model_busy", "bit_exact", "useful_macs", "efficiency", "target", "met",
           "compute_only", "compute_target", "compute_met", "conventional", "bytes", "minimum",
           "traffic", "seconds"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    config = EngineConfig.preset("default")
    rows = run(config)
    print()
    print(render(rows, COLUMNS, f"List engine end to end, {config.describe()}"))
    if not all(row["bit_exact"] for row in rows):
        print("RESULTS NOT BIT-EXACT", file=sys.stderr)
        return 2
    if not all((row["cycles"], row["busy_cycles"]) == (row["model_cycles"], row["model_busy"])
               for row in rows):
        print("THE CYCLE MODEL DIFFERS FROM THE RTL", file=sys.stderr)
        return 2
    if args.no_write:
        return 0
    command, machine, date = provenance("memory.py", argv,
                                        load_note=" (other processes slow `seconds`)")
    text = ["# The list engine end to end, default preset\n",
            f"- command: `{command}`", f"- date: {date}", f"- machine: {machine}",
            f"- configuration: {config.describe()}, memory port {config.memory_width} b "
            f"{config.bus}",
            "",
            "Each layer runs as one descriptor list on the list engine's generated Verilog "
            "(Verilator), its AXI4 master served by the harness's memory model "
            "(`convhw.MemoryModel`: bytes per cycle shared by reads and writes, latency). "
            "`cycles`: the CYCLES register, START to DONE of the whole list. `efficiency` = "
            "useful MACs / (rows x cols x cycles). `busy_cycles`: the BUSY_CYCLES register, the "
            "cycles in which the compute core was busy; `compute_only` = useful MACs / (rows x "
            "cols x busy_cycles), the datapath's own efficiency, against its target "
            "(`compute_target`) and `conventional`, an im2col-style weight-stationary 8x8 "
            "array at its stall-free ideal. `model_cycles`, `model_busy`: the cycle model "
            "(`convhw.compiler.cycles.list_cycles`). `bytes`: what the engine moved "
            "(harness counters); `minimum`: each tensor once. `seconds`: tensors written, "
            f"list run, results read and checked; the median of {REPEATS} runs (each run's "
            "figure in the JSON).",
            "", markdown(rows, COLUMNS), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.md").write_text("\n".join(text))
    (RESULTS / "memory.json").write_text(json.dumps(dict(command=command, date=date,
                                                         machine=machine, rows=rows),
                                                    indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

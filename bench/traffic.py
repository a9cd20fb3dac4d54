"""Memory traffic of the reference layers run as descriptor lists.

Each layer is lowered to one descriptor list (:class:`convhw.compiler.lower.ListBuilder`) and
run by the engine's executable specification (:func:`convhw.compiler.list_model.run_list`) on a
memory image; the result is checked bit-exactly against the golden model, and the bytes the
list moved (descriptors, column parameters, input windows, weights, results) are counted by the
memory model, not predicted (they must also equal the compiler's prediction). ``minimum`` moves
each tensor once (input, weights and output elements, no padding); ``ratio`` = moved / minimum.

Raw results are 32-bit ``acc + bias``; ``int8`` results are requantised (what a quantised
network chains into its next layer). ``weight_depth 8192`` is the default engine with a weight
buffer that holds these layers' weights (the lowering keeps them resident across tiles).

This counts bytes, not cycles: the gateware memory system and its exact cycle model are the next
step (docs/memory.md).

Run from the repository root: ``.venv/bin/python bench/traffic.py`` (``--no-write`` leaves
bench/results/ alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from layers import LAYERS
from report import markdown, render

from convhw import progress
from convhw.compiler.image import Layer, build, reference
from convhw.compiler.list_model import run_list
from convhw.config import EngineConfig

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["layer", "results", "engine", "jobs", "order", "descriptor", "params", "input",
           "weight", "output", "moved", "minimum", "ratio", "bit_exact", "model_seconds"]


def measure(name, spec, shape, config, engine, requantize, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                  rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None,
                  (rng.integers(1, 1 << 15, spec.out_channels),
                   rng.integers(14, 22, spec.out_channels)) if requantize else None)
    image = build(config, x, [layer], memory_size=1 << 24)
    start = time.perf_counter()
    result = run_list(image.memory, image.list_address, config)
    seconds = time.perf_counter() - start
    record = image.records[0]
    (expected,) = reference(x, [layer])
    moved = result.traffic
    if moved != record.traffic:
        raise AssertionError(f"{name}: the memory moved {moved}, the compiler predicted "
                             f"{record.traffic}")
    return dict(layer=name, results="int8" if requantize else "int32", engine=engine,
                jobs=result.jobs, order=record.order, descriptor=moved.descriptor,
                params=moved.params, input=moved.input, weight=moved.weight,
                output=moved.output, moved=moved.total, minimum=record.minimum_bytes,
                ratio=round(moved.total / record.minimum_bytes, 3),
                bit_exact=bool(result.ok and np.array_equal(image.output(), expected)),
                model_seconds=round(seconds, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    default = EngineConfig.preset("default")
    engines = [("default", default),
               ("weight_depth 8192", dataclasses.replace(default, weight_depth=8192))]
    cases = [(name, spec, shape, config, engine, requantize)
             for name, spec, shape, *_ in LAYERS for engine, config in engines
             for requantize in (False, True)]
    rows = [measure(*case) for case in progress.items(cases, "bench/traffic.py", unit="list")]
    print(render(rows, COLUMNS, "Memory traffic of one descriptor list per layer (bytes)"))
    if not all(r["bit_exact"] for r in rows):
        print("A LIST RUN WAS NOT BIT-EXACT", file=sys.stderr)
        return 2
    if args.no_write:
        return 0
    command = "python bench/traffic.py" + (" " + shlex.join(argv or sys.argv[1:])).rstrip()
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}, {platform.platform()}")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    doc = __doc__.split("\n\nRun from")[0].split("\n", 2)[2]
    text = ["# Memory traffic of descriptor lists\n", f"- command: `{command}`",
            f"- date: {date}", f"- machine: {machine}",
            *(f"- engine `{n}`: {c.describe()}" for n, c in engines), "", doc, "",
            markdown(rows, COLUMNS)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "traffic.md").write_text("\n".join(text) + "\n")
    (RESULTS / "traffic.json").write_text(json.dumps(
        dict(command=command, date=date, machine=machine,
             engines={n: repr(c) for n, c in engines}, layers=rows), indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'traffic.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

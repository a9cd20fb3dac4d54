"""Benchmark the NumPy golden model against PyTorch's CPU convolution.

Times one call of :func:`convhw.golden.convolution` and one of the matching
``torch.nn.functional`` call on two layers, after checking that both give the same result:

* ``resnet18-3x3``: ``Conv2d(64, 64, 3, padding=1)`` (no bias, as in ResNet-18) on a
  ``1x64x56x56`` input;
* ``deconv-4s2``: ``ConvTranspose2d(64, 32, 4, stride=2, padding=1)`` (with bias) on a
  ``1x64x16x16`` input, giving ``1x32x32x32``.

Each layer runs in two modes:

* ``float64``: random normal float64 operands, golden against torch in float64; the outputs
  must agree to ``rtol = atol = 1e-9`` (they differ only in summation order);
* ``int-exact``: integers drawn from the int8 range ``[-128, 127]``, handed to the golden model
  as ``numpy.int8`` arrays (it returns exact ``int64``), and to torch as float64 tensors of the
  same values, because torch has no integer convolution. Every sum is far below ``2**53``, so
  torch's float64 result is exact too and the two outputs must be identical.

The table goes to stdout and, unless ``--no-write``, to ``bench/results/golden.md`` and
``bench/results/golden.json``, overwritten on every run.

Notes
-----
Why: the golden model checks every result of the hardware and of the front end, so its speed
bounds how much a test sweep can cover. It should stay within a small factor of an optimised
library: at most 3x torch in float64 and 5x in exact-integer mode, comparing the medians. Torch
is the yardstick here, not the reference, but correctness comes first: a mismatch aborts the run
with exit status 2 before any result is written. A missed timing target is reported in the
``pass`` column and does not change the exit status.

How: ``torch.set_num_threads`` is set to the number of cores this process may run on; NumPy's
BLAS keeps its default thread count, which is reported. Inputs are made once, with a fixed seed,
and converted to tensors outside the timed region, so each side is timed on its own native
operands; the golden timing includes its argument validation, which is part of every call. Each
side is timed in its own block, never interleaved: the idle threads of one library's pool keep
spinning for a while and slow the other down. A block starts with a short pause, so that the
previous block's pool falls idle, warms up (at least 5 calls and 0.1 s), then times
``--repeats`` calls with :func:`time.perf_counter` and the garbage collector off; the median and
the minimum are reported. Other processes skew the result, so the number of cores they keep busy
is measured just before and during the run, reported with it and flagged when not near zero.

Examples
--------
From the repository root::

    .venv/bin/python bench/golden.py                 # 50 repeats, writes bench/results/
    .venv/bin/python bench/golden.py --repeats 200 --no-write
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from convhw import progress
from convhw.golden import convolution
from convhw.spec import ConvSpec

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"
SEED = 20240601
WARMUP = 5                  # warm-up calls, at least, and at least WARMUP_S seconds of them
WARMUP_S = 0.1
PAUSE_S = 0.25
BUSY_WARNING = 0.1          # cores kept busy by other processes before the results are flagged
FLOAT_RTOL = FLOAT_ATOL = 1e-9
TARGETS = {"float64": 3.0, "int-exact": 5.0}


@dataclasses.dataclass(frozen=True)
class Layer:
    """A benchmarked layer: its spec and its batched input shape."""

    name: str
    spec: ConvSpec
    input_shape: tuple[int, ...]

    def torch_call(self, x: torch.Tensor, w: torch.Tensor,
                   b: torch.Tensor | None) -> torch.Tensor:
        """The ``torch.nn.functional`` call equivalent to ``convolution(spec, x, w, b)``."""
        spec = self.spec
        assert spec.dims == 2 and spec.padding_mode == "zeros"
        padding = tuple(lo for lo, _ in spec.padding)
        assert all(lo == hi for lo, hi in spec.padding), "torch takes symmetric padding only"
        if spec.transposed:
            return F.conv_transpose2d(x, w, b, stride=spec.stride, padding=padding,
                                      output_padding=spec.output_padding, groups=spec.groups,
                                      dilation=spec.dilation)
        return F.conv2d(x, w, b, stride=spec.stride, padding=padding, dilation=spec.dilation,
                        groups=spec.groups)


LAYERS = (
    Layer("resnet18-3x3",
          ConvSpec(dims=2, in_channels=64, out_channels=64, kernel_size=3, padding=1, bias=False),
          (1, 64, 56, 56)),
    Layer("deconv-4s2",
          ConvSpec(dims=2, in_channels=64, out_channels=32, kernel_size=4, stride=2, padding=1,
                   bias=True, transposed=True),
          (1, 64, 16, 16)),
)


@dataclasses.dataclass
class Result:
    """One row of the table; times are in milliseconds."""

    layer: str
    mode: str
    output_shape: list[int]
    max_abs_diff: float
    golden_median_ms: float
    golden_min_ms: float
    torch_median_ms: float
    torch_min_ms: float
    ratio: float
    target: float
    passed: bool


class MismatchError(AssertionError):
    """The golden model and torch disagree: a correctness failure, not a timing one."""


def operands(layer: Layer, mode: str, rng: np.random.Generator
             ) -> tuple[tuple[np.ndarray, ...], tuple[torch.Tensor, ...]]:
    """NumPy operands for the golden model and float64 tensors with the same values for torch."""
    spec = layer.spec
    shapes = [layer.input_shape, spec.weight_shape]
    if spec.bias:
        shapes.append(spec.bias_shape)
    if mode == "float64":
        arrays = tuple(rng.standard_normal(shape) for shape in shapes)
    else:
        arrays = tuple(rng.integers(-128, 128, size=shape, dtype=np.int8) for shape in shapes)
    tensors = tuple(torch.from_numpy(a.astype(np.float64)) for a in arrays)
    if not spec.bias:
        arrays, tensors = (*arrays, None), (*tensors, None)
    return arrays, tensors


def check(layer: Layer, mode: str, golden: np.ndarray, reference: torch.Tensor) -> float:
    """Raise :class:`MismatchError` unless the outputs agree; return the largest difference."""
    ref = reference.numpy()
    where = f"{layer.name}/{mode}"
    if golden.shape != ref.shape:
        raise MismatchError(f"{where}: golden shape {golden.shape} != torch shape {ref.shape}")
    if mode == "float64":
        if golden.dtype != np.float64:
            raise MismatchError(f"{where}: golden returned {golden.dtype}, expected float64")
        diff = float(np.max(np.abs(golden - ref)))
        if not np.allclose(golden, ref, rtol=FLOAT_RTOL, atol=FLOAT_ATOL):
            raise MismatchError(f"{where}: outputs differ beyond rtol=atol={FLOAT_RTOL:g}; "
                                f"largest |golden - torch| = {diff:.3g}")
        return diff
    if golden.dtype != np.int64:
        raise MismatchError(f"{where}: golden returned {golden.dtype}, expected int64")
    if not np.all(np.abs(ref) < 2.0 ** 53) or not np.array_equal(ref, np.rint(ref)):
        raise MismatchError(f"{where}: torch's float64 result is not exactly integral")
    expected = ref.astype(np.int64)
    wrong = int(np.count_nonzero(golden != expected))
    if wrong:
        diff = int(np.max(np.abs(golden - expected)))
        raise MismatchError(f"{where}: {wrong} of {golden.size} outputs differ from torch; "
                            f"largest difference {diff}")
    return 0.0


def time_calls(func: Callable[[], object], repeats: int) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``func``, after a pause and a warm-up."""
    time.sleep(PAUSE_S)      # let the other library's thread pool fall idle first
    calls, start = 0, time.perf_counter()
    while calls < WARMUP or time.perf_counter() - start < WARMUP_S:
        func()
        calls += 1
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
    finally:
        if enabled:
            gc.enable()
    return times


def measure(layer: Layer, mode: str, repeats: int, rng: np.random.Generator) -> Result:
    """Check one layer in one mode against torch, then time both sides."""
    (x, w, b), (tx, tw, tb) = operands(layer, mode, rng)

    def golden() -> np.ndarray:
        return convolution(layer.spec, x, w, b)

    def reference() -> torch.Tensor:
        return layer.torch_call(tx, tw, tb)

    with torch.inference_mode():
        diff = check(layer, mode, golden(), reference())
        golden_s = time_calls(golden, repeats)
        torch_s = time_calls(reference, repeats)
    golden_ms = statistics.median(golden_s) * 1e3
    torch_ms = statistics.median(torch_s) * 1e3
    ratio = golden_ms / torch_ms
    target = TARGETS[mode]
    return Result(layer=layer.name, mode=mode, output_shape=list(layer.spec.output_shape(x.shape)),
                  max_abs_diff=diff, golden_median_ms=golden_ms,
                  golden_min_ms=min(golden_s) * 1e3, torch_median_ms=torch_ms,
                  torch_min_ms=min(torch_s) * 1e3, ratio=ratio, target=target,
                  passed=ratio <= target)


HEADER = ("layer", "mode", "golden ms", "(min)", "torch ms", "(min)", "golden/torch", "target",
          "pass")


def rows(results: list[Result]) -> list[tuple[str, ...]]:
    return [(r.layer, r.mode, f"{r.golden_median_ms:.3f}", f"{r.golden_min_ms:.3f}",
             f"{r.torch_median_ms:.3f}", f"{r.torch_min_ms:.3f}", f"{r.ratio:.2f}x",
             f"<= {r.target:g}x", "PASS" if r.passed else "FAIL") for r in results]


def text_table(results: list[Result]) -> str:
    """A plain table aligned with spaces: text columns left, numbers right."""
    table = [HEADER, *rows(results)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = []
    for row in table:
        cells = [cell.ljust(width) if i < 2 else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(results: list[Result]) -> str:
    align = ["---", "---"] + ["---:"] * (len(HEADER) - 3) + [":---:"]
    lines = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines)


def cpu_model() -> str:
    """The first processor's model name in ``/proc/cpuinfo``, with its family and model
    numbers, which name the core generation when a hypervisor shortens the name."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def blas() -> str:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info['name']} {info['version']}"
    except Exception:  # the layout of numpy's build information is not a stable API
        return "unknown"


def blas_threads() -> int | None:
    """Threads of the OpenBLAS that NumPy loaded, asked through its C API (best effort)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        for path in sorted(paths):
            library = ctypes.CDLL(path)
            for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                           "openblas_get_num_threads"):
                if hasattr(library, symbol):
                    return int(getattr(library, symbol)())
    except OSError:
        pass
    return None


@dataclasses.dataclass(frozen=True)
class CpuClock:
    """CPU time used by the whole machine and by this process, at one wall-clock instant."""

    wall: float
    machine: float | None        # busy CPU seconds of all processes since boot
    process: float               # CPU seconds of this process, all threads

    @classmethod
    def now(cls) -> CpuClock:
        try:
            with open("/proc/stat", encoding="utf-8") as stat:
                ticks = [int(v) for v in stat.readline().split()[1:]]
            busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle/io
        except (OSError, ValueError, IndexError):
            busy = None
        return cls(time.perf_counter(), busy, time.process_time())

    def others_since(self, start: CpuClock) -> float | None:
        """Average number of cores that other processes kept busy since ``start``: a benchmark
        on a machine that is not idle measures the contention as much as the code."""
        if self.machine is None or start.machine is None or self.wall <= start.wall:
            return None
        other = (self.machine - start.machine) - (self.process - start.process)
        return round(max(other, 0.0) / (self.wall - start.wall), 2)


def command() -> str:
    """The command line that started this run, as typed from the working directory."""
    python = sys.executable
    if Path(python).is_absolute() and Path(python).is_relative_to(Path.cwd()):
        python = os.path.relpath(python)
    words = [python, *sys.argv]
    if os.environ.get("PYTHONPATH"):
        words.insert(0, f"PYTHONPATH={os.environ['PYTHONPATH']}")
    return shlex.join(words)


def machine(threads: int) -> dict[str, object]:
    return {
        "cpu_model": cpu_model(),
        "cores_available": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas(),
        "numpy_blas_threads": blas_threads(),
        "torch": torch.__version__,
    }


def write(results: list[Result], meta: dict[str, object], repeats: int) -> None:
    """Overwrite ``bench/results/golden.{md,json}``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    facts = meta["machine"]
    intro = (f"Generated by `bench/golden.py`; do not edit by hand. Times are the median (and "
             f"minimum) of {repeats} calls after at least {WARMUP} warm-up calls ({WARMUP_S:g} s); "
             "the ratio is golden median / torch median; a row passes when it is at most the "
             "target.")
    md = [
        "# Golden model vs torch CPU convolution",
        "",
        textwrap.fill(intro, width=100),
        "",
        markdown_table(results),
        "",
        f"- command: `{meta['command']}` (in `{meta['cwd']}`)",
        f"- date: {meta['date']}",
        f"- CPU: {facts['cpu_model']}; {facts['cores_available']} cores available "
        f"(os.cpu_count() = {facts['cpu_count']}); "
        f"torch.set_num_threads({facts['torch_num_threads']}); "
        f"NumPy BLAS threads: {facts['numpy_blas_threads'] or 'unknown'}",
        f"- cores kept busy by other processes: {meta['background_busy_cores']['before']} just "
        f"before the run, {meta['background_busy_cores']['during']} on average during it",
        f"- platform: {facts['platform']}",
        f"- Python {facts['python']}, NumPy {facts['numpy']} ({facts['numpy_blas']}), "
        f"torch {facts['torch']}",
        f"- seed {meta['seed']}; float64 outputs agree to rtol = atol = {FLOAT_RTOL:g}, "
        "int-exact outputs are identical",
        "",
    ]
    load = [v for v in meta["background_busy_cores"].values() if v is not None]
    if load and max(load) > BUSY_WARNING:
        warning = (f"**Warning:** other processes kept up to {max(load)} of {facts['cpu_count']} "
                   "cores busy during this run; the timings measure that contention too.")
        md[4:4] = [textwrap.fill(warning, width=100), ""]
    (RESULTS / "golden.md").write_text("\n".join(md), encoding="utf-8")
    data = {**meta, "results": [dataclasses.asdict(r) for r in results]}
    (RESULTS / "golden.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=50, metavar="N",
                        help="timed calls per measurement, after the warm-up (default 50)")
    parser.add_argument("--no-write", action="store_true",
                        help="print the table only; leave bench/results/ untouched")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    rng = np.random.default_rng(SEED)
    print(f"torch.set_num_threads({threads}); NumPy BLAS threads: {blas_threads() or 'unknown'}; "
          f"{args.repeats} repeats after a warm-up", flush=True)
    idle = CpuClock.now()
    time.sleep(0.5)
    start = CpuClock.now()
    load = {"before": start.others_since(idle)}
    results = []
    try:
        cases = [(layer, mode) for layer in LAYERS for mode in TARGETS]
        # Redrawn between measurements only: no thread of ours wakes while one is timed.
        for layer, mode in progress.items(cases, "bench/golden.py", unit="measurement",
                                          tick=None):
            results.append(measure(layer, mode, args.repeats, rng))
    except MismatchError as error:
        print(f"MISMATCH: {error}", file=sys.stderr)
        return 2
    load["during"] = CpuClock.now().others_since(start)
    print(text_table(results))
    failed = [f"{r.layer}/{r.mode}" for r in results if not r.passed]
    print(f"targets missed: {', '.join(failed)}" if failed else "all targets met")
    print(f"cores kept busy by other processes: {load['before']} just before the run, "
          f"{load['during']} on average during it")
    if any(v is not None and v > BUSY_WARNING for v in load.values()):
        print(f"WARNING: the machine was not idle (it has {os.cpu_count()} cores); these timings "
              "measure the contention too: rerun on an idle machine")

    if not args.no_write:
        meta = {
            "command": command(),
            "cwd": os.getcwd(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seed": SEED,
            "repeats": args.repeats,
            "warmup_calls_min": WARMUP,
            "warmup_seconds_min": WARMUP_S,
            "machine": machine(threads),
            "background_busy_cores": load,
        }
        write(results, meta, args.repeats)
        print(f"wrote {RESULTS / 'golden.md'} and {RESULTS / 'golden.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

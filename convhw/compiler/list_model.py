"""The engine running a descriptor list from memory, in NumPy: its executable specification.

:func:`run_list` does what the engine does between a START of a list and DONE, one job after
another: fetch the job's descriptor, check it, load what it asks for into the banks it names,
compute (:func:`convhw.compiler.job.execute`, the address generator's exact semantics; with
``EngineConfig.activation_offset`` the window's elements are unsigned and each real one is
offset by the job's ``INPUT_ZERO``, padding contributing 0), and write the results through the
output stage. Memory is a :class:`Memory` (bytes, traffic
counters, error ranges). It is the oracle of the gateware's descriptor decoder, DMA and error
codes, and of the compiler's lists (:mod:`convhw.compiler.lower`).

Checks, in the order the engine makes them (the first that fails is the job's error code; a
list address that is not a multiple of 128 bytes is ``MISALIGNED`` at job 0):

1. ``READ_ERROR``: the descriptor's fetch got a bus error;
2. ``BAD_DESCRIPTOR``: ``MAGIC`` is not ``0xCD`` or a reserved bit is set;
3. ``FIELD_TOO_WIDE``: a size or coordinate at or above ``2**coord_width``, a kernel, stride,
   dilation or ``FIR_TAPS`` at or above ``2**param_width``, ``OUT_CHANNELS`` above ``cols``,
   ``INPUT_ZERO`` outside ``EngineConfig.zero_range`` (at or above ``2**input_width`` with the
   activation offset, anything but 0 without it), ``FLOAT_REQUANTIZE`` or a non-zero
   ``OUTPUT_ZERO`` on an engine without ``float_output``;
4. ``BAD_GEOMETRY``, ``BAD_PADDING``, ``TILE_TOO_LARGE``, ``WINDOW_TOO_LARGE``,
   ``WEIGHTS_TOO_LARGE``, ``SOURCE_RANGE``: the job registers' checks (docs/engine.md), against
   one *bank*: the tile must fit ``acc_depth / 2`` entries, the window ``input_depth / 2``
   words, and the job's weights (and a load's words) must lie inside one weight bank of
   ``weight_depth / 2`` words; a forward tile's ``(OUT_START + OUT_LEN - 1) * STRIDE`` must be
   below ``2**coord_width`` in every dimension; ``WRITE_OUTPUT`` with ``OUT_CHANNELS`` 0 is
   ``BAD_GEOMETRY``;
5. ``MISALIGNED``: an input, weight or output address or pitch that is not a multiple of its
   element's bytes, or ``PARAMS_ADDR`` not a multiple of 4;
6. ``READ_ERROR`` while loading the window, the weights or the column parameters;
7. ``WINDOW_MISS`` while computing;
8. ``WRITE_ERROR`` while writing results.

A job that fails has no effect on memory except, for ``WRITE_ERROR``, the results written before
the failing write; every earlier job has completed. The list ends at the failing job, or after
the first job with ``LAST``.

Output stage: ``v = acc + bias`` exactly (``bias`` is the low ``acc_width`` bits of ``BIAS``,
signed); a raw result is ``v`` wrapped to the raw element (32 bits: a compiled layer never
wraps, its worst case is checked); a requantised one is
:func:`convhw.golden.requantize` of ``v`` to ``input_width`` bits; then ReLU. With
``FLOAT_REQUANTIZE`` (``EngineConfig.float_output``) :func:`float_requantize` instead, torch's
quantised output processing in float32: uint8 results, written as 8-bit elements.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import golden
from ..config import EngineConfig
from ..descriptor import DESCRIPTOR_MAGIC, JOB_DESCRIPTOR, column_params
from ..job_format import PaddingMode
from ..registers import ErrorCode
from ..timing import fir_takes_stride
from .job import Axis, Job, execute
from .layout import pack_elements, unpack_elements
from .lower import Traffic

__all__ = ["ListResult", "Memory", "MemoryFault", "gather_window", "job_code", "output_values",
           "float_requantize", "run_list", "write_results"]

_AXES = "ZYX"


#: The engine's addresses are 32 bits: every address it computes from a descriptor's base and
#: pitches is taken modulo this (a run that then reaches past the memory is a bus error).
ADDRESS_SPACE = 1 << 32


class MemoryFault(Exception):
    """A bus error answered an access."""


class Memory:
    """Byte-addressed memory with traffic counters.

    Parameters
    ----------
    size : int
        Bytes; accesses beyond it are bus errors.
    errors : sequence of (start, end)
        Byte ranges whose accesses are answered with a bus error.
    """

    def __init__(self, size: int, errors=()) -> None:
        self.data = np.zeros(size, dtype=np.uint8)
        self.errors = list(errors)
        self.traffic = Traffic()

    @property
    def size(self) -> int:
        return self.data.size

    def _check(self, address: int, count: int) -> None:
        if count == 0:
            # No bytes, no access: the engine makes no bus request for an empty load (a
            # descriptor's LOAD_WEIGHTS with WEIGHT_WORDS 0 at any address), so nothing can
            # fault. (The fuzzer's seed 7989 found the model refusing one: READ_ERROR against
            # the engine's ERROR 0.)
            return
        end = address + count
        if address < 0 or end > self.data.size:
            raise MemoryFault(f"access {address:#x}..{end:#x} beyond memory")
        for lo, hi in self.errors:
            if address < hi and lo < end:
                raise MemoryFault(f"access {address:#x}..{end:#x} hits an error range")

    def read(self, address: int, count: int, kind: str | None = None) -> np.ndarray:
        self._check(address, count)
        if kind is not None:
            setattr(self.traffic, kind, getattr(self.traffic, kind) + count)
        return self.data[address:address + count].copy()

    def write(self, address: int, data, kind: str | None = None) -> None:
        data = np.asarray(data, dtype=np.uint8).reshape(-1)
        self._check(address, data.size)
        if kind is not None:
            setattr(self.traffic, kind, getattr(self.traffic, kind) + data.size)
        self.data[address:address + data.size] = data


@dataclasses.dataclass(frozen=True)
class ListResult:
    """How a list ended: ``code`` (``ErrorCode.NONE`` after a job with LAST), the index of the
    failing job (or ``None``), the jobs completed, and the traffic by kind."""

    code: ErrorCode
    failed_job: int | None
    jobs: int
    traffic: Traffic

    @property
    def ok(self) -> bool:
        return self.code == ErrorCode.NONE


class _JobError(Exception):
    def __init__(self, code: ErrorCode):
        self.code = code


@dataclasses.dataclass
class _Engine:
    """The engine's state between jobs: banks of the buffers."""

    config: EngineConfig
    inputs: list = dataclasses.field(default_factory=list)
    weights: np.ndarray | None = None
    accs: list = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.config
        self.inputs = [np.zeros((c.input_depth // 2, c.rows), np.int64) for _ in range(2)]
        self.weights = np.zeros((c.weight_depth, c.cols), np.int64)
        self.accs = [np.zeros((c.acc_depth // 2, c.cols), np.int64) for _ in range(2)]


def run_list(memory: Memory, list_address: int, config: EngineConfig,
             max_jobs: int = 1 << 20) -> ListResult:
    """Run the descriptor list at ``list_address`` on ``memory`` as the engine of ``config``
    does (see the module documentation)."""
    engine = _Engine(config)
    if list_address % JOB_DESCRIPTOR.size:
        return ListResult(ErrorCode.MISALIGNED, 0, 0, memory.traffic)
    for index in range(max_jobs):
        try:
            last = _run_job(engine, memory, list_address + index * JOB_DESCRIPTOR.size)
        except _JobError as error:
            return ListResult(error.code, index, index, memory.traffic)
        if last:
            return ListResult(ErrorCode.NONE, None, index + 1, memory.traffic)
    raise RuntimeError(f"the list did not end within {max_jobs} jobs")


def _read(memory: Memory, address: int, count: int, kind: str) -> np.ndarray:
    try:
        return _wrapped_read(memory, address, count, kind)
    except MemoryFault:
        raise _JobError(ErrorCode.READ_ERROR) from None


def _wrapped_read(memory: Memory, address: int, count: int, kind: str) -> np.ndarray:
    """A read whose bytes past the top of the 32-bit address space continue from 0."""
    address %= ADDRESS_SPACE
    first = min(count, ADDRESS_SPACE - address)
    data = memory.read(address, first, kind)
    if first < count:
        data = np.concatenate([data, memory.read(0, count - first, kind)])
    return data


def _wrapped_write(memory: Memory, address: int, data, kind: str) -> None:
    """A write whose bytes past the top of the 32-bit address space continue from 0."""
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    address %= ADDRESS_SPACE
    first = min(data.size, ADDRESS_SPACE - address)
    memory.write(address, data[:first], kind)
    if first < data.size:
        memory.write(0, data[first:], kind)


def _run_job(engine: _Engine, memory: Memory, address: int) -> bool:
    config = engine.config
    raw = _read(memory, address, JOB_DESCRIPTOR.size, "descriptor")
    words = raw.view("<u4")
    d = JOB_DESCRIPTOR.decode(words)
    if d["MAGIC"] != DESCRIPTOR_MAGIC or JOB_DESCRIPTOR.reserved_bits_set(words):
        raise _JobError(ErrorCode.BAD_DESCRIPTOR)
    job = _check(config, d)

    # -- loads -----------------------------------------------------------------------------
    rows, cols = config.rows, config.cols
    if d["LOAD_INPUT"]:
        try:
            words_in = gather_window(memory, d, config)
        except MemoryFault:
            raise _JobError(ErrorCode.READ_ERROR) from None
        engine.inputs[d["INPUT_BANK"]][:len(words_in)] = words_in
    if d["LOAD_WEIGHTS"]:
        count = d["WEIGHT_WORDS"]
        data = _read(memory, d["WEIGHT_ADDR"], count * cols * config.weight_bytes, "weight")
        engine.weights[d["WEIGHT_BASE"]:d["WEIGHT_BASE"] + count] = unpack_elements(
            data, config.weight_bytes).reshape(count, cols)
    fmt = column_params(config)
    records = _read(memory, d["PARAMS_ADDR"], fmt.size * cols, "params").view("<u4")
    columns = [fmt.decode(r) for r in records.reshape(cols, -1)]
    if job.fir_taps:
        lanes = tuple(c["LANE"] for c in columns)
        if max(lanes) >= rows:
            raise _JobError(ErrorCode.FIELD_TOO_WIDE)
        job = dataclasses.replace(job, lanes=lanes)

    # -- compute -----------------------------------------------------------------------------
    bank = engine.accs[d["ACC_BANK"]]
    weights = engine.weights[d["WEIGHT_BASE"]:d["WEIGHT_BASE"] + job.weight_words]
    entries = job.acc_entries
    try:
        acc = execute(job, engine.inputs[d["INPUT_BANK"]][:job.input_words], weights,
                      acc=bank[:entries].copy() if job.accumulate else None)
    except ValueError as error:
        if "misses source coordinates" in str(error):
            raise _JobError(ErrorCode.WINDOW_MISS) from None
        raise
    bank[:entries] = acc

    # -- output stage and writes ------------------------------------------------------------
    if d["WRITE_OUTPUT"]:
        try:
            write_results(memory, d, acc, columns, config)
        except MemoryFault:
            raise _JobError(ErrorCode.WRITE_ERROR) from None
    return bool(d["LAST"])


def output_values(acc: np.ndarray, d: dict, columns: list, config: EngineConfig) -> np.ndarray:
    """The output stage: ``(entries, OUT_CHANNELS)`` results of the accumulator entries
    ``acc`` (``(entries, cols)``) for the descriptor ``d`` and its column records ``columns``
    (see the module documentation)."""
    n = d["OUT_CHANNELS"]
    bias = golden.wrap([c["BIAS"] for c in columns[:n]], config.acc_width)
    values = np.asarray(acc, dtype=np.int64)[:, :n] + bias[None, :]
    if d.get("FLOAT_REQUANTIZE"):
        return float_requantize(values, [c["F32_BIAS"] for c in columns[:n]],
                                [c["F32_MULT"] for c in columns[:n]], d["OUTPUT_ZERO"],
                                bool(d["RELU"]))
    if d["REQUANTIZE"]:
        values = golden.requantize(values, [c["MULT"] for c in columns[:n]],
                                   [c["SHIFT"] for c in columns[:n]], bits=config.input_width)
    else:
        values = golden.wrap(values, 8 * config.raw_bytes)
    if d["RELU"]:
        values = np.maximum(values, 0)
    return values


def float_requantize(values, f32_bias, f32_mult, output_zero: int, relu: bool) -> np.ndarray:
    """``FLOAT_REQUANTIZE``'s output processing of the sums ``values`` (``(entries, n)``, acc +
    BIAS), per column the float32 constants as bit patterns (``F32_BIAS``, ``F32_MULT``):
    ``values`` wrapped to int32, converted to float32, plus the bias term, times the multiplier
    (each rounded to nearest even, float32), rounded half to even, plus ``output_zero``,
    clamped to 0..255 (ReLU: ``output_zero``..255). What
    :class:`~convhw.gateware.float32_requantizer.Float32Requantizer` computes, and
    :func:`convhw.quantized_golden.requantize` on the kernels' constants. The constants must be
    finite (the compiler checks it; the engine does not)."""
    f32 = np.float32
    as_float = lambda bits: np.asarray(bits, dtype=np.uint32).view(f32)[None, :]  # noqa: E731
    raw = golden.wrap(np.asarray(values, dtype=np.int64), 32).astype(f32)
    with np.errstate(over="ignore"):
        scaled = ((raw + as_float(f32_bias)).astype(f32) * as_float(f32_mult)).astype(f32)
    # (an infinite product clamps as a huge one does: +-inf beyond int64 is clipped first)
    rounded = np.rint(np.clip(scaled.astype(np.float64), -2.0 ** 40, 2.0 ** 40))
    out = rounded.astype(np.int64) + int(output_zero)
    return np.clip(out, int(output_zero) if relu else 0, 255)


def write_results(memory: Memory, d: dict, acc: np.ndarray, columns: list,
                  config: EngineConfig) -> None:
    """Write a tile's results (:func:`output_values` of ``acc``) where the descriptor ``d``
    says: entry ``(z, y, x)`` of the tile (raster order, x fastest) at ``OUTPUT_ADDR +
    (OUT_START + (z, y, x)) . pitches``, ``OUT_CHANNELS`` elements. A bus error raises
    :class:`MemoryFault` at the first failing write, the earlier ones done."""
    out_bytes = config.input_bytes if d["REQUANTIZE"] or d.get("FLOAT_REQUANTIZE") else \
        config.raw_bytes
    values = output_values(acc, d, columns, config)
    data = pack_elements(values, out_bytes).reshape(len(values), -1)
    lengths = [d[f"{a}_OUT_LEN"] for a in _AXES]
    for entry, (z, y, x) in enumerate(np.ndindex(*lengths)):
        a = (d["OUTPUT_ADDR"] + (d["Z_OUT_START"] + z) * d["OUTPUT_PLANE_PITCH"]
             + (d["Y_OUT_START"] + y) * d["OUTPUT_ROW_PITCH"]
             + (d["X_OUT_START"] + x) * d["OUTPUT_PIXEL_PITCH"]) % ADDRESS_SPACE
        _wrapped_write(memory, a, data[entry], "output")


def job_code(config: EngineConfig, d: dict) -> ErrorCode:
    """The first of checks 3 to 5 (module documentation) that the descriptor values ``d``
    fail, or ``ErrorCode.NONE``."""
    try:
        _check(config, d)
    except _JobError as error:
        return error.code
    return ErrorCode.NONE


def _check(config: EngineConfig, d: dict) -> Job:
    """Checks 3 to 5 of the module documentation; the job's :class:`Job`."""
    coord_limit, param_limit = 1 << config.coord_width, 1 << config.param_width
    for axis in _AXES:
        for name in ("IN_SIZE", "PAD_LO", "OUT_START", "OUT_LEN", "SEG0_START", "SEG0_LEN",
                     "SEG1_START", "SEG1_LEN"):
            if d[f"{axis}_{name}"] >= coord_limit:
                raise _JobError(ErrorCode.FIELD_TOO_WIDE)
        for name in ("KERNEL", "STRIDE", "DILATION"):
            if d[f"{axis}_{name}"] >= param_limit:
                raise _JobError(ErrorCode.FIELD_TOO_WIDE)
    if (d["FIR_TAPS"] >= param_limit or d["OUT_CHANNELS"] > config.cols
            or d["INPUT_ZERO"] > config.zero_range[1]
            or (not config.float_output and (d.get("FLOAT_REQUANTIZE") or d.get("OUTPUT_ZERO")))):
        raise _JobError(ErrorCode.FIELD_TOO_WIDE)

    axes = tuple(Axis(**{name.lower(): d[f"{axis}_{name}"] for name in (
        "IN_SIZE", "KERNEL", "STRIDE", "DILATION", "PAD_LO", "OUT_START", "OUT_LEN",
        "SEG0_START", "SEG0_LEN", "SEG1_START", "SEG1_LEN")}) for axis in _AXES)
    mode, transposed = d["PADDING_MODE"], bool(d["TRANSPOSED"])
    fir = d["FIR_TAPS"]
    x = axes[2]
    zero = (d["IN_CHUNKS"] == 0
            or any(a.in_size == 0 or a.kernel == 0 or a.stride == 0 or a.dilation == 0
                   or a.out_len == 0 for a in axes)
            or (fir != 0 and (fir > config.rows or x.dilation != 1 or transposed
                              or (x.kernel > x.stride if fir_takes_stride(config)
                                  else x.kernel != 1 or x.stride != 1)))
            or (d["WRITE_OUTPUT"] and d["OUT_CHANNELS"] == 0))
    if zero:
        raise _JobError(ErrorCode.BAD_GEOMETRY)
    if (transposed and mode != PaddingMode.ZEROS) or any(
            (mode == PaddingMode.CIRCULAR and a.pad_lo > a.in_size)
            or (mode == PaddingMode.REFLECT and a.pad_lo >= a.in_size)
                                         for a in axes):
        raise _JobError(ErrorCode.BAD_PADDING)
    if math.prod(a.out_len for a in axes) > config.acc_depth // 2:
        raise _JobError(ErrorCode.TILE_TOO_LARGE)
    if math.prod(a.window for a in axes) * d["IN_CHUNKS"] > config.input_depth // 2:
        raise _JobError(ErrorCode.WINDOW_TOO_LARGE)
    half = config.weight_depth // 2
    taps = math.prod(a.kernel for a in axes)
    used = taps * d["IN_CHUNKS"] * config.rows
    spans = [(d["WEIGHT_BASE"], used)]
    if d["LOAD_WEIGHTS"]:
        spans.append((d["WEIGHT_BASE"], d["WEIGHT_WORDS"]))
    for base, count in spans:
        if count and (base + count > config.weight_depth
                      or base // half != (base + count - 1) // half):
            raise _JobError(ErrorCode.WEIGHTS_TOO_LARGE)
    if not transposed and any((a.out_start + a.out_len - 1) * a.stride >= coord_limit
                              for a in axes):
        raise _JobError(ErrorCode.SOURCE_RANGE)

    out_bytes = config.input_bytes if d["REQUANTIZE"] or d.get("FLOAT_REQUANTIZE") else \
        config.raw_bytes
    aligned = [(d[f"INPUT_{n}"], config.input_bytes) for n in
               ("ADDR", "PIXEL_PITCH", "ROW_PITCH", "PLANE_PITCH")]
    aligned += [(d[f"OUTPUT_{n}"], out_bytes) for n in
                ("ADDR", "PIXEL_PITCH", "ROW_PITCH", "PLANE_PITCH")]
    aligned += [(d["WEIGHT_ADDR"], config.weight_bytes), (d["PARAMS_ADDR"], 4)]
    if any(value % unit for value, unit in aligned):
        raise _JobError(ErrorCode.MISALIGNED)
    return Job(config=config, axes=axes, transposed=transposed,
               padding_mode=PaddingMode(mode).spec_name, in_chunks=d["IN_CHUNKS"],
               accumulate=bool(d["ACCUMULATE"]),
               skip_borders=bool(d["SKIP_BORDERS"]) and config.border_skipping,
               fir_taps=fir, lanes=(0,) * config.cols if fir else (),
               input_zero=d["INPUT_ZERO"])


def gather_window(memory: Memory, d: dict, config: EngineConfig) -> np.ndarray:
    """The input window of the descriptor ``d`` from memory, as ``(words, rows)`` input-buffer
    words in buffer order: pixel-major over the window's segments (z, then y, then x; each
    axis's first segment, then its second), the ``IN_CHUNKS`` chunks of a pixel innermost. One
    read of ``IN_CHUNKS * rows`` elements per pixel, or of a whole run of pixels when they are
    contiguous (``INPUT_PIXEL_PITCH`` equals a pixel's run). A bus error raises
    :class:`MemoryFault`."""
    rows, size = config.rows, config.input_bytes
    run = d["IN_CHUNKS"] * rows * size
    coords = [list(range(d[f"{a}_SEG0_START"], d[f"{a}_SEG0_START"] + d[f"{a}_SEG0_LEN"]))
              + list(range(d[f"{a}_SEG1_START"], d[f"{a}_SEG1_START"] + d[f"{a}_SEG1_LEN"]))
              for a in _AXES]
    pitch = d["INPUT_PIXEL_PITCH"]
    out = []
    for z in coords[0]:
        for y in coords[1]:
            row = d["INPUT_ADDR"] + z * d["INPUT_PLANE_PITCH"] + y * d["INPUT_ROW_PITCH"]
            row %= ADDRESS_SPACE
            segments = ((d["X_SEG0_START"], d["X_SEG0_LEN"]),
                        (d["X_SEG1_START"], d["X_SEG1_LEN"]))
            for start, length in segments:
                if not length:
                    continue
                if pitch == run:
                    out.append(_wrapped_read(memory, row + start * pitch, length * run,
                                             "input"))
                else:
                    for x in range(start, start + length):
                        out.append(_wrapped_read(memory, row + x * pitch, run, "input"))
    data = np.concatenate(out) if out else np.zeros(0, np.uint8)
    words = unpack_elements(data, size).reshape(-1, rows)
    if config.activation_offset:
        # The engine reads input_width-bit unsigned elements (the bytes' low bits).
        words &= (1 << config.input_width) - 1
    return words

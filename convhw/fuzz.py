"""Fuzzing the list engine against its executable specification.

Each *program* is one descriptor list run on a list-engine transport (Verilator:
:class:`convhw.driver.verilator_list.ListVerilatorTransport`) and in the list model
(:func:`convhw.compiler.list_model.run_list`), the independent oracle: the same memory image
in both, then the two compared, ERROR (code and failing job) and every byte of memory.
Programs are made from a few small compiled lists (every op, padding mode and dimension the
engine has) by one of:

* ``fields``: one to three descriptor fields of one job set to values near the limits the
  checks draw (0, 1, the field's and the engine's widths, ``2**coord_width``, the old value
  plus or minus one) or anywhere in the field;
* ``bits``: one to four random bits of one job's descriptor flipped, reserved bits and MAGIC
  included;
* ``bus_error``: an error range over one beat the list reads or writes (descriptors, input,
  weights, column parameters or output);
* ``abort`` and ``reset``: the unchanged list, ABORT written (or the engine reset) at a random
  cycle, then the list run again, which must be exact;
* ``legal``: the unchanged list, which must be exact; one follows every illegal program whose
  list ended in an error, so that no error leaves the engine in a state that spoils the next.

A program *hangs* when the engine is still busy after ``max_cycles``; it *mismatches* when its
ERROR or any byte of memory differs from the model's. Every program has its own seed
(``seed + index``), printed with each failure: ``python -m convhw.fuzz --seed S --count 1``
runs it again.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from collections import Counter

import numpy as np

from .compiler.image import Layer, plan
from .compiler.list_model import Memory, run_list
from .config import EngineConfig
from .descriptor import DESCRIPTOR_MAGIC, JOB_DESCRIPTOR
from .registers import ErrorCode
from .spec import ConvSpec

__all__ = ["FuzzReport", "KINDS", "fuzz", "main", "program_lists"]

#: The program kinds and their weights in a campaign.
KINDS = {"fields": 8, "bits": 4, "bus_error": 2, "abort": 1, "reset": 1}
#: The engine configuration fuzzed by default: small buffers, so that the checks' limits are
#: reached by small values and a legal job runs in a few thousand cycles.
FUZZ_CONFIG = EngineConfig(rows=4, cols=4, input_depth=256, weight_depth=256, acc_depth=64)
MEMORY_SIZE = 1 << 18


@dataclasses.dataclass
class FuzzReport:
    """What a campaign ran and found."""

    programs: int = 0
    by_kind: Counter = dataclasses.field(default_factory=Counter)
    by_code: Counter = dataclasses.field(default_factory=Counter)
    hangs: list = dataclasses.field(default_factory=list)          # (seed, kind)
    mismatches: list = dataclasses.field(default_factory=list)     # (seed, kind, detail)
    racy: list = dataclasses.field(default_factory=list)           # (seed, kind, detail)
    seconds: float = 0.0
    cycles: int = 0

    @property
    def ok(self) -> bool:
        return not self.hangs and not self.mismatches

    def summary(self) -> str:
        codes = ", ".join(f"{ErrorCode(code).name} {count}"
                          for code, count in sorted(self.by_code.items()))
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.by_kind.items()))
        return (f"{self.programs} programs ({kinds}) in {self.seconds:.0f} s, "
                f"{self.cycles:,} engine cycles: {len(self.hangs)} hangs, "
                f"{len(self.mismatches)} mismatches, {len(self.racy)} racy (not compared); "
                f"codes: {codes}")


def program_lists(config: EngineConfig, seed: int = 0) -> list:
    """The compiled lists the programs start from (:class:`~convhw.compiler.image.ListPlan`):
    forward 1-D, 2-D and 3-D layers with stride, dilation, every padding mode and groups, a
    transposed one and a FIR-mode depthwise one, single and chained, requantised and raw."""
    rng = np.random.default_rng(seed)

    def layer(spec, requantize=True, relu=False):
        return Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                     rng.integers(-300, 300, spec.out_channels),
                     (rng.integers(1, 1 << 15, spec.out_channels),
                      rng.integers(12, 18, spec.out_channels)) if requantize else None,
                     relu=relu)

    cases = [
        ((1, 3, 5, 5), [layer(ConvSpec(2, 3, 4, 3, padding=1), relu=True),
                        layer(ConvSpec(2, 4, 4, 3, stride=2, padding=1,
                                       padding_mode="reflect"))]),
        ((1, 4, 12), [layer(ConvSpec(1, 4, 4, 3, dilation=2, padding=2,
                                     padding_mode="circular"), requantize=False)]),
        ((1, 4, 6, 5), [layer(ConvSpec(2, 4, 4, 3, padding=1, padding_mode="replicate",
                                       groups=2))]),
        ((1, 4, 3, 3), [layer(ConvSpec(2, 4, 3, 3, stride=2, transposed=True),
                              requantize=False)]),
        ((1, 2, 3, 4, 4), [layer(ConvSpec(3, 2, 3, 2, padding=1))]),
        ((1, 4, 10), [layer(ConvSpec(1, 4, 4, 3, groups=4, padding=1))]),
    ]
    return [plan(config, rng.integers(-128, 128, shape), layers) for shape, layers in cases]


#: Where every image holds the scrub list (:func:`_scrub_descriptors`) and the zeros it loads.
SCRUB_LIST, SCRUB_ZEROS = MEMORY_SIZE - 0x8000, MEMORY_SIZE - 0x4000


def _scrub_descriptors(config: EngineConfig) -> list:
    """A list of two jobs, one per bank, that loads zeros into every word of the input and
    weight buffers and computes zeros into every accumulator entry, writing nothing: run
    before each program, it gives the engine the state the list model starts from, so that
    a program reading a buffer word it did not load reads the same zero in both."""
    rows, cols = config.rows, config.cols
    window, tile = config.input_depth // 2, config.acc_depth // 2
    descriptors = []
    for bank in (0, 1):
        d = {f"{axis}_{name}": 1 for axis in "ZYX"
             for name in ("IN_SIZE", "KERNEL", "STRIDE", "DILATION", "OUT_LEN", "SEG0_LEN")}
        d.update(X_IN_SIZE=window, X_SEG0_LEN=window, X_OUT_LEN=tile,
                 MAGIC=DESCRIPTOR_MAGIC, LAST=bank, LOAD_INPUT=1, LOAD_WEIGHTS=1,
                 IN_CHUNKS=1, OUT_CHANNELS=cols, INPUT_BANK=bank, ACC_BANK=bank,
                 WEIGHT_BASE=bank * (config.weight_depth // 2),
                 WEIGHT_WORDS=config.weight_depth // 2,
                 INPUT_ADDR=SCRUB_ZEROS, INPUT_PIXEL_PITCH=rows * config.input_bytes,
                 INPUT_ROW_PITCH=window * rows * config.input_bytes,
                 INPUT_PLANE_PITCH=window * rows * config.input_bytes,
                 WEIGHT_ADDR=SCRUB_ZEROS, PARAMS_ADDR=SCRUB_ZEROS)
        descriptors.append(d)
    return descriptors


def _image(placed, size: int, config: EngineConfig) -> np.ndarray:
    image = np.zeros(size, np.uint8)
    for address, data in placed.writes:
        data = np.asarray(data, np.uint8).reshape(-1)
        image[address:address + data.size] = data
    for index, d in enumerate(_scrub_descriptors(config)):
        address = SCRUB_LIST + index * JOB_DESCRIPTOR.size
        image[address:address + JOB_DESCRIPTOR.size] = JOB_DESCRIPTOR.encode(d).view(np.uint8)
    return image


class _LoggingMemory(Memory):
    """A memory that keeps, per job of the list (a descriptor read starts one), the byte
    ranges it reads and writes, and each job's WAIT bit."""

    def __init__(self, size: int, errors=()) -> None:
        super().__init__(size, errors)
        self.jobs = []                      # [wait, reads [(start, end)], writes [...]]

    def read(self, address: int, count: int, kind: str | None = None) -> np.ndarray:
        data = super().read(address, count, kind)
        if kind == "descriptor":
            wait = bool(JOB_DESCRIPTOR.decode(data.view("<u4"))["WAIT"])
            self.jobs.append([wait, [], []])
        if self.jobs:
            self.jobs[-1][1].append((address, address + count, kind))
        return data

    def write(self, address: int, data, kind: str | None = None) -> None:
        super().write(address, data, kind)
        if self.jobs:
            size = np.asarray(data).size
            self.jobs[-1][2].append((address, address + size))

    def racy(self) -> str | None:
        """Why the list's outcome depends on the engine's timing, or None. The engine fetches
        descriptors ahead of the jobs, and takes a job (starts its loads) while earlier ones
        still compute and write, unless it has WAIT; so a job that writes a later job's
        descriptor, or its window, weights or parameters without a WAIT between them, races
        with it (docs/memory.md); the model runs the jobs one after another."""
        written = []                        # (start, end, job) of every earlier job
        for j, (wait, reads, writes) in enumerate(self.jobs):
            if wait:                        # every earlier job has ended: fenced
                written = [(lo, hi, i, True) for lo, hi, i, _ in written]
            for lo, hi, kind in reads:
                for wlo, whi, i, fenced in written:
                    if lo < whi and wlo < hi and (kind == "descriptor" or not fenced):
                        return f"job {j}'s {kind} read overlaps job {i}'s writes"
            written += [(lo, hi, j, False) for lo, hi in writes]
        return None


class _SkippingMemory(Memory):
    """A memory whose writes never fail: the bytes in error ranges or past the end are not
    written. The list model on it gives every byte a failing job would write."""

    def write(self, address: int, data, kind: str | None = None) -> None:
        data = np.asarray(data, dtype=np.uint8).reshape(-1)
        for offset, byte in enumerate(data):
            a = address + offset
            if 0 <= a < self.size and not any(lo <= a < hi for lo, hi in self.errors):
                self.data[a] = byte


def _boundary_value(rng: random.Random, field, old: int, config: EngineConfig) -> int:
    top = (1 << field.width) - 1
    choices = [0, 1, top, old + 1, max(0, old - 1), rng.randrange(top + 1),
               rng.randrange(min(top, 64) + 1)]
    for width in (config.coord_width, config.param_width):
        if width <= field.width:
            choices += [(1 << width) - 1, min(top, 1 << width)]
    return min(top, rng.choice(choices))


def _mutate_fields(rng, image, placed, config):
    job = rng.randrange(len(placed.builder.descriptors()))
    address = placed.list_address + job * JOB_DESCRIPTOR.size
    words = image[address:address + JOB_DESCRIPTOR.size].view("<u4")    # a view: in place
    fields = rng.sample(JOB_DESCRIPTOR.fields, rng.randint(1, 3))
    d = {}
    for field in fields:
        mask = (1 << field.width) - 1
        old = (int(words[field.word]) >> field.offset) & mask
        d[field.name] = _boundary_value(rng, field, old, config)   # raw bits, signed or not
        words[field.word] = ((int(words[field.word]) & ~(mask << field.offset))
                             | (d[field.name] << field.offset))
    return f"job {job}: " + ", ".join(f"{f.name}={d[f.name]}" for f in fields)


def _mutate_bits(rng, image, placed):
    count = len(placed.builder.descriptors())
    job = rng.randrange(count)
    base = placed.list_address + job * JOB_DESCRIPTOR.size
    bits = [rng.randrange(JOB_DESCRIPTOR.size * 8) for _ in range(rng.randint(1, 4))]
    for bit in bits:
        image[base + bit // 8] ^= 1 << (bit % 8)
    return f"job {job}: bits {bits}"


def _touched_beats(placed, config):
    """Beat addresses the list reads or writes: its descriptors, input, images and outputs."""
    beat = config.memory_width // 8
    spans = [(address, np.asarray(data).size) for address, data in placed.writes]
    spans += [(address, record.output.size)
              for address, record in zip(placed.output_addresses, placed.records)]
    return [(address // beat) * beat for address, size in spans
            for address in range(address, address + size, beat)]


class _Run:
    """One transport, one list model: runs a memory image in both and compares."""

    def __init__(self, transport, config, max_cycles):
        self.transport, self.config, self.max_cycles = transport, config, max_cycles
        self.regs = transport.register_map

    def hardware(self, image, list_address, *, errors=(), interrupt=None):
        """Run the list on the engine; (STATUS, ERROR, CYCLES, memory) or None if it hung.
        ``interrupt``: ``(kind, cycle)``: ABORT or reset at that cycle, then run again."""
        t, regs = self.transport, self.regs
        t.set_errors([])
        t.mem_write(0, image)
        if not self.scrub():
            return None
        t.set_errors(list(errors))
        t.write(regs["LIST_ADDR"].address, list_address)
        t.write(regs["CTRL"].address, 1)
        if interrupt is not None:
            kind, cycle = interrupt
            t.step(cycle)
            if kind == "abort":
                t.write(regs["CTRL"].address, 0b10)
            else:
                t.reset()
            if not self._idle():
                return None
            t.write(regs["IRQ_CLEAR"].address, 1)
            t.set_errors([])
            t.mem_write(0, image)                 # the outputs of the interrupted run go
            if not self.scrub():
                return None
            t.write(regs["LIST_ADDR"].address, list_address)
            t.write(regs["CTRL"].address, 1)
        if not self._idle():
            return None
        status, error, cycles = (t.read(regs[name].address)
                                 for name in ("STATUS", "ERROR", "CYCLES"))
        t.set_errors([])
        return status, error, cycles, t.mem_read(0, image.size)

    def scrub(self) -> bool:
        """Run the image's scrub list; False if it does not end (a hang)."""
        t, regs = self.transport, self.regs
        t.write(regs["LIST_ADDR"].address, SCRUB_LIST)
        t.write(regs["CTRL"].address, 1)
        if not self._idle():
            return False
        error = t.read(regs["ERROR"].address)
        if error:
            raise RuntimeError(f"the scrub list failed: ERROR {error:#x}")
        return True

    def _idle(self) -> bool:
        from .driver.transport import BusError
        try:
            self.transport.wait_idle(self.regs["STATUS"].address, self.max_cycles)
        except (TimeoutError, BusError):
            return False
        return True

    def model(self, image, list_address, errors=()):
        """ERROR and memory after the list in the model; and, for a list that ends in a
        WRITE_ERROR, the memory with every byte the jobs up to the failing one would write
        (the engine may write bytes of the failing burst the model's write never reaches)."""
        memory = _LoggingMemory(image.size, errors)
        memory.data[:] = image
        result = run_list(memory, list_address, self.config)
        error = 0 if result.ok else (result.failed_job << 16) | int(result.code)
        self.racy = memory.racy()
        written = None
        if result.code == ErrorCode.WRITE_ERROR:
            skipping = _SkippingMemory(image.size, errors)
            skipping.data[:] = image
            try:
                run_list(skipping, list_address, self.config, max_jobs=result.failed_job + 1)
            except RuntimeError:
                pass                             # it did not end: stopped after the job
            written = skipping.data
        return error, memory.data, written

    def hang_recover(self):
        self.transport.reset()


def fuzz(transport, count: int, *, seed: int = 0, config: EngineConfig = FUZZ_CONFIG,
         kinds=None, max_cycles: int = 2_000_000, progress=None) -> FuzzReport:
    """Run ``count`` programs (and the legal lists after them) on ``transport``, a list-engine
    transport of ``config`` with at least :data:`MEMORY_SIZE` bytes of memory; the report."""
    kinds = dict(KINDS if kinds is None else kinds)
    names, weights = list(kinds), list(kinds.values())
    lists = program_lists(config)
    images = [_image(placed, MEMORY_SIZE, config) for placed in lists]
    runner = _Run(transport, config, max_cycles)
    expected_legal = [runner.model(image, placed.list_address)
                      for image, placed in zip(images, lists)]
    report = FuzzReport()
    started = time.perf_counter()

    def check(index, kind, detail, got, want):
        if got is None:
            report.hangs.append((seed + index, kind))
            print(f"fuzz: seed {seed + index} ({kind}, {detail}): still busy after "
                  f"{max_cycles} cycles", file=sys.stderr)
            runner.hang_recover()
            return False
        status, error, cycles, memory = got
        report.cycles += cycles
        want_error, want_memory, written = want
        problems = []
        if error != want_error:
            problems.append(f"ERROR {error:#x}, the model {want_error:#x}")
        if bool(status & 0b100) != bool(want_error):
            problems.append(f"STATUS {status:#x}")
        wrong = memory != want_memory
        if written is not None:
            # After a WRITE_ERROR a byte holds what the model leaves or what the jobs up to
            # the failing one would write there: never anything else.
            wrong &= memory != written
        differ = np.flatnonzero(wrong)
        if differ.size:
            problems.append(f"{differ.size} bytes differ from {differ[0]:#x}")
        if problems:
            report.mismatches.append((seed + index, kind, f"{detail}: {'; '.join(problems)}"))
            print(f"fuzz: seed {seed + index} ({kind}, {detail}): {'; '.join(problems)}",
                  file=sys.stderr)
        return True

    for index in range(count):
        rng = random.Random(seed + index)
        kind = rng.choices(names, weights)[0]
        which = rng.randrange(len(lists))
        placed, image = lists[which], images[which].copy()
        errors, interrupt = (), None
        if kind == "fields":
            detail = _mutate_fields(rng, image, placed, config)
        elif kind == "bits":
            detail = _mutate_bits(rng, image, placed)
        elif kind == "bus_error":
            beat = rng.choice(_touched_beats(placed, config))
            errors = [(beat, beat + config.memory_width // 8)]
            detail = f"error range {beat:#x}"
        else:
            interrupt = (kind, rng.randrange(1, 6000))
            detail = f"at cycle {interrupt[1]}"
        detail = f"list {which}, {detail}"
        racy = None
        if interrupt:
            want = expected_legal[which]
        else:
            want = runner.model(image, placed.list_address, errors)
            racy = runner.racy
        got = runner.hardware(image, placed.list_address, errors=errors, interrupt=interrupt)
        report.programs += 1
        report.by_kind[kind] += 1
        if got is not None:
            report.by_code[got[1] & 0xFF] += 1
        if racy is not None:
            # Its outcome depends on timing (documented): only that it ends is checked here,
            # and the legal list after it.
            report.racy.append((seed + index, kind, f"{detail}: {racy}"))
            if got is None:
                check(index, kind, detail, got, want)
                continue
            ended = True
        else:
            ended = check(index, kind, detail, got, want)
        if ended and got[1] != 0:
            # An error must leave the engine as good as new: the list it came from runs exact.
            report.by_kind["legal"] += 1
            got = runner.hardware(images[which], placed.list_address)
            check(index, "legal", f"list {which} after {kind}", got, expected_legal[which])
        if progress is not None:
            progress(index + 1)
    report.seconds = time.perf_counter() - started
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m convhw.fuzz",
        description="Random descriptor lists, bus errors, aborts and resets on the list "
                    "engine in Verilator, against the list model; exit status 1 on a hang or "
                    "a mismatch.")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=list(KINDS), action="append",
                        help="only these kinds (repeatable)")
    args = parser.parse_args(argv)
    from .driver.verilator_list import ListVerilatorTransport
    kinds = None if not args.kind else {kind: KINDS[kind] for kind in args.kind}
    with ListVerilatorTransport(FUZZ_CONFIG, memory_size=MEMORY_SIZE) as transport:
        report = fuzz(transport, args.count, seed=args.seed, kinds=kinds)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

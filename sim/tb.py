"""The testbench shared by every cocotb bench: clock, reset, a Wishbone master, idle and
valid/backpressure inserters, the engine's host flow (tensor loader) and golden comparison.

Timing convention
-----------------
The DUTs are synchronous to the rising edge of ``clk``. The testbench drives inputs and samples
outputs at the *falling* edge, half a cycle away from any register update, so what it reads is
the same on every simulator (at a rising edge, Icarus reports the values before the edge and
Verilator those after it). One testbench cycle is one falling edge to the next.

The Wishbone master is :mod:`convhw.sim_helpers` itself, run through :class:`CocotbContext`, an
adapter offering the three calls the helpers use: ``set``, ``get`` and ``await tick()``. A value
set at a falling edge is seen by the DUT at the next rising edge, and ``get`` returns the values
settled at the current falling edge. The one difference from the Amaranth testbench context is
that a combinational path from an input set in this half cycle to an output read in the same half
cycle is not yet visible; the helpers read only ACK, ERR and DAT_R, which the engine's slave
registers (it never answers in the cycle an access is presented), so they behave as they do in
the Amaranth simulator.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import zlib
from collections.abc import Iterable

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from convhw import golden
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles
from convhw.config import EngineConfig
from convhw.driver.program import JobProgram
from convhw.registers import engine_register_map
from convhw.sim_helpers import RandomIdle, wb_read, wb_transaction, wb_write

__all__ = ["BUSY", "DONE", "ERROR", "PERIOD_NS", "REGRESSION_SEED", "TB", "Bus", "CocotbContext",
           "Inserter", "JobFailure", "check_equal", "int_env", "seed_for", "to_signed"]

#: The clock period, in ns.
PERIOD_NS = 10

# STATUS bits (docs/registers.md).
BUSY, DONE, ERROR = 0b001, 0b010, 0b100


def int_env(name: str, default: int) -> int:
    """An integer from a plusarg ``+name=value``, else from the environment (the Makefile
    exports ``LAYERS``), else ``default``."""
    value = cocotb.plusargs.get(name) or os.environ.get(name)
    if value in (None, "", True):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


#: cocotb's seed of this regression (``SEED`` in the Makefile, cocotb's ``COCOTB_RANDOM_SEED``):
#: read at import, before cocotb replaces ``cocotb.RANDOM_SEED`` by a per-test seed.
REGRESSION_SEED = getattr(cocotb, "RANDOM_SEED", 0)


def simulator() -> str:
    """The ``SIM`` of ``make sim`` that this run is in: ``icarus`` or ``verilator``."""
    name = str(getattr(cocotb, "SIM_NAME", "") or os.environ.get("SIM", "")).lower()
    return "icarus" if "icarus" in name else "verilator"


def reproduce(bench: str, test: str, **variables) -> str:
    """The command that reruns ``test`` of ``bench`` alone, on this simulator, with this run's
    seed (and ``variables``, e.g. ``LAYERS``)."""
    extra = "".join(f" {name}={value}" for name, value in variables.items())
    return (f"reproduce: make -C sim {bench} SIM={simulator()} SEED={REGRESSION_SEED} "
            f"TESTCASE='{test}$$'{extra}")


def seed_for(*key: int | str) -> int:
    """A 32-bit seed for one test, from the regression seed and ``key`` (a test name and
    index): the same seed and key always give the same stimulus, whichever tests run."""
    text = "/".join(str(k) for k in (REGRESSION_SEED, *key))
    return zlib.crc32(text.encode())


def to_signed(value: int, bits: int) -> int:
    """``value`` (``bits`` wide, unsigned) as a two's-complement number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class CocotbContext:
    """The testbench context of :mod:`convhw.sim_helpers` over cocotb handles.

    Parameters
    ----------
    clk : cocotb handle
        The clock; :meth:`tick` waits for its next falling edge.
    """

    def __init__(self, clk) -> None:
        self._clk = clk

    def set(self, handle, value) -> None:
        """Drive ``handle`` from now on (seen by the DUT at the next rising edge)."""
        handle.value = int(value)

    def get(self, handle) -> int:
        """The value of ``handle`` settled at this falling edge, as an unsigned integer."""
        try:
            return int(handle.value)
        except ValueError:
            raise AssertionError(f"{handle._path} is not a resolvable value: "
                                 f"{handle.value}") from None

    async def tick(self) -> None:
        """Wait one cycle: for the next falling edge of the clock."""
        await FallingEdge(self._clk)


class Bus:
    """The handles of a Wishbone port named ``prefix`` (``dut.wb__cyc`` ...), as attributes
    named like the members of :class:`~convhw.gateware.wishbone.WishboneSignature`."""

    MEMBERS = ("cyc", "stb", "we", "adr", "dat_w", "sel", "dat_r", "ack", "err")

    def __init__(self, dut, prefix: str = "wb") -> None:
        for name in self.MEMBERS:
            setattr(self, name, getattr(dut, f"{prefix}__{name}"))


class Inserter:
    """Yes or no, one per call: when a testbench inserts an idle cycle, drops ``valid`` or
    answers late.

    Either a fixed pattern repeated for ever (``itertools.cycle``), or seeded random draws that
    are yes with ``probability``.

    Parameters
    ----------
    pattern : iterable of bool, optional
        Repeated in order, e.g. ``[1, 1, 0]``.
    seed : int, optional
        Seed of the random draws (when no pattern is given).
    probability : float
        Chance of a yes per draw.
    """

    def __init__(self, pattern: Iterable[int] | None = None, *, seed: int | None = None,
                 probability: float = 0.5) -> None:
        if pattern is not None:
            pattern = [bool(v) for v in pattern]
            if not pattern:
                raise ValueError("pattern must not be empty")
            self._cycle = itertools.cycle(pattern)
            self._rng = None
        else:
            if not 0 <= probability <= 1:
                raise ValueError(f"probability must lie in [0, 1], not {probability!r}")
            self._cycle = None
            self._rng = random.Random(seed)
        self._probability = probability

    @classmethod
    def never(cls) -> Inserter:
        return cls([0])

    @classmethod
    def always(cls) -> Inserter:
        return cls([1])

    def __iter__(self):
        return self

    def __next__(self) -> bool:
        if self._cycle is not None:
            return next(self._cycle)
        return self._rng.random() < self._probability

    def count(self, limit: int) -> int:
        """Consecutive yes draws, at most ``limit``: a number of idle cycles or wait states."""
        n = 0
        while n < limit and next(self):
            n += 1
        return n


class JobFailure(AssertionError):
    """A job of a layer went wrong: status, error code, cycle count or results."""


def check_equal(got, expected, *, what: str, context: str = "") -> None:
    """Compare two arrays element by element; on a difference, raise an AssertionError naming
    ``what``, how many elements differ, the first one (index, both values) and ``context``
    (the layer, the seed, how to reproduce)."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    tail = f"\n{context}" if context else ""
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {expected.shape}{tail}")
    bad = np.argwhere(got != expected)
    if len(bad):
        first = tuple(int(i) for i in bad[0])
        raise AssertionError(
            f"{what}: {len(bad)} of {got.size} elements differ; first at index {first}: "
            f"got {got[first]}, expected {expected[first]}{tail}")


class TB:
    """One testbench: the DUT's clock, reset and (if it has one) Wishbone port, and the host
    flow of the engine.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    seed : int
        Seed of everything random the testbench does (idles, orders, waits).
    config : EngineConfig, optional
        For the engine's host flow: its register map and the compiler's configuration.
    max_idle : int
        Idle cycles before each bus access: 0 to ``max_idle``, uniformly
        (:class:`convhw.sim_helpers.RandomIdle`).
    context : str
        Printed with every failure: what is being tested and how to reproduce it.
    """

    def __init__(self, dut, *, seed: int, config: EngineConfig | None = None,
                 max_idle: int = 2, context: str = "") -> None:
        self.dut = dut
        self.seed = seed
        self.rng = random.Random(seed)
        self.clk = dut.clk
        self.rst = dut.rst
        self.ctx = CocotbContext(self.clk)
        self.bus = Bus(dut) if hasattr(dut, "wb__cyc") else None
        self.idle = RandomIdle(self.rng.getrandbits(32), max_idle)
        self.config = config
        self.regmap = engine_register_map(config) if config is not None else None
        self.context = context
        self.log = logging.getLogger(f"cocotb.tb.{dut._name}")
        self._clock = None
        self.bus_accesses = 0

    # -- clock, reset, time -------------------------------------------------------------------

    async def start(self, reset_cycles: int = 3, inputs: dict[str, int] | None = None) -> None:
        """Start the clock, hold reset for ``reset_cycles`` and leave the testbench at a
        falling edge with reset released. Logs the seed first.

        ``inputs`` (top-level input name -> value) are driven from the start: Icarus leaves an
        undriven input at X, which the first edge after reset would register.
        """
        self.log.info("test seed %d (SEED=%d)", self.seed, REGRESSION_SEED)
        if self.context:
            self.log.info("context:\n%s", self.context)
        for name, value in (inputs or {}).items():
            getattr(self.dut, name).value = int(value)
        self.bus_idle()
        self.rst.value = 1
        self._clock = Clock(self.clk, PERIOD_NS, unit="ns")
        self._clock.start(start_high=False)
        await self.reset(reset_cycles)

    def bus_idle(self) -> None:
        """Put the master's outputs in their idle state (no access, defined values)."""
        if self.bus is not None:
            for name in ("cyc", "stb", "we", "adr", "dat_w", "sel"):
                getattr(self.bus, name).value = 0

    async def reset(self, cycles: int = 2) -> None:
        """Synchronous reset for ``cycles`` rising edges; the bus is idle throughout."""
        self.bus_idle()
        self.rst.value = 1
        for _ in range(cycles):
            await self.ctx.tick()
        self.rst.value = 0
        await self.ctx.tick()

    async def tick(self, cycles: int = 1) -> None:
        """Wait ``cycles`` cycles, from falling edge to falling edge."""
        if cycles > 16:
            # One timer instead of a callback per cycle; it ends in the low half of the clock,
            # away from both edges, and the falling edge after it restores the phase.
            await Timer((cycles - 1) * PERIOD_NS + PERIOD_NS // 5, unit="ns")
            await FallingEdge(self.clk)
        else:
            for _ in range(cycles):
                await self.ctx.tick()

    async def drive(self, cycles: list[dict[str, int]], outputs: Iterable[str],
                    defaults: dict[str, int] | None = None) -> dict[str, list[int]]:
        """Drive one dict of inputs per cycle (inputs a dict omits take ``defaults``) and
        record ``outputs`` (unsigned) in every cycle.

        ``result[name][t]`` is the output in cycle ``t``, before the edge that samples cycle
        ``t``'s inputs: it reflects the inputs of cycles ``< t`` only (a registered output of
        latency ``L`` shows cycle ``t``'s inputs in ``result[name][t + L]``).
        """
        outputs = list(outputs)
        handles = {name: getattr(self.dut, name) for name in outputs}
        defaults = dict(defaults or {})
        inputs = {name: getattr(self.dut, name)
                  for name in {*defaults, *(k for c in cycles for k in c)}}
        result = {name: [] for name in outputs}
        for values in cycles:
            for name, handle in handles.items():
                result[name].append(self.ctx.get(handle))
            for name, handle in inputs.items():
                handle.value = int(values.get(name, defaults.get(name, 0)))
            await self.ctx.tick()
        return result

    # -- Wishbone master ------------------------------------------------------------------------

    async def write(self, address: int, value: int, *, idle: bool = True) -> None:
        """Write a word (idle cycles first); :class:`~convhw.sim_helpers.BusError` on ERR."""
        if idle:
            await self.idle.wait(self.ctx)
        self.bus_accesses += 1
        await wb_write(self.ctx, self.bus, address, value & 0xFFFFFFFF)

    async def read(self, address: int, *, idle: bool = True) -> int:
        """Read a word (idle cycles first); :class:`~convhw.sim_helpers.BusError` on ERR."""
        if idle:
            await self.idle.wait(self.ctx)
        self.bus_accesses += 1
        return await wb_read(self.ctx, self.bus, address)

    async def access(self, address: int, *, write: int | None = None,
                     sel: int = 0b1111) -> tuple[bool, int]:
        """One raw access: ``(ack, data)``, ``ack`` False on ERR."""
        await self.idle.wait(self.ctx)
        self.bus_accesses += 1
        return await wb_transaction(self.ctx, self.bus, address, write=write, sel=sel)

    async def write_register(self, name: str, value: int) -> None:
        await self.write(self.regmap[name].address, value)

    async def read_register(self, name: str) -> int:
        return await self.read(self.regmap[name].address)

    # -- the engine's host flow -----------------------------------------------------------------

    async def load(self, program: JobProgram, *, shuffle: bool = True) -> None:
        """The tensor loader: a job's register writes, then its input and weight words over
        the bus (in a random order unless ``shuffle`` is False, so that the buffers' address
        decoding sees every order)."""
        for address, value in program.registers:
            await self.write(address, value)
        words = [(program.input_base + 4 * i, int(w)) for i, w in enumerate(program.input_words)]
        words += [(program.weight_base + 4 * i, int(w))
                  for i, w in enumerate(program.weight_words)]
        if shuffle:
            self.rng.shuffle(words)
        for address, value in words:
            await self.write(address, value)

    async def start_job(self) -> None:
        await self.write_register("CTRL", 1 << self.regmap["CTRL"].field("START").offset)

    async def wait_job(self, expected_cycles: int, *, what: str = "job") -> int:
        """Wait for the running job to leave BUSY; returns STATUS.

        Polls STATUS over the bus, from the start (a quarter of the jobs) or after a random
        part of the job's modelled length, so that both busy and done polls happen without
        simulating every cycle of a long job through the bus.
        """
        if self.rng.random() >= 0.25:
            await self.tick(int(expected_cycles * self.rng.uniform(0.3, 0.95)))
        for _ in range(expected_cycles + 1000):
            status = await self.read_register("STATUS")
            if not status & BUSY:
                return status
        raise JobFailure(f"{what}: the engine is still busy {expected_cycles + 1000} polls "
                         f"after START (model: {expected_cycles} cycles)\n{self.context}")

    async def run_job(self, step, program: JobProgram, *, what: str = "job",
                      start: bool = True) -> int:
        """Start a loaded job (unless ``start`` is False: already started), wait for it and
        check STATUS, ERROR and CYCLES against the cycle model; returns the cycles."""
        expected = job_cycles(step.job)
        if start:
            await self.start_job()
        status = await self.wait_job(expected, what=what)
        error = await self.read_register("ERROR")
        cycles = await self.read_register("CYCLES")
        if status != DONE or error:
            raise JobFailure(f"{what}: STATUS {status:#05b}, ERROR {error}, expected DONE and "
                             f"no error; {step.job}\n{self.context}")
        if cycles != expected:
            raise JobFailure(f"{what}: CYCLES {cycles}, the cycle model (job_cycles) says "
                             f"{expected}; {step.job}\n{self.context}")
        return cycles

    async def read_results(self, step, program: JobProgram, out: np.ndarray) -> None:
        """Read a read-out job's results through the OUTPUT window (in a random order) into
        its region of the batched output ``out``."""
        addresses = [int(a) for a in program.output_addresses]
        order = list(range(len(addresses)))
        self.rng.shuffle(order)
        values = [0] * len(addresses)
        for i in order:
            values[i] = to_signed(await self.read(addresses[i]), 32)
        job = step.job
        out3 = out.reshape(out.shape[0], out.shape[1], *(1,) * (5 - out.ndim), *out.shape[2:])
        block = np.array(values, dtype=np.int64).reshape(
            *(a.out_len for a in job.axes), step.oc_count)
        region = tuple(slice(a.out_start, a.out_start + a.out_len) for a in job.axes)
        out3[(step.batch, slice(step.oc_start, step.oc_start + step.oc_count), *region)] = \
            np.moveaxis(block, -1, 0)

    async def run_steps(self, spec, steps, x, weight, bias, out: np.ndarray) -> list[int]:
        """Every step of a layer: load, start, wait, check status and cycles, read the results
        into ``out``. Returns each job's CYCLES."""
        cycles = []
        for number, step in enumerate(steps):
            program = JobProgram.build(self.regmap, self.config, step, spec, x, weight, bias)
            await self.load(program)
            what = f"job {number} of {len(steps)}"
            cycles.append(await self.run_job(step, program, what=what))
            if program.output_addresses is not None:
                await self.read_results(step, program, out)
        return cycles

    async def run_layer(self, spec, x, weight, bias=None, *, skip_borders: bool = True):
        """Compile a layer, run all its jobs through the bus and compare the result with
        :func:`convhw.golden.convolution`, bit for bit. Returns the steps and their cycles."""
        steps = compile_layer(spec, x.shape, self.config, skip_borders=skip_borders)
        out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
        cycles = await self.run_steps(spec, steps, x, weight, bias, out)
        expected = golden.convolution(spec, x, weight, bias)
        check_equal(out, expected, what=f"{spec.op_name} output (batch, channel, *spatial)",
                    context=self.context)
        return steps, cycles

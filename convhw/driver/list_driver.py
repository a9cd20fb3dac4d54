"""The host flow of the list engine, written once: place a list in device memory, start it, wait,
read the results.

The core is async (:func:`run_layers`, :func:`run_list`) and talks to a *bus*: any object with
the awaitable methods

* ``write(address, value)`` / ``read(address)``: a 32-bit control register (byte address of
  :func:`convhw.registers.list_register_map`), raising :class:`~convhw.driver.transport.BusError`
  on an error answer;
* ``mem_write(address, data)`` / ``mem_read(address, size)``: bytes of the engine's memory
  (``uint8`` arrays);
* ``wait_idle(status_address, max_cycles)``: return once STATUS.BUSY is 0, raise
  :class:`TimeoutError` after ``max_cycles`` engine cycles.

An Amaranth testbench runs the core on the simulated engine itself (:class:`SimulatorBus`: the
awaits are clock ticks); a synchronous transport (Verilator, a board) runs the same coroutine
through :func:`run_sync` (:class:`SyncBus`: nothing ever suspends). :class:`ListDriver` is the
blocking face the devices use: one lock per driver, so two threads can share a device.

A list that outlives its cycle budget is aborted (CTRL.ABORT, then waiting for BUSY to clear)
before the :class:`TimeoutError` is raised, so the engine is usable afterwards.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from .. import progress
from ..compiler.cycles import job_cycles, timing
from ..compiler.image import Layer, ListPlan, ResidentImages, plan
from ..compiler.lower import bank_config
from ..config import EngineConfig
from ..memory_model import MemoryModel
from ..registers import list_register_map
from .driver import ConvEngineError
from .transport import WriteDamaged

__all__ = ["ListDriver", "ListRun", "SimulatorBus", "SyncBus", "check_identity", "cycle_budget",
           "expected_cycles", "run_layers", "run_list", "run_sync", "stop_running"]

START, ABORT = 0b01, 0b10
BUSY, ERROR = 0b001, 0b100
#: Cycles an aborted list may take to stop (outstanding bursts finish first).
ABORT_CYCLES = 100_000


@dataclasses.dataclass(frozen=True)
class ListRun:
    """What one list run returned and cost.

    ``cycles`` is the CYCLES register (START to DONE), ``busy_cycles`` BUSY_CYCLES (the cycles
    in which the compute core was busy: ``cycles`` with the loads and writes all hidden and
    no hand-overs between jobs); ``engine_bytes`` the bytes the engine
    moved on its master port as the compiler counts them (descriptors, parameters, inputs,
    weights, outputs: the bytes used; the Verilator harness counts whole read beats, which is
    more where a load uses part of a beat); ``host_bytes`` the bytes the host wrote into and
    read from device memory."""

    outputs: list
    cycles: int
    busy_cycles: int
    jobs: int
    engine_bytes: int
    host_bytes: int
    plan: ListPlan


def _list_figures(placed: ListPlan, config: EngineConfig) -> tuple[int, int, int]:
    """A list's compute cycles (its jobs' sum), jobs and bytes moved, as the compiler counts."""
    constants = timing(bank_config(config))
    compute = sum(job_cycles(step.job, constants) for record in placed.records
                  for step in record.steps)
    jobs = sum(len(record.steps) for record in placed.records)
    return compute, jobs, placed.builder.traffic.total


def cycle_budget(placed: ListPlan, config: EngineConfig, memory: MemoryModel) -> int:
    """A generous bound on a list's cycles, so that a hung engine is noticed: twice the sum of
    its jobs' compute cycles, its traffic at the memory's bandwidth and a latency per job."""
    compute, jobs, moved = _list_figures(placed, config)
    return 2 * (compute + moved // memory.bytes_per_cycle + jobs * (4 * memory.latency + 200)
                ) + 20_000


def expected_cycles(placed: ListPlan, config: EngineConfig, memory: MemoryModel) -> int:
    """A quick, rough figure of a list's cycles, for a progress bar: its jobs' compute cycles
    or its traffic at the memory's bandwidth, whichever is more, and four latencies per job
    (within 0.1 % on ResNet-18's 3x3 64->64 56x56 layer; a small layer's loads and drain,
    which nothing overlaps, take more). The exact model,
    :func:`convhw.compiler.cycles.list_cycles`, takes seconds on a large list."""
    compute, jobs, moved = _list_figures(placed, config)
    return max(compute, moved // memory.bytes_per_cycle) + jobs * 4 * memory.latency


async def check_identity(bus, regmap) -> None:
    """Read ID, HWCFG0 (array and widths) and HWCFG4 (memory port and arithmetic features)
    and refuse an engine built for another configuration."""
    ident = await bus.read(regmap["ID"].address)
    if ident != regmap["ID"].reset:
        raise ConnectionError(f"no convhw list engine answers: ID reads {ident:#010x}")
    for name in ("HWCFG0", "HWCFG4"):
        hwcfg = await bus.read(regmap[name].address)
        if hwcfg != regmap[name].reset:
            raise ConnectionError(f"the engine's {name} {hwcfg:#010x} does not match this "
                                  f"configuration's {regmap[name].reset:#010x}")


async def stop_running(bus, regmap) -> None:
    """Abort a list left running, and wait until it has stopped. (A host that lost its link
    while it waited leaves one: it would ignore the next START, and go on reading and writing
    the memory the next list is placed in.)"""
    status_address = regmap["STATUS"].address
    if await bus.read(status_address) & BUSY:
        await bus.write(regmap["CTRL"].address, ABORT)
        await bus.wait_idle(status_address, ABORT_CYCLES)


async def run_list(bus, regmap, list_address: int, *, max_cycles: int,
                   expected_cycles: int | None = None, label: str = "list"
                   ) -> tuple[int, int]:
    """Start the list at ``list_address``, wait for it and return CYCLES and BUSY_CYCLES; raise
    :class:`ConvEngineError` with ERROR's code and job if it failed, :class:`TimeoutError`
    (after aborting it) if it outlived ``max_cycles``.

    A list whose ``expected_cycles`` take long at the bus's ``cycles_per_second`` (a rough
    figure of the simulator's speed; a bus without one gets no bar) is waited for in steps,
    with a progress bar (:mod:`convhw.progress`, ``label`` its name) over its cycles."""
    status_address = regmap["STATUS"].address
    await stop_running(bus, regmap)
    await bus.write(regmap["LIST_ADDR"].address, list_address)
    # Read back before START: a write that reached the engine damaged (a noisy serial line
    # whose CRC let it by) must not start a list from the wrong place.
    written = await bus.read(regmap["LIST_ADDR"].address)
    if written != list_address:
        raise WriteDamaged(f"LIST_ADDR reads back {written:#x} after {list_address:#x} was "
                           f"written: the write was damaged on its way to the engine")
    await bus.write(regmap["CTRL"].address, START)
    try:
        await _wait_idle(bus, status_address, max_cycles, expected_cycles, label)
    except TimeoutError:
        await bus.write(regmap["CTRL"].address, ABORT)
        await bus.wait_idle(status_address, ABORT_CYCLES)
        raise TimeoutError(f"the list at {list_address:#x} was still running after "
                           f"{max_cycles} cycles; it was aborted") from None
    status = await bus.read(status_address)
    if status & ERROR:
        error = await bus.read(regmap["ERROR"].address)
        raise ConvEngineError(error & 0xFF, error >> 16)
    return (await bus.read(regmap["CYCLES"].address),
            await bus.read(regmap["BUSY_CYCLES"].address))


async def _wait_idle(bus, status_address: int, max_cycles: int, expected: int | None,
                     label: str) -> None:
    """``bus.wait_idle``; for a long list in steps of a quarter of a second or so, each
    moving a progress bar on (see :func:`run_list`)."""
    rate = getattr(bus, "cycles_per_second", None)
    if not expected or not rate or not progress.is_long(expected / rate):
        await bus.wait_idle(status_address, max_cycles)
        return
    step = max(100, int(rate) // 4)
    waited = 0
    with progress.bar(total=expected, desc=f"convhw: {label}", unit="cycle",
                      unit_scale=True) as bar:
        while True:
            cycles = min(step, max_cycles - waited)
            try:
                await bus.wait_idle(status_address, cycles)
                return
            except TimeoutError:
                waited += cycles
                if waited >= max_cycles:
                    raise TimeoutError(f"the engine stayed busy for {max_cycles} cycles"
                                       ) from None
                bar.update(max(0, min(cycles, expected - bar.n)))


async def run_layers(bus, config: EngineConfig, x, layers, *, chain: bool = True,
                     memory: MemoryModel | None = None, memory_size: int | None = None,
                     max_cycles: int | None = None, read_all: bool = True,
                     resident: ResidentImages | None = None) -> ListRun:
    """Run ``layers`` (:class:`~convhw.compiler.image.Layer`) on ``x`` as one list: write the
    input, every layer's weights and parameters and the list into device memory, zero the
    output tensors the next layer reads (their padding channels), run the list and read
    every layer's output (``read_all`` False: only the last; the others are None). With
    ``chain`` each layer reads the previous one's output.

    With ``resident`` (:class:`~convhw.compiler.image.ResidentImages` at the top of device
    memory) the images of layers with a ``resident_key`` are written only when they are not
    there yet: its token is read back first (a device that lost its memory gets everything
    anew), and when this run's tensors would reach the images, all are forgotten and written
    again below the top. The new images are committed once the list has run."""
    placed = _place(config, x, layers, chain, memory_size, resident)
    try:
        await stop_running(bus, list_register_map(config))
        host = 0
        if resident is not None and placed.resident_bytes:
            token = await bus.mem_read(resident.token_address, resident.TOKEN_BYTES)
            host += resident.TOKEN_BYTES
            if not resident.check_token(token):
                placed = _place(config, x, layers, chain, memory_size, resident)
        run = await _run_planned(bus, config, placed, layers, memory, max_cycles, read_all,
                                 host, chain)
    except BaseException:
        if resident is not None:
            resident.discard()
        raise
    if resident is not None:
        resident.commit()
    return run


def _place(config, x, layers, chain, memory_size, resident) -> ListPlan:
    """:func:`~convhw.compiler.image.plan`, the kept images moved or left out when this run's
    tensors would reach them, refused when it does not fit the device memory."""
    placed = plan(config, x, layers, chain=chain, resident=resident)
    if resident is not None and placed.end > resident.low:
        # This run's tensors reach the kept images: start the region afresh, and without it
        # when even then they do not fit.
        resident.clear()
        placed = plan(config, x, layers, chain=chain, resident=resident)
        if placed.end > resident.low:
            resident.discard()
            placed = plan(config, x, layers, chain=chain)
    if memory_size is not None and placed.end > memory_size:
        raise ValueError(f"the list and its tensors need {placed.end} bytes of device memory; "
                         f"the device has {memory_size}")
    return placed


async def _run_planned(bus, config, placed, layers, memory, max_cycles, read_all,
                       host, chain) -> ListRun:
    for address, data in placed.writes:
        await bus.mem_write(address, np.asarray(data, dtype=np.uint8))
        host += len(data)
    for record, address in list(zip(placed.records, placed.output_addresses))[:-1]:
        if chain:
            # Read by the next layer, padding channels included: those must be zero. (The
            # last output is only read by the host, which takes its real elements.)
            await bus.mem_write(address, np.zeros(record.output.size, dtype=np.uint8))
            host += record.output.size
    memory = memory or MemoryModel()
    if max_cycles is None:
        max_cycles = cycle_budget(placed, config, memory)
    jobs = sum(len(record.steps) for record in placed.records)
    expected = expected_cycles(placed, config, memory) if progress.enabled() else None
    cycles, busy_cycles = await run_list(
        bus, list_register_map(config), placed.list_address, max_cycles=max_cycles,
        expected_cycles=expected,
        label=(f"list of {len(layers)} layers, {jobs} jobs" if len(layers) > 1
               else f"layer of {jobs} job{'s' if jobs > 1 else ''}"))
    outputs = []
    for index, (record, address) in enumerate(zip(placed.records, placed.output_addresses)):
        if not read_all and index < len(placed.records) - 1:
            outputs.append(None)
            continue
        data = await bus.mem_read(address, record.output.size)
        host += record.output.size
        outputs.append(placed.unpack(index, data))
    return ListRun(outputs=outputs, cycles=cycles, busy_cycles=busy_cycles, jobs=jobs,
                   engine_bytes=placed.builder.traffic.total, host_bytes=host, plan=placed)


def run_sync(coroutine):
    """Run a coroutine whose awaits never suspend (those of a :class:`SyncBus`)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("run_sync: the coroutine suspended; its bus is not synchronous")


class SyncBus:
    """A synchronous transport (``write read mem_write mem_read wait_idle``) as a bus."""

    def __init__(self, transport) -> None:
        self.transport = transport

    @property
    def cycles_per_second(self) -> float | None:
        """The transport's rough speed, for progress bars (None: it gives none)."""
        return getattr(self.transport, "cycles_per_second", None)

    async def write(self, address, value):
        self.transport.write(address, value)

    async def read(self, address):
        return self.transport.read(address)

    async def mem_write(self, address, data):
        self.transport.mem_write(address, data)

    async def mem_read(self, address, size):
        return self.transport.mem_read(address, size)

    async def wait_idle(self, status_address, max_cycles):
        self.transport.wait_idle(status_address, max_cycles)


class SimulatorBus:
    """A :class:`~convhw.gateware.list_engine.ListEngine` in an Amaranth async testbench
    (``ctx``) as a bus: control accesses through the engine's AXI4-Lite or Wishbone port with
    :mod:`convhw.sim_helpers`, memory through ``memory`` (a
    :class:`~convhw.sim_memory.SparseMemory` that the memory process serves), which the host
    touches between clock ticks. STATUS is polled every ``poll`` cycles while waiting."""

    #: The Amaranth simulator's rough speed on the list engine, for progress bars.
    cycles_per_second = 500

    def __init__(self, ctx, engine, memory, *, poll: int = 16) -> None:
        self._ctx, self._engine, self._memory, self._poll = ctx, engine, memory, poll

    async def write(self, address, value):
        from ..sim_helpers import BusError as SimBusError
        from ..sim_helpers import axil_write, wb_write
        from .transport import BusError
        if self._engine.config.bus == "axi4":
            if await axil_write(self._ctx, self._engine.ctrl, address, value):
                raise BusError(f"write of {value:#x} to {address:#x} answered SLVERR")
            return
        try:
            await wb_write(self._ctx, self._engine.ctrl, address, value)
        except SimBusError as error:
            raise BusError(str(error)) from None

    async def read(self, address):
        from ..sim_helpers import BusError as SimBusError
        from ..sim_helpers import axil_read, wb_read
        from .transport import BusError
        if self._engine.config.bus == "axi4":
            value, resp = await axil_read(self._ctx, self._engine.ctrl, address)
            if resp:
                raise BusError(f"read of {address:#x} answered SLVERR")
            return value
        try:
            return await wb_read(self._ctx, self._engine.ctrl, address)
        except SimBusError as error:
            raise BusError(str(error)) from None

    async def mem_write(self, address, data):
        self._memory.write(address, bytes(np.asarray(data, dtype=np.uint8)))

    async def mem_read(self, address, size):
        return np.frombuffer(self._memory.read(address, size), dtype=np.uint8).copy()

    async def wait_idle(self, status_address, max_cycles):
        waited = 0
        while await self.read(status_address) & BUSY:
            if waited >= max_cycles:
                raise TimeoutError(f"the engine stayed busy for {max_cycles} cycles")
            await self._ctx.tick().repeat(self._poll)
            waited += self._poll


#: Times :meth:`ListDriver.run_layers` runs a call again after a damaged write.
REWRITES = 2


class ListDriver:
    """Runs layers and lists on the list engine behind ``transport`` (a synchronous transport
    with ``write read mem_write mem_read wait_idle``), built for ``config``, whose memory
    behaves as ``memory`` (for the cycle budget). Thread-safe: one call at a time."""

    def __init__(self, transport, config: EngineConfig, memory: MemoryModel | None = None,
                 *, memory_size: int | None = None) -> None:
        self._transport = transport
        self._config = config
        self._memory = memory or MemoryModel()
        self._memory_size = memory_size
        self._map = list_register_map(config)
        self._lock = threading.Lock()
        #: Calls run again after a damaged write (see :meth:`run_layers`).
        self.rewrites = 0
        # Layers with a `resident_key` keep their images at the top of device memory.
        size = memory_size
        if size is None:
            # (A property of the Verilated engine; a method, a bus read, of the serial link.)
            size = getattr(transport, "memory_size", None)
            size = size() if callable(size) else size
        self._resident = ResidentImages(size) if size else None

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def transport(self):
        return self._transport

    def _execute(self, make):
        """Run the coroutine ``make(bus)`` on the transport: in its simulator when it offers
        ``execute`` (the Amaranth device), else through a :class:`SyncBus`."""
        with self._lock:
            execute = getattr(self._transport, "execute", None)
            if execute is not None:
                return execute(make)
            return run_sync(make(SyncBus(self._transport)))

    def check_identity(self) -> None:
        """Read ID, HWCFG0 and HWCFG4 and refuse an engine built for another
        configuration."""
        self._execute(lambda bus: check_identity(bus, self._map))

    def run_layers(self, x, layers, *, chain: bool = True, read_all: bool = True) -> ListRun:
        """:func:`run_layers` on this driver's engine. A
        :class:`~convhw.driver.transport.WriteDamaged` (a damaged write carried out) runs the
        whole call again, up to :data:`REWRITES` times: it writes everything it needs
        anew, so whatever the damaged write changed is overwritten or not used."""
        for attempt in range(REWRITES + 1):
            try:
                return self._execute(lambda bus: run_layers(
                    bus, self._config, x, layers, chain=chain, memory=self._memory,
                    memory_size=self._memory_size, read_all=read_all,
                    resident=self._resident))
            except WriteDamaged:
                # What the damaged write changed may be a kept image: keep none.
                if self._resident is not None:
                    self._resident.clear()
                if attempt == REWRITES:
                    raise
                self.rewrites += 1

    @property
    def resident(self) -> ResidentImages | None:
        """The weight and parameter images kept in device memory (None: the transport does not
        tell the memory's size)."""
        return self._resident

    def forget_resident(self) -> None:
        """Write every kept image anew with its next run (after the device memory was written
        by someone else)."""
        if self._resident is not None:
            with self._lock:
                self._resident.clear()

    def run(self, spec, x, weight, bias=None, *, requantize=None, relu=False, input_zero=0,
            float_requantize=None) -> ListRun:
        """One layer as a list of its jobs; the :class:`ListRun` has its one output."""
        return self.run_layers(x, [Layer(spec, weight, bias, requantize, relu,
                                         input_zero=input_zero,
                                         float_requantize=float_requantize)])

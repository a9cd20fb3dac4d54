"""``AmaranthListTransport``: the list engine in the Amaranth simulator (``Device("amaranth")``).

The simulator runs in a thread of its own: one async testbench that takes coroutine factories
from a queue and runs each to completion on a :class:`~convhw.driver.list_driver.SimulatorBus`
(so a whole layer runs inside the simulation, and its awaits are clock ticks), beside a process
serving the master port from a :class:`~convhw.sim_memory.SparseMemory` under a
:class:`~convhw.memory_model.MemoryModel`. The thread is there because Amaranth's simulator
cannot be paused between two calls from the host; the host flow itself is the same coroutine
the Verilator device runs (:mod:`convhw.driver.list_driver`). Slow: a few thousand engine cycles
per second.
"""

from __future__ import annotations

import functools
import inspect
import queue
import threading

from ..config import EngineConfig
from ..memory_model import MemoryModel

__all__ = ["AmaranthListTransport"]


class AmaranthListTransport:
    """The list engine for ``config`` in the Amaranth simulator (see the module docs)."""

    def __init__(self, config: EngineConfig, memory: MemoryModel | None = None) -> None:
        from ..gateware.list_engine import ListEngine
        self._config = config
        self._model = memory or MemoryModel()
        self._engine = ListEngine(config)
        self._requests: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._simulate, daemon=True,
                                        name="convhw-amaranth-list")
        self._thread.start()

    @property
    def memory_model(self) -> MemoryModel:
        return self._model

    def _simulate(self) -> None:
        from amaranth.sim import Simulator

        from ..sim_memory import SparseMemory, axi4_slave, wishbone_slave
        from .list_driver import SimulatorBus
        dut = self._engine
        memory = SparseMemory(background=lambda address: 0)
        slave = axi4_slave if self._config.bus == "axi4" else wishbone_slave
        bus_name = "axi" if self._config.bus == "axi4" else "bus"
        options = {bus_name: dut.mem, "memory": memory}
        if "model" in inspect.signature(slave).parameters:
            options["model"] = self._model
        else:           # a slave without the bandwidth rule: latency and stalls only
            options.update(latency=self._model.latency, pause=self._model.stall_probability,
                           seed=self._model.stall_seed)

        async def testbench(ctx):
            bus = SimulatorBus(ctx, dut, memory)
            while True:
                make = self._requests.get()
                if make is None:
                    return
                try:
                    self._replies.put(("ok", await make(bus)))
                except Exception as error:          # handed to the caller's thread
                    self._replies.put(("error", error))

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_process(functools.partial(slave, **options))
        sim.add_testbench(testbench)
        try:
            sim.run()
        except BaseException as error:          # surface simulator failures to the caller
            self._replies.put(("crash", error))

    def execute(self, make):
        """Run the coroutine ``make(bus)`` in the simulation; return its value or raise its
        exception here."""
        with self._lock:
            if not self._thread.is_alive():
                raise RuntimeError("the Amaranth simulation has stopped")
            self._requests.put(make)
            status, value = self._replies.get()
        if status == "crash":
            raise RuntimeError(f"the Amaranth simulation failed: {value!r}") from value
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        with self._lock:
            if self._thread.is_alive():
                self._requests.put(None)
                self._thread.join()

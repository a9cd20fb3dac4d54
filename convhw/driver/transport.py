"""Transports: how the driver's bus words reach an engine.

A transport only reads and writes 32-bit words at byte addresses of the engine's register map
(see docs/registers.md), singly or in bursts of consecutive words, and can wait for the engine
to go idle. The driver (:mod:`convhw.driver.driver`) is the same over every transport, so the
register traffic of a layer is the same on the Amaranth simulator, on Verilator and on a board.

A board link (issue 5) implements the same five methods over a serial port.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading

import numpy as np

from ..config import EngineConfig

__all__ = ["AmaranthTransport", "BusError", "RecordingTransport", "Transport", "WriteDamaged"]


def locked(method):
    """A method that holds ``self._lock`` (a ``threading.RLock``): a simulated engine is one
    object in C++, which two threads must not drive at once."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class BusError(RuntimeError):
    """The engine answered a bus access with an error (an unmapped address, a write to a
    read-only register)."""


class WriteDamaged(ConnectionError):
    """A write reached the device damaged and was carried out (a noisy link whose check let
    it by): it may have changed any word. What the host wrote must be written again; the
    list driver does so by running the whole call again."""


class Transport:
    """The five operations a driver needs. Subclasses implement :meth:`read` and
    :meth:`write`; the rest have word-by-word defaults a faster link overrides."""

    def write(self, address: int, value: int) -> None:
        raise NotImplementedError

    def read(self, address: int) -> int:
        raise NotImplementedError

    def write_burst(self, address: int, words) -> None:
        for i, word in enumerate(np.asarray(words, dtype=np.uint32).tolist()):
            self.write(address + 4 * i, word)

    def read_burst(self, address: int, count: int) -> np.ndarray:
        return np.array([self.read(address + 4 * i) for i in range(count)], dtype=np.uint32)

    def wait_idle(self, status_address: int, max_cycles: int) -> None:
        """Return once STATUS.BUSY (bit 0) reads 0; raise :class:`TimeoutError` after about
        ``max_cycles`` engine cycles (polling transports count polls instead)."""
        for _ in range(max(1, max_cycles // 8)):
            if not self.read(status_address) & 1:
                return
        raise TimeoutError(f"the engine stayed busy for {max_cycles} cycles")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass
class RecordingTransport(Transport):
    """Wraps a transport and records every operation, so that two transports' traffic for the
    same layer can be compared."""

    inner: Transport
    log: list = dataclasses.field(default_factory=list)

    def write(self, address, value):
        self.log.append(("write", address, int(value)))
        self.inner.write(address, value)

    def read(self, address):
        value = self.inner.read(address)
        self.log.append(("read", address, value))
        return value

    def write_burst(self, address, words):
        words = np.asarray(words, dtype=np.uint32)
        self.log.append(("write_burst", address, tuple(words.tolist())))
        self.inner.write_burst(address, words)

    def read_burst(self, address, count):
        words = self.inner.read_burst(address, count)
        self.log.append(("read_burst", address, tuple(np.asarray(words).tolist())))
        return words

    def wait_idle(self, status_address, max_cycles):
        self.log.append(("wait_idle", status_address))
        self.inner.wait_idle(status_address, max_cycles)

    def close(self):
        self.inner.close()


class AmaranthTransport(Transport):
    """The engine in the Amaranth simulator, driven from ordinary Python calls.

    The simulator runs in a thread of its own inside one async testbench that carries out
    the requests put on a queue, one Wishbone transaction each; a call blocks until its
    transaction has finished. Slow (a few thousand engine cycles per second for the default
    preset) but it runs the Python design itself, with no build step.
    """

    def __init__(self, config: EngineConfig):
        from ..gateware.engine import Engine
        self._config = config
        self._engine = Engine(config)
        self._requests: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._simulate, daemon=True,
                                        name="convhw-amaranth-sim")
        self._thread.start()

    def _simulate(self) -> None:
        from amaranth.sim import Simulator

        from ..sim_helpers import BusError as SimBusError
        from ..sim_helpers import wb_read, wb_write
        dut = self._engine

        async def testbench(ctx):
            while True:
                request = self._requests.get()
                if request is None:
                    return
                kind, address, value = request
                try:
                    if kind == "write":
                        await wb_write(ctx, dut.wb, address, value)
                        self._replies.put(("ok", None))
                    elif kind == "read":
                        self._replies.put(("ok", await wb_read(ctx, dut.wb, address)))
                    else:                                  # wait: poll STATUS in the bench
                        for _ in range(value // 8 + 1):
                            if not (await wb_read(ctx, dut.wb, address)) & 1:
                                self._replies.put(("ok", None))
                                break
                        else:
                            self._replies.put(("timeout", value))
                except SimBusError as error:
                    self._replies.put(("error", str(error)))

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(testbench)
        try:
            sim.run()
        except BaseException as error:          # surface simulator failures to the caller
            self._replies.put(("crash", repr(error)))

    def _call(self, kind, address, value=None):
        if not self._thread.is_alive():
            raise RuntimeError("the Amaranth simulation has stopped")
        self._requests.put((kind, address, value))
        status, result = self._replies.get()
        if status == "error":
            raise BusError(result)
        if status == "timeout":
            raise TimeoutError(f"the engine stayed busy for {result} cycles")
        if status == "crash":
            raise RuntimeError(f"the Amaranth simulation failed: {result}")
        return result

    def write(self, address, value):
        self._call("write", address, int(value))

    def read(self, address):
        return self._call("read", address)

    def wait_idle(self, status_address, max_cycles):
        self._call("wait", status_address, max_cycles)

    def close(self):
        if self._thread.is_alive():
            self._requests.put(None)
            self._thread.join()

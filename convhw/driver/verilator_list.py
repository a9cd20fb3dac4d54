"""``ListVerilatorTransport``: the list engine, Verilated, with its memory, in this process.

The model is the :class:`~convhw.gateware.list_engine.ListEngine`'s generated Verilog (AXI4
ports: ``config.bus`` must be ``"axi4"``), Verilated and linked with ``csrc/list_harness.cpp``
into a shared library (:func:`convhw.driver.verilator_build.build_list`, cached per
configuration) and loaded with ctypes. The harness holds

* a byte memory of ``memory_size`` bytes behind the engine's AXI4 master, which the host reads
  and writes in no simulated time (:meth:`~ListVerilatorTransport.mem_write`,
  :meth:`~ListVerilatorTransport.mem_read`), served by the rules of a
  :class:`~convhw.memory_model.MemoryModel` (bandwidth credit shared by reads and writes, reads
  first; latency; seeded stalls), cycle for cycle as the Amaranth simulator's
  ``axi4_slave(model=...)`` does, so that a list takes the same CYCLES on both (without stalls:
  the stall generators differ); byte ranges answered SLVERR (:meth:`~ListVerilatorTransport.
  set_errors`); protocol checks (INCR bursts, full-width beats, no 4 KiB crossing, WLAST);
* an AXI4-Lite master on the control port: :meth:`~ListVerilatorTransport.read` and
  :meth:`~ListVerilatorTransport.write` of the registers of :func:`convhw.registers.
  list_register_map`.

:meth:`~ListVerilatorTransport.wait_idle` clocks the model in C++ until STATUS.BUSY clears;
ctypes releases the GIL during each call. Every call holds the transport's lock, so threads may
share a transport (their calls run one after the other).

Errors
------
* :class:`convhw.driver.transport.BusError`: a control access answered SLVERR (unmapped
  register, a locked register written while a list runs); :class:`BusTimeout` (also a
  :class:`TimeoutError`): not answered at all.
* :class:`TimeoutError`: :meth:`~ListVerilatorTransport.wait_idle` ran out of cycles.
* :class:`ProtocolError`: the engine broke an AXI4 rule the memory checks.
* :class:`ValueError` / :class:`TypeError`: an address, value or range that does not fit;
  nothing is simulated.

Example::

    placed = plan(config, x, layers)                      # convhw.compiler.image
    with ListVerilatorTransport(config, memory=MemoryModel(2, 20)) as bus:
        for address, data in placed.writes:
            bus.mem_write(address, data)
        regs = list_register_map(config)
        bus.write(regs["LIST_ADDR"].address, placed.list_address)
        bus.write(regs["CTRL"].address, 1)
        bus.wait_idle(regs["STATUS"].address, 10**8)
        cycles = bus.read(regs["CYCLES"].address)
"""

from __future__ import annotations

import ctypes
import functools
import numbers
import threading
from pathlib import Path

import numpy as np

from ..config import EngineConfig
from ..memory_model import MemoryModel
from ..registers import list_register_map
from . import transport as _transport

__all__ = ["BusTimeout", "ListVerilatorTransport", "ProtocolError"]

#: Version of the harness's C API this module speaks (``cvl_api_version``).
API_VERSION = 2
#: The memory's default size: 64 MiB.
DEFAULT_MEMORY_SIZE = 64 << 20
#: The AXI4 master's addresses are 32 bits wide.
MAX_MEMORY_SIZE = 1 << 32

_OK, _ERR, _TIMEOUT, _STILL_BUSY, _VIOLATION = 0, 1, 2, 3, 4
_WORD_MAX = (1 << 32) - 1
_WORD_MIN = -(1 << 31)
_RESPONSES = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}

_u8_array = np.ctypeslib.ndpointer(dtype=np.uint8, ndim=1, flags="C_CONTIGUOUS")
_u8_array_out = np.ctypeslib.ndpointer(dtype=np.uint8, ndim=1, flags=("C_CONTIGUOUS",
                                                                        "WRITEABLE"))
_u64_array = np.ctypeslib.ndpointer(dtype=np.uint64, ndim=1, flags="C_CONTIGUOUS")
_u64_array_out = np.ctypeslib.ndpointer(dtype=np.uint64, ndim=1, flags=("C_CONTIGUOUS",
                                                                          "WRITEABLE"))
#: Channels of the transfer log, by the harness's numbers.
_CHANNELS = ("ar", "aw", "w", "r", "b")


_locked = _transport.locked


class BusTimeout(_transport.BusError, TimeoutError):
    """A control access answered with neither response (a hung slave)."""


class ProtocolError(RuntimeError):
    """The engine broke an AXI4 rule on its memory port (the memory's first complaint)."""


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    from .verilator_build import load_library
    handle, u32, u64, c_int = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int
    p_u32, p_u64 = ctypes.POINTER(u32), ctypes.POINTER(u64)
    return load_library(path, {
        "cvl_api_version": (c_int, []),
        "cvl_has_trace": (c_int, []),
        "cvl_beat_bytes": (c_int, []),
        "cvl_new": (handle, [u64]),
        "cvl_free": (None, [handle]),
        "cvl_reset": (None, [handle, c_int]),
        "cvl_set_model": (None, [handle, u32, u32, ctypes.c_double, u64]),
        "cvl_set_errors": (None, [handle, _u64_array, u64]),
        "cvl_mem_write": (c_int, [handle, u64, _u8_array, u64]),
        "cvl_mem_read": (c_int, [handle, u64, _u8_array_out, u64]),
        "cvl_memory_size": (u64, [handle]),
        "cvl_write": (c_int, [handle, u32, u32, p_u32]),
        "cvl_read": (c_int, [handle, u32, p_u32, p_u32]),
        "cvl_run_until_idle": (c_int, [handle, u32, u32, u64, u32, p_u64, p_u32]),
        "cvl_log_enable": (None, [handle, c_int]),
        "cvl_log_size": (u64, [handle]),
        "cvl_log_take": (u64, [handle, _u64_array_out, u64]),
        "cvl_step": (None, [handle, u64]),
        "cvl_cycles": (u64, [handle]),
        "cvl_bytes_read": (u64, [handle]),
        "cvl_bytes_written": (u64, [handle]),
        "cvl_write_beats": (u64, [handle]),
        "cvl_busy": (c_int, [handle]),
        "cvl_irq": (c_int, [handle]),
        "cvl_status": (u32, [handle]),
        "cvl_violation": (None, [handle, ctypes.c_char_p, u64]),
        "cvl_clear_status": (None, [handle]),
        "cvl_trace_open": (c_int, [handle, ctypes.c_char_p]),
        "cvl_trace_close": (None, [handle]),
    }, "cvl_api_version", API_VERSION)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class ListVerilatorTransport(_transport.Transport):
    """One Verilated list engine with its memory.

    Parameters
    ----------
    config : EngineConfig, preset name or None
        The engine (``None``: the default preset); ``config.bus`` must be ``"axi4"``. Its
        library is built on first use (tens of seconds to minutes, once per configuration and
        machine; see :mod:`convhw.driver.verilator_build`).
    memory : MemoryModel
        The memory's timing (default ``MemoryModel()``); :meth:`set_memory` changes it.
    memory_size : int
        Bytes of memory, zero at creation (default 64 MiB; the pages are only allocated when
        touched).
    trace_path : path, optional
        Write every signal of the design to this file from construction on: FST if it ends in
        ``.fst`` (needs liblz4 to build), VCD otherwise; a separately built library, several
        times slower to simulate.
    verilog : str, optional
        Verilog of module ``convhw_list`` to run instead of the generated engine: a stand-in
        for tests (:func:`~convhw.driver.verilator_build.build_list`).
    library : path, optional
        A library already built for ``config`` to load instead of building or finding one: the
        instrumented library of a profile-guided build, trained on
        (:mod:`convhw.driver.verilator_training`).

    Notes
    -----
    The model starts after 4 cycles of reset. :meth:`close` (or a ``with`` block) frees it; so
    does garbage collection.
    """

    _handle = None     # so that __del__ works when __init__ failed
    #: Roughly how many engine cycles a second it simulates, what a progress bar expects of a
    #: layer: the default preset computes 1.1 million a second on an idle machine
    #: (bench/results/sim_speed.md), 360,000 on a busy one without profile-guided optimisation.
    cycles_per_second = 500_000

    def __init__(self, config: EngineConfig | str | None = None, *,
                 memory: MemoryModel | None = None, memory_size: int = DEFAULT_MEMORY_SIZE,
                 trace_path=None, verilog: str | None = None, library=None) -> None:
        from .verilator_build import build_list
        self._lock = threading.RLock()
        self._config = EngineConfig.coerce(config)
        if self._config.bus != "axi4":
            raise ValueError(f"config.bus must be 'axi4', not {self._config.bus!r}")
        memory = MemoryModel() if memory is None else memory
        if not isinstance(memory, MemoryModel):
            raise TypeError(f"memory must be a MemoryModel, not {memory!r}")
        if not _is_int(memory_size):
            raise TypeError(f"memory_size must be an integer, not {memory_size!r}")
        if not 1 <= memory_size <= MAX_MEMORY_SIZE:
            raise ValueError(f"memory_size must be from 1 to {MAX_MEMORY_SIZE}, not "
                             f"{memory_size!r}")
        self._regmap = list_register_map(self._config)
        self._limit = 1 << max(12, self._regmap.address_width)   # the control port's bytes
        status = self._regmap["STATUS"]
        self._status_address = status.address
        self._busy_mask = status.field("BUSY").mask
        trace = None
        if trace_path is not None:
            trace_path = Path(trace_path)
            trace = "fst" if trace_path.suffix.lower() == ".fst" else "vcd"
        if library is not None:
            if trace_path is not None or verilog is not None:
                raise ValueError("library cannot be given with trace_path or verilog: it is "
                                 "already built")
            self._library = Path(library)
        else:
            self._library = build_list(self._config, trace=trace or False, verilog=verilog)
        self._lib = _load(str(self._library))
        beat = self._lib.cvl_beat_bytes()
        if beat != self._config.memory_width // 8:
            raise RuntimeError(f"{self._library} has a {8 * beat}-bit memory bus, the "
                               f"configuration {self._config.memory_width} bits")
        handle = self._lib.cvl_new(int(memory_size))
        if not handle:
            raise MemoryError(f"the Verilated list engine with {memory_size} bytes of memory "
                              f"could not be created")
        self._handle = handle
        self._memory_size = int(memory_size)
        self._word = ctypes.c_uint32()
        self._resp = ctypes.c_uint32()
        self._waited = ctypes.c_uint64()
        self.set_memory(memory)
        if trace_path is not None:
            code = self._lib.cvl_trace_open(handle, str(trace_path).encode())
            if code:
                self.close()
                raise OSError(f"cannot write the trace {trace_path}")

    # -- properties ------------------------------------------------------------------------

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def register_map(self):
        """The list engine's :class:`~convhw.regmap.RegisterMap`."""
        return self._regmap

    @property
    def library(self) -> Path:
        return self._library

    @property
    def memory(self) -> MemoryModel:
        """The memory's timing."""
        return self._memory

    @property
    def memory_size(self) -> int:
        return self._memory_size

    @property
    @_locked
    def cycle(self) -> int:
        """Clock cycles simulated since construction (control accesses, waits, resets)."""
        return int(self._lib.cvl_cycles(self._live()))

    @property
    @_locked
    def bytes_read(self) -> int:
        """Bytes the engine has read from the memory since construction (the bus width per R
        beat)."""
        return int(self._lib.cvl_bytes_read(self._live()))

    @property
    @_locked
    def bytes_written(self) -> int:
        """Bytes the engine has written to the memory since construction (those with their
        strobe set; a beat takes the bus width of bandwidth whatever its strobes: see
        :attr:`write_beats`)."""
        return int(self._lib.cvl_bytes_written(self._live()))

    @property
    @_locked
    def write_beats(self) -> int:
        """Write-data beats the engine has sent to the memory since construction."""
        return int(self._lib.cvl_write_beats(self._live()))

    @property
    @_locked
    def busy(self) -> bool:
        """The engine's ``busy`` output now."""
        return bool(self._lib.cvl_busy(self._live()))

    @property
    @_locked
    def irq(self) -> bool:
        """The engine's ``irq`` output now."""
        return bool(self._lib.cvl_irq(self._live()))

    @property
    @_locked
    def protocol_error(self) -> str | None:
        """The memory's first complaint about the engine's AXI4 traffic, or None."""
        handle = self._live()
        if not self._lib.cvl_status(handle) & 1:
            return None
        buffer = ctypes.create_string_buffer(256)
        self._lib.cvl_violation(handle, buffer, len(buffer))
        return buffer.value.decode()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.cycle} cycles"
        return f"<ListVerilatorTransport {self._config.describe()}, {self._memory}, {state}>"

    # -- life cycle ------------------------------------------------------------------------

    @_locked
    def close(self) -> None:
        """Free the model (and close its trace); idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.cvl_free(handle)

    def __enter__(self) -> ListVerilatorTransport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()

    @_locked
    def reset(self, cycles: int = 4) -> None:
        """Hold the engine's reset for ``cycles`` cycles; the memory's bursts in flight are
        dropped and its credit restored (its contents, error ranges, the counters and any
        protocol complaint are kept)."""
        if not _is_int(cycles) or not 1 <= cycles <= 1 << 20:
            raise ValueError(f"cycles must be an integer from 1 to {1 << 20}, not {cycles!r}")
        self._lib.cvl_reset(self._live(), int(cycles))

    @_locked
    def step(self, cycles: int) -> None:
        """Clock ``cycles`` cycles with the control port idle."""
        if not _is_int(cycles) or cycles < 0:
            raise ValueError(f"cycles must be a non-negative integer, not {cycles!r}")
        self._lib.cvl_step(self._live(), int(cycles))

    # -- the memory ------------------------------------------------------------------------

    @_locked
    def set_memory(self, memory: MemoryModel) -> None:
        """Serve the memory by ``memory``'s rules from now on (its credit restarts full; set
        it while the engine is idle)."""
        if not isinstance(memory, MemoryModel):
            raise TypeError(f"memory must be a MemoryModel, not {memory!r}")
        self._lib.cvl_set_model(self._live(), memory.bytes_per_cycle, memory.latency,
                                float(memory.stall_probability), int(memory.stall_seed))
        self._memory = memory

    @_locked
    def set_errors(self, ranges) -> None:
        """Answer the engine's accesses to the byte ranges ``[start, end)`` of ``ranges`` with
        SLVERR from now on (an empty list: none)."""
        pairs = []
        for item in ranges:
            try:
                start, end = item
            except (TypeError, ValueError):
                raise TypeError(f"ranges must hold (start, end) pairs, not {item!r}") from None
            if not (_is_int(start) and _is_int(end)) or not 0 <= start <= end < 1 << 64:
                raise ValueError(f"a range must be integers 0 <= start <= end, not {item!r}")
            pairs += [int(start), int(end)]
        array = np.ascontiguousarray(pairs, dtype=np.uint64)
        self._lib.cvl_set_errors(self._live(), array, len(pairs) // 2)

    @_locked
    def mem_write(self, addr: int, data) -> None:
        """Write ``data`` (bytes or a 1-D array of uint8) to the memory at byte ``addr``, in no
        simulated time."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            array = np.frombuffer(bytes(data), dtype=np.uint8)
        else:
            array = np.asarray(data)
            if array.ndim != 1 or array.dtype != np.uint8:
                raise TypeError(f"data must be bytes or a 1-D uint8 array, not {array.dtype} of "
                                f"shape {array.shape}")
            array = np.ascontiguousarray(array)
        self._check_range(addr, len(array))
        if self._lib.cvl_mem_write(self._live(), int(addr), array, len(array)):
            raise ValueError(f"{len(array)} bytes at {addr:#x} are beyond the memory")

    @_locked
    def mem_read(self, addr: int, n: int) -> np.ndarray:
        """``n`` bytes of the memory from byte ``addr`` on, as uint8, in no simulated time."""
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be a non-negative integer, not {n!r}")
        self._check_range(addr, int(n))
        data = np.empty(int(n), dtype=np.uint8)
        if self._lib.cvl_mem_read(self._live(), int(addr), data, len(data)):
            raise ValueError(f"{n} bytes at {addr:#x} are beyond the memory")
        return data

    @_locked
    def log_transfers(self, enable: bool = True) -> None:
        """Record every transfer on the memory bus from now on (or stop); :meth:`transfers`
        takes them."""
        self._lib.cvl_log_enable(self._live(), int(bool(enable)))

    @_locked
    def transfers(self) -> list[tuple]:
        """The transfers recorded since the last call, as the Python ``axi4_slave``'s trace
        gives them, with the harness's cycle numbers: ``(cycle, "ar", (addr, len))``,
        ``(cycle, "aw", (addr, len))``, ``(cycle, "r", (addr, resp, last))``, ``(cycle, "w",
        (strb, last))``, ``(cycle, "b", resp)``."""
        handle = self._live()
        n = int(self._lib.cvl_log_size(handle))
        words = np.empty(4 * n, dtype=np.uint64)
        n = int(self._lib.cvl_log_take(handle, words, n))
        result = []
        for cycle, channel, address, info in words[:4 * n].reshape(n, 4).tolist():
            name = _CHANNELS[channel]
            if name in ("ar", "aw"):
                details = (address, info)
            elif name == "r":
                details = (address, info & 3, bool(info >> 2))
            elif name == "w":
                details = (address, bool(info))
            else:
                details = info
            result.append((cycle, name, details))
        return result

    # -- the control port ------------------------------------------------------------------

    @_locked
    def write(self, addr: int, value: int) -> None:
        """Write a 32-bit register (``value`` in ``[-2**31, 2**32)``, negative values in two's
        complement)."""
        address = self._address(addr)
        if not _is_int(value) or not _WORD_MIN <= value <= _WORD_MAX:
            raise ValueError(f"value must be an integer in [{_WORD_MIN}, {_WORD_MAX}], not "
                             f"{value!r}")
        code = self._lib.cvl_write(self._live(), address, int(value) & _WORD_MAX,
                                   ctypes.byref(self._resp))
        self._check(code, "write", address)

    @_locked
    def read(self, addr: int) -> int:
        """Read a 32-bit register (unsigned)."""
        address = self._address(addr)
        code = self._lib.cvl_read(self._live(), address, ctypes.byref(self._word),
                                  ctypes.byref(self._resp))
        self._check(code, "read", address)
        return int(self._word.value)

    @_locked
    def wait_idle(self, status_address: int, max_cycles: int, *,
                  poll_interval: int = 64) -> int:
        """Clock the engine until STATUS.BUSY reads 0; returns the cycles that took.

        STATUS is read over the control port, in C++; between reads the harness clocks until
        the engine's ``busy`` output falls, or ``poll_interval`` cycles at most.

        Raises
        ------
        TimeoutError
            If the engine is still busy after ``max_cycles`` cycles (it is left running: abort
            the list with CTRL.ABORT or :meth:`reset`).
        ProtocolError
            If the memory found the engine breaking an AXI4 rule.
        """
        if status_address != self._status_address:
            raise ValueError(f"status_address must be STATUS's ({self._status_address:#x}), "
                             f"not {status_address!r}")
        if not _is_int(max_cycles) or max_cycles < 0:
            raise ValueError(f"max_cycles must be a non-negative integer, not {max_cycles!r}")
        if not _is_int(poll_interval) or not 1 <= poll_interval <= 1 << 20:
            raise ValueError(f"poll_interval must be an integer from 1 to {1 << 20}, not "
                             f"{poll_interval!r}")
        code = self._lib.cvl_run_until_idle(
            self._live(), self._status_address, self._busy_mask,
            min(int(max_cycles), (1 << 64) - 1), int(poll_interval),
            ctypes.byref(self._waited), ctypes.byref(self._resp))
        waited = int(self._waited.value)
        if code == _STILL_BUSY:
            raise TimeoutError(f"the list engine was still busy after {waited} cycles "
                               f"(max_cycles={max_cycles})")
        if code == _VIOLATION:
            raise ProtocolError(f"the engine broke the AXI4 protocol: {self.protocol_error}")
        self._check(code, "read", self._status_address)
        return waited

    # -- helpers ---------------------------------------------------------------------------

    def _live(self):
        if self._handle is None:
            raise ValueError("the ListVerilatorTransport is closed")
        return self._handle

    def _address(self, addr) -> int:
        if not _is_int(addr):
            raise TypeError(f"address must be an integer, not {addr!r}")
        addr = int(addr)
        if addr < 0 or addr % 4 or addr + 4 > self._limit:
            raise ValueError(f"address must be a multiple of 4 below {self._limit:#x}, not "
                             f"{addr:#x}")
        return addr

    def _check_range(self, addr, n: int) -> None:
        if not _is_int(addr):
            raise TypeError(f"address must be an integer, not {addr!r}")
        if addr < 0 or addr + n > self._memory_size:
            raise ValueError(f"{n} bytes at {addr:#x} are beyond the memory "
                             f"({self._memory_size:#x} bytes)")

    def _check(self, code: int, what: str, address: int) -> None:
        if code == _OK:
            return
        if code == _ERR:
            resp = int(self._resp.value)
            raise _transport.BusError(f"control {what} of {address:#x} answered "
                                      f"{_RESPONSES.get(resp, resp)}")
        if code == _TIMEOUT:
            raise BusTimeout(f"control {what} of {address:#x} not answered")
        raise RuntimeError(f"harness returned unknown code {code}")

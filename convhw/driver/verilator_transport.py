"""``VerilatorTransport``: the engine's Wishbone bus on a Verilated model, in this process.

The model is the engine's generated Verilog, Verilated and linked with a small C++ harness into a
shared library (:func:`convhw.driver.verilator_build.build`, cached per configuration) and
loaded with ctypes: no cocotb, no second process. Every call is one bus transfer (a word, a
burst, a scattered list, or waiting for a job), run to completion in C++; Python never steps the
clock word by word, and not at all while the engine computes (:meth:`VerilatorTransport.
wait_idle` clocks the model in C++ until STATUS.BUSY clears). ctypes releases the GIL during
each call.

It is a :class:`~convhw.driver.transport.Transport`, so :class:`~convhw.driver.driver.Driver`
runs layers on it (``Device("verilator")``); beyond that interface it offers scattered writes
and reads (:meth:`~VerilatorTransport.write_many`, :meth:`~VerilatorTransport.read_many`),
:meth:`~VerilatorTransport.reset`, :meth:`~VerilatorTransport.step` and a cycle count.

Addresses are byte addresses of the register map (:func:`convhw.registers.
engine_register_map`); the bus takes whole 32-bit words only, at addresses that are multiples
of 4. The bus timing is that of :mod:`convhw.gateware.wishbone` with a master that starts each
access in the cycle after the previous one was answered.

Errors
------
* :class:`BusError`: the engine answered an access with ERR (unmapped address, write to a
  read-only register or window). It is a :class:`convhw.driver.transport.BusError`, the error
  of every transport, hence a :class:`RuntimeError`, and names the address.
  :class:`BusTimeout`, a :class:`BusError` and a :class:`TimeoutError`: no answer at all.
* :class:`TimeoutError`: :meth:`~VerilatorTransport.wait_idle` ran out of cycles.
* :class:`ValueError` / :class:`TypeError`: an address or value that cannot be put on the bus
  (unaligned, beyond the bus's address space, not a 32-bit word); nothing is simulated.
"""

from __future__ import annotations

import ctypes
import functools
import numbers
import threading
from pathlib import Path

import numpy as np

from ..config import EngineConfig
from ..registers import engine_register_map
from . import transport as _transport

__all__ = ["BusError", "BusTimeout", "VerilatorTransport"]

#: Version of the harness's C API this module speaks (``cvh_api_version``).
API_VERSION = 1

_OK, _ERR, _TIMEOUT, _STILL_BUSY = 0, 1, 2, 3
_WORD_MAX = (1 << 32) - 1
_WORD_MIN = -(1 << 31)

_u32_array = np.ctypeslib.ndpointer(dtype=np.uint32, ndim=1, flags="C_CONTIGUOUS")
_u32_array_out = np.ctypeslib.ndpointer(dtype=np.uint32, ndim=1, flags=("C_CONTIGUOUS",
                                                                          "WRITEABLE"))


_locked = _transport.locked


class BusError(_transport.BusError):
    """The engine answered a bus access with ERR.

    Attributes
    ----------
    address : int
        Byte address of the access that failed (for a burst, the first word not acknowledged).
    write : bool
        Whether it was a write.
    """

    def __init__(self, message: str, address: int, write: bool) -> None:
        super().__init__(message)
        self.address = address
        self.write = write


class BusTimeout(BusError, TimeoutError):
    """The engine answered a bus access with neither ACK nor ERR (a hung slave)."""


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    handle, u32, u64, c_int = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int
    signatures = {
        "cvh_api_version": (c_int, []),
        "cvh_has_trace": (c_int, []),
        "cvh_new": (handle, []),
        "cvh_free": (None, [handle]),
        "cvh_reset": (None, [handle, c_int]),
        "cvh_write": (c_int, [handle, u32, u32]),
        "cvh_read": (c_int, [handle, u32, ctypes.POINTER(u32)]),
        "cvh_write_burst": (c_int, [handle, u32, _u32_array, u64]),
        "cvh_read_burst": (c_int, [handle, u32, _u32_array_out, u64]),
        "cvh_write_scatter": (c_int, [handle, _u32_array, _u32_array, u64]),
        "cvh_read_gather": (c_int, [handle, _u32_array, _u32_array_out, u64]),
        "cvh_wait_idle": (c_int, [handle, u32, u32, u64, u32, ctypes.POINTER(u64)]),
        "cvh_step": (None, [handle, u64]),
        "cvh_cycles": (u64, [handle]),
        "cvh_fault_address": (u32, [handle]),
        "cvh_trace_open": (c_int, [handle, ctypes.c_char_p]),
        "cvh_trace_close": (None, [handle]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    if lib.cvh_api_version() != API_VERSION:
        raise RuntimeError(f"{path} speaks harness API {lib.cvh_api_version()}, this module "
                           f"{API_VERSION}: rebuild it (delete the cache directory)")
    return lib


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class VerilatorTransport(_transport.Transport):
    """The Wishbone bus of one Verilated engine.

    Parameters
    ----------
    config : EngineConfig, preset name or None
        The engine (``None``: the default preset). Its library is built on first use (tens of
        seconds, once per configuration and machine; see :mod:`convhw.driver.verilator_build`).
    trace_path : path, optional
        Write every signal of the design to this file from construction on: FST if it ends in
        ``.fst`` (needs liblz4 to build), VCD otherwise. Uses a separately built tracing
        library, several times slower to simulate.

    Notes
    -----
    The model starts after 4 cycles of reset. A transport must not be used from two threads
    at once; separate transports are independent models. :meth:`close` (or a ``with`` block)
    frees the model; so does garbage collection.
    """

    _handle = None     # so that __del__ works when __init__ failed

    def __init__(self, config: EngineConfig | str | None = None, *, trace_path=None) -> None:
        from .verilator_build import build
        self._lock = threading.RLock()
        self._config = EngineConfig.coerce(config)
        self._regmap = engine_register_map(self._config)
        self._limit = 4 << self._regmap.bus_address_width      # bytes the bus can address
        status = self._regmap["STATUS"]
        self._status_address = status.address
        self._busy_mask = status.field("BUSY").mask
        trace = None
        if trace_path is not None:
            trace_path = Path(trace_path)
            trace = "fst" if trace_path.suffix.lower() == ".fst" else "vcd"
        self._library = build(self._config, trace=trace or False)
        self._lib = _load(str(self._library))
        handle = self._lib.cvh_new()
        if not handle:
            raise MemoryError("the Verilated engine could not be created")
        self._handle = handle
        self._waited = ctypes.c_uint64()
        self._word = ctypes.c_uint32()
        if trace_path is not None:
            code = self._lib.cvh_trace_open(handle, str(trace_path).encode())
            if code:
                self.close()
                raise OSError(f"cannot write the trace {trace_path}")

    # -- properties ------------------------------------------------------------------------

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def register_map(self):
        """The engine's :class:`~convhw.regmap.RegisterMap`."""
        return self._regmap

    @property
    def library(self) -> Path:
        """The shared library of the model."""
        return self._library

    @property
    @_locked
    def cycles(self) -> int:
        """Clock cycles simulated since construction (bus accesses, waits and resets)."""
        return int(self._lib.cvh_cycles(self._live()))

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.cycles} cycles"
        return f"<VerilatorTransport {self._config.describe()}, {state}>"

    # -- life cycle ------------------------------------------------------------------------

    @_locked
    def close(self) -> None:
        """Free the model (and close its trace); idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.cvh_free(handle)

    def __enter__(self) -> VerilatorTransport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()

    @_locked
    def reset(self, cycles: int = 4) -> None:
        """Hold the engine's reset for ``cycles`` cycles with the bus idle (the engine then is
        idle; buffer and accumulator contents survive, registers return to their reset
        values)."""
        if not _is_int(cycles) or not 1 <= cycles <= 1 << 20:
            raise ValueError(f"cycles must be an integer from 1 to {1 << 20}, not {cycles!r}")
        self._lib.cvh_reset(self._live(), int(cycles))

    @_locked
    def step(self, cycles: int) -> None:
        """Clock ``cycles`` cycles with the bus idle."""
        if not _is_int(cycles) or cycles < 0:
            raise ValueError(f"cycles must be a non-negative integer, not {cycles!r}")
        self._lib.cvh_step(self._live(), int(cycles))

    # -- single words ----------------------------------------------------------------------

    @_locked
    def write(self, addr: int, value: int) -> None:
        """Write one 32-bit word (``value`` in ``[-2**31, 2**32)``; negative values are written
        in two's complement)."""
        address = self._address(addr)
        if not _is_int(value) or not _WORD_MIN <= value <= _WORD_MAX:
            raise ValueError(f"value must be an integer in [{_WORD_MIN}, {_WORD_MAX}], not "
                             f"{value!r}")
        code = self._lib.cvh_write(self._live(), address, int(value) & _WORD_MAX)
        self._check(code, "write", write=True)

    @_locked
    def read(self, addr: int) -> int:
        """Read one 32-bit word (unsigned)."""
        address = self._address(addr)
        code = self._lib.cvh_read(self._live(), address, ctypes.byref(self._word))
        self._check(code, "read", write=False)
        return int(self._word.value)

    # -- many words ------------------------------------------------------------------------

    @_locked
    def write_burst(self, addr: int, words) -> None:
        """Write ``words`` (1-D, integer) to consecutive word addresses from ``addr`` on."""
        data = self._words(words, "words")
        address = self._address(addr, len(data))
        code = self._lib.cvh_write_burst(self._live(), address, data, len(data))
        self._check(code, "write", write=True)

    @_locked
    def read_burst(self, addr: int, n: int) -> np.ndarray:
        """Read ``n`` consecutive words from ``addr`` on, as ``uint32``."""
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be a non-negative integer, not {n!r}")
        address = self._address(addr, int(n))
        data = np.zeros(int(n), dtype=np.uint32)
        code = self._lib.cvh_read_burst(self._live(), address, data, len(data))
        self._check(code, "read", write=False)
        return data

    @_locked
    def write_many(self, addresses, values) -> None:
        """Write ``values[i]`` to ``addresses[i]``, in order (a register program in one
        call)."""
        addrs = self._addresses(addresses)
        data = self._words(values, "values")
        if len(addrs) != len(data):
            raise ValueError(f"addresses and values must have the same length, not "
                             f"{len(addrs)} and {len(data)}")
        code = self._lib.cvh_write_scatter(self._live(), addrs, data, len(data))
        self._check(code, "write", write=True)

    @_locked
    def read_many(self, addresses) -> np.ndarray:
        """Read the word at each of ``addresses``, in order, as ``uint32``."""
        addrs = self._addresses(addresses)
        data = np.zeros(len(addrs), dtype=np.uint32)
        code = self._lib.cvh_read_gather(self._live(), addrs, data, len(addrs))
        self._check(code, "read", write=False)
        return data

    # -- jobs ------------------------------------------------------------------------------

    @_locked
    def wait_idle(self, *args: int, poll_interval: int = 16) -> int:
        """wait_idle(max_cycles) or wait_idle(status_address, max_cycles)

        Clock the engine until STATUS.BUSY reads 0; returns the cycles that took. The second
        form is that of :meth:`Transport.wait_idle <convhw.driver.transport.Transport.
        wait_idle>`; ``status_address`` must then be STATUS's.

        STATUS is read over the bus, in C++, with ``poll_interval`` idle cycles between reads
        (each read takes 3 cycles: the host-fed engine's slave decodes the address first). The
        engine computes throughout, so polling costs no simulation time; the interval only
        bounds how late the end of a job is seen.

        Raises
        ------
        TimeoutError
            If the engine is still busy after ``max_cycles`` cycles (it is left running: abort
            it with CTRL.ABORT or :meth:`reset`).
        """
        if len(args) == 2:
            status_address, max_cycles = args
            if status_address != self._status_address:
                raise ValueError(f"status_address must be STATUS's "
                                 f"({self._status_address:#x}), not {status_address!r}")
        elif len(args) == 1:
            (max_cycles,) = args
        else:
            raise TypeError(f"wait_idle takes max_cycles or status_address and max_cycles, "
                            f"not {len(args)} arguments")
        if not _is_int(max_cycles) or max_cycles < 0:
            raise ValueError(f"max_cycles must be a non-negative integer, not {max_cycles!r}")
        if not _is_int(poll_interval) or not 0 <= poll_interval <= 1 << 20:
            raise ValueError(f"poll_interval must be an integer from 0 to {1 << 20}, not "
                             f"{poll_interval!r}")
        code = self._lib.cvh_wait_idle(self._live(), self._status_address, self._busy_mask,
                                       min(int(max_cycles), (1 << 64) - 1), int(poll_interval),
                                       ctypes.byref(self._waited))
        waited = int(self._waited.value)
        if code == _STILL_BUSY:
            raise TimeoutError(f"the engine was still busy after {waited} cycles "
                               f"(max_cycles={max_cycles})")
        self._check(code, "read", write=False)
        return waited

    # -- helpers ---------------------------------------------------------------------------

    def _live(self):
        if self._handle is None:
            raise ValueError("the VerilatorTransport is closed")
        return self._handle

    def _address(self, addr, words: int = 1) -> int:
        if not _is_int(addr):
            raise TypeError(f"address must be an integer, not {addr!r}")
        addr = int(addr)
        if addr < 0 or addr % 4:
            raise ValueError(f"address must be a non-negative multiple of 4, not {addr:#x}")
        if addr + 4 * max(words, 1) > self._limit:
            raise ValueError(f"address {addr:#x}{f' + {words} words' if words > 1 else ''} is "
                             f"beyond the engine's bus ({self._limit:#x} bytes)")
        return addr

    def _addresses(self, addresses) -> np.ndarray:
        array = np.asarray(addresses)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise TypeError(f"addresses must be a 1-D array of integers, not {array.dtype} "
                            f"of shape {array.shape}")
        if array.size:
            bad = array[(array < 0) | (array % 4 != 0) | (array >= self._limit)]
            if bad.size:
                self._address(int(bad[0]))         # raises, naming it
        return np.ascontiguousarray(array, dtype=np.uint32)

    @staticmethod
    def _words(words, name: str) -> np.ndarray:
        array = np.asarray(words)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise TypeError(f"{name} must be a 1-D array of integers, not {array.dtype} of "
                            f"shape {array.shape}")
        if array.dtype == np.uint32:
            return np.ascontiguousarray(array)
        if array.size and (int(array.min()) < _WORD_MIN or int(array.max()) > _WORD_MAX):
            raise ValueError(f"{name} must lie in [{_WORD_MIN}, {_WORD_MAX}]")
        return np.ascontiguousarray(array.astype(np.int64) & _WORD_MAX, dtype=np.uint32)

    def _check(self, code: int, what: str, *, write: bool) -> None:
        if code == _OK:
            return
        address = int(self._lib.cvh_fault_address(self._handle))
        if code == _ERR:
            raise BusError(f"bus {what} of {address:#x} answered with ERR", address, write)
        if code == _TIMEOUT:
            raise BusTimeout(f"bus {what} of {address:#x} not answered (no ACK or ERR)",
                             address, write)
        raise RuntimeError(f"harness returned unknown code {code}")

"""``SimulatedBoard``: the Verilated serial top behind a pseudo-terminal, a board without hardware.

A real board is a serial port: the host opens ``/dev/ttyUSB0`` with pyserial and exchanges the
bridge's frames (:mod:`convhw.serial_protocol`) with the UART of
:class:`~convhw.gateware.serial_list_engine.SerialListEngine`. To test that host code (framing,
time-outs, retries, the driver on top) without a board, and without a second code path for
simulation, :class:`SimulatedBoard` gives the same thing a port path: the serial top's Verilog,
Verilated with ``csrc/serial_harness.cpp`` (:func:`convhw.driver.verilator_build.build_serial`,
cached), runs in a C++ thread on the master side of a pseudo-terminal; the host opens the slave
side, :attr:`SimulatedBoard.port`, like any serial port::

    with SimulatedBoard("small") as board:
        link = serial.Serial(board.port, timeout=1)
        link.write(request)
        response = link.read(n)

The harness serialises the host's bytes onto the top's ``rx`` pin and decodes its ``tx`` pin,
bit by bit, at the UART's divisor. The simulation is not paced to wall time: while a byte is on
the line or the engine or bridge is busy it clocks the model as fast as Verilator evaluates it
(a few million cycles per second for the small preset); otherwise it sleeps in ``poll()`` until
the host writes, so an idle board costs no CPU.

Faults can be injected (:meth:`SimulatedBoard.inject`: flipped bits, lost bytes, a link that
goes dead for a while) to test the host's error handling against a design that really sees them.
"""

from __future__ import annotations

import ctypes
import functools
import numbers
import os
import tty
from pathlib import Path

from ..config import EngineConfig
from .verilator_build import DEFAULT_MEMORY_BYTES, build_serial, load_library

__all__ = ["FAULT_KINDS", "SimulatedBoard"]

#: Version of the harness's C API this module speaks (``csh_api_version``).
API_VERSION = 2
#: The fewest clock cycles per bit the harness accepts (mid-bit sampling needs a few).
#: The kinds of :meth:`SimulatedBoard.inject`, and their codes in the C API.
FAULT_KINDS = {"flip_to_device": 0, "drop_to_device": 1, "flip_to_host": 2, "drop_to_host": 3,
               "stall": 4}
_FLIPS = ("flip_to_device", "flip_to_host")
_U32_MAX = (1 << 32) - 1
_RESET_CYCLES = 4

_HANDLE, _U32, _U64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
_SIGNATURES = {
    "csh_api_version": (ctypes.c_int, []),
    "csh_has_trace": (ctypes.c_int, []),
    "csh_new": (_HANDLE, [ctypes.c_char_p]),
    "csh_free": (None, [_HANDLE]),
    "csh_reset": (ctypes.c_int, [_HANDLE, ctypes.c_int]),
    "csh_start": (ctypes.c_int, [_HANDLE, ctypes.c_int, _U32]),
    "csh_stop": (None, [_HANDLE]),
    "csh_cycles": (_U64, [_HANDLE]),
    "csh_idle": (ctypes.c_int, [_HANDLE]),
    "csh_inject": (ctypes.c_int, [_HANDLE, ctypes.c_int, _U64, _U32]),
    "csh_set_noise": (ctypes.c_int, [_HANDLE, ctypes.c_double, ctypes.c_double, _U64]),
    "csh_noise_counts": (None, [_HANDLE, ctypes.POINTER(_U64)]),
}


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    return load_library(path, _SIGNATURES, "csh_api_version", API_VERSION)


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, not {value!r}")
    return int(value)


class SimulatedBoard:
    """The serial top for ``config``, simulated behind a pseudo-terminal at :attr:`port`.

    Parameters
    ----------
    config : EngineConfig, preset name or None
        The engine behind the bridge. Its library is built on first use (once per
        configuration, clock and baud rate; see :mod:`convhw.driver.verilator_build`).
    memory_bytes : int
        The device memory of the serial top
        (:class:`~convhw.gateware.serial_list_engine.SerialListEngine`), 64 KiB by default.
    clock_hz, baudrate : int
        What the serial top is generated for. The UART's divisor (:attr:`divisor`, from
        :meth:`SerialEngine.divisor_for <convhw.gateware.serial_engine.SerialEngine.
        divisor_for>`: ``round(clock_hz / baudrate)``, at least 4, within 2 % of the rate) is
        all that matters to the simulation: it sets the simulated bit time.
    trace : path, optional
        Write every signal of the design to this file (FST if it ends in ``.fst``, which needs
        liblz4 to build; VCD otherwise). Uses a separately built tracing library, slower to
        simulate; idle stretches, in which the model is not clocked, do not appear in it.
    verilog : str, optional
        Verilog of module ``convhw_serial`` (ports ``clk, rst, rx, tx, busy, active``) to
        simulate instead of the generated serial top: a stand-in for tests.
    memory : str
        ``"block_ram"`` (default), or ``"sdram"``: the ULX3S's device memory, LiteDRAM and the
        behavioural SDRAM chip (:func:`convhw.boards.litedram.simulated_board_verilog`);
        ``clock_hz`` must then be the controller's 60 MHz and ``memory_bytes`` a power of two.
        The chip model prints each timing or protocol violation it sees (``sdram_chip: ...``).

    Notes
    -----
    The baud rate of the pseudo-terminal is meaningless: the host may open :attr:`port` at any
    rate (pyserial sets it, the pseudo-terminal ignores it). Simulated time is not wall time
    either: it runs as fast as Verilator evaluates while something is in flight, and stops
    while the board is idle (:attr:`idle`), so a host's time-outs see a board that is faster or
    slower than real hardware.

    The board holds the pseudo-terminal's slave side open itself, so a host may close and
    reopen the port; what the board sends while nobody has it open waits in the port's input
    buffer, as on a USB-UART. :meth:`close` (or a ``with`` block) stops the simulation thread
    and closes the pseudo-terminal; so does garbage collection.
    """

    _handle = None      # so that close() and __del__ work when __init__ failed
    _master = None
    _slave = None

    def __init__(self, config: EngineConfig | str | None = "small", *,
                 clock_hz: int = 1_000_000, baudrate: int = 125_000,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 trace: str | os.PathLike | None = None,
                 verilog: str | None = None, memory: str = "block_ram") -> None:
        self._config = EngineConfig.coerce(config)
        self._clock_hz = _check_int(clock_hz, "clock_hz", 1)
        self._baudrate = _check_int(baudrate, "baudrate", 1)
        # The rule of the generated top (a stand-in's divisor follows it too).
        from ..gateware.serial_engine import SerialEngine
        divisor = SerialEngine.divisor_for(self._clock_hz, self._baudrate)
        self._divisor = divisor
        trace_path = None if trace is None else Path(trace)
        trace_format = None
        if trace_path is not None:
            trace_format = "fst" if trace_path.suffix.lower() == ".fst" else "vcd"
        self._memory_bytes = _check_int(memory_bytes, "memory_bytes", 1)
        self._library = build_serial(self._config, clock_hz=self._clock_hz,
                                     baudrate=self._baudrate, memory_bytes=self._memory_bytes,
                                     trace=trace_format or False, verilog=verilog,
                                     memory=memory)
        self._lib = _load(str(self._library))
        handle = self._lib.csh_new(None if trace_path is None else str(trace_path).encode())
        if not handle:
            if trace_path is None:
                raise MemoryError("the Verilated serial top could not be created")
            if not self._lib.csh_has_trace():
                raise RuntimeError(f"{self._library} was built without tracing")
            raise OSError(f"cannot write the trace {trace_path}")
        self._handle = handle
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._port = os.ttyname(self._slave)
        self._start()

    # -- properties ------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """The path to open as the board's serial port (the pseudo-terminal's slave side,
        e.g. ``/dev/pts/5``): ``serial.Serial(board.port)``."""
        return self._port

    @property
    def memory_bytes(self) -> int:
        """The serial top's device memory in bytes."""
        return self._memory_bytes

    @property
    def divisor(self) -> int:
        """Clock cycles per bit on the simulated UART lines."""
        return self._divisor

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def library(self) -> Path:
        """The shared library of the model."""
        return self._library

    @property
    def cycles(self) -> int:
        """Clock cycles simulated since construction (resets included), as of the last bit
        time; it stands still while the board is idle."""
        return int(self._lib.csh_cycles(self._live()))

    @property
    def idle(self) -> bool:
        """Whether the simulation is asleep, waiting for the host: nothing in flight on either
        line, the engine and the bridge inactive, everything the board sent in the port. Just
        after the host writes it may still be True, until the board wakes up."""
        return bool(self._lib.csh_idle(self._live()))

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.port}, {self.cycles} cycles"
        return (f"<SimulatedBoard {self._config.describe()}, {self._divisor} cycles/bit, "
                f"{state}>")

    # -- faults ----------------------------------------------------------------------------

    def inject(self, kind: str, index: int, arg: int = 0) -> None:
        """Corrupt the link once, at byte ``index`` of one direction (0: the next byte), counted
        from this call on; host->device bytes are counted as the board takes them from the
        port, device->host bytes as it decodes them from ``tx``.

        ``kind``:

        * ``"flip_to_device"`` / ``"flip_to_host"``: invert bit ``arg`` (0..7, 0 the LSB) of
          that byte;
        * ``"drop_to_device"`` / ``"drop_to_host"``: lose that byte (``arg`` must be 0);
        * ``"stall"``: the line from the host goes dead for ``arg`` milliseconds of wall time
          from host->device byte ``index`` on: that byte and every byte the board takes from
          the port in that time are lost; later ones arrive.

        Several faults may be pending at once; the board applies them as the bytes pass.
        """
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, FAULT_KINDS))}, not "
                             f"{kind!r}")
        index = _check_int(index, "index", 0, (1 << 63) - 1)
        if kind in _FLIPS:
            arg = _check_int(arg, "arg", 0, 7)
        elif kind == "stall":
            arg = _check_int(arg, "arg", 0, _U32_MAX)
        else:
            arg = _check_int(arg, "arg", 0, 0)
        code = self._lib.csh_inject(self._live(), FAULT_KINDS[kind], index, arg)
        if code:
            raise RuntimeError(f"the harness refused the fault {kind!r} (code {code})")

    def set_noise(self, flip: float = 0.0, drop: float = 0.0, *, seed: int = 0) -> None:
        """From now on, flip one random bit of every byte of both directions with probability
        ``flip`` and lose a byte with probability ``drop``, drawn from a generator seeded with
        ``seed`` (``flip + drop <= 1``); ``set_noise()`` ends the noise. Resets
        :attr:`noise_counts`."""
        values = []
        for name, value in (("flip", flip), ("drop", drop)):
            if not isinstance(value, numbers.Real) or isinstance(value, bool) \
                    or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability from 0 to 1, not {value!r}")
            values.append(float(value))
        if values[0] + values[1] > 1:
            raise ValueError(f"flip + drop must be at most 1, not {values[0] + values[1]!r}")
        seed = _check_int(seed, "seed", 0, (1 << 64) - 1)
        code = self._lib.csh_set_noise(self._live(), *values, seed)
        if code:
            raise RuntimeError(f"the harness refused the noise (code {code})")

    @property
    def noise_counts(self) -> tuple[int, int]:
        """Bytes the noise has flipped and dropped, both directions, since :meth:`set_noise`."""
        counts = (_U64 * 2)()
        self._lib.csh_noise_counts(self._live(), counts)
        return int(counts[0]), int(counts[1])

    # -- life cycle ------------------------------------------------------------------------

    def reset(self, cycles: int = _RESET_CYCLES) -> None:
        """Hold the serial top's reset for ``cycles`` cycles, as a board's reset button does;
        bytes in flight on either line are lost."""
        cycles = _check_int(cycles, "cycles", 1, 1 << 20)
        handle = self._live()
        self._lib.csh_stop(handle)
        self._lib.csh_reset(handle, cycles)
        self._start()

    def close(self) -> None:
        """Stop the simulation and close the pseudo-terminal; idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.csh_free(handle)        # stops the thread first
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> SimulatedBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------

    def _start(self) -> None:
        code = self._lib.csh_start(self._handle, self._master, self._divisor)
        if code:
            self.close()
            raise OSError(f"the simulation thread could not be started (harness code {code})")

    def _live(self):
        if self._handle is None:
            raise ValueError("the SimulatedBoard is closed")
        return self._handle

"""``SerialEngine``: the engine behind a UART, independent of any board.

::

    rx pin -> UARTReceiver -> SerialBridge -> UARTTransmitter -> tx pin
                                   | Wishbone (master)
                                 Engine (slave)

A board needs only two pins and a clock to give a host the whole engine: the host speaks the
framed request/response protocol of :mod:`convhw.serial_protocol` (see
:class:`~convhw.gateware.serial_bridge.SerialBridge`) and sees the same register map and
windows as over a direct bus. Everything board-specific (pins, PLL, reset) stays outside, so
the same top is simulated here, converted to Verilog for Verilator (:func:`verilog_text`) and
instantiated by a board's platform file.

The line rate is fixed at build time: ``divisor = round(clock_hz / baudrate)`` clock cycles per
bit. It is refused if it is below the receiver's minimum of 4 or if the rate it gives is more
than 2 % off ``baudrate``: both ends of a UART sample mid-bit, so the two rates together may
differ by less than half a bit over the ten bits of a byte, and 2 % per end keeps a safe
margin.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from .engine import Engine
from .serial_bridge import SerialBridge
from .uart_rx import MIN_DIVISOR, UARTReceiver
from .uart_tx import UARTTransmitter

__all__ = ["MAX_RATE_ERROR", "SerialEngine", "verilog_text"]

#: The largest relative difference between the requested and the built baud rate.
MAX_RATE_ERROR = 0.02


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return value


class SerialEngine(wiring.Component):
    """:class:`~convhw.gateware.engine.Engine` with a UART serial bridge as its host port.

    Parameters
    ----------
    config : EngineConfig
    clock_hz : int
        The clock frequency in Hz (below 2**32: INFO reports it in a 32-bit word).
    baudrate : int
        The UART's bit rate.

    Attributes
    ----------
    rx : In(1)
        Serial input from the host (idle high), asynchronous to the clock.
    tx : Out(1)
        Serial output to the host (idle high), registered.
    busy : Out(1)
        The engine runs a job (STATUS.BUSY).
    active : Out(1)
        The bridge is inside a request, executing it or sending its response, until the
        response's last stop bit is on the line (the bridge's ``active`` or the transmitter's
        ``busy``): when it is low and no byte is arriving, nothing in the top but a job can
        change.
    engine, receiver, bridge, transmitter
        The submodules, for simulations that look inside.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EngineConfig` or ``clock_hz`` or ``baudrate`` is not an
        integer.
    ValueError
        If ``clock_hz`` or ``baudrate`` is not positive or ``clock_hz`` does not fit 32 bits,
        or if ``baudrate`` needs a divisor below 4 or cannot be made within 2 %.
    """

    def __init__(self, config: EngineConfig, *, clock_hz: int, baudrate: int) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        divisor = self.divisor_for(clock_hz, baudrate)
        self._config = config
        self._divisor = divisor
        self.engine = Engine(config)
        self.receiver = UARTReceiver(divisor)
        self.bridge = SerialBridge(self.engine.register_map.bus_address_width,
                                   clock_hz=clock_hz, divisor=divisor)
        self.transmitter = UARTTransmitter(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1),
            "busy": Out(1),
            "active": Out(1),
        })

    @staticmethod
    def divisor_for(clock_hz: int, baudrate: int) -> int:
        """The UART divisor of a top at ``clock_hz`` and ``baudrate``, checked as the
        constructor checks it (so a host can know it without building the top)."""
        _positive_int("clock_hz", clock_hz)
        _positive_int("baudrate", baudrate)
        divisor = round(clock_hz / baudrate)
        if divisor < MIN_DIVISOR:
            raise ValueError(f"baudrate must be at most clock_hz / {MIN_DIVISOR} = "
                             f"{clock_hz / MIN_DIVISOR:g} (a divisor of at least "
                             f"{MIN_DIVISOR}), not {baudrate}")
        error = abs(clock_hz / divisor - baudrate) / baudrate
        if error > MAX_RATE_ERROR:
            raise ValueError(f"baudrate {baudrate} cannot be made from {clock_hz} Hz within "
                             f"{MAX_RATE_ERROR:.0%}: divisor {divisor} gives "
                             f"{clock_hz / divisor:g} baud ({error:.1%} off)")
        return divisor

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def clock_hz(self) -> int:
        return self.bridge.clock_hz

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.engine = self.engine
        m.submodules.receiver = self.receiver
        m.submodules.bridge = self.bridge
        m.submodules.transmitter = self.transmitter
        wiring.connect(m, self.receiver.data, self.bridge.rx)
        wiring.connect(m, self.bridge.tx, self.transmitter.data)
        wiring.connect(m, self.bridge.bus, self.engine.wb)
        m.d.comb += [
            self.receiver.rx.eq(self.rx),
            self.tx.eq(self.transmitter.tx),
            self.busy.eq(self.engine.busy),
            # Until the response's last stop bit has left, not just the bridge.
            self.active.eq(self.bridge.active | self.transmitter.busy),
        ]
        return m


def verilog_text(config: EngineConfig, *, clock_hz: int, baudrate: int,
                 name: str = "convhw_serial", family: str | None = None) -> str:
    """The Verilog of a :class:`SerialEngine`, module ``name`` with ports ``clk``, ``rst``,
    ``rx``, ``tx``, ``busy`` and ``active``.

    Like :func:`convhw.generate.verilog_text`, the text has no source attributes and no
    toolchain banner, so it only changes when the design does. ``family`` (one of
    :data:`convhw.generate.FAMILIES`) adapts it to that FPGA family.
    """
    from ..generate import TargetFamily, component_verilog
    top = SerialEngine(config, clock_hz=clock_hz, baudrate=baudrate)
    return component_verilog(top, name, (
        f"// Generated by convhw.gateware.serial_engine.verilog_text from {config}, "
        f"{clock_hz} Hz, {baudrate} baud{f', for the {family}' if family else ''}. "
        f"Do not edit: regenerate.\n"), family and TargetFamily(family))

"""``BoardTop``: the engine on a board: clocking, reset, UART pins and LEDs.

Everything board-independent is the serial top: on a board with device memory
(``Board.memory_bytes``) :class:`~convhw.gateware.serial_list_engine.SerialListEngine` (UART,
bridge, the list engine and its on-chip device memory), otherwise the older
:class:`~convhw.gateware.serial_engine.SerialEngine` (UART, bridge, the host-fed engine). This
top only adds what the platform provides: the oscillator through the family's PLL to the engine
clock, a reset held until the PLL locks, the USB-UART pins and two LEDs (engine busy, bridge
active).
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..config import EngineConfig
from ..gateware.serial_engine import SerialEngine
from ..gateware.serial_list_engine import SerialListEngine
from .pll import ecp5_pll, ice40_pll

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """The engine for ``config`` on ``board`` (a :class:`convhw.boards.Board`), clocked at the
    PLL frequency nearest ``clock_hz`` (straight from the oscillator, without a PLL, when
    ``clock_hz`` is the oscillator's), its bridge at ``baudrate``; the list engine with
    ``memory_bytes`` of device memory (``board.memory_bytes`` when omitted; ``config.bus`` is
    set to ``"wishbone"``), or the host-fed engine when that is 0."""

    def __init__(self, board, config: EngineConfig, *, clock_hz: float, baudrate: int,
                 memory_bytes: int | None = None):
        self.board = board
        self.config = config
        self.pll = None if clock_hz == board.oscillator_hz else (
            ecp5_pll if board.family == "ecp5" else ice40_pll)(board.oscillator_hz, clock_hz)
        self.baudrate = baudrate
        # Built here so that its divisor (and any error in the baud rate) is known before
        # the platform is elaborated.
        self.memory_bytes = board.memory_bytes if memory_bytes is None else memory_bytes
        if self.memory_bytes:
            self.config = config = dataclasses.replace(config, bus="wishbone")
            self.serial_engine = SerialListEngine(config, clock_hz=round(self.clock_hz),
                                                  baudrate=baudrate,
                                                  memory_bytes=self.memory_bytes)
        else:
            self.serial_engine = SerialEngine(config, clock_hz=round(self.clock_hz),
                                              baudrate=baudrate)

    @property
    def clock_hz(self) -> float:
        return self.board.oscillator_hz if self.pll is None else self.pll.output_hz

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.oscillator = oscillator = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal(init=1)
        if self.pll is None:
            m.d.comb += sync.clk.eq(oscillator.i)
        else:
            m.submodules.pll = self.pll.instance(oscillator.i, ClockSignal("sync"), locked)
        # The engine runs only on a locked clock; the synchroniser's stages start asserted, so
        # it is also the power-on reset, and it releases reset cleanly.
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(sync.clk, self.clock_hz)

        m.submodules.engine = engine = self.serial_engine
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [engine.rx.eq(rx.i), tx.o.eq(engine.tx)]
        for (name, number), signal in zip(self.board.leds, (engine.busy, engine.active)):
            m.submodules[f"{name}_{number}"] = led = io.Buffer(
                "o", platform.request(name, number, dir="-"))
            m.d.comb += led.o.eq(signal)
        return m


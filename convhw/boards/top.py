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

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..config import EngineConfig
from ..gateware.serial_engine import SerialEngine
from ..gateware.serial_list_engine import SerialListEngine
from ..serial_protocol import MEMORY_WINDOW, check_memory_kind
from .pll import ecp5_pll, ice40_pll

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """The engine for ``config`` on ``board`` (a :class:`convhw.boards.Board`), clocked at the
    PLL frequency nearest ``clock_hz`` (straight from the oscillator, without a PLL, when
    ``clock_hz`` is the oscillator's), its bridge at ``baudrate``; the list engine with
    ``memory_bytes`` of device memory (``board.memory_bytes`` when omitted; ``config.bus`` is
    set to ``"wishbone"``), or the host-fed engine when that is 0. ``memory`` (``board.memory``
    when omitted) puts the device memory in block RAM or, on the ULX3S, in the SDRAM."""

    def __init__(self, board, config: EngineConfig, *, clock_hz: float, baudrate: int,
                 memory_bytes: int | None = None, memory: str | None = None):
        self.board = board
        self.config = config
        memory = board.check_memory(check_memory_kind(memory) if memory is not None else None)
        self.memory = memory
        self.pll = None if clock_hz == board.oscillator_hz else (
            ecp5_pll if board.family == "ecp5" else ice40_pll)(board.oscillator_hz, clock_hz)
        self.baudrate = baudrate
        # Built here so that its divisor (and any error in the baud rate) is known before
        # the platform is elaborated.
        self.memory_bytes = board.memory_bytes if memory_bytes is None else memory_bytes
        if memory == "sdram":
            # The bridge's window onto the SDRAM: 16 MiB of its 32 (the protocol's window).
            self.memory_bytes = MEMORY_WINDOW if memory_bytes is None else memory_bytes
            from . import litedram
            self.sdram = litedram.load()
            if round(self.clock_hz) != round(self.sdram["core"]["sys_clk_hz"]):
                raise ValueError(f"the SDRAM controller is generated for "
                                 f"{self.sdram['core']['sys_clk_hz'] / 1e6:g} MHz; the clock "
                                 f"would be {self.clock_hz / 1e6:g} MHz")
        if self.memory_bytes:
            self.config = config = dataclasses.replace(config, bus="wishbone")
            self.serial_engine = SerialListEngine(config, clock_hz=round(self.clock_hz),
                                                  baudrate=baudrate,
                                                  memory_bytes=self.memory_bytes,
                                                  memory=memory)
        else:
            self.serial_engine = SerialEngine(config, clock_hz=round(self.clock_hz),
                                              baudrate=baudrate)

    @property
    def clock_hz(self) -> float:
        return self.board.oscillator_hz if self.pll is None else self.pll.output_hz

    def elaborate(self, platform) -> Module:
        m = Module()
        clock_pin = platform.request(platform.default_clk, dir="-")
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal(init=1)
        if self.pll is not None and self.board.family == "ice40":
            # The pin drives the PLL directly (SB_PLL40_PAD: see ICE40PLL.instance).
            m.submodules.pll = self.pll.instance(clock_pin.io, ClockSignal("sync"), locked,
                                                 pad=True)
        else:
            m.submodules.oscillator = oscillator = io.Buffer("i", clock_pin)
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
            # Registered: from the bridge's state to a pin across the die was the ULX3S's
            # critical path with the SDRAM (12.0 ns); an LED does not mind a cycle.
            m.submodules[f"{name}_{number}"] = led = io.Buffer(
                "o", platform.request(name, number, dir="-"))
            shown = Signal(name=f"{name}_{number}_shown")
            m.d.sync += shown.eq(signal)
            m.d.comb += led.o.eq(shown)
        if self.memory == "sdram":
            self._sdram(m, platform, engine)
        return m

    def _sdram(self, m: Module, platform, engine) -> None:
        """LiteDRAM's core (rtl/boards/, its own I/O registers and buffers on the pins), the
        board's initialiser on its control port, the serial top on its two user ports, and the
        chip's clock: the system clock inverted by a DDR output register (D0 0, D1 1), so that
        commands launched at a rising edge are sampled half a period later."""
        from pathlib import Path

        from amaranth.hdl import Cat, Const, Instance

        from ..gateware.sdram_initializer import SdramInitializer
        from . import litedram

        core = self.sdram
        name = core["core"]["name"]
        rtl = Path(litedram.__file__).resolve().parents[2] / "rtl" / "boards" / f"{name}.v"
        platform.add_file(f"{name}.v", rtl.read_text())
        pins = platform.request("sdram", 0, dir="-")
        m.submodules.sdram_init = init = SdramInitializer(litedram.init_writes(core))
        host, native = engine.sdram_host, engine.sdram_engine
        user_width = core["user_port"]["address_width"]
        native_width = core["engine_port"]["address_width"]
        unused = {name: Signal(name=f"sdram_{name}") for name in
                  ("init_done", "init_error", "user_clk", "user_rst")}
        # LiteDRAM's reset through two flip-flops of its own: the domain's reset net reaches
        # every flip-flop of the design, and its route to the controller beside the SDRAM's
        # pins was the ULX3S's critical path (16.7 ns of routing against the 16.7 ns period).
        # The controller leaves reset two cycles after the rest: the initialiser's first write
        # waits for its answer (up to 256 cycles).
        sdram_reset = Signal(2, init=0b11, reset_less=True)
        m.d.sync += sdram_reset.eq(Cat(ResetSignal("sync"), sdram_reset[0]))
        m.submodules.sdram = Instance(
            name,
            i_clk=ClockSignal("sync"), i_rst=sdram_reset[1],
            o_init_done=unused["init_done"], o_init_error=unused["init_error"],
            o_user_clk=unused["user_clk"], o_user_rst=unused["user_rst"],
            o_sdram_a=pins.a.io, o_sdram_ba=pins.ba.io, o_sdram_cas_n=pins.cas.io,
            o_sdram_cke=pins.clk_en.io, o_sdram_cs_n=pins.cs.io, o_sdram_dm=pins.dqm.io,
            io_sdram_dq=pins.dq.io, o_sdram_ras_n=pins.ras.io, o_sdram_we_n=pins.we.io,
            i_user_port_wishbone_0_adr=Cat(host.adr, Const(0, user_width - len(host.adr))),
            i_user_port_wishbone_0_dat_w=host.dat_w, o_user_port_wishbone_0_dat_r=host.dat_r,
            i_user_port_wishbone_0_sel=host.sel, i_user_port_wishbone_0_cyc=host.cyc,
            i_user_port_wishbone_0_stb=host.stb, i_user_port_wishbone_0_we=host.we,
            o_user_port_wishbone_0_ack=host.ack, o_user_port_wishbone_0_err=host.err,
            i_user_port_native_0_cmd_addr=Cat(native.cmd_addr,
                                              Const(0, native_width - len(native.cmd_addr))),
            i_user_port_native_0_cmd_valid=native.cmd_valid,
            i_user_port_native_0_cmd_we=native.cmd_we,
            o_user_port_native_0_cmd_ready=native.cmd_ready,
            i_user_port_native_0_wdata_data=native.wdata_data,
            i_user_port_native_0_wdata_we=native.wdata_we,
            i_user_port_native_0_wdata_valid=native.wdata_valid,
            o_user_port_native_0_wdata_ready=native.wdata_ready,
            o_user_port_native_0_rdata_data=native.rdata_data,
            o_user_port_native_0_rdata_valid=native.rdata_valid,
            i_user_port_native_0_rdata_ready=native.rdata_ready,
            i_wb_ctrl_adr=init.bus.adr, i_wb_ctrl_dat_w=init.bus.dat_w,
            o_wb_ctrl_dat_r=init.bus.dat_r, i_wb_ctrl_sel=init.bus.sel,
            i_wb_ctrl_cyc=init.bus.cyc, i_wb_ctrl_stb=init.bus.stb, i_wb_ctrl_we=init.bus.we,
            o_wb_ctrl_ack=init.bus.ack, o_wb_ctrl_err=init.bus.err,
            i_wb_ctrl_bte=0, i_wb_ctrl_cti=0)
        m.submodules.sdram_clock = Instance(
            "ODDRX1F", i_SCLK=ClockSignal("sync"), i_RST=0, i_D0=0, i_D1=1,
            o_Q=pins.clk.io)


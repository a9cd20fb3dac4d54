"""``SerialListEngine``: the list engine and its memory behind a UART, independent of any board.

::

    rx pin -> UARTReceiver -> SerialBridge -> UARTTransmitter -> tx pin
                                   | Wishbone classic (master)
                             WishboneDecoder ----------------------+-----------------+
                                   |                               |                 |
                         ListEngine.ctrl (registers)     ReadOnlyWords (info)   DeviceMemory.host
                         ListEngine.mem (Wishbone pipelined master) -------> DeviceMemory.engine

The host speaks the framed protocol of :mod:`convhw.serial_protocol` to the
:class:`~convhw.gateware.serial_bridge.SerialBridge`. It writes a descriptor list and its tensors
into the device memory (on-chip block RAM, ``memory_bytes``), starts the list through the list
engine's registers, polls STATUS and reads the results back
(:class:`~convhw.driver.list_driver.ListDriver` over
:class:`~convhw.driver.serial_transport.SerialTransport`). The engine reads and writes the same
memory through its master port, at byte address 0 = the window's base.

Address map (bridge byte addresses; the constants live in :mod:`convhw.serial_protocol`)
------------------------------------------------------------------------------------------
=============================  ===========================================================
``0x0000_0000``..``0x0000_0FFF``  the list engine's registers
                                  (:func:`convhw.registers.list_register_map`)
``0x0000_1000``                   INFO: ``MEMORY_BASE`` (read-only, :data:`MEMORY_BASE`)
``0x0000_1004``                   INFO: ``MEMORY_BYTES`` (read-only, ``memory_bytes``)
``0x0100_0000``..                 device memory, ``memory_bytes`` bytes: bridge address
                                  ``MEMORY_BASE + a`` is engine address ``a``
=============================  ===========================================================

Everything else answers ``ERR`` (the bridge's ``BUS_ERROR``), including the rest of the 16 MiB
memory window beyond ``memory_bytes`` and writes to INFO. The list engine's own master port
gets ``ERR`` for a beat at or beyond ``memory_bytes`` (its lists then end with a bus error).

With ``memory="sdram"`` the device memory is outside this component, on an SDR SDRAM behind
LiteDRAM (:mod:`convhw.boards.litedram`: the ULX3S's): the memory window goes out on
``sdram_host`` (Wishbone B4 classic, 32-bit words, to LiteDRAM's Wishbone user port) and the
list engine's memory port, through :class:`~convhw.gateware.litedram_master.LiteDramMaster`,
on ``sdram_engine`` (LiteDRAM's native user port); LiteDRAM's crossbar arbitrates the two.
``memory_bytes`` is then a power of two (the part of the SDRAM the window shows), and beats
beyond it are the master's errors as they are the block RAM's.

Only the Wishbone variant of the list engine fits here: ``config.bus`` must be ``"wishbone"``
(control slave B4 classic, as the bridge speaks; memory master B4 pipelined). The UART rate
rule is :meth:`SerialEngine.divisor_for <convhw.gateware.serial_engine.SerialEngine.
divisor_for>`'s.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from ..registers import ENGINE_REGISTER_SPACE
from ..serial_protocol import (
    INFO_BASE,
    LARGEST_BURST,
    MEMORY_BASE,
    MEMORY_KINDS,
    MEMORY_WINDOW,
    REGISTERS_BASE,
    check_memory_kind,
)
from .device_memory import DeviceMemory
from .list_engine import ListEngine
from .litedram_master import LiteDramMaster
from .read_only_words import ReadOnlyWords
from .serial_bridge import SerialBridge
from .serial_engine import SerialEngine
from .uart_rx import UARTReceiver
from .uart_tx import UARTTransmitter
from .wishbone import WishboneSignature
from .wishbone_decoder import WishboneDecoder

__all__ = ["INFO_BASE", "MEMORY_BASE", "MEMORY_KINDS", "MEMORY_WINDOW", "REGISTERS_BASE",
           "SerialListEngine", "verilog_text"]


#: The INFO words: MEMORY_BASE, MEMORY_BYTES.
INFO_WORDS = 2
#: The bridge's receive FIFO (pipelined requests; see ``SerialBridge``).
RX_FIFO_BYTES = 128
#: The bridge's word-address width: the map ends at 2 * MEMORY_BASE.
BRIDGE_ADDR_WIDTH = (2 * MEMORY_BASE // 4 - 1).bit_length()


class SerialListEngine(wiring.Component):
    """:class:`~convhw.gateware.list_engine.ListEngine` with its device memory behind a UART
    serial bridge; see the module documentation.

    Parameters
    ----------
    config : EngineConfig
        With ``bus == "wishbone"``.
    clock_hz : int
        The clock frequency in Hz (below 2**32: INFO reports it in a 32-bit word).
    baudrate : int
        The UART's bit rate.
    memory_bytes : int
        Device memory, a positive multiple of ``config.memory_width / 8`` up to 16 MiB (a
        power of two for ``"sdram"``).
    memory : str
        ``"block_ram"`` (default) or ``"sdram"``: see the module documentation.

    Attributes
    ----------
    rx : In(1)
        Serial input from the host (idle high), asynchronous to the clock.
    tx : Out(1)
        Serial output to the host (idle high), registered.
    busy : Out(1)
        A list runs (STATUS.BUSY).
    active : Out(1)
        The bridge is inside a request or its response is still on the line (as
        :attr:`SerialEngine.active <convhw.gateware.serial_engine.SerialEngine>`).
    sdram_host : Out(WishboneSignature(log2(memory_bytes / 4)))
        ``"sdram"`` only: the memory window, to LiteDRAM's Wishbone user port.
    sdram_engine : Out(LiteDramNativeSignature(memory_width, log2(memory_bytes * 8 /
        memory_width)))
        ``"sdram"`` only: the list engine's master, to LiteDRAM's native user port.
    engine, memory, decoder, info, receiver, bridge, transmitter
        The submodules, for simulations that look inside.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EngineConfig` or a number is not an integer.
    ValueError
        If ``config.bus`` is not ``"wishbone"``, if ``memory_bytes`` is out of range, or for
        the clock and baud rate as :class:`~convhw.gateware.serial_engine.SerialEngine`.
    """

    def __init__(self, config: EngineConfig, *, clock_hz: int, baudrate: int,
                 memory_bytes: int, memory: str = "block_ram") -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        if config.bus != "wishbone":
            raise ValueError(f"config.bus must be 'wishbone' (the serial bridge is a Wishbone "
                             f"master and the device memory a Wishbone slave), not "
                             f"{config.bus!r}")
        if not isinstance(memory_bytes, int) or isinstance(memory_bytes, bool):
            raise TypeError(f"memory_bytes must be an integer, not {memory_bytes!r}")
        beat = config.memory_width // 8
        if not 0 < memory_bytes <= MEMORY_WINDOW or memory_bytes % beat:
            raise ValueError(f"memory_bytes must be a positive multiple of {beat} (a memory "
                             f"beat) up to {MEMORY_WINDOW:#x}, not {memory_bytes}")
        check_memory_kind(memory)
        if memory == "sdram" and memory_bytes & (memory_bytes - 1):
            raise ValueError(f"memory_bytes must be a power of two for an SDRAM, not "
                             f"{memory_bytes}")
        divisor = SerialEngine.divisor_for(clock_hz, baudrate)
        self._config = config
        self._divisor = divisor
        self._memory_bytes = memory_bytes
        self._memory_kind = memory
        self.engine = ListEngine(config, memory_port=memory == "sdram")
        if memory == "sdram":
            self.memory = LiteDramMaster(config.memory_width, memory_bytes)
        else:
            self.memory = DeviceMemory(config.memory_width, memory_bytes)
        self.decoder = WishboneDecoder(BRIDGE_ADDR_WIDTH, {
            "registers": (REGISTERS_BASE, ENGINE_REGISTER_SPACE),
            "info": (INFO_BASE, 4 * INFO_WORDS),
            "memory": (MEMORY_BASE, memory_bytes),
        })
        self.info = ReadOnlyWords((MEMORY_BASE, memory_bytes), 1)
        self.receiver = UARTReceiver(divisor)
        # The longest bursts the protocol allows and a receive FIFO for pipelined requests:
        # the host pays the link's round trip (the USB latency of a board's UART bridge chip)
        # once per several 128-word frames instead of once per 64 words, which is what moving
        # tensors through device memory costs most. 128 bytes hold what arrives while a burst
        # executes on the SDRAM and is answered (an estimate, not measured: some 30 byte
        # times) and a READ's seven next requests.
        self.bridge = SerialBridge(BRIDGE_ADDR_WIDTH, clock_hz=clock_hz, divisor=divisor,
                                   max_burst=LARGEST_BURST, rx_fifo=RX_FIFO_BYTES)
        self.transmitter = UARTTransmitter(divisor)
        ports = {
            "rx": In(1, init=1),
            "tx": Out(1),
            "busy": Out(1),
            "active": Out(1),
        }
        if memory == "sdram":
            ports["sdram_host"] = Out(WishboneSignature(max(1, (memory_bytes // 4 - 1)
                                                            .bit_length())))
            ports["sdram_engine"] = Out(self.memory.signature.members["native"].signature)
        super().__init__(ports)

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

    @property
    def memory_bytes(self) -> int:
        return self._memory_bytes

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.engine = self.engine
        m.submodules.memory = self.memory
        m.submodules.decoder = self.decoder
        m.submodules.info = self.info
        m.submodules.receiver = self.receiver
        m.submodules.bridge = self.bridge
        m.submodules.transmitter = self.transmitter
        wiring.connect(m, self.receiver.data, self.bridge.rx)
        wiring.connect(m, self.bridge.tx, self.transmitter.data)
        wiring.connect(m, self.bridge.bus, self.decoder.bus)
        wiring.connect(m, self.decoder.targets.registers, self.engine.ctrl)
        wiring.connect(m, self.decoder.targets.info, self.info.bus)
        if self._memory_kind == "sdram":
            wiring.connect(m, self.decoder.targets.memory, wiring.flipped(self.sdram_host))
            wiring.connect(m, self.engine.mem, self.memory.port)
            wiring.connect(m, self.memory.native, wiring.flipped(self.sdram_engine))
        else:
            wiring.connect(m, self.decoder.targets.memory, self.memory.host)
            wiring.connect(m, self.engine.mem, self.memory.engine)
        m.d.comb += [
            self.receiver.rx.eq(self.rx),
            self.tx.eq(self.transmitter.tx),
            self.busy.eq(self.engine.busy),
            self.active.eq(self.bridge.active | self.transmitter.busy),
        ]
        return m


def verilog_text(config: EngineConfig, *, clock_hz: int, baudrate: int, memory_bytes: int,
                 name: str = "convhw_serial", memory: str = "block_ram") -> str:
    """The Verilog of a :class:`SerialListEngine`, module ``name`` with ports ``clk``, ``rst``,
    ``rx``, ``tx``, ``busy`` and ``active`` (those of
    :func:`convhw.gateware.serial_engine.verilog_text`), without source attributes or banner."""
    from ..generate import component_verilog
    top = SerialListEngine(config, clock_hz=clock_hz, baudrate=baudrate,
                           memory_bytes=memory_bytes, memory=memory)
    return component_verilog(top, name, (
        f"// Generated by convhw.gateware.serial_list_engine.verilog_text from {config}, "
        f"{clock_hz} Hz, {baudrate} baud, {memory_bytes} bytes of device memory"
        f"{' (SDRAM)' if memory == 'sdram' else ''}. Do not edit: "
        f"regenerate.\n"))

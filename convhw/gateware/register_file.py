"""``RegisterFile``: the registers of a :class:`~convhw.regmap.RegisterMap` as gateware.

The register file turns the map's data into ports and a small internal bus; the bus slave
(:class:`convhw.gateware.wishbone.WishboneSlave`) drives that bus and also decides which accesses
are errors, so the register file itself never refuses one.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH
from ..regmap import RegisterMap

__all__ = ["RegisterBusSignature", "RegisterFile", "fields_signature"]


class RegisterBusSignature(wiring.Signature):
    """The register file's bus, seen from the initiator (the bus slave).

    Members
    -------
    addr : Out(addr_width)
        Word index into the register space (byte address divided by 4).
    r_stb : Out(1)
        Read ``addr`` in this cycle. ``r_data`` holds the register's value from the next cycle
        until the next ``r_stb``: one cycle of latency, no handshake.
    w_stb : Out(1)
        Write ``w_data`` to ``addr`` in this cycle; ``rw`` fields hold the value from the next
        cycle, ``w1p`` fields written with 1 pulse in the next cycle. ``ro`` bits are ignored.
    w_data : Out(32)
    r_data : In(32)
        ``ro`` and ``rw`` fields in place, ``w1p`` and unused bits 0; 0 for an address that holds
        no register.
    """

    def __init__(self, addr_width: int) -> None:
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 1:
            raise TypeError(f"addr_width must be a positive integer, not {addr_width!r}")
        self._addr_width = addr_width
        super().__init__({
            "addr": Out(addr_width),
            "r_stb": Out(1),
            "w_stb": Out(1),
            "w_data": Out(BUS_DATA_WIDTH),
            "r_data": In(BUS_DATA_WIDTH),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._addr_width == self._addr_width

    def __repr__(self) -> str:
        return f"RegisterBusSignature({self._addr_width})"


def fields_signature(register_map: RegisterMap) -> wiring.Signature:
    """The ``regs`` member of :class:`RegisterFile`, as the register file sees it: one member
    per register (lower-case name), each with one member per field (lower-case name): ``In`` for
    ``ro`` fields, ``Out`` for ``rw`` and ``w1p`` fields. Every member's init is the field's
    reset value."""
    registers = {}
    for register in register_map.registers:
        fields = {}
        for field in register.fields:
            flow = In if field.access == "ro" else Out
            fields[field.name.lower()] = flow(field.width, init=field.reset)
        registers[register.name.lower()] = Out(wiring.Signature(fields))
    return wiring.Signature(registers)


class RegisterFile(wiring.Component):
    """The registers of a map, with a port per field.

    Parameters
    ----------
    register_map : RegisterMap
        Its registers become this component's; its windows are ignored.

    Attributes
    ----------
    bus : In(RegisterBusSignature(register_map.register_address_width))
        Driven by the bus slave.
    regs : Out(fields_signature(register_map))
        The hardware side, ``regs.<register>.<field>`` in lower case (``regs.ctrl.start``,
        ``regs.status.busy``), so that one register's fields connect to an engine interface with
        a single :func:`amaranth.lib.wiring.connect`:

        * ``ro`` fields are ``In(width, init=reset)``: the hardware drives them. A port that
          nothing drives keeps its init value, so constant registers (``ID``, ``VERSION``,
          ``HWCFG*``) need no wiring at all; an engine that drives such a port overrides the
          constant.
        * ``rw`` fields are ``Out(width, init=reset)``: the last value the host wrote.
        * ``w1p`` fields are ``Out(1)``: high for exactly the one cycle after each write that has
          a 1 in the field's bit.
    """

    def __init__(self, register_map: RegisterMap) -> None:
        if not isinstance(register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        self._map = register_map
        super().__init__({
            "bus": In(RegisterBusSignature(register_map.register_address_width)),
            "regs": Out(fields_signature(register_map)),
        })

    @property
    def register_map(self) -> RegisterMap:
        return self._map

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        registers = self._map.registers

        # -- writes: one set of flip-flops per field, which is what the hardware reads --------
        dirty = {}
        for register in registers:
            ports = getattr(self.regs, register.name.lower())
            for field in register.fields:
                if field.access == "w1p":
                    # Assigned first so that a write in this cycle overrides it: a pulse lasts
                    # exactly one cycle.
                    m.d.sync += getattr(ports, field.name.lower()).eq(0)
            if self._rw_mask(register):
                dirty[register.name] = Signal(name=f"{register.name.lower()}_written")
        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                for register in registers:
                    if not register.writable:
                        continue
                    ports = getattr(self.regs, register.name.lower())
                    with m.Case(register.address // 4):
                        for field in register.fields:
                            if field.access != "ro":
                                port = getattr(ports, field.name.lower())
                                m.d.sync += port.eq(bus.w_data[field.offset:field.msb + 1])
                        if register.name in dirty:
                            m.d.sync += dirty[register.name].eq(1)

        # -- reads -----------------------------------------------------------------------------
        # A multiplexer over every register bit would be the largest part of the register file
        # (about one logic cell per bit). Instead the rw fields read back from a copy in block
        # RAM, written with every register write: its synchronous read port has exactly the
        # bus's one cycle of latency. A per-register class ROM beside it gives the rw bits'
        # mask and reset value; a register not written since reset reads its reset value, since
        # a RAM cannot be reset. Only the ro fields, which the hardware drives, and the written
        # flags go through multiplexers.
        classes = [(0, 0)] + sorted({(self._rw_mask(r), self._rw_reset(r)) for r in registers
                                     if self._rw_mask(r)})
        words = max(r.address // 4 for r in registers) + 1 if registers else 1
        depth_bits = max(1, (words - 1).bit_length())
        index = bus.addr[:depth_bits]
        in_range = bus.addr[depth_bits:] == 0 if len(bus.addr) > depth_bits else 1
        klass = Signal(range(len(classes)))
        rw_data = Signal(BUS_DATA_WIDTH)
        if len(classes) > 1:
            by_word = {r.address // 4: classes.index((self._rw_mask(r), self._rw_reset(r)))
                       for r in registers if self._rw_mask(r)}
            m.submodules.shadow = shadow = memory.Memory(
                shape=BUS_DATA_WIDTH, depth=1 << depth_bits, init=[])
            m.submodules.classes = class_rom = memory.Memory(
                shape=range(len(classes)), depth=1 << depth_bits,
                init=[by_word.get(word, 0) for word in range(1 << depth_bits)])
            write = shadow.write_port()
            read = shadow.read_port()
            class_read = class_rom.read_port()
            m.d.comb += [
                write.addr.eq(index), write.data.eq(bus.w_data), write.en.eq(bus.w_stb & in_range),
                read.addr.eq(index), read.en.eq(bus.r_stb),
                class_read.addr.eq(index), class_read.en.eq(bus.r_stb),
                rw_data.eq(read.data),
            ]
            m.d.comb += klass.eq(class_read.data)
        live = Signal(BUS_DATA_WIDTH)      # the ro fields of the register read
        written = Signal()
        outside = Signal()
        with m.If(bus.r_stb):
            m.d.sync += [live.eq(0), written.eq(0), outside.eq(~in_range)]
            with m.Switch(bus.addr):
                for register in registers:
                    ports = getattr(self.regs, register.name.lower())
                    with m.Case(register.address // 4):
                        for field in register.fields:
                            if field.access == "ro":
                                m.d.sync += live[field.offset:field.msb + 1].eq(
                                    getattr(ports, field.name.lower()))
                        if register.name in dirty:
                            m.d.sync += written.eq(dirty[register.name])
        mask, reset = Signal(BUS_DATA_WIDTH), Signal(BUS_DATA_WIDTH)
        with m.Switch(Mux(outside, 0, klass)):
            for i, (class_mask, class_reset) in enumerate(classes):
                with m.Case(i):
                    m.d.comb += [mask.eq(class_mask), reset.eq(class_reset)]
        m.d.comb += bus.r_data.eq(live | Mux(written, rw_data & mask, reset))
        return m

    @staticmethod
    def _rw_mask(register) -> int:
        return sum(field.mask for field in register.fields if field.access == "rw")

    @staticmethod
    def _rw_reset(register) -> int:
        return sum(field.reset << field.offset for field in register.fields
                   if field.access == "rw")

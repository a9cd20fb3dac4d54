"""``WishboneSlave``: the engine's host bus, decoded into registers and memory windows.

Wishbone datasheet (B4)
-----------------------
* Interface type: SLAVE, **classic** bus cycles only (no pipelined mode: there is no ``STALL``;
  no registered-feedback bursts: there is no ``CTI``/``BTE``, so every cycle is a classic one).
* Signals: ``CYC_I``, ``STB_I``, ``WE_I``, ``ADR_I``, ``DAT_I`` (32), ``SEL_I`` (4), ``DAT_O``
  (32), ``ACK_O``, ``ERR_O``; named ``cyc``, ``stb``, ``we``, ``adr``, ``dat_w``, ``sel``,
  ``dat_r``, ``ack``, ``err`` in :class:`WishboneSignature`. No ``RTY_O``, ``LOCK``, tags.
* Port size 32 bits, operand size and granularity 32 bits: ``SEL_I`` must be ``0b1111``; an
  access with any other ``SEL_I`` (read or write) is answered with ``ERR_O``. Endianness is moot
  at word granularity.
* ``ADR_I`` is a word address: the map's byte address divided by 4, ``register_map.
  bus_address_width`` bits.
* Every access (``CYC_I & STB_I``) is answered exactly once, with ``ACK_O`` or with ``ERR_O``
  (unmapped address, partial ``SEL_I``, write to a register of ``ro`` fields only or to an ``ro``
  window, or, while the ``locked`` input is high (a list is running), a write to a register not
  named in ``unlocked``: such a write is never applied to the running job). ``ACK_O``/``ERR_O``
  are registered and then gated with ``CYC_I & STB_I``; they are never asserted in the cycle in
  which the access is first presented, so a register access takes 2 cycles and a window access 2
  cycles plus the window's latency (with ``registered_decode`` one cycle more each: the access is
  decoded into flip-flops in its first cycle and taken in its second). Wait states are inserted
  while a window target is busy; back-to-back accesses (``STB_I`` held across the acknowledged
  edge with new address/data) are accepted.
* A master may abort an access by negating ``CYC_I`` (or ``STB_I``) before it is answered; the
  aborted access gets no answer. A write may or may not have taken effect. A window access that
  is already under way is completed silently (its ``ack`` is awaited and dropped) before the
  next access is accepted, so an abort never hangs the slave or answers a later access with
  stale data.

Decoding
--------
The register space goes to a :class:`~convhw.gateware.register_file.RegisterFile` through the
``registers`` port (:class:`RegisterBusSignature`); each :class:`~convhw.regmap.Window` of the
map gets one :class:`WindowSignature` port, ``windows.<name>`` in lower case, with the word
offset into the window as its address.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH
from ..regmap import RegisterMap
from .register_file import RegisterBusSignature

__all__ = ["WindowSignature", "WishboneSignature", "WishboneSlave"]

_SEL_WIDTH = BUS_DATA_WIDTH // 8


def _check_width(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    return value


class WishboneSignature(wiring.Signature):
    """A 32-bit Wishbone B4 classic bus with ``ERR``, seen from the master.

    Members
    -------
    cyc, stb, we : Out(1)
    adr : Out(addr_width)
        Word address.
    dat_w : Out(32)
    sel : Out(4)
    dat_r : In(32)
    ack, err : In(1)
    """

    def __init__(self, addr_width: int) -> None:
        self._addr_width = _check_width("addr_width", addr_width)
        super().__init__({
            "cyc": Out(1),
            "stb": Out(1),
            "we": Out(1),
            "adr": Out(addr_width),
            "dat_w": Out(BUS_DATA_WIDTH),
            "sel": Out(_SEL_WIDTH),
            "dat_r": In(BUS_DATA_WIDTH),
            "ack": In(1),
            "err": In(1),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._addr_width == self._addr_width

    def __repr__(self) -> str:
        return f"WishboneSignature({self._addr_width})"


class WindowSignature(wiring.Signature):
    """A window port, seen from the initiator (the bus slave).

    Protocol: the initiator raises ``r_stb`` or ``w_stb`` for exactly one cycle, with ``addr``
    (word offset into the window) and, for writes, ``w_data`` valid in that cycle only: the target
    captures what it needs. The target answers every request with exactly one ``ack`` cycle,
    either in the strobe cycle itself (combinationally) or any number of cycles later; for a read,
    ``r_data`` is valid in the ``ack`` cycle. The initiator has at most one request outstanding:
    it never strobes again before the ``ack``.

    Members
    -------
    addr : Out(addr_width)
    r_stb, w_stb : Out(1)
    w_data : Out(32)
    r_data : In(32)
    ack : In(1)
    """

    def __init__(self, addr_width: int) -> None:
        self._addr_width = _check_width("addr_width", addr_width)
        super().__init__({
            "addr": Out(addr_width),
            "r_stb": Out(1),
            "w_stb": Out(1),
            "w_data": Out(BUS_DATA_WIDTH),
            "r_data": In(BUS_DATA_WIDTH),
            "ack": In(1),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._addr_width == self._addr_width

    def __repr__(self) -> str:
        return f"WindowSignature({self._addr_width})"


class WishboneSlave(wiring.Component):
    """Wishbone B4 classic slave for a :class:`~convhw.regmap.RegisterMap`.

    See the module documentation for the exact bus variant and timing.

    Parameters
    ----------
    register_map : RegisterMap
    unlocked : iterable of str
        Registers the host may write while ``locked`` (e.g. ``CTRL``, for ABORT).
    registered_decode : bool
        Decode the address into flip-flops in the access's first cycle and take the access in
        its second: one cycle more per access, and no path from the master's address through
        the decode into the registers' write enables in one cycle (on the iCEBreaker's UP5K
        that path, 15 LUTs from the bridge's address to the register file, was the design's
        critical path at 19.7 MHz). ``locked`` still acts in the cycle the access is taken.

    Attributes
    ----------
    wb : In(WishboneSignature(register_map.bus_address_width))
        The host bus.
    locked : In(1)
        While high, writes to registers other than ``unlocked`` are refused with ERR.
    registers : Out(RegisterBusSignature(register_map.register_address_width))
        To :attr:`RegisterFile.bus <convhw.gateware.register_file.RegisterFile.bus>`.
    windows : Out(Signature({<window>: Out(WindowSignature(window.offset_width)), ...}))
        One port per window of the map, by lower-case name (``windows.input``).
    """

    def __init__(self, register_map: RegisterMap, *, unlocked=(),
                 registered_decode: bool = False) -> None:
        if not isinstance(register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        unlocked = tuple(unlocked)
        names = {register.name for register in register_map.registers}
        for name in unlocked:
            if name not in names:
                raise ValueError(f"unlocked must name registers of the map, not {name!r}")
        self._map = register_map
        self._unlocked = unlocked
        self._registered_decode = bool(registered_decode)
        windows = {window.name.lower(): Out(WindowSignature(window.offset_width))
                   for window in register_map.windows}
        super().__init__({
            "wb": In(WishboneSignature(register_map.bus_address_width)),
            "locked": In(1),
            "registers": Out(RegisterBusSignature(register_map.register_address_width)),
            "windows": Out(wiring.Signature(windows)),
        })

    @property
    def register_map(self) -> RegisterMap:
        return self._map

    def elaborate(self, platform):
        m = Module()
        wb = self.wb
        regmap = self._map
        ports = [getattr(self.windows, window.name.lower()) for window in regmap.windows]

        # -- decode (combinational, from the address the master presents) -------------------
        reg_words_log2 = (regmap.register_space // 4 - 1).bit_length()
        in_regs = Signal()
        reg_known = Signal()
        reg_writable = Signal()
        reg_unlocked = Signal()
        m.d.comb += in_regs.eq((wb.adr >> reg_words_log2) == 0)
        with m.Switch(wb.adr):
            for register in regmap.registers:
                with m.Case(register.address // 4):
                    m.d.comb += [reg_known.eq(1), reg_writable.eq(int(register.writable)),
                                 reg_unlocked.eq(int(register.name in self._unlocked))]

        hits = []
        for window, port in zip(regmap.windows, ports):
            # A window owns the aligned span of 2**k words at its base; only the first `words`
            # of them are mapped.
            k = (window.words - 1).bit_length()
            hit = Signal(name=f"{window.name.lower()}_hit")
            condition = (wb.adr >> k) == (window.address // 4 >> k)
            if window.words < 1 << k:
                condition &= wb.adr[:k] < window.words
            m.d.comb += hit.eq(condition)
            hits.append(hit)
            if k:
                m.d.comb += port.addr.eq(wb.adr[:k])
            m.d.comb += port.w_data.eq(wb.dat_w)

        read_only_window = Signal()
        mapped = Signal()
        # Or-ed in Python: a comb signal cannot be built up by assigning to itself.
        read_only_hits = [hit for window, hit in zip(regmap.windows, hits)
                          if window.access == "ro"]
        m.d.comb += [
            read_only_window.eq(Cat(*read_only_hits).any() if read_only_hits else 0),
            mapped.eq(Cat(in_regs & reg_known, *hits).any()),
        ]
        refused_by_address = Signal()
        m.d.comb += refused_by_address.eq(
            (wb.sel != (1 << _SEL_WIDTH) - 1) | ~mapped
            | (wb.we & ((in_regs & ~reg_writable) | read_only_window)))
        if self._registered_decode:
            # The decode of the address the master presents, a cycle late; the access is taken
            # only from its second cycle (`seen`), when these hold its own decode. The address,
            # data and WE stay on the bus until the answer (classic cycles), so the register
            # file's and the windows' address and data still come straight from the bus.
            decoded = [refused_by_address, in_regs, reg_unlocked, *hits]
            late = [Signal(name=f"{signal.name}_decoded") for signal in decoded]
            m.d.sync += [d.eq(signal) for d, signal in zip(late, decoded)]
            refused_by_address, in_regs, reg_unlocked, *hits = late
        refused = Signal()
        m.d.comb += refused.eq(refused_by_address
                               | (wb.we & self.locked & in_regs & ~reg_unlocked))

        # -- transaction control --------------------------------------------------------------
        ack_r = Signal()     # answer ACK in this cycle (if the access is still there)
        err_r = Signal()     # answer ERR in this cycle
        from_regs = Signal()  # DAT_O comes straight from the register file's r_data
        dat_r = Signal(BUS_DATA_WIDTH)
        waiting = Signal()   # a window request is outstanding
        aborted = Signal()   # ... and its access was abandoned by the master
        pending = Signal(range(max(1, len(ports))))

        request = Signal()
        accept = Signal()
        seen = Signal(init=int(not self._registered_decode))   # the access is decoded
        if self._registered_decode:
            # Set after a cycle of a request that is neither answered nor taken: the request
            # of the cycle after holds the same address, now decoded.
            m.d.sync += seen.eq(request & ~ack_r & ~err_r & ~waiting & ~accept)
        m.d.comb += [
            request.eq(wb.cyc & wb.stb),
            # In a cycle that answers, STB still belongs to the answered access: not a new one.
            accept.eq(request & seen & ~ack_r & ~err_r & ~waiting),
            wb.ack.eq(ack_r & request),
            wb.err.eq(err_r & request),
            wb.dat_r.eq(Mux(from_regs, self.registers.r_data, dat_r)),
            self.registers.addr.eq(wb.adr[:regmap.register_address_width]),
            self.registers.w_data.eq(wb.dat_w),
        ]
        m.d.sync += [ack_r.eq(0), err_r.eq(0)]

        with m.If(accept):
            with m.If(refused):
                m.d.sync += err_r.eq(1)
            with m.Elif(in_regs):
                # The register file answers in exactly one cycle.
                m.d.comb += [self.registers.r_stb.eq(~wb.we), self.registers.w_stb.eq(wb.we)]
                m.d.sync += [ack_r.eq(1), from_regs.eq(1)]
            for index, (port, hit) in enumerate(zip(ports, hits)):
                with m.Elif(hit):
                    m.d.comb += [port.r_stb.eq(~wb.we), port.w_stb.eq(wb.we)]
                    m.d.sync += from_regs.eq(0)
                    with m.If(port.ack):
                        m.d.sync += ack_r.eq(1)
                    with m.Else():
                        m.d.sync += [waiting.eq(1), aborted.eq(0), pending.eq(index)]

        if ports:
            # A window answers only the one request it has, so the answering window's data is
            # the OR of every window's data gated by its ack: no multiplexer by window and by
            # the cycle of the answer.
            answer = Mux(ports[0].ack, ports[0].r_data, 0)
            for port in ports[1:]:
                answer = answer | Mux(port.ack, port.r_data, 0)
            with m.If(Cat(*(port.ack for port in ports)).any()):
                m.d.sync += dat_r.eq(answer)
            with m.If(waiting):
                with m.If(~request):
                    m.d.sync += aborted.eq(1)
                with m.Switch(pending):
                    for index, port in enumerate(ports):
                        with m.Case(index):
                            with m.If(port.ack):
                                m.d.sync += [waiting.eq(0), ack_r.eq(request & ~aborted)]
        return m

"""The window walker: turns an input window load into the byte ranges to read, in order.

It is the first stage of :class:`~convhw.gateware.input_loader.InputLoader` in its windowed
form (see that module for the whole loader). A window is the product of two segments per axis
(``seg0`` then ``seg1``; an empty one is skipped); its pixels are visited z, then y, then x, and
each pixel's ``in_chunks`` buffer words are ``in_chunks * word_bytes`` bytes from
``addr + z*plane_pitch + y*row_pitch + x*pixel_pitch``. When ``pixel_pitch`` equals that run of
bytes, a whole x segment is one contiguous range.

The walker takes a command, computes the nine products it needs with one pipelined multiplier,
one product per cycle (``in_chunks`` times the word's bytes; each axis's two segment starts
times its pitch; the run of bytes of each x segment), then walks the window with adders only
and emits one range per cycle: one per pixel, or one per x segment when the pixels are
contiguous. Moving to the next row of a y segment costs no cycle; to a y segment's start one,
to a plane's two; a command's start (products and first addresses) 16. A command without words
emits one ``empty`` range (a marker: no bytes, but its words' ``done`` still due).

It is a component of its own so that its ranges can be checked alone: the formal harness
:class:`convhw.formal.dma.WalkerHarness` proves every range inside the window's box in memory.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from .memory_port import check_addr_width
from .multiplier import Multiplier

__all__ = ["MULTIPLIER_STAGES", "WalkerRange", "WindowCommand", "WindowSegments", "WindowWalker",
           "range_size_width"]

#: Register stages of the walker's multiplier (operands, partial products, sum).
MULTIPLIER_STAGES = timing.LOADER_MULTIPLIER_STAGES


def _bits(value: int) -> int:
    return max(1, value.bit_length())


def WindowSegments(config: EngineConfig) -> data.StructLayout:
    """One axis of a window: two segments of input coordinates (``seg1_len`` 0: none)."""
    cw = config.coord_width
    return data.StructLayout({"seg0_start": unsigned(cw), "seg0_len": unsigned(cw),
                              "seg1_start": unsigned(cw), "seg1_len": unsigned(cw)})


def WindowCommand(config: EngineConfig, fmt) -> data.StructLayout:
    """One window load into the buffer ``fmt``: the descriptor's ``INPUT_ADDR``, the three
    input pitches, ``IN_CHUNKS``, each axis's window segments, and the bank to fill
    (:func:`convhw.gateware.input_loader.InputLoadCommand`, the input buffer's)."""
    return data.StructLayout({
        "addr": unsigned(32),
        "pixel_pitch": unsigned(32),
        "row_pitch": unsigned(32),
        "plane_pitch": unsigned(32),
        "in_chunks": range(fmt.depth // 2 + 1),
        "z": WindowSegments(config),
        "y": WindowSegments(config),
        "x": WindowSegments(config),
        "bank": unsigned(1),
        # The first word written: the bank's first plus `base`.
        "base": unsigned(fmt.address_width),
    })


def range_size_width(config: EngineConfig, fmt) -> int:
    """Bits of a range's byte count: ``(2**coord_width - 1)`` pixels of up to half the buffer's
    words of ``fmt.word_bytes`` bytes."""
    return config.coord_width + _bits(fmt.depth // 2) + _bits(fmt.word_bytes)


def WalkerRange(config: EngineConfig, fmt, addr_width: int) -> data.StructLayout:
    """One range: ``size`` bytes from ``addr``; ``first``/``last``: the command's first and last
    range; ``start``: the buffer word of the command's first word; ``empty``: a command without
    words (``addr`` and ``size`` meaningless)."""
    return data.StructLayout({
        "addr": unsigned(addr_width), "size": unsigned(range_size_width(config, fmt)),
        "first": unsigned(1), "last": unsigned(1),
        "start": unsigned(fmt.address_width), "empty": unsigned(1),
    })


class WindowWalker(wiring.Component):
    """The ranges of each window load (see the module documentation).

    Parameters
    ----------
    config : EngineConfig
    addr_width : int
        Bits of a memory byte address; addresses wrap at it.
    buffer : BufferFormat
        The buffer the window fills (its word's bytes, its depth).

    Members
    -------
    command : In(stream.Signature(WindowCommand(config, buffer)))
    ranges : Out(stream.Signature(WalkerRange(config, buffer, addr_width)))

    Timing: a command taken in cycle 0, its first range is valid in cycle 16; then one per
    cycle while ``ranges.ready``; the next command is taken in the cycle after the last range
    of this one is.
    """

    def __init__(self, config: EngineConfig, addr_width: int, buffer) -> None:
        check_addr_width(addr_width)
        self._config = config
        self._format = buffer
        self._addr_width = addr_width
        self.command_layout = WindowCommand(config, buffer)
        super().__init__({
            "command": In(stream.Signature(self.command_layout)),
            "ranges": Out(stream.Signature(WalkerRange(config, buffer, addr_width))),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def buffer(self):
        """The :class:`~convhw.gateware.input_loader.BufferFormat` the windows fill."""
        return self._format

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        aw = self._addr_width
        word = self._format.word_bytes
        cw = config.coord_width
        size_width = range_size_width(config, self._format)

        cmd = Signal(self.command_layout)
        base = Signal(aw)                            # INPUT_ADDR, zero-extended or cut
        m.d.comb += base.eq(cmd.addr)
        # The buffer word the command's first word goes to: its bank's first, plus `base`.
        first_word = Signal(self._format.address_width)
        half = self._format.depth // 2
        m.d.sync += first_word.eq(Mux(cmd.bank, half, 0) + cmd.base)

        # -- the products, one multiplier ---------------------------------------------------------
        b_width = max(cw, _bits(word))
        run = Signal(size_width)                     # in_chunks * word: a pixel's bytes
        offsets = {(axis, seg): Signal(aw, name=f"offset_{axis}{seg}")
                   for axis in "zyx" for seg in (0, 1)}
        seg_bytes = [Signal(size_width, name=f"seg_bytes{seg}") for seg in (0, 1)]
        pitch = {"z": cmd.plane_pitch, "y": cmd.row_pitch, "x": cmd.pixel_pitch}
        products = [(cmd.in_chunks, Const(word, b_width), run)]
        for axis in "zyx":
            for seg in (0, 1):
                products.append((pitch[axis], getattr(cmd, axis)[f"seg{seg}_start"],
                                 offsets[axis, seg]))
        # `run` is written MULTIPLIER_STAGES cycles after step 0: long before these read it.
        assert len(products) > MULTIPLIER_STAGES
        for seg in (0, 1):
            products.append((run, cmd.x[f"seg{seg}_len"], seg_bytes[seg]))
        assert len(products) == timing.LOADER_PRODUCTS    # the cycle model counts them

        step = Signal(range(len(products) + 1), init=len(products))
        op_a = Signal(32)
        op_b = Signal(b_width)
        product = Signal(32 + b_width)
        tags = [Signal(range(len(products) + 1), name=f"tag{i}", init=len(products))
                for i in range(MULTIPLIER_STAGES)]
        with m.Switch(step):
            for index, (a, b, _) in enumerate(products):
                with m.Case(index):
                    m.d.comb += [op_a.eq(a), op_b.eq(b)]
        # The two 16 x b_width halves of the 32-bit operand, each a Multiplier whose operand
        # and product registers are a pipeline stage each: on the ECP5 they are the DSP block's
        # own (registers in the fabric made the product's trip through the block the list
        # engine's critical path, 13.2 ns of which 8.8 routing). Operands are unsigned: a zero
        # above each makes it a non-negative signed one.
        partials = []
        for name, half in (("lo", op_a[:16]), ("hi", op_a[16:])):
            multiplier = Multiplier(17, b_width + 1)
            m.submodules[f"multiplier_{name}"] = multiplier
            m.d.comb += [multiplier.a.eq(Cat(half, Const(0, 1))),
                         multiplier.b.eq(Cat(op_b, Const(0, 1)))]
            partials.append(multiplier.p[:16 + b_width])
        partial_lo, partial_hi = partials
        m.d.sync += [
            tags[0].eq(step),
            tags[1].eq(tags[0]),
            product.eq(partial_lo + (partial_hi << 16)),
            tags[2].eq(tags[1]),
        ]
        with m.Switch(tags[2]):
            for index, (_, _, target) in enumerate(products):
                with m.Case(index):
                    m.d.sync += target.eq(product)

        # -- the walk -----------------------------------------------------------------------------
        # Every decision of the walk is taken on flags held in registers (set while the
        # products are computed, or with the counter they describe), so that the control in
        # front of the address adders is a LUT or two deep.
        lens = {axis: [getattr(cmd, axis)[f"seg{s}_len"] for s in (0, 1)] for axis in "zyx"}
        skip0 = {axis: Signal(name=f"skip0_{axis}") for axis in "zyx"}     # seg0 is empty
        none1 = {axis: Signal(name=f"none1_{axis}") for axis in "zyx"}     # seg1 is empty
        single = {(axis, s): Signal(name=f"single_{axis}{s}")              # a 1-long segment
                  for axis in "zyx" for s in (0, 1)}
        empty = Signal()
        contiguous = Signal()
        seg = {axis: Signal(name=f"seg_{axis}") for axis in "zyx"}
        left = {axis: Signal(cw, name=f"left_{axis}") for axis in "zyx"}
        one = {axis: Signal(name=f"one_{axis}") for axis in "zyx"}         # left == 1
        plane, row = Signal(aw, name="plane"), Signal(aw, name="row")
        pixel = Signal(aw)
        row_first = Signal(aw)                      # the row's first pixel
        first = Signal()

        def enter(axis, s):
            """Statements that start segment ``s`` (a value) of ``axis``."""
            return [seg[axis].eq(s),
                    left[axis].eq(Mux(s, lens[axis][1], lens[axis][0])),
                    one[axis].eq(Mux(s, single[axis, 1], single[axis, 0]))]

        def step_down(axis):
            return [left[axis].eq(left[axis] - 1), one[axis].eq(left[axis] == 2)]

        def last_seg(axis):
            return seg[axis] | none1[axis]

        seg_end = contiguous | one["x"]
        row_end = seg_end & last_seg("x")
        plane_end = row_end & one["y"] & last_seg("y")
        window_end = plane_end & one["z"] & last_seg("z")

        out = self.ranges.payload
        m.d.comb += [
            out.addr.eq(pixel),
            out.size.eq(Mux(contiguous, Mux(seg["x"], seg_bytes[1], seg_bytes[0]), run)),
            out.first.eq(first),
            out.last.eq(window_end),
            out.start.eq(first_word),
        ]

        with m.FSM(name="walker"):
            with m.State("IDLE"):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    m.d.sync += [cmd.eq(self.command.payload), step.eq(0)]
                    m.next = "MULTIPLY"
            with m.State("MULTIPLY"):
                with m.If(step != len(products)):
                    m.d.sync += step.eq(step + 1)
                for axis in "zyx":
                    m.d.sync += [skip0[axis].eq(lens[axis][0] == 0),
                                 none1[axis].eq(lens[axis][1] == 0)]
                    m.d.sync += [single[axis, s].eq(lens[axis][s] == 1) for s in (0, 1)]
                m.d.sync += empty.eq((cmd.in_chunks == 0)
                                     | (lens["z"][0] == 0) & (lens["z"][1] == 0)
                                     | (lens["y"][0] == 0) & (lens["y"][1] == 0)
                                     | (lens["x"][0] == 0) & (lens["x"][1] == 0))
                with m.If(tags[2] == len(products) - 1):
                    m.next = "START"
            with m.State("START"):
                m.d.sync += [contiguous.eq(cmd.pixel_pitch == run), first.eq(1)]
                m.d.sync += enter("z", skip0["z"])
                m.d.sync += plane.eq(base + Mux(skip0["z"], offsets["z", 1], offsets["z", 0]))
                m.next = "PLANE"
                with m.If(empty):
                    m.next = "MARKER"
            with m.State("PLANE"):
                m.d.sync += enter("y", skip0["y"])
                m.d.sync += row.eq(plane + Mux(skip0["y"], offsets["y", 1], offsets["y", 0]))
                m.next = "ROW"
            with m.State("ROW"):
                m.d.sync += enter("x", skip0["x"])
                row_start = row + Mux(skip0["x"], offsets["x", 1], offsets["x", 0])
                m.d.sync += [pixel.eq(row_start), row_first.eq(row_start)]
                m.next = "RANGE"
            with m.State("RANGE"):
                push = self.ranges.ready
                m.d.comb += self.ranges.valid.eq(1)
                with m.If(push):
                    m.d.sync += first.eq(0)
                    with m.If(~seg_end):
                        m.d.sync += step_down("x")
                        m.d.sync += pixel.eq(pixel + cmd.pixel_pitch)
                    with m.Elif(~row_end):
                        m.d.sync += enter("x", 1)
                        m.d.sync += pixel.eq(row + offsets["x", 1])
                    with m.Elif(~one["y"]):
                        # The next row of the segment, without a cycle in ROW.
                        m.d.sync += step_down("y") + enter("x", skip0["x"])
                        m.d.sync += [row.eq(row + cmd.row_pitch),
                                     row_first.eq(row_first + cmd.row_pitch),
                                     pixel.eq(row_first + cmd.row_pitch)]
                    with m.Elif(~last_seg("y")):
                        m.d.sync += enter("y", 1)
                        m.d.sync += row.eq(plane + offsets["y", 1])
                        m.next = "ROW"
                    with m.Elif(~one["z"]):
                        m.d.sync += step_down("z")
                        m.d.sync += plane.eq(plane + cmd.plane_pitch)
                        m.next = "PLANE"
                    with m.Elif(~last_seg("z")):
                        m.d.sync += enter("z", 1)
                        m.d.sync += plane.eq(base + offsets["z", 1])
                        m.next = "PLANE"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("MARKER"):
                m.d.comb += [out.first.eq(1), out.last.eq(1), out.empty.eq(1),
                             self.ranges.valid.eq(1)]
                with m.If(self.ranges.ready):
                    m.next = "IDLE"

        return m

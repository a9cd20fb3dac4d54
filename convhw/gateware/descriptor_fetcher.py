"""``DescriptorFetcher``: reads a descriptor list from memory, checks each descriptor, and hands
the jobs on, ahead of their use.

On ``start`` it fetches descriptor 0 at ``list_addr``, 1 at ``list_addr + 128`` and so on (one
read command of ``128 / beat_bytes`` beats each), keeping up to ``depth`` descriptors in flight
or waiting, until the one with ``LAST`` set or the first that fails a check. Each descriptor
leaves on ``jobs`` decoded into :func:`descriptor_layout` (fields named as in
:data:`convhw.descriptor.JOB_DESCRIPTOR`, lower case) with its index in the list and an error
code: 0, or the first failing check of steps 1 to 3 of docs/memory.md's error list —

1. ``READ_ERROR``: a beat of its fetch came back with an error;
2. ``BAD_DESCRIPTOR``: ``MAGIC`` is not ``0xCD`` or a reserved bit is set;
3. ``FIELD_TOO_WIDE``: a size or coordinate at or above ``2**coord_width``, a kernel, stride,
   dilation or ``FIR_TAPS`` at or above ``2**param_width``, ``OUT_CHANNELS`` above ``cols``,
   ``INPUT_ZERO`` at or above ``2**input_width`` (with ``activation_offset``) or not 0
   (without it), ``FLOAT_REQUANTIZE`` or a non-zero ``OUTPUT_ZERO`` without ``float_output``.

A ``list_addr`` that is not a multiple of 128 gives one entry with ``MISALIGNED`` at index 0. An
entry with a code is the last one: the fetcher stops. Descriptors it fetched beyond the end
(prefetched past ``LAST`` or an error) are dropped. ``abort`` stops it in any state; it is
``busy`` until every beat it asked for has come back, so the memory port is clean when it is
idle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..descriptor import DESCRIPTOR_MAGIC, JOB_DESCRIPTOR, MemoryFormat
from ..job_format import AXIS_FIELDS
from ..registers import ErrorCode
from .read_arbiter import ReadClientSignature

__all__ = ["DescriptorFetcher", "descriptor_layout"]

_INDEX_BITS = 16


def descriptor_layout(fmt: MemoryFormat = JOB_DESCRIPTOR) -> data.StructLayout:
    """The fields of a memory format as a struct (lower-case names, the format's widths)."""
    return data.StructLayout({f.name.lower(): unsigned(f.width) for f in fmt.fields})


def decode(raw, fmt: MemoryFormat = JOB_DESCRIPTOR):
    """The struct value of the record ``raw`` (its words, least significant first): wiring
    only."""
    layout = descriptor_layout(fmt)
    parts = []
    for name, _ in layout:
        field = fmt[name.upper()]
        start = 32 * field.word + field.offset
        parts.append(raw[start:start + field.width])
    return layout(Cat(*parts))


class DescriptorFetcher(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    config : EngineConfig
    addr_width : int
        Bits of a memory byte address.
    depth : int
        Descriptors in flight or waiting on ``jobs`` at most (2..16).

    Attributes
    ----------
    start : In(1)
        Pulse: fetch the list at ``list_addr`` (ignored while busy).
    list_addr : In(addr_width)
    abort : In(1)
        Pulse: stop; drop what has been fetched.
    memory : Out(ReadClientSignature)
    jobs : Out(stream.Signature(entry_layout))
        ``descriptor``, ``index`` (16 bits), ``code`` (8 bits).
    busy : Out(1)
    """

    def __init__(self, config: EngineConfig, addr_width: int = 32, *,
                 depth: int = timing.FETCH_DEPTH):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or not 2 <= depth <= 16:
            raise ValueError(f"depth must be an integer from 2 to 16, not {depth!r}")
        self._config = config
        self._depth = depth
        self._addr_width = addr_width
        super().__init__({
            "start": In(1),
            "list_addr": In(addr_width),
            "abort": In(1),
            "memory": Out(ReadClientSignature(config.memory_width, addr_width)),
            "jobs": Out(stream.Signature(self.entry_layout)),
            "busy": Out(1),
        })

    @property
    def entry_layout(self) -> data.StructLayout:
        return data.StructLayout({"descriptor": descriptor_layout(), "index": _INDEX_BITS,
                                  "code": 8})

    @property
    def beats(self) -> int:
        """Beats of one descriptor's fetch."""
        return JOB_DESCRIPTOR.size // self._config.beat_bytes

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        beats, beat_bits = self.beats, config.memory_width
        entry_layout = self.entry_layout
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=entry_layout.size,
                                                           depth=self._depth)
        # After an abort the queue is emptied here (the fetcher is never reset while beats it
        # asked for are on their way: it must count them in).
        aborted = Signal()
        m.d.comb += [
            self.jobs.valid.eq(queue.r_rdy & ~aborted),
            self.jobs.payload.eq(queue.r_data),
            queue.r_en.eq(self.jobs.ready | aborted),
        ]

        running = Signal()          # issuing commands: between start and the end of the list
        stopped = Signal()          # the list ended (LAST, an error or abort): drop the rest
        next_addr = Signal(self._addr_width)
        # Descriptors asked for and not yet decoded, and entries waiting in the queue (the
        # FIFO's level lags a cycle; this counts what will be in it).
        in_flight = Signal(range(self._depth + 1))
        waiting = Signal(range(self._depth + 1))
        received_index = Signal(_INDEX_BITS)

        cmd = self.memory.read_cmd
        issue = Signal()
        m.d.comb += [
            cmd.payload.addr.eq(next_addr),
            cmd.payload.len.eq(beats - 1),
            cmd.valid.eq(running & ~stopped & (in_flight + waiting < self._depth)),
            issue.eq(cmd.valid & cmd.ready),
        ]

        # -- beats -> one record --------------------------------------------------------------
        # (Data, which `complete` qualifies: not reset, like the other wide data registers, so
        # that the reset net does not reach another 1,024 flip-flops.)
        record = Signal(JOB_DESCRIPTOR.size * 8, reset_less=True)
        read_error = Signal()
        rd = self.memory.read_data
        complete = Signal()          # the record's last beat arrives in this cycle
        m.d.comb += rd.ready.eq(1)   # a record register is always free: see `decoded` below
        with m.If(rd.valid):
            m.d.sync += record.eq(Cat(record[beat_bits:], rd.payload.data) if beats > 1
                                  else rd.payload.data)
            with m.If(rd.payload.last):
                m.d.sync += read_error.eq(0)
                m.d.comb += complete.eq(1)
            with m.Else():
                m.d.sync += read_error.eq(read_error | rd.payload.error)

        # -- checks, a cycle after the record is complete ------------------------------------
        checking = Signal()
        check_error = Signal()
        m.d.sync += [checking.eq(complete), check_error.eq(read_error | rd.payload.error)]
        fields = decode(record)
        reserved = Const(sum(mask << (32 * i) for i, mask
                             in enumerate(JOB_DESCRIPTOR.reserved_masks)), len(record))
        bad = (fields.magic != DESCRIPTOR_MAGIC) | (record & reserved).any()
        too_wide = [fields.out_channels > config.cols]
        for axis in "zyx":
            for field in AXIS_FIELDS:
                value = getattr(fields, f"{axis}_{field.name}")
                limit = field.width_for(config)
                if limit < len(value):
                    too_wide.append(value[limit:].any())
        if config.param_width < len(fields.fir_taps):
            too_wide.append(fields.fir_taps[config.param_width:].any())
        # The zero point: input_width bits with the activation offset, none without it.
        zero_bits = config.input_width if config.activation_offset else 0
        if zero_bits < len(fields.input_zero):
            too_wide.append(fields.input_zero[zero_bits:].any())
        # The float32 output processing and its zero point: only with float_output.
        if not config.float_output:
            too_wide += [fields.float_requantize, fields.output_zero.any()]
        code = Signal(8)
        with m.If(check_error):
            m.d.comb += code.eq(ErrorCode.READ_ERROR)
        with m.Elif(bad):
            m.d.comb += code.eq(ErrorCode.BAD_DESCRIPTOR)
        with m.Elif(Cat(*too_wide).any()):
            m.d.comb += code.eq(ErrorCode.FIELD_TOO_WIDE)

        entry = Signal(entry_layout)
        misaligned = Signal()
        with m.If(misaligned):
            m.d.comb += entry.code.eq(ErrorCode.MISALIGNED)
        with m.Else():
            m.d.comb += [entry.descriptor.eq(fields), entry.index.eq(received_index),
                         entry.code.eq(code)]
        push = Signal()
        m.d.comb += [
            queue.w_data.eq(entry),
            push.eq((checking & ~stopped) | misaligned),
            queue.w_en.eq(push),
        ]
        popped = Signal()
        m.d.comb += popped.eq(queue.r_rdy & queue.r_en)

        # -- bookkeeping ---------------------------------------------------------------------
        m.d.sync += in_flight.eq(in_flight + issue - checking)
        m.d.sync += waiting.eq(waiting + push - popped)
        with m.If(issue):
            m.d.sync += next_addr.eq(next_addr + JOB_DESCRIPTOR.size)
        with m.If(checking):
            m.d.sync += received_index.eq(received_index + 1)
            with m.If(~stopped & ((code != 0) | fields.last)):
                m.d.sync += [stopped.eq(1), running.eq(0)]
        m.d.sync += misaligned.eq(0)
        with m.If(self.start & ~self.busy):
            aligned = self.list_addr[:7] == 0
            m.d.sync += [next_addr.eq(self.list_addr), received_index.eq(0),
                         stopped.eq(~aligned), running.eq(aligned), misaligned.eq(~aligned),
                         aborted.eq(0)]
        with m.If(self.abort):
            m.d.sync += [stopped.eq(1), running.eq(0), misaligned.eq(0), aborted.eq(1)]
        m.d.comb += self.busy.eq(running | (in_flight != 0) | checking | misaligned
                                 | (aborted & (waiting != 0)))
        return m

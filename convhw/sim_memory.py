"""Memory and bus-slave models for simulation testbenches of the bus masters
(:class:`~convhw.gateware.axi4.Axi4Master`, :class:`~convhw.gateware.wishbone_master.
WishboneMaster`) and of the engine behind them.

* :class:`SparseMemory`: a byte-addressed memory of any size; bytes never written read as a
  fixed pattern of their address (or a given function of it), so that a read from a wrong
  address shows.
* :func:`axi4_slave`, :func:`wishbone_slave`: Amaranth simulator *processes* (``sim.add_process(
  functools.partial(axi4_slave, axi=..., memory=...))``) that serve a bus from a
  :class:`SparseMemory`: seeded random pauses on every channel, a fixed read latency, any number
  of outstanding reads, error answers for address ranges, protocol checks (an
  :class:`AssertionError` from the process fails the simulation), and an optional trace of every
  transfer with its cycle. Given a :class:`~convhw.memory_model.MemoryModel` (``model=``) they
  follow its rules exactly: its latency, its byte credit shared by reads and writes (reads
  first), and its seeded stalls.
* :func:`stream_put`, :func:`stream_get`: one transfer on an :mod:`amaranth.lib.stream` stream
  from an async testbench.
* :func:`pack`, :func:`unpack`: a :class:`~amaranth.lib.data.StructLayout` value as an integer
  and back, for testbenches that see a payload as a plain vector (cocotb on the generated
  Verilog).

Cycles are counted by the slaves from 1 (the first clock edge they see); a trace entry's cycle
is the cycle in which the transfer happened, i.e. before the edge that completes it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from amaranth.lib import data

from .memory_model import MemoryModel

__all__ = ["SparseMemory", "axi4_slave", "pack", "stream_get", "stream_put", "unpack",
           "wishbone_slave"]


def default_background(address: int) -> int:
    """What :class:`SparseMemory` reads at a byte never written: a hash of the address."""
    return (address * 2654435761 >> 13) & 0xFF


class SparseMemory:
    """A byte-addressed memory that stores only the bytes written.

    Parameters
    ----------
    background : callable, optional
        The value of a byte never written, from its address (default
        :func:`default_background`).
    """

    def __init__(self, background: Callable[[int], int] = default_background) -> None:
        self._bytes: dict[int, int] = {}
        self._background = background

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes from ``address``."""
        return bytes(self._bytes.get(a, self._background(a) & 0xFF)
                     for a in range(address, address + size))

    def write(self, address: int, content: bytes | bytearray,
              mask: Iterable[bool] | None = None) -> None:
        """Write ``content`` at ``address``; where ``mask`` is given, only the bytes whose mask
        entry is true."""
        mask = [True] * len(content) if mask is None else list(mask)
        for offset, (byte, keep) in enumerate(zip(content, mask)):
            if keep:
                self._bytes[address + offset] = byte

    def read_word(self, address: int, size: int) -> int:
        """``size`` bytes from ``address`` as a little-endian integer."""
        return int.from_bytes(self.read(address, size), "little")

    def write_word(self, address: int, value: int, size: int, strb: int | None = None) -> None:
        """Write ``value`` (little-endian, ``size`` bytes) at ``address``; byte ``i`` only if
        bit ``i`` of ``strb`` is set (all bytes if ``strb`` is None)."""
        mask = None if strb is None else [bool(strb >> i & 1) for i in range(size)]
        self.write(address, (value & ((1 << 8 * size) - 1)).to_bytes(size, "little"), mask)

    @property
    def written(self) -> dict[int, int]:
        """The bytes written so far, by address (a copy)."""
        return dict(self._bytes)


def _in_ranges(address: int, ranges) -> bool:
    return any(start <= address < end for start, end in ranges)


def _check_latency(latency: object) -> int:
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
        raise ValueError(f"latency must be a positive integer, not {latency!r}")
    return latency


class _Credit:
    """The bandwidth rule of a :class:`MemoryModel` for a bus of ``beat`` bytes per beat: the
    bytes the memory may still move, at the start of the current cycle."""

    def __init__(self, model: MemoryModel | None, beat: int) -> None:
        self.beat = beat
        self.rate = None if model is None else model.bytes_per_cycle
        self.cap = None if model is None else model.cap(beat)
        self.left = self.cap

    def reset(self) -> None:
        self.left = self.cap

    def allows(self, reserved: int = 0) -> bool:
        """Whether a beat may move in the current cycle, after ``reserved`` beats set aside."""
        return self.rate is None or self.left - reserved * self.beat >= self.beat

    def end_cycle(self, beats: int) -> None:
        """The current cycle ends with ``beats`` beats moved."""
        if self.rate is not None:
            self.left = min(self.cap, self.left - beats * self.beat + self.rate)


def _apply_model(model, latency, pause, seed):
    """``(latency, pause, seed)`` from ``model`` if given, else as passed."""
    if model is None:
        return _check_latency(latency), pause, seed
    if not isinstance(model, MemoryModel):
        raise TypeError(f"model must be a MemoryModel or None, not {model!r}")
    return model.latency, model.stall_probability, model.stall_seed


def _pausers(pause, channels: tuple[str, ...], seed: int) -> dict[str, Callable[[], bool]]:
    """One seeded random ``() -> bool`` per channel: True = pause in this cycle."""
    if isinstance(pause, Mapping):
        unknown = set(pause) - set(channels)
        if unknown:
            raise ValueError(f"pause channels must be among {', '.join(channels)}, "
                             f"not {sorted(unknown)!r}")
        chances = {ch: float(pause.get(ch, 0.0)) for ch in channels}
    else:
        chances = dict.fromkeys(channels, float(pause))
    for ch, chance in chances.items():
        if not 0 <= chance < 1:
            raise ValueError(f"pause must be a probability in [0, 1), not {chance!r} ({ch})")
    result = {}
    for index, ch in enumerate(channels):
        rng = random.Random(seed * 131 + index)
        result[ch] = (lambda rng=rng, chance=chances[ch]: chance > 0 and rng.random() < chance)
    return result


async def axi4_slave(ctx, axi, memory: SparseMemory, *, latency: int = 1, pause=0.0,
                     errors: Iterable[tuple[int, int]] = (), seed: int = 0,
                     trace: list | None = None, model: MemoryModel | None = None) -> None:
    """An AXI4 slave on ``axi`` (an interface with the members of
    :class:`~convhw.gateware.axi4.Axi4Signature`, seen from the master) serving ``memory``.

    * Read bursts are accepted whenever ``arready`` is up, without limit; the first beat of a
      burst is presented ``latency`` cycles after its AR transfer at the earliest, bursts
      in order, the beats of a burst one per cycle unless paused. ``rid`` is the burst's
      ``arid``.
    * Write data is accepted whenever ``wready`` is up, also before its address. A write burst
      is performed when its address and all its beats are in, and answered on B ``latency``
      cycles later at the earliest.
    * A beat whose address lies in one of the ``errors`` ranges (``[start, end)`` byte
      addresses) is answered ``SLVERR`` (reads: data 0; writes: not written, and the burst's
      ``bresp`` is ``SLVERR``).
    * ``pause``: a probability, or a mapping from channel (``ar aw w r b``) to a probability,
      that the channel's ``ready`` is low (AR, AW, W) or that no new beat is presented (R, B)
      in a cycle; seeded from ``seed``.
    * Checks: INCR bursts only, ``*size`` equal to the bus width, no burst crossing 4 KiB,
      ``wlast`` exactly on the last beat of a burst.
    * ``trace``: if a list, gets ``(cycle, channel, details)`` for every transfer: ``("ar",
      (addr, len))``, ``("r", (addr, resp, last))``, ``("aw", (addr, len))``, ``("w", (data,
      strb, last))``, ``("b", resp)``.
    * ``model``: a :class:`~convhw.memory_model.MemoryModel`, whose rules then hold exactly:
      its ``latency`` and stalls replace ``latency``, ``pause`` and ``seed``, and a read beat
      is presented (``rvalid``) or write data taken (``wready``) only while the byte credit
      allows it, a presented read beat's bytes set aside before ``wready`` is decided.

    Runs for ever; use it as a (background) process.
    """
    latency, pause, seed = _apply_model(model, latency, pause, seed)
    errors = list(errors)
    size = len(axi.wdata) // 8
    credit = _Credit(model, size)
    size_log2 = (size - 1).bit_length()
    paused = _pausers(pause, ("ar", "aw", "w", "r", "b"), seed)

    def check_burst(channel, addr, length, burst, beat_size):
        if burst != 0b01:
            raise AssertionError(f"{channel}burst {burst:#04b} at {addr:#x}: only INCR served")
        if beat_size != size_log2:
            raise AssertionError(f"{channel}size {beat_size} at {addr:#x}, bus is {size_log2}")
        if addr % size:
            raise AssertionError(f"{channel}addr {addr:#x} not aligned to {size} bytes")
        if addr // 4096 != (addr + (length + 1) * size - 1) // 4096:
            raise AssertionError(f"{channel} burst at {addr:#x}, {length + 1} beats, crosses "
                                 f"a 4 KiB boundary")

    reads = deque()          # [due cycle, next address, beats left, id]
    writes = deque()         # [address, beats, id]
    wbeats = deque()         # (data, strb, last)
    bresps = deque()         # [due cycle, resp, id]
    r_out = None             # the R beat presented: (addr, resp, last)
    b_out = None
    for signal in (axi.arready, axi.awready, axi.wready, axi.rvalid, axi.bvalid):
        ctx.set(signal, 0)
    ready = {"ar": False, "aw": False, "w": False}
    cycle = 0
    samples = (axi.arvalid, axi.araddr, axi.arlen, axi.arsize, axi.arburst, axi.arid,
               axi.awvalid, axi.awaddr, axi.awlen, axi.awsize, axi.awburst, axi.awid,
               axi.wvalid, axi.wdata, axi.wstrb, axi.wlast, axi.rready, axi.bready)
    while True:
        _, reset, *values = await ctx.tick().sample(*samples)
        cycle += 1
        (arvalid, araddr, arlen, arsize, arburst, arid, awvalid, awaddr, awlen, awsize, awburst,
         awid, wvalid, wdata, wstrb, wlast, rready, bready) = values
        if reset:
            reads.clear(), writes.clear(), wbeats.clear(), bresps.clear()
            r_out = b_out = None
            credit.reset()
            ready = dict.fromkeys(ready, False)
            for signal in (axi.arready, axi.awready, axi.wready, axi.rvalid, axi.bvalid):
                ctx.set(signal, 0)
            continue
        # -- transfers that happened in this cycle ---------------------------------------------
        credit.end_cycle((r_out is not None and rready) + (ready["w"] and wvalid))
        if r_out is not None and rready:
            if trace is not None:
                trace.append((cycle, "r", r_out))
            r_out = None
        if b_out is not None and bready:
            if trace is not None:
                trace.append((cycle, "b", b_out))
            b_out = None
        if ready["ar"] and arvalid:
            check_burst("ar", araddr, arlen, arburst, arsize)
            reads.append([cycle + latency, araddr, arlen + 1, arid])
            if trace is not None:
                trace.append((cycle, "ar", (araddr, arlen)))
        if ready["aw"] and awvalid:
            check_burst("aw", awaddr, awlen, awburst, awsize)
            writes.append([awaddr, awlen + 1, awid])
            if trace is not None:
                trace.append((cycle, "aw", (awaddr, awlen)))
        if ready["w"] and wvalid:
            wbeats.append((wdata, wstrb, wlast))
            if trace is not None:
                trace.append((cycle, "w", (wdata, wstrb, wlast)))
        # -- complete write bursts -----------------------------------------------------------------
        while writes and len(wbeats) >= writes[0][1]:
            addr, beats, wid = writes.popleft()
            resp = 0
            for index in range(beats):
                value, strb, last = wbeats.popleft()
                if bool(last) != (index == beats - 1):
                    raise AssertionError(f"wlast {last} on beat {index} of the {beats}-beat "
                                         f"write burst at {addr:#x}")
                beat_addr = addr + index * size
                if _in_ranges(beat_addr, errors):
                    resp = 0b10
                else:
                    memory.write_word(beat_addr, value, size, strb)
            bresps.append([cycle + latency, resp, wid])
        # -- outputs of the next cycle -----------------------------------------------------------
        if r_out is None:
            if reads and reads[0][0] <= cycle + 1 and credit.allows() and not paused["r"]():
                burst = reads[0]
                addr = burst[1]
                error = _in_ranges(addr, errors)
                last = burst[2] == 1
                r_out = (addr, 0b10 if error else 0, last)
                ctx.set(axi.rdata, 0 if error else memory.read_word(addr, size))
                ctx.set(axi.rresp, r_out[1])
                ctx.set(axi.rlast, last)
                ctx.set(axi.rid, burst[3])
                burst[1] += size
                burst[2] -= 1
                if last:
                    reads.popleft()
            ctx.set(axi.rvalid, r_out is not None)
        if b_out is None:
            if bresps and bresps[0][0] <= cycle + 1 and not paused["b"]():
                _, resp, bid = bresps.popleft()
                b_out = resp
                ctx.set(axi.bresp, resp)
                ctx.set(axi.bid, bid)
            ctx.set(axi.bvalid, b_out is not None)
        for ch, signal in (("ar", axi.arready), ("aw", axi.awready), ("w", axi.wready)):
            ready[ch] = not paused[ch]()
            if ch == "w":
                ready[ch] = ready[ch] and credit.allows(r_out is not None)
            ctx.set(signal, ready[ch])


async def wishbone_slave(ctx, bus, memory: SparseMemory, *, latency: int = 1, pause=0.0,
                         errors: Iterable[tuple[int, int]] = (), seed: int = 0,
                         trace: list | None = None, model: MemoryModel | None = None) -> None:
    """A Wishbone B4 pipelined slave on ``bus`` (an interface with the members of
    :class:`~convhw.gateware.wishbone_master.WishbonePipelinedSignature`, seen from the master)
    serving ``memory``.

    * A beat is accepted in a cycle with ``cyc & stb & ~stall``; it is performed then (a write
      at once, a read's data taken then) and answered ``latency`` cycles later at the earliest,
      in order, one answer per cycle. Any number of beats may be outstanding. A master that
      drops ``cyc`` abandons the beats not yet answered (they are never answered).
    * A beat whose byte address lies in one of the ``errors`` ranges is answered with ``err``
      (reads: data 0; writes: not written).
    * ``pause``: a probability, or a mapping from channel (``stall``, ``ack``) to a
      probability, that ``stall`` is high or that a due answer waits a cycle; seeded from
      ``seed``.
    * Checks: within a bus cycle, a beat tagged ``cti`` 0b010 (incrementing) is followed by the
      next word address; ``bte`` is 0b00; a beat tagged 0b111 (end of burst) is the last of the
      bus cycle (no more beats until ``cyc`` drops).
    * ``trace``: if a list, gets ``(cycle, "beat", (adr, we, sel, cti))`` for every beat
      accepted, ``(cycle, "ack" or "err", adr)`` for every answer and ``(cycle, "cyc",
      0 or 1)`` for every change of ``cyc``.
    * ``model``: a :class:`~convhw.memory_model.MemoryModel`, whose rules then hold exactly:
      its ``latency`` and stalls replace ``latency``, ``pause`` and ``seed``, and ``stall`` is
      also high in a cycle that starts with less than a beat's bytes of credit.

    Runs for ever; use it as a (background) process.
    """
    latency, pause, seed = _apply_model(model, latency, pause, seed)
    errors = list(errors)
    size = len(bus.dat_w) // 8
    credit = _Credit(model, size)
    shift = (size - 1).bit_length()
    paused = _pausers(pause, ("stall", "ack"), seed)
    pending = deque()        # [due cycle, err, data, adr]
    answering = None         # the answer driven in the current cycle
    stalled = False
    expect = None            # the word address the next beat of a burst must have
    ended = False            # a beat tagged "end of burst" was accepted in this bus cycle
    last_cyc = 0
    for signal in (bus.ack, bus.err, bus.stall):
        ctx.set(signal, 0)
    cycle = 0
    samples = (bus.cyc, bus.stb, bus.we, bus.adr, bus.dat_w, bus.sel, bus.cti, bus.bte)
    while True:
        _, reset, *values = await ctx.tick().sample(*samples)
        cycle += 1
        cyc, stb, we, adr, dat_w, sel, cti, bte = values
        if reset:
            pending.clear()
            credit.reset()
            answering, stalled, expect, ended, last_cyc = None, False, None, False, 0
            for signal in (bus.ack, bus.err, bus.stall):
                ctx.set(signal, 0)
            continue
        if cyc != last_cyc and trace is not None:
            trace.append((cycle, "cyc", cyc))
        last_cyc = cyc
        if answering is not None and trace is not None and cyc:
            trace.append((cycle, "err" if answering[1] else "ack", answering[3]))
        answering = None
        credit.end_cycle(bool(cyc and stb and not stalled))
        if not cyc:
            pending.clear()
            expect, ended = None, False
        elif stb and not stalled:
            if bte != 0:
                raise AssertionError(f"bte {bte:#04b} at word {adr:#x}: only linear bursts")
            if ended:
                raise AssertionError(f"beat at word {adr:#x} after an end-of-burst beat in the "
                                     f"same bus cycle")
            if expect is not None and adr != expect:
                raise AssertionError(f"incrementing burst goes to word {adr:#x}, expected "
                                     f"{expect:#x}")
            expect = adr + 1 if cti == 0b010 else None
            ended = cti == 0b111
            address = adr << shift
            error = _in_ranges(address, errors)
            value = 0
            if not error:
                if we:
                    memory.write_word(address, dat_w, size, sel)
                else:
                    value = memory.read_word(address, size)
            pending.append([cycle + latency, error, value, adr])
            if trace is not None:
                trace.append((cycle, "beat", (adr, we, sel, cti)))
        # -- outputs of the next cycle -----------------------------------------------------------
        if pending and pending[0][0] <= cycle + 1 and not paused["ack"]():
            answering = pending.popleft()
            ctx.set(bus.ack, not answering[1])
            ctx.set(bus.err, answering[1])
            ctx.set(bus.dat_r, answering[2])
        else:
            ctx.set(bus.ack, 0)
            ctx.set(bus.err, 0)
        stalled = paused["stall"]() or not credit.allows()
        ctx.set(bus.stall, stalled)


async def stream_put(ctx, stream, payload) -> None:
    """Send one transfer on ``stream`` (a testbench drives ``valid``/``payload``): returns after
    the edge that completes it, with ``valid`` low."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    # A loop of single ticks rather than ``until``: an exception raised elsewhere then leaves
    # no suspended async generator behind.
    while True:
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            break
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Receive one transfer on ``stream`` (a testbench drives ``ready``): returns its payload
    after the edge that completes it, with ``ready`` low."""
    ctx.set(stream.ready, 1)
    while True:
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            break
    ctx.set(stream.ready, 0)
    return payload


def pack(layout: data.StructLayout, **fields: int) -> int:
    """The integer whose bits are the fields of ``layout`` (missing fields 0)."""
    value = 0
    for name, field in layout:
        value |= (int(fields.pop(name, 0)) & ((1 << field.width) - 1)) << field.offset
    if fields:
        raise ValueError(f"fields must be members of the layout, not {sorted(fields)!r}")
    return value


def unpack(layout: data.StructLayout, value: int) -> dict[str, int]:
    """The fields of ``layout`` in the integer ``value``."""
    return {name: value >> field.offset & ((1 << field.width) - 1) for name, field in layout}

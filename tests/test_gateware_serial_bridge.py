# amaranth: UnusedElaboratable=no
# (Components whose constructor raises are never elaborated; without this, Amaranth warns about
# them when they are collected.)
"""The serial bridge alone, driven byte-wise through its streams, against a Wishbone slave model
with a few addresses that answer ERR and one that never answers: READ/WRITE bursts up to
MAX_BURST, INFO, every refusal, CRC errors at every bit, frame and bus timeouts, duplicate-tag
WRITEs, garbage between frames, random traffic against a Python model of the protocol; and the
gateware CRC against the protocol module's."""

import random
import struct

import pytest
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from convhw.gateware.crc16 import crc16_next
from convhw.gateware.serial_bridge import SerialBridge
from convhw.gateware.wishbone import WishboneSignature
from convhw.serial_protocol import (
    LARGEST_BURST,
    MAX_BURST,
    REQUEST_SYNC,
    Command,
    Reject,
    Response,
    Status,
    crc16,
    crc16_update,
    decode_response,
    encode_request,
    frame_timeout_bytes,
    info_words,
)

AW = 8                        # 256 words: byte addresses 0x000..0x3FC
ERR_WORDS = (0x90, 0x91, 0xC0)
SILENT_WORD = 0xA0            # never answers
CLOCK_HZ = 1_234_567
DIVISOR = 4
BUS_TIMEOUT = 24


def initial(word):
    return (0x5EED0000 | word * 0x0101) & 0xFFFFFFFF


# -- the Wishbone slave model --------------------------------------------------------------


class SlaveModel(wiring.Component):
    """A memory of 2**AW words behind a classic Wishbone slave that answers each access after
    ``latency`` wait states (0: ACK combinationally in the access's first cycle), with ERR at
    ERR_WORDS and no answer at SILENT_WORD.

    ``reads``/``writes`` count answered accesses; ``violation`` latches a partial ``sel`` or a
    master that changes ``adr``/``we``/``dat_w`` of an access before it is answered; ``dat_r``
    is garbage outside the ACK cycle.
    """

    def __init__(self, latency):
        self.latency = latency
        self.memory = Memory(shape=32, depth=1 << AW, init=[initial(w) for w in range(1 << AW)])
        super().__init__({
            "bus": In(WishboneSignature(AW)),
            "reads": Out(16),
            "writes": Out(16),
            "violation": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = self.memory
        read = self.memory.read_port(domain="comb")
        write = self.memory.write_port()
        bus = self.bus

        request = bus.cyc & bus.stb
        waited = Signal(range(self.latency + 1))
        answer = request & (waited == self.latency) & (bus.adr != SILENT_WORD)
        refused = Cat(*(bus.adr == word for word in ERR_WORDS)).any()
        m.d.comb += [
            read.addr.eq(bus.adr),
            write.addr.eq(bus.adr),
            write.data.eq(bus.dat_w),
            write.en.eq(bus.ack & bus.we),
            bus.ack.eq(answer & ~refused),
            bus.err.eq(answer & refused),
            bus.dat_r.eq(Mux(bus.ack, read.data, 0xDEADBEEF)),
        ]
        with m.If(~request | answer):
            m.d.sync += waited.eq(0)
        with m.Else():
            m.d.sync += waited.eq(waited + (waited != self.latency))
        with m.If(bus.ack & bus.we):
            m.d.sync += self.writes.eq(self.writes + 1)
        with m.If(bus.ack & ~bus.we):
            m.d.sync += self.reads.eq(self.reads + 1)

        pending = Signal()   # an access was presented and not answered last cycle
        held = Signal.like(Cat(bus.adr, bus.we, bus.dat_w))
        presented = Cat(bus.adr, bus.we, bus.dat_w)
        m.d.sync += [pending.eq(request & ~bus.ack & ~bus.err), held.eq(presented)]
        with m.If(request & ((bus.sel != 0b1111) | (pending & (presented != held)))):
            m.d.sync += self.violation.eq(1)
        return m


class Harness(wiring.Component):
    def __init__(self, *, latency=1, bus_timeout=BUS_TIMEOUT, max_burst=MAX_BURST, rx_fifo=0):
        self.bridge = SerialBridge(AW, clock_hz=CLOCK_HZ, divisor=DIVISOR,
                                   bus_timeout=bus_timeout, max_burst=max_burst,
                                   rx_fifo=rx_fifo)
        self.slave = SlaveModel(latency)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.slave = self.slave
        wiring.connect(m, self.bridge.bus, self.slave.bus)
        return m


# -- a byte-level host ---------------------------------------------------------------------


class Host:
    """Sends request bytes into the bridge's ``rx`` stream and collects its ``tx`` stream in the
    background, with random back-pressure; keeps a per-cycle trace of ``cyc`` and ``active``."""

    def __init__(self, harness, seed=0):
        self.harness = harness
        self.bridge = harness.bridge
        self.rng = random.Random(seed)
        self.received = []
        self.cycle = 0
        self.cyc_cycles = 0

    async def collect(self, ctx):
        tx = self.bridge.tx
        while True:
            ready = self.rng.random() < 0.6
            ctx.set(tx.ready, ready)
            if ready and ctx.get(tx.valid):
                self.received.append(ctx.get(tx.payload))
            self.cyc_cycles += ctx.get(self.bridge.bus.cyc)
            await ctx.tick()
            self.cycle += 1

    async def send(self, ctx, data, *, spacing=(0, 3)):
        rx = self.bridge.rx
        for byte in data:
            for _ in range(self.rng.randint(*spacing)):
                await ctx.tick()
            ctx.set(rx.payload, byte)
            ctx.set(rx.valid, 1)
            assert ctx.get(rx.ready)
            await ctx.tick()
            ctx.set(rx.valid, 0)

    async def response(self, ctx, *, timeout=5000, idle=True):
        """The next whole response, decoded (which checks its sync byte, CRC and length)."""
        for _ in range(timeout):
            if len(self.received) >= 5 and len(self.received) >= 7 + 4 * self.received[4]:
                break
            await ctx.tick()
        else:
            raise AssertionError(f"no complete response in {timeout} cycles: {self.received}")
        length = 7 + 4 * self.received[4]
        frame, self.received[:] = bytes(self.received[:length]), self.received[length:]
        # The bridge is back to hunting right after its last byte (unless requests are queued
        # in its receive FIFO: `idle` False).
        await ctx.tick()
        await ctx.tick()
        assert not idle or not ctx.get(self.bridge.active)
        return decode_response(frame)

    async def request(self, ctx, *args, **kwargs):
        await self.send(ctx, encode_request(*args, **kwargs))
        return await self.response(ctx)


def simulate(harness, testbench, *, seed=0):
    host = Host(harness, seed)
    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(host.collect, background=True)

    async def main(ctx):
        await testbench(ctx, host)
        assert not ctx.get(harness.slave.violation)
        assert host.received == []  # no stray response bytes

    sim.add_testbench(main)
    sim.run()
    return host


def header_only(command, tag, address, count):
    """A request frame with no payload whatever the command (encode_request would add one)."""
    body = struct.pack("<BBBBI", REQUEST_SYNC, command, tag, count - 1, address)
    return body + crc16(body[1:]).to_bytes(2, "big")


def memory_words(ctx, slave, start, count):
    return [ctx.get(slave.memory.data[start + i]) for i in range(count)]


# -- a Python model of the protocol, over the slave model ----------------------------------


class BridgeModel:
    def __init__(self):
        self.memory = [initial(w) for w in range(1 << AW)]
        self.last_write = None   # (tag, Response) of the last WRITE carried out

    def execute(self, command, tag, address=0, count=1, payload=()):
        if command == Command.INFO:
            return Response(tag, Status.OK, 0, info_words(CLOCK_HZ, DIVISOR))
        if command not in (Command.READ, Command.WRITE):
            return Response(tag, Status.BAD_REQUEST, Reject.UNKNOWN_COMMAND)
        if address % 4:
            return Response(tag, Status.BAD_REQUEST, Reject.MISALIGNED_ADDRESS)
        if count > MAX_BURST:
            return Response(tag, Status.BAD_REQUEST, Reject.BURST_TOO_LONG)
        if command == Command.WRITE and self.last_write and self.last_write[0] == tag:
            return self.last_write[1]
        words = []
        response = None
        for i in range(count):
            word = address // 4 + i
            if word >= 1 << AW or word in ERR_WORDS:
                response = Response(tag, Status.BUS_ERROR, i)
            elif word == SILENT_WORD:
                response = Response(tag, Status.BUS_TIMEOUT, i)
            if response:
                break
            if command == Command.WRITE:
                self.memory[word] = payload[i]
            else:
                words.append(self.memory[word])
        response = response or Response(tag, Status.OK, 0, tuple(words))
        if command == Command.WRITE:
            self.last_write = (tag, response)
        return response


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("latency", [0, 2])
def test_read_write_bursts(latency):
    """Bursts of 1, 3 and MAX_BURST words; a burst takes (1 + wait states) cycles per word."""
    harness = Harness(latency=latency)
    slave = harness.slave
    rng = random.Random(latency)

    async def testbench(ctx, host):
        r = await host.request(ctx, Command.READ, 1, 0x010, 1)
        assert r == Response(1, Status.OK, 0, (initial(4),))
        data = [rng.getrandbits(32) for _ in range(MAX_BURST)]
        r = await host.request(ctx, Command.WRITE, 2, 0x100, MAX_BURST, data)
        assert r == Response(2, Status.OK, 0, ())
        assert memory_words(ctx, slave, 0x40, MAX_BURST) == data
        assert ctx.get(slave.memory.data[0x3F]) == initial(0x3F)    # neighbours untouched
        assert ctx.get(slave.memory.data[0x80]) == initial(0x80)
        assert ctx.get(slave.writes) == MAX_BURST
        r = await host.request(ctx, Command.WRITE, 3, 0x3F4, 3, data[:3])
        assert r == Response(3, Status.OK)
        assert memory_words(ctx, slave, 0xFD, 3) == data[:3]
        before = host.cyc_cycles
        r = await host.request(ctx, Command.READ, 4, 0x100, MAX_BURST)
        assert r == Response(4, Status.OK, 0, tuple(data))
        assert host.cyc_cycles - before == MAX_BURST * (1 + latency)
        r = await host.request(ctx, Command.READ, 5, 0x3F0, 4)
        assert r == Response(5, Status.OK, 0, (initial(0xFC), *data[:3]))
        assert ctx.get(slave.reads) == 1 + MAX_BURST + 4

    simulate(harness, testbench)


def test_info():
    harness = Harness()

    async def testbench(ctx, host):
        for tag in (0, 0x99):
            r = await host.request(ctx, Command.INFO, tag)
            assert r == Response(tag, Status.OK, 0, info_words(CLOCK_HZ, DIVISOR))
        # Address and count of an INFO do not matter.
        await host.send(ctx, header_only(Command.INFO, 7, 0x12345677, 200))
        assert await host.response(ctx) == Response(7, Status.OK, 0,
                                                     info_words(CLOCK_HZ, DIVISOR))
        assert host.cyc_cycles == 0

    simulate(harness, testbench)


def test_longest_bursts():
    """A bridge built for LARGEST_BURST words says so in INFO, moves bursts of that many words
    both ways, and refuses one word more."""
    harness = Harness(max_burst=LARGEST_BURST)

    async def testbench(ctx, host):
        r = await host.request(ctx, Command.INFO, 1)
        assert r == Response(1, Status.OK, 0, info_words(CLOCK_HZ, DIVISOR, LARGEST_BURST))
        rng = random.Random(5)
        data = [rng.getrandbits(32) for _ in range(LARGEST_BURST)]
        # (words 0..127: clear of the slave's error and silent words)
        r = await host.request(ctx, Command.WRITE, 2, 0, LARGEST_BURST, data)
        assert r == Response(2, Status.OK, 0)
        assert memory_words(ctx, harness.slave, 0, LARGEST_BURST) == data
        r = await host.request(ctx, Command.READ, 3, 0, LARGEST_BURST)
        assert r == Response(3, Status.OK, 0, tuple(data))
        await host.send(ctx, header_only(Command.WRITE, 4, 0, LARGEST_BURST + 1))
        assert await host.response(ctx) == Response(4, Status.BAD_REQUEST,
                                                     Reject.BURST_TOO_LONG)

    simulate(harness, testbench)


def test_pipelined_requests_with_a_receive_fifo():
    """With a receive FIFO, requests sent back to back (the next ones arriving while one
    executes and its response goes out, bytes spaced as a UART 20 times faster than the
    bridge's divisor would space them) are all carried out and answered in order."""
    harness = Harness(max_burst=LARGEST_BURST, rx_fifo=128)

    async def testbench(ctx, host):
        r = await host.request(ctx, Command.INFO, 1)
        assert r.payload == info_words(CLOCK_HZ, DIVISOR, LARGEST_BURST, 128)
        rng = random.Random(7)
        writes = [[rng.getrandbits(32) for _ in range(32)] for _ in range(3)]
        frames = [encode_request(Command.WRITE, 10 + i, 128 * i, 32, data)
                  for i, data in enumerate(writes)]
        frames += [encode_request(Command.READ, 20 + i, 128 * i, 32) for i in range(3)]
        frames.append(encode_request(Command.READ, 30, 0x8, 1))
        await host.send(ctx, b"".join(frames), spacing=(8, 12))
        answers = [await host.response(ctx, timeout=20_000, idle=False) for _ in frames]
        assert [a.tag for a in answers] == [10, 11, 12, 20, 21, 22, 30]
        assert all(a.status == Status.OK for a in answers)
        assert [list(a.payload) for a in answers[3:6]] == writes
        assert answers[6].payload == (writes[0][2],)

    simulate(harness, testbench)


def test_refused_requests():
    """Unknown command, misaligned address, too long bursts: BAD_REQUEST after the frame,
    nothing on the bus, the parser in step for the next frame."""
    harness = Harness()

    async def testbench(ctx, host):
        async def check(frame, tag, detail):
            await host.send(ctx, frame)
            assert await host.response(ctx) == Response(tag, Status.BAD_REQUEST, detail)

        for command in (3, 0x5A, 0xFF):
            await check(encode_request(command, 0x10 + command % 16, 0, 1), 0x10 + command % 16,
                        Reject.UNKNOWN_COMMAND)
        # An unknown command is refused before its address is looked at.
        await check(header_only(9, 1, 0x3, 200), 1, Reject.UNKNOWN_COMMAND)
        for address in (0x101, 0x102, 0x103, 0xFFFFFFFF):
            await check(encode_request(Command.READ, 2, address, 1), 2,
                        Reject.MISALIGNED_ADDRESS)
        await check(encode_request(Command.WRITE, 3, 0x102, 2, [1, 2]), 3,
                    Reject.MISALIGNED_ADDRESS)
        for count in (MAX_BURST + 1, 256):
            await check(encode_request(Command.READ, 4, 0, count), 4, Reject.BURST_TOO_LONG)
            # A too long WRITE is taken as header + CRC: it has no payload to wait for.
            await check(header_only(Command.WRITE, 5, 0, count), 5, Reject.BURST_TOO_LONG)
        assert host.cyc_cycles == 0
        r = await host.request(ctx, Command.READ, 6, 0x3FC, 1)
        assert r == Response(6, Status.OK, 0, (initial(0xFF),))

    simulate(harness, testbench)


def test_bus_errors_and_timeouts():
    harness = Harness(latency=1)
    slave = harness.slave

    async def testbench(ctx, host):
        # ERR in the middle of a READ: the words before it were read, none are returned.
        r = await host.request(ctx, Command.READ, 1, 4 * (ERR_WORDS[0] - 5), 20)
        assert r == Response(1, Status.BUS_ERROR, 5)
        assert ctx.get(slave.reads) == 5
        # ... and of a WRITE: the words before it were written, those after it not.
        r = await host.request(ctx, Command.WRITE, 2, 4 * (ERR_WORDS[2] - 2), 4,
                               [11, 12, 13, 14])
        assert r == Response(2, Status.BUS_ERROR, 2)
        assert memory_words(ctx, slave, ERR_WORDS[2] - 2, 4) == [11, 12, initial(0xC0),
                                                                 initial(0xC1)]
        # No answer: the access is abandoned after BUS_TIMEOUT cycles.
        before = host.cyc_cycles
        r = await host.request(ctx, Command.READ, 3, 4 * SILENT_WORD - 8, 5)
        assert r == Response(3, Status.BUS_TIMEOUT, 2)
        assert host.cyc_cycles - before == 2 * 2 + BUS_TIMEOUT
        assert not ctx.get(harness.bridge.bus.cyc)
        # Out of range: unmapped from the word that leaves the bus's 8 address bits; no wrap.
        # (An address bit set in any byte above the bus's counts, the top one alone too.)
        for tag, (address, count, detail) in enumerate((
                (1 << AW + 2, 1, 0), (0xFFFFFFFC, 2, 0),
                (1 << 31 | 8, 1, 0), (1 << 17 | 8, 1, 0), (0x3F8, 4, 2)), start=20):
            before = host.cyc_cycles
            r = await host.request(ctx, Command.WRITE, tag, address, count,
                                   list(range(100, 100 + count)))
            assert r == Response(tag, Status.BUS_ERROR, detail)
            assert host.cyc_cycles - before == 2 * detail
        assert memory_words(ctx, slave, 0xFE, 2) == [100, 101]
        assert memory_words(ctx, slave, 0, 2) == [initial(0), initial(1)]
        r = await host.request(ctx, Command.READ, 9, 0x3F8, 3)
        assert r == Response(9, Status.BUS_ERROR, 2)
        r = await host.request(ctx, Command.READ, 10, 0x3F8, 2)
        assert r == Response(10, Status.OK, 0, (100, 101))

    simulate(harness, testbench)


def test_default_bus_timeout():
    harness = Harness(bus_timeout=1024)

    async def testbench(ctx, host):
        r = await host.request(ctx, Command.READ, 1, 4 * SILENT_WORD, 1)
        assert r == Response(1, Status.BUS_TIMEOUT, 0)
        assert host.cyc_cycles == 1024

    simulate(harness, testbench)


def test_duplicate_write_not_repeated():
    harness = Harness()
    slave = harness.slave

    async def testbench(ctx, host):
        assert await host.request(ctx, Command.WRITE, 5, 0x40, 2, [1, 2]) == Response(5, 0)
        assert ctx.get(slave.writes) == 2
        # The same write again, and a different one with the same tag: answered, not done.
        assert await host.request(ctx, Command.WRITE, 5, 0x40, 2, [1, 2]) == Response(5, 0)
        assert await host.request(ctx, Command.WRITE, 5, 0x80, 1, [3]) == Response(5, 0)
        assert ctx.get(slave.writes) == 2
        assert ctx.get(slave.memory.data[0x20]) == initial(0x20)
        # READs and INFO in between do not change the remembered write.
        assert (await host.request(ctx, Command.READ, 5, 0x40, 2)).payload == (1, 2)
        assert (await host.request(ctx, Command.INFO, 5)).status == Status.OK
        assert await host.request(ctx, Command.WRITE, 5, 0x40, 1, [9]) == Response(5, 0)
        assert ctx.get(slave.writes) == 2
        # A failed write is remembered with its status and detail.
        r = await host.request(ctx, Command.WRITE, 6, 4 * ERR_WORDS[2] - 8, 3, [7, 8, 9])
        assert r == Response(6, Status.BUS_ERROR, 2)
        assert ctx.get(slave.writes) == 4
        r = await host.request(ctx, Command.WRITE, 6, 4 * ERR_WORDS[2] - 8, 3, [7, 8, 9])
        assert r == Response(6, Status.BUS_ERROR, 2)
        assert ctx.get(slave.writes) == 4
        # Refused and corrupted writes are not carried out, so not remembered either.
        frame = bytearray(encode_request(Command.WRITE, 7, 0x40, 1, [10]))
        frame[-3] ^= 0x10
        await host.send(ctx, frame)
        assert await host.response(ctx) == Response(7, Status.BAD_CRC)
        await host.send(ctx, encode_request(Command.WRITE, 7, 0x42, 1, [10]))
        assert (await host.response(ctx)).status == Status.BAD_REQUEST
        assert await host.request(ctx, Command.WRITE, 7, 0x40, 1, [10]) == Response(7, 0)
        assert ctx.get(slave.writes) == 5
        assert await host.request(ctx, Command.WRITE, 5, 0x40, 1, [11]) == Response(5, 0)
        assert memory_words(ctx, slave, 0x10, 2) == [11, 2]

    simulate(harness, testbench)


def corrupted(frame, positions):
    """``frame`` with each bit position of ``positions`` (counted from the byte after the sync
    byte, LSB first) flipped in turn."""
    for position in positions:
        flipped = bytearray(frame)
        flipped[1 + position // 8] ^= 1 << position % 8
        yield bytes(flipped)


def test_bad_crc_every_bit():
    """Every single-bit error of a READ frame (after the sync byte) and of a WRITE frame (where
    it does not change the frame's length) is BAD_CRC, with nothing done on the bus."""
    harness = Harness()
    read = encode_request(Command.READ, 0x3C, 0x40, 2)
    write = encode_request(Command.WRITE, 0x3D, 0x80, 2, [0x01234567, 0x89ABCDEF])
    # Bits of the WRITE's cmd and count-1 bytes change its length: left out.
    write_positions = [p for p in range(8 * (len(write) - 1)) if p // 8 not in (0, 2)]
    frames = [*corrupted(read, range(8 * (len(read) - 1))),
              *corrupted(write, write_positions)]
    assert len(frames) == 72 + 120

    async def testbench(ctx, host):
        for frame in frames:
            await host.send(ctx, frame, spacing=(0, 0))
            assert await host.response(ctx) == Response(frame[2], Status.BAD_CRC), frame.hex()
        assert host.cyc_cycles == 0
        assert await host.request(ctx, Command.READ, 1, 0x80, 1) == Response(
            1, 0, 0, (initial(0x20),))

    simulate(harness, testbench)


def test_frame_timeout():
    """A frame that stops arriving is answered with FRAME_TIMEOUT after frame_timeout_bytes
    byte times of silence; a partly received WRITE does nothing."""
    harness = Harness()
    silence = frame_timeout_bytes() * 10 * DIVISOR
    assert harness.bridge.frame_timeout == silence

    async def testbench(ctx, host):
        write = encode_request(Command.WRITE, 0x42, 0x40, 3, [1, 2, 3])
        # The tag of a frame that stopped before its tag byte is 0, not the previous one.
        for cut, tag in ((3, 0x42), (1, 0), (9, 0x42), (2, 0), (len(write) - 1, 0x42)):
            await host.send(ctx, write[:cut])
            # The last byte went in the cycle before this one; the response is offered
            # after exactly `silence` cycles without a byte, and one to load its first byte.
            waited = 0
            while not ctx.get(harness.bridge.tx.valid):
                assert ctx.get(harness.bridge.active)
                await ctx.tick()
                waited += 1
            assert waited == silence + 1
            assert await host.response(ctx) == Response(tag, Status.FRAME_TIMEOUT)
        assert host.cyc_cycles == 0
        # A byte in the last cycle before the timeout restarts it: a slow frame is good.
        await host.send(ctx, encode_request(Command.READ, 8, 0x44, 1),
                        spacing=(silence - 1, silence - 1))
        assert await host.response(ctx) == Response(8, 0, 0, (initial(0x11),))

    simulate(harness, testbench)


def test_garbage_and_bytes_during_a_response():
    """Bytes before the sync byte are skipped; bytes that arrive while a request executes or
    its response goes out are dropped, even a sync byte."""
    harness = Harness()
    rng = random.Random(5)

    async def testbench(ctx, host):
        garbage = bytes(b for b in rng.randbytes(40) if b != REQUEST_SYNC)
        await host.send(ctx, garbage)
        assert not ctx.get(harness.bridge.active)
        assert await host.request(ctx, Command.READ, 1, 0x8, 1) == Response(
            1, 0, 0, (initial(2),))
        await host.send(ctx, encode_request(Command.READ, 2, 0, MAX_BURST))
        # While the 263-byte response goes out: a whole request, which is ignored.
        await host.send(ctx, encode_request(Command.WRITE, 3, 0, 1, [0]))
        assert (await host.response(ctx)).tag == 2
        assert ctx.get(harness.slave.writes) == 0
        assert await host.request(ctx, Command.INFO, 4) == Response(
            4, 0, 0, info_words(CLOCK_HZ, DIVISOR))

    simulate(harness, testbench)


def test_active():
    harness = Harness()
    trace = []

    async def testbench(ctx, host):
        frame = encode_request(Command.READ, 1, 0, 1)
        await host.send(ctx, [0x00, 0x11], spacing=(0, 0))
        trace.append(ctx.get(harness.bridge.active))
        await host.send(ctx, frame[:1], spacing=(0, 0))
        trace.append(ctx.get(harness.bridge.active))
        await host.send(ctx, frame[1:], spacing=(0, 0))
        trace.append(ctx.get(harness.bridge.active))
        await host.response(ctx)   # checks that active is low again

    simulate(harness, testbench)
    assert trace == [0, 1, 1]


counts = st.one_of(st.integers(1, 4), st.integers(1, MAX_BURST + 2))
requests = st.one_of(
    st.builds(lambda command, tag: (command, tag), st.sampled_from([Command.INFO, 3, 0xFF]),
              st.integers(0, 255)),
    st.builds(lambda tag, word, offset, count: (Command.READ, tag, 4 * word + offset, count),
              st.integers(0, 255), st.integers(0x80, 0x10F), st.sampled_from([0] * 7 + [2]),
              counts),
    st.builds(lambda tag, word, count, seed: (
        Command.WRITE, tag, 4 * word, count,
        [random.Random(seed).getrandbits(32) for _ in range(count)]),
        st.integers(0, 3), st.integers(0x80, 0x10F), st.integers(1, 12), st.integers()),
)


@settings(max_examples=30)
@given(st.lists(requests, min_size=1, max_size=8), st.integers(0, 2), st.integers(0, 99))
def test_random_traffic(traffic, latency, seed):
    """Random READs (some misaligned or too long), WRITEs (tags from a small set, so duplicates
    occur), INFOs and unknown commands around the ERR, silent and out-of-range words, against
    the Python model."""
    harness = Harness(latency=latency)
    model = BridgeModel()

    async def testbench(ctx, host):
        for request in traffic:
            assert await host.request(ctx, *request) == model.execute(*request), request
        assert memory_words(ctx, harness.slave, 0, 1 << AW) == model.memory

    simulate(harness, testbench, seed=seed)


# -- the CRC expression --------------------------------------------------------------------


def test_crc16_next():
    crc, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    rng = random.Random(0)

    async def testbench(ctx):
        for value in [0xFFFF, 0, 0x8000, *(rng.getrandbits(16) for _ in range(8))]:
            for b in range(256):
                ctx.set(crc, value)
                ctx.set(byte, b)
                assert ctx.get(out) == crc16_update(value, b), (value, b)
        # Chained over a frame: the check value, and 0 over data + CRC.
        value = 0xFFFF
        for b in b"123456789\x29\xb1":
            ctx.set(crc, value)
            ctx.set(byte, b)
            value = ctx.get(out)
            if b == ord("9"):
                assert value == 0x29B1
        assert value == 0

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


def test_crc16_next_arguments():
    with pytest.raises(ValueError, match="crc must be 16 bits wide, not 8"):
        crc16_next(Signal(8), Signal(8))
    with pytest.raises(ValueError, match="byte must be 8 bits wide, not 9"):
        crc16_next(Signal(16), Signal(9))
    with pytest.raises(TypeError, match="byte must be a value-castable object of 8 bits"):
        crc16_next(Signal(16), "x")


# -- construction --------------------------------------------------------------------------


def test_arguments_checked():
    good = {"clock_hz": 1000, "divisor": 4}
    with pytest.raises(TypeError, match="addr_width must be an integer"):
        SerialBridge("8", **good)
    with pytest.raises(ValueError, match="addr_width must be in the range 1..30, not 31"):
        SerialBridge(31, **good)
    with pytest.raises(ValueError, match="clock_hz must be in the range 1..4294967295, not 0"):
        SerialBridge(8, clock_hz=0, divisor=4)
    with pytest.raises(ValueError, match="divisor must be in the range 4..4294967295, not 3"):
        SerialBridge(8, clock_hz=1000, divisor=3)
    with pytest.raises(TypeError, match="bus_timeout must be an integer"):
        SerialBridge(8, **good, bus_timeout=1.5)
    with pytest.raises(ValueError, match="bus_timeout must be in the range 1..1048576, not 0"):
        SerialBridge(8, **good, bus_timeout=0)
    with pytest.raises(ValueError, match="max_burst must be in the range 64..128, not 129"):
        SerialBridge(8, **good, max_burst=129)
    with pytest.raises(ValueError, match="rx_fifo must be 0 or a power of two from 16 to 1024"):
        SerialBridge(8, **good, rx_fifo=100)
    bridge = SerialBridge(30, **good)
    assert len(bridge.bus.adr) == 30
    assert (bridge.addr_width, bridge.clock_hz, bridge.divisor, bridge.bus_timeout) == (
        30, 1000, 4, 1024)

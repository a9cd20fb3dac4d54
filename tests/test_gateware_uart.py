# amaranth: UnusedElaboratable=no
# (Components whose constructor raises are never elaborated; without this, Amaranth warns about
# them when they are collected.)
"""The UART receiver and transmitter against a bit-level Python model of the line: random bytes
at several divisors and rate errors, framing errors, glitches, overrun, exact transmit
waveforms and throughput, and a receiver -> transmitter loopback."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from convhw.gateware.uart_rx import UARTReceiver
from convhw.gateware.uart_tx import UARTTransmitter

# -- the line model ------------------------------------------------------------------------


def frame_bits(byte, *, stop=1):
    """One 8N1 frame: start bit, 8 data bits LSB first, stop bit."""
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


def waveform(data, divisor, *, gaps=None, rate=1.0, stop=1):
    """The line's level in each clock cycle while a sender transmits ``data``.

    ``gaps[k]`` idle (high) cycles precede byte ``k``; ``rate`` stretches the sender's bit time
    to ``rate * divisor`` cycles (a sender whose clock is off), bit boundaries rounded to cycles.
    """
    levels = []
    for k, byte in enumerate(data):
        levels += [1] * (gaps[k] if gaps else 0)
        bits = frame_bits(byte, stop=stop)
        edges = [round(i * divisor * rate) for i in range(len(bits) + 1)]
        for i, bit in enumerate(bits):
            levels += [bit] * (edges[i + 1] - edges[i])
    return levels


async def uart_listen(ctx, pin, divisor, received, framing=None):
    """A bit-level UART receiver in the testbench: decodes ``pin`` into ``received`` forever
    (run it in the background). Samples each bit in its middle; a low stop bit is appended to
    ``framing`` (or fails the test if ``framing`` is None)."""
    while True:
        await ctx.tick()
        if ctx.get(pin):
            continue
        for _ in range(divisor // 2):
            await ctx.tick()
        if ctx.get(pin):
            continue  # not a start bit
        byte = 0
        for i in range(8):
            for _ in range(divisor):
                await ctx.tick()
            byte |= ctx.get(pin) << i
        for _ in range(divisor):
            await ctx.tick()
        if ctx.get(pin):
            received.append(byte)
        elif framing is None:
            raise AssertionError(f"low stop bit after {byte:#04x}")
        else:
            framing.append(byte)


def run(dut, testbench, *background):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for process in background:
        sim.add_testbench(process, background=True)
    sim.add_testbench(testbench)
    sim.run()


# -- receiver ------------------------------------------------------------------------------


def receive(divisor, levels, *, ready=lambda cycle: True):
    """Drive ``levels`` (then idle) into a receiver; returns what it produced:
    ``{"bytes": [...], "framing": [cycles], "overrun": [cycles]}``."""
    dut = UARTReceiver(divisor)
    out = {"bytes": [], "framing": [], "overrun": []}

    async def testbench(ctx):
        for cycle, level in enumerate([*levels, *[1] * (3 * divisor)]):
            ctx.set(dut.rx, level)
            ctx.set(dut.data.ready, ready(cycle))
            if ctx.get(dut.data.valid) and ctx.get(dut.data.ready):
                out["bytes"].append(ctx.get(dut.data.payload))
            if ctx.get(dut.framing_error):
                out["framing"].append(cycle)
            if ctx.get(dut.overrun):
                out["overrun"].append(cycle)
            await ctx.tick()

    run(dut, testbench)
    return out


@settings(max_examples=40)
@given(divisor=st.sampled_from([4, 5, 6, 8, 11, 16]), data=st.data())
def test_receiver_random_bytes(divisor, data):
    payload = data.draw(st.binary(min_size=1, max_size=8), label="payload")
    gaps = data.draw(st.lists(st.integers(0, 3 * divisor), min_size=len(payload),
                              max_size=len(payload)), label="gaps")
    out = receive(divisor, waveform(payload, divisor, gaps=gaps))
    assert out == {"bytes": list(payload), "framing": [], "overrun": []}


@pytest.mark.parametrize("rate", [0.98, 1.0, 1.02])
@pytest.mark.parametrize("divisor", [8, 16])
def test_receiver_rate_error(divisor, rate):
    """Back-to-back bytes from a sender 2 % too fast or too slow are all received."""
    payload = bytes(random.Random(divisor).randrange(256) for _ in range(24))
    out = receive(divisor, waveform(payload, divisor, rate=rate))
    assert out == {"bytes": list(payload), "framing": [], "overrun": []}


@pytest.mark.parametrize("divisor", [4, 7, 12])
def test_receiver_framing_error(divisor):
    """A low stop bit drops the byte with one framing_error pulse; a line then held low (a
    break) gives no further bytes or errors; the next good byte is received."""
    levels = [1] * 5 + waveform([0x5A], divisor, stop=0) + [0] * (20 * divisor)
    levels += [1] * (2 * divisor) + waveform([0xC3], divisor)
    out = receive(divisor, levels)
    assert out["bytes"] == [0xC3]
    assert len(out["framing"]) == 1
    assert out["overrun"] == []


@pytest.mark.parametrize("divisor", [4, 8, 9, 16])
def test_receiver_ignores_glitches(divisor):
    """Low pulses shorter than half a bit are not start bits."""
    levels = [1] * 5
    for width in range(1, (divisor + 1) // 2):
        levels += [0] * width + [1] * (2 * divisor)
    levels += waveform([0x81, 0x00], divisor, gaps=[0, divisor])
    out = receive(divisor, levels)
    assert out == {"bytes": [0x81, 0x00], "framing": [], "overrun": []}


def test_receiver_overrun():
    """A byte waits with valid high until taken; one completing meanwhile is dropped with an
    overrun pulse, and the waiting byte is still delivered."""
    divisor = 6
    payload = [0x11, 0x22, 0x33]
    levels = waveform(payload, divisor, gaps=[4, 0, 0])
    # Not ready until well after the third byte: 0x22 and 0x33 complete while 0x11 waits.
    out = receive(divisor, levels, ready=lambda cycle: cycle > len(levels) + 2)
    assert out["bytes"] == [0x11]
    assert len(out["overrun"]) == 2
    # Ready again from the start of the second byte on: nothing is lost.
    second = 4 + 10 * divisor
    out = receive(divisor, levels, ready=lambda cycle: cycle < 10 or cycle > second)
    assert out == {"bytes": payload, "framing": [], "overrun": []}


# -- transmitter ---------------------------------------------------------------------------


def transmit(divisor, payload, *, idle):
    """Offer ``payload`` to a transmitter, with ``idle(k)`` cycles of valid low before byte
    ``k``; returns the per-cycle (tx, busy) and the cycles in which bytes were taken."""
    dut = UARTTransmitter(divisor)
    trace = []
    taken = []

    async def testbench(ctx):
        cycle = 0
        for k, byte in enumerate(payload):
            ctx.set(dut.data.valid, 0)
            for _ in range(idle(k)):
                trace.append((ctx.get(dut.tx), ctx.get(dut.busy)))
                await ctx.tick()
                cycle += 1
            ctx.set(dut.data.valid, 1)
            ctx.set(dut.data.payload, byte)
            while True:
                trace.append((ctx.get(dut.tx), ctx.get(dut.busy)))
                done = ctx.get(dut.data.ready)
                await ctx.tick()
                cycle += 1
                if done:
                    taken.append(cycle - 1)
                    break
        ctx.set(dut.data.valid, 0)
        for _ in range(12 * divisor):
            trace.append((ctx.get(dut.tx), ctx.get(dut.busy)))
            await ctx.tick()

    run(dut, testbench)
    return trace, taken


def check_waveform(divisor, payload, trace, taken):
    """Each taken byte's frame starts the cycle after it was taken and is exact; outside the
    frames the line is high and busy low."""
    expected = [1] * len(trace)
    busy = [0] * len(trace)
    for cycle, byte in zip(taken, payload):
        frame = [bit for bit in frame_bits(byte) for _ in range(divisor)]
        expected[cycle + 1:cycle + 1 + len(frame)] = frame
        busy[cycle + 1:cycle + 1 + len(frame)] = [1] * len(frame)
    assert [tx for tx, _ in trace] == expected
    assert [b for _, b in trace] == busy


@settings(max_examples=20)
@given(divisor=st.sampled_from([4, 5, 8, 13]), payload=st.binary(min_size=1, max_size=6),
       seed=st.integers(0, 2**16))
def test_transmitter_waveform(divisor, payload, seed):
    rng = random.Random(seed)
    idles = [rng.choice([0, 0, 1, 3 * divisor, 12 * divisor]) for _ in payload]
    trace, taken = transmit(divisor, payload, idle=lambda k: idles[k])
    assert len(taken) == len(payload)
    check_waveform(divisor, payload, trace, taken)


@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_back_to_back(divisor):
    """Always-valid bytes leave one per 10 * divisor cycles, with no gap between frames."""
    payload = bytes(range(0, 256, 37))
    trace, taken = transmit(divisor, payload, idle=lambda k: 0)
    assert taken == [10 * divisor * k for k in range(len(payload))]
    check_waveform(divisor, payload, trace, taken)
    assert trace[0] == (1, 0)  # idle high before the first byte


# -- loopback ------------------------------------------------------------------------------


class Loopback(wiring.Component):
    def __init__(self, divisor):
        self.receiver = UARTReceiver(divisor)
        self.transmitter = UARTTransmitter(divisor)
        super().__init__({"rx": wiring.In(1, init=1), "tx": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = self.receiver
        m.submodules.transmitter = self.transmitter
        wiring.connect(m, self.receiver.data, self.transmitter.data)
        m.d.comb += [self.receiver.rx.eq(self.rx), self.tx.eq(self.transmitter.tx)]
        return m


@pytest.mark.parametrize("divisor", [4, 10])
def test_loopback(divisor):
    """Bytes into the receiver's pin come out of the transmitter's pin, back to back."""
    payload = bytes(random.Random(divisor).randrange(256) for _ in range(16))
    dut = Loopback(divisor)
    received = []
    overruns = {"count": 0}

    async def testbench(ctx):
        for level in waveform(payload, divisor, gaps=[3] + [0] * (len(payload) - 1)):
            ctx.set(dut.rx, level)
            overruns["count"] += ctx.get(dut.receiver.overrun)
            await ctx.tick()
        for _ in range(25 * divisor):
            await ctx.tick()

    async def listen(ctx):
        await uart_listen(ctx, dut.tx, divisor, received)

    run(dut, testbench, listen)
    assert bytes(received) == payload
    assert overruns == {"count": 0}


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [UARTReceiver, UARTTransmitter])
def test_divisor_checked(cls):
    with pytest.raises(TypeError, match="divisor must be an integer, not 4.0"):
        cls(4.0)
    with pytest.raises(TypeError, match="divisor must be an integer"):
        cls(True)
    with pytest.raises(ValueError, match="divisor must be at least 4 clock cycles per bit, not 3"):
        cls(3)
    assert cls(4).divisor == 4

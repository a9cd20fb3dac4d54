# amaranth: UnusedElaboratable=no
# (Components whose constructor raises are never elaborated; without this, Amaranth warns about
# them when they are collected.)
"""The serial top (UART receiver, bridge, transmitter and the ``small`` engine) driven at the
pins by a bit-level UART in the testbench: INFO, the identity registers, a burst WRITE and READ
of rw registers, an ERR from the engine; the divisor checks and the Verilog ports."""

import random
import re

import pytest
from amaranth.sim import Simulator

from convhw.config import EngineConfig
from convhw.gateware.serial_engine import SerialEngine, verilog_text
from convhw.registers import ENGINE_ID, ENGINE_VERSION, engine_register_map
from convhw.serial_protocol import (
    Command,
    Response,
    Status,
    decode_response,
    encode_request,
    info_words,
)

from .test_gateware_uart import uart_listen, waveform

SMALL = EngineConfig.preset("small")
CLOCK_HZ = 12_000_000
BAUDRATE = 2_000_000   # 6 clock cycles per bit


def test_serial_engine():
    dut = SerialEngine(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE)
    divisor = dut.divisor
    assert divisor == 6
    regmap = engine_register_map(SMALL)
    major, minor = ENGINE_VERSION
    biases = [regmap[f"BIAS{c}"].address for c in range(SMALL.cols)]
    assert biases == list(range(biases[0], biases[0] + 4 * SMALL.cols, 4))
    job_mode = regmap["JOB_MODE"]
    job_mode_mask = sum(field.mask for field in job_mode.fields if field.access == "rw")
    values = [random.Random(1).getrandbits(32) for _ in biases]
    received = []
    seen = {"active": 0, "busy": 0, "cyc": 0}

    async def request(ctx, *args):
        for level in waveform(encode_request(*args), divisor, gaps=[divisor] + [0] * 99):
            ctx.set(dut.rx, level)
            seen["active"] |= ctx.get(dut.active)
            seen["busy"] |= ctx.get(dut.busy)
            seen["cyc"] += ctx.get(dut.bridge.bus.cyc)
            await ctx.tick()
        while len(received) < 5 or len(received) < 7 + 4 * received[4]:
            assert ctx.get(dut.active)
            seen["cyc"] += ctx.get(dut.bridge.bus.cyc)
            await ctx.tick()
        frame = bytes(received)
        received.clear()
        for _ in range(divisor):   # the stop bit's second half
            await ctx.tick()
        assert not ctx.get(dut.active)
        return decode_response(frame)

    async def testbench(ctx):
        assert ctx.get(dut.tx) == 1
        assert await request(ctx, Command.INFO, 1) == Response(
            1, Status.OK, 0, info_words(CLOCK_HZ, divisor))
        assert await request(ctx, Command.READ, 2, regmap["ID"].address, 2) == Response(
            2, Status.OK, 0, (ENGINE_ID, major << 8 | minor))
        assert await request(ctx, Command.WRITE, 3, biases[0], len(biases), values) == Response(
            3, Status.OK)
        assert await request(ctx, Command.WRITE, 4, job_mode.address, 1, [0xFFFFFFFF]) == \
            Response(4, Status.OK)
        seen["cyc"] = 0
        assert await request(ctx, Command.READ, 5, biases[0], len(biases)) == Response(
            5, Status.OK, 0, tuple(values))
        # Back to back: 3 cycles per register word (the engine decodes each address into
        # registers before it takes the access).
        assert seen["cyc"] == 3 * len(biases)
        assert await request(ctx, Command.READ, 6, job_mode.address, 1) == Response(
            6, Status.OK, 0, (job_mode_mask,))
        # The engine refuses a write to its read-only ID register with ERR.
        assert await request(ctx, Command.WRITE, 7, regmap["ID"].address, 1, [0]) == Response(
            7, Status.BUS_ERROR, 0)

    async def listen(ctx):
        await uart_listen(ctx, dut.tx, divisor, received)

    sim = Simulator(dut)
    sim.add_clock(1 / CLOCK_HZ)
    sim.add_testbench(listen, background=True)
    sim.add_testbench(testbench)
    sim.run()
    assert (seen["active"], seen["busy"]) == (1, 0)


def test_divisor():
    assert SerialEngine.divisor_for(12_000_000, 115_200) == 104
    assert SerialEngine.divisor_for(100, 25) == 4
    with pytest.raises(ValueError, match=re.escape(
            "baudrate must be at most clock_hz / 4 = 25 (a divisor of at least 4), not 29")):
        SerialEngine(SMALL, clock_hz=100, baudrate=29)
    # 1000 / 220 rounds to 5: 200 baud, 9.1 % slow.
    with pytest.raises(ValueError, match=re.escape(
            "baudrate 220 cannot be made from 1000 Hz within 2%: divisor 5 gives 200 baud "
            "(9.1% off)")):
        SerialEngine(SMALL, clock_hz=1000, baudrate=220)
    assert SerialEngine.divisor_for(1000, 203) == 5   # 1.5 % off: accepted
    with pytest.raises(TypeError, match="baudrate must be an integer, not 115200.0"):
        SerialEngine(SMALL, clock_hz=12_000_000, baudrate=115200.0)
    with pytest.raises(ValueError, match="clock_hz must be a positive integer, not 0"):
        SerialEngine(SMALL, clock_hz=0, baudrate=1)
    with pytest.raises(TypeError, match="config must be an EngineConfig, not 'small'"):
        SerialEngine("small", clock_hz=100, baudrate=25)


def test_verilog_ports():
    text = verilog_text(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE)
    assert text.startswith("// Generated by convhw.gateware.serial_engine.verilog_text")
    match = re.search(r"^module convhw_serial\(([^)]*)\);", text, re.MULTILINE)
    assert match is not None
    assert sorted(port.strip() for port in match.group(1).split(",")) == [
        "active", "busy", "clk", "rst", "rx", "tx"]
    for port, direction in (("clk", "input"), ("rst", "input"), ("rx", "input"),
                            ("tx", "output"), ("busy", "output"), ("active", "output")):
        assert re.search(rf"^\s*{direction} {port};", text, re.MULTILINE), port
    assert "/* Generated by" not in text and "src =" not in text

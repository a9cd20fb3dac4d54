# amaranth: UnusedElaboratable=no
"""Device("serial") end to end: the board top's Verilog (UART, bridge, list engine and its
device memory: SerialListEngine) Verilated behind a pseudo-terminal, driven by the serial device
(ListDriver over SerialTransport) through pyserial.

* the conformance layers of the Verilator device (same generator, same seed) run through the
  simulated board bit-exactly against torch, each layer as one descriptor list in device
  memory; ``SERIAL_LAYERS`` of them by default (each costs the layer's traffic at the simulated
  line rate), the first 200 in the slow tier (all 300 took 273 s of CI's 30 minutes);
* device memory through the bridge: its size from INFO, bytes in and out, bus errors beyond it,
  a layer too large for it refused before anything is written;
* flipped and lost bytes in either direction are retried and give the exact result; a link
  that is dead for longer than the retries last raises ``LinkError`` in bounded time, and the
  link works again afterwards.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import convhw
from convhw import golden
from convhw.driver.serial_sim import SimulatedBoard
from convhw.driver.serial_transport import LinkError, SerialTransport
from convhw.driver.transport import BusError
from convhw.spec import ConvSpec

from .conformance import run_conformance
from .helpers import tiered

pytest.importorskip("serial")

SMALL = convhw.EngineConfig.preset("small")
CLOCK_HZ, BAUDRATE = 1_000_000, 125_000          # divisor 8
SERIAL_LAYERS = int(os.environ.get("SERIAL_LAYERS", "8"))
SEED = int(os.environ.get("SEED", "2026"))       # the Verilator device's seed: same layers


@pytest.fixture(scope="module")
def board():
    with SimulatedBoard(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE) as board:
        yield board


def serial_device(board, **options):
    options.setdefault("timeout", 2.0)
    return convhw.Device("serial", SMALL, port=board.port, baudrate=BAUDRATE, **options)


def test_conformance_layers(board):
    torch = pytest.importorskip("torch")
    device = serial_device(board)
    try:
        run_conformance(torch, device, SMALL, SERIAL_LAYERS, SEED)
        stats = device.driver.transport.stats
        assert stats["attempts"] == stats["requests"], f"retries on a clean link: {stats}"
    finally:
        device.close()


@pytest.mark.slow
def test_more_conformance_layers(board):
    torch = pytest.importorskip("torch")
    device = serial_device(board)
    try:
        # (50 layers: every op and padding mode several times over, at some 0.5 s a layer on
        # the simulated UART; the Verilator and Amaranth devices run the full sets)
        ops = run_conformance(torch, device, SMALL, 50, SEED)
        assert len(ops) == 6
    finally:
        device.close()


SPEC = ConvSpec(2, 6, 5, 3, stride=2, padding=1, padding_mode="reflect")


def run_layer(device, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 6, 9, 8))
    w = rng.integers(-128, 128, SPEC.weight_shape)
    b = rng.integers(-500, 500, 5)
    out, _ = device.run(SPEC, x, w, b)
    assert np.array_equal(out, golden.convolution(SPEC, x, w, b))


@pytest.mark.parametrize("kind, index, arg", tiered([
    ("flip_to_device", 40, 3),       # inside a burst's payload: the bridge's CRC fails
    ("drop_to_device", 25, 0),       # a lost byte: the bridge's frame timeout
    ("flip_to_host", 30, 6),         # a corrupted response: the host's CRC fails
    ("drop_to_host", 3, 0),          # a lost response byte: the host's timeout
], fast=1, several=True))
def test_link_faults_are_retried(board, kind, index, arg):
    device = serial_device(board, timeout=0.3)
    try:
        run_layer(device, 1)                      # connects; a clean run
        transport = device.driver.transport
        before = dict(transport.stats)
        board.inject(kind, index, arg)
        run_layer(device, 2)
        failures = sum(transport.stats[k] - before[k] for k in
                       ("no_response", "corrupt_response", "bad_crc", "frame_timeout"))
        assert failures == 1, f"the fault caused no failed attempt: {transport.stats}"
    finally:
        device.close()


@pytest.mark.slow
def test_a_noisy_link_completes_exact_layers(board):
    # 1 % of the bytes flipped and 0.1 % lost, both ways (a 64-word frame crosses such a line
    # one time in twenty): the transport halves its frames and resends, every layer completes,
    # and every result is exact. (Several seconds a layer: the simulated line is slow.)
    device = serial_device(board, timeout=0.1)
    try:
        run_layer(device, 1)                      # connects on a clean line
        board.set_noise(0.01, 0.001, seed=11)
        for seed in range(2, 6):
            run_layer(device, seed)
        flipped, dropped = board.noise_counts
        assert flipped > 0 and device.driver.transport.stats["halved"] > 0
    finally:
        board.set_noise()
        device.close()


@pytest.mark.slow
def test_a_hopeless_link_fails_cleanly(board):
    # 5 % flipped and 0.5 % lost: each layer is exact or ends in a LinkError, never wrong,
    # and a LinkError comes within a bound; afterwards, on a clean line, layers are exact.
    device = serial_device(board, timeout=0.1)
    outcomes = []
    try:
        run_layer(device, 1)
        board.set_noise(0.05, 0.005, seed=12)
        for seed in range(2, 6):
            start = time.monotonic()
            try:
                run_layer(device, seed)           # asserts the result is exact
                outcomes.append("exact")
            except LinkError:
                outcomes.append("link error")
            outcomes.append(round(time.monotonic() - start, 1))
        board.set_noise()
        run_layer(device, 7)
    finally:
        board.set_noise()
        device.close()
    print(outcomes)
    assert "link error" in outcomes


def test_a_dead_link_raises_then_recovers(board):
    with SerialTransport(board.port, BAUDRATE, timeout=0.1, retries=2) as link:
        board.inject("stall", 0, 3000)              # the link goes dead for 3 s
        start = time.monotonic()
        with pytest.raises(LinkError, match="failed 3 times"):
            link.read(0x0)
        assert time.monotonic() - start < 2.5
        time.sleep(3.2 - (time.monotonic() - start))
        assert link.read(0x0) != 0                  # ID: the link is back


def test_a_short_stall_is_ridden_out(board):
    with SerialTransport(board.port, BAUDRATE, timeout=0.2, retries=4) as link:
        board.inject("stall", 0, 300)
        ident = link.read(0x0)
        assert ident != 0
        assert link.stats["attempts"] > link.stats["requests"]


def test_bus_error_through_the_bridge(board):
    with SerialTransport(board.port, BAUDRATE, timeout=1.0) as link:
        with pytest.raises(BusError, match="bus error on the write at 0x0"):
            link.write(0x0, 1)                      # ID is read-only


def test_device_memory_through_the_bridge(board):
    from convhw import serial_protocol as sp
    with SerialTransport(board.port, BAUDRATE, timeout=1.0) as link:
        assert link.memory_size() == board.memory_bytes == 64 * 1024
        data = np.arange(37, dtype=np.uint8) * 7
        link.mem_write(board.memory_bytes - 40, data)
        assert np.array_equal(link.mem_read(board.memory_bytes - 40, 37), data)
        with pytest.raises(BusError, match=f"bus error on the read at "
                                           f"{sp.MEMORY_BASE + board.memory_bytes:#x}"):
            link.mem_read(board.memory_bytes - 4, 8)
        with pytest.raises(BusError, match="bus error on the read at 0x2000"):
            link.read(0x2000)                       # between INFO and the memory: unmapped


def test_a_layer_too_large_for_device_memory(board):
    device = serial_device(board)
    try:
        spec = ConvSpec(2, 16, 4, 1)
        with pytest.raises(ValueError, match=r"^the list and its tensors need \d+ bytes of "
                                             r"device memory; the device has 65536$"):
            device.run(spec, np.zeros((1, 16, 80, 64), int), np.zeros(spec.weight_shape, int))
    finally:
        device.close()


@pytest.mark.slow
def test_a_host_fed_board_is_driven_word_by_word():
    # The iCEBreaker still runs the host-fed engine (SerialEngine, VERSION major 0): the same
    # device drives it with the word-by-word Driver. (Builds that top once: minutes.)
    from convhw.driver.driver import Driver
    from convhw.gateware import serial_engine
    verilog = serial_engine.verilog_text(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE,
                                         name="convhw_serial")
    with SimulatedBoard(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE, verilog=verilog) as board:
        device = serial_device(board)
        try:
            run_layer(device, 3)
            assert isinstance(device.driver, Driver)
            assert device.last_run.host_bytes is None
        finally:
            device.close()

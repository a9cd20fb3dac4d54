# amaranth: UnusedElaboratable=no
"""Device("serial") on the simulated ULX3S with its SDRAM as device memory
(``SimulatedBoard(memory="sdram")``): the serial list engine's memory window and master on
LiteDRAM's two user ports, LiteDRAM initialised by the board's SdramInitializer, the behavioural
chip, all Verilated behind a pseudo-terminal at the controller's 60 MHz.

* conformance layers (every op, every padding mode the generator draws) bit-exact against torch,
  each a descriptor list whose tensors the host writes into the SDRAM and whose results the
  engine writes there;
* the chip model prints every timing or protocol violation it sees: none may appear;
* the device memory's size from INFO is the window's, and a layer too large for it is refused.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import convhw
from convhw import golden
from convhw.driver.serial_sim import SimulatedBoard
from convhw.spec import ConvSpec

from .conformance import run_conformance

pytest.importorskip("serial")

SMALL = convhw.EngineConfig.preset("small")
#: The controller's clock (its timings are cycles of it) and the FT231X's 3 Mbaud: divisor 20.
CLOCK_HZ, BAUDRATE = 60_000_000, 3_000_000
MEMORY_BYTES = 1 << 16
LAYERS = int(os.environ.get("SERIAL_SDRAM_LAYERS", "12"))
SEED = int(os.environ.get("SEED", "2026"))


@pytest.fixture(scope="module")
def board():
    with SimulatedBoard(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE, memory_bytes=MEMORY_BYTES,
                        memory="sdram") as board:
        yield board


def serial_device(board):
    return convhw.Device("serial", SMALL, port=board.port, baudrate=BAUDRATE, timeout=5.0)


def test_conformance_layers_on_sdram(board, capfd):
    torch = pytest.importorskip("torch")
    device = serial_device(board)
    try:
        ops = run_conformance(torch, device, SMALL, LAYERS, SEED)
        assert len(ops) >= 3, ops
    finally:
        device.close()
    printed = capfd.readouterr()
    assert "sdram_chip:" not in printed.out + printed.err, \
        "the SDRAM chip model saw violations:\n" + "\n".join(
            line for line in (printed.out + printed.err).splitlines() if "sdram_chip:" in line)


def test_layer_and_memory_size(board, capfd):
    device = serial_device(board)
    try:
        spec = ConvSpec(2, 6, 5, 3, stride=2, padding=1, padding_mode="reflect")
        rng = np.random.default_rng(3)
        x = rng.integers(-128, 128, (1, 6, 11, 9))
        w = rng.integers(-128, 128, spec.weight_shape)
        b = rng.integers(-500, 500, 5)
        out, info = device.run(spec, x, w, b)
        assert np.array_equal(out, golden.convolution(spec, x, w, b))
        assert info.cycles > 0
        big = ConvSpec(2, 16, 4, 1)
        with pytest.raises(ValueError, match=r"^the list and its tensors need \d+ bytes of "
                                             r"device memory; the device has 65536$"):
            device.run(big, np.zeros((1, 16, 80, 64), int), np.zeros(big.weight_shape, int))
    finally:
        device.close()
    printed = capfd.readouterr()
    assert "sdram_chip:" not in printed.out + printed.err


def test_device_memory_through_the_bridge(board):
    # The host's window onto the SDRAM: its size from INFO, bytes in and out at its end, a bus
    # error just past it (the window, not the 32 MiB chip, bounds it).
    from convhw import serial_protocol as sp
    from convhw.driver.serial_transport import SerialTransport
    from convhw.driver.transport import BusError
    with SerialTransport(board.port, BAUDRATE, timeout=1.0) as link:
        assert link.memory_size() == MEMORY_BYTES
        data = np.arange(37, dtype=np.uint8) * 7
        link.mem_write(MEMORY_BYTES - 40, data)
        assert np.array_equal(link.mem_read(MEMORY_BYTES - 40, 37), data)
        with pytest.raises(BusError, match=f"bus error on the read at "
                                           f"{sp.MEMORY_BASE + MEMORY_BYTES:#x}"):
            link.mem_read(MEMORY_BYTES - 4, 8)


def test_sdram_board_arguments():
    with pytest.raises(ValueError, match="clock_hz must be the SDRAM controller's 6e"):
        SimulatedBoard(SMALL, clock_hz=1_000_000, baudrate=125_000, memory="sdram")
    with pytest.raises(ValueError, match="memory must be 'block_ram' or 'sdram'"):
        SimulatedBoard(SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE, memory="flash")

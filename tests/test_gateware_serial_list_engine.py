# amaranth: UnusedElaboratable=no
"""SerialListEngine: its parameters and address map. The top itself runs end to end in
Verilator behind a pseudo-terminal (tests/test_serial_device.py)."""

import dataclasses
import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from convhw import serial_protocol as sp
from convhw.config import PRESETS
from convhw.gateware.serial_list_engine import SerialListEngine

SMALL = dataclasses.replace(PRESETS["small"], bus="wishbone")


def test_init():
    with warnings.catch_warnings():
        # Built, not elaborated: its submodules are never used.
        warnings.simplefilter("ignore", UnusedElaboratable)
        dut = SerialListEngine(SMALL, clock_hz=1_000_000, baudrate=125_000, memory_bytes=4096)
        assert (dut.divisor, dut.clock_hz, dut.memory_bytes) == (8, 1_000_000, 4096)
        assert dut.decoder.windows == {"registers": (sp.REGISTERS_BASE, 0x1000),
                                       "info": (sp.INFO_BASE, 8),
                                       "memory": (sp.MEMORY_BASE, 4096)}
        assert dut.info.values == (sp.MEMORY_BASE, 4096)
        # The bridge reaches the whole map and no more.
        assert 4 << dut.bridge.addr_width == 2 * sp.MEMORY_BASE
        del dut
        gc.collect()


def test_init_wrong_arguments():
    with pytest.raises(ValueError, match=r"^config.bus must be 'wishbone' .*, not 'axi4'$"):
        SerialListEngine(PRESETS["small"], clock_hz=1_000_000, baudrate=125_000,
                         memory_bytes=4096)
    with pytest.raises(TypeError, match=r"^config must be an EngineConfig, not 'small'$"):
        SerialListEngine("small", clock_hz=1_000_000, baudrate=125_000, memory_bytes=4096)
    with pytest.raises(TypeError, match=r"^memory_bytes must be an integer, not 4096.0$"):
        SerialListEngine(SMALL, clock_hz=1_000_000, baudrate=125_000, memory_bytes=4096.0)
    for size in (0, 4100, sp.MEMORY_WINDOW + 8):
        with pytest.raises(ValueError, match=r"^memory_bytes must be a positive multiple of 8 "
                                             r"\(a memory beat\) up to 0x1000000, not"):
            SerialListEngine(SMALL, clock_hz=1_000_000, baudrate=125_000, memory_bytes=size)
    with pytest.raises(ValueError, match=r"^baudrate must be at most clock_hz / 4"):
        SerialListEngine(SMALL, clock_hz=1_000_000, baudrate=500_000, memory_bytes=4096)

"""The engine's register map (:mod:`convhw.registers`): its registers and windows for the
presets and odd configurations, and that it imports no Amaranth."""

import subprocess
import sys

import pytest

from convhw.config import EngineConfig
from convhw.registers import ENGINE_ID, engine_register_map
from convhw.regmap import Field, Register, RegisterMap


def test_engine_registers():
    config = EngineConfig(rows=3, cols=5, input_width=7, weight_width=6, acc_width=40,
                          input_depth=1 << 20, weight_depth=100, acc_depth=17)
    regmap = engine_register_map(config)
    layout = {r.name: (r.address, [(f.name, f.bits, f.access, f.reset) for f in r.fields])
              for r in regmap.registers if r.address < 0x100}
    assert layout == {
        "ID": (0x000, [("VALUE", "[31:0]", "ro", 0x43564857)]),
        "VERSION": (0x004, [("MINOR", "[7:0]", "ro", 1), ("MAJOR", "[15:8]", "ro", 0)]),
        "HWCFG0": (0x008, [("ROWS", "[7:0]", "ro", 3), ("COLS", "[15:8]", "ro", 5),
                           ("INPUT_WIDTH", "[20:16]", "ro", 7),
                           ("WEIGHT_WIDTH", "[25:21]", "ro", 6),
                           ("ACC_WIDTH", "[31:26]", "ro", 40)]),
        "HWCFG1": (0x00C, [("INPUT_DEPTH", "[20:0]", "ro", 1 << 20)]),
        "HWCFG2": (0x010, [("WEIGHT_DEPTH", "[20:0]", "ro", 100)]),
        "HWCFG3": (0x014, [("ACC_DEPTH", "[20:0]", "ro", 17)]),
        "CTRL": (0x020, [("START", "[0:0]", "w1p", 0), ("ABORT", "[1:1]", "w1p", 0)]),
        "STATUS": (0x024, [("BUSY", "[0:0]", "ro", 0), ("DONE", "[1:1]", "ro", 0),
                           ("ERROR", "[2:2]", "ro", 0)]),
        "ERROR": (0x028, [("CODE", "[7:0]", "ro", 0)]),
        "CYCLES": (0x02C, [("COUNT", "[31:0]", "ro", 0)]),
    }
    assert bytes.fromhex(f"{ENGINE_ID:08x}") == b"CVHW"
    assert regmap.register_space == 0x1000
    control = [r for r in regmap.registers if r.address < 0x100]
    assert [r.name for r in control if r.writable] == ["CTRL"]
    job = {r.name: (r.address, [(f.name, f.bits, f.access, f.reset) for f in r.fields])
           for r in regmap.registers if r.address >= 0x100}
    # Geometry: 11 registers per dimension, z then y then x, from 0x100.
    assert job["Z_IN_SIZE"] == (0x100, [("VALUE", "[15:0]", "rw", 0)])
    assert job["Z_KERNEL"] == (0x104, [("VALUE", "[7:0]", "rw", 0)])
    assert job["Y_IN_SIZE"] == (0x100 + 44, [("VALUE", "[15:0]", "rw", 0)])
    assert job["X_SEG1_LEN"] == (0x100 + 3 * 44 - 4, [("VALUE", "[15:0]", "rw", 0)])
    assert job["JOB_MODE"] == (0x184, [("TRANSPOSED", "[0:0]", "rw", 0),
                                       ("PADDING_MODE", "[2:1]", "rw", 0),
                                       ("ACCUMULATE", "[3:3]", "rw", 0),
                                       ("SKIP_BORDERS", "[4:4]", "rw", 1)])
    assert job["IN_CHUNKS"] == (0x188, [("VALUE", "[20:0]", "rw", 1)])
    assert job["OUT_MODE"] == (0x18C, [("REQUANTIZE", "[0:0]", "rw", 0),
                                       ("RELU", "[1:1]", "rw", 0)])
    # Per column: bias (the accumulator width, at most 32 bits), multiplier, shift.
    assert job["BIAS4"] == (0x410, [("VALUE", "[31:0]", "rw", 0)])
    assert job["MULT0"] == (0x500, [("VALUE", "[15:0]", "rw", 1)])
    assert job["SHIFT4"] == (0x610, [("VALUE", "[5:0]", "rw", 0)])
    assert job["FIR_TAPS"] == (0x190, [("VALUE", "[7:0]", "rw", 0)])
    # without the activation offset the zero point is not built: read-only, always 0
    assert job["INPUT_ZERO"] == (0x194, [("VALUE", "[6:0]", "ro", 0)])
    assert job["LANE4"] == (0x710, [("VALUE", "[1:0]", "rw", 0)])           # 3 rows: 2 bits
    assert len(job) == 33 + 5 + 4 * 5


@pytest.mark.parametrize("name, windows, size", [
    ("default", [("INPUT", 0x10000, 8192 * 2, "rw"), ("WEIGHT", 0x20000, 2048 * 2, "rw"),
                 ("OUTPUT", 0x30000, 2048 * 8, "ro")], 0x40000),
    ("small", [("INPUT", 0x1000, 1024, "rw"), ("WEIGHT", 0x2000, 512, "rw"),
               ("OUTPUT", 0x3000, 256 * 4, "ro")], 0x4000),
])
def test_engine_windows(name, windows, size):
    regmap = engine_register_map(name)
    assert [(w.name, w.address, w.words, w.access) for w in regmap.windows] == windows
    assert regmap.size == size
    assert regmap.bus_address_width == (size - 1).bit_length() - 2
    assert regmap.register_address_width == 10


def test_engine_windows_odd_sizes():
    # 3 lanes of 16 bits: 48-bit words, two bus words each; spans round up to powers of two.
    config = EngineConfig(rows=3, cols=5, input_width=16, input_depth=100, weight_depth=20,
                          acc_depth=17)
    regmap = engine_register_map(config)
    assert [(w.name, w.address, w.words, w.span) for w in regmap.windows] == [
        ("INPUT", 0x1000, 200, 0x400), ("WEIGHT", 0x1400, 40, 0x100),
        ("OUTPUT", 0x1800, 17 * 8, 0x400)]
    assert "window words `2k` to `2k+1`" in regmap.window("INPUT").layout
    assert "unused high bits" in regmap.window("INPUT").layout
    assert "window word `8p+c`" in regmap.window("OUTPUT").layout   # 5 columns, stride 8


def test_engine_map_extends_by_appending():
    """Registers are added by appending entries; nothing else has to move."""
    regmap = engine_register_map("default")
    job = Register("JOB_TILE", 0x198, [Field("WIDTH", 16, 0, "rw", "tile width")], "tile")
    extended = RegisterMap(regmap.registers + (job,), regmap.windows,
                           register_space=regmap.register_space, config=regmap.config)
    assert extended["JOB_TILE"].address == 0x198
    assert extended.windows == regmap.windows



def test_registers_import_without_amaranth():
    code = ("import sys, convhw.registers, convhw.regmap; "
            "sys.exit(any(m.startswith('amaranth') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

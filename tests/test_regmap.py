"""Register maps as data (:mod:`convhw.regmap`): validation messages, lookup, and the
generators (determinism, the C header compiled with gcc, JSON round trip, Markdown)."""

import dataclasses
import json
import random
import shutil
import subprocess

import pytest

from convhw.config import PRESETS, EngineConfig
from convhw.registers import ENGINE_ID, engine_register_map
from convhw.regmap import Field, Register, RegisterMap, Window

from .helpers import exactly


def reg(name, address, *fields):
    return Register(name, address, fields or [Field("X", 8, 0, "rw", "")], "")


# -- Field, Register, Window ------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"name": 3}, TypeError, "field name must be a string, not 3"),
    ({"name": "lower"}, ValueError,
     "field name must be an upper-case identifier ([A-Z][A-Z0-9_]*), not 'lower'"),
    ({"name": "_X"}, ValueError,
     "field name must be an upper-case identifier ([A-Z][A-Z0-9_]*), not '_X'"),
    ({"width": 0}, ValueError, "field 'F' width must be an integer from 1 to 32, not 0"),
    ({"width": 33}, ValueError, "field 'F' width must be an integer from 1 to 32, not 33"),
    ({"width": 2.0}, TypeError, "field 'F' width must be an integer from 1 to 32, not 2.0"),
    ({"offset": -1}, ValueError, "field 'F' offset must be an integer from 0 to 31, not -1"),
    ({"offset": True}, TypeError, "field 'F' offset must be an integer from 0 to 31, not True"),
    ({"width": 8, "offset": 28}, ValueError,
     "field 'F' must fit in bits [31:0], not occupy bits [35:28]"),
    ({"access": "wo"}, ValueError,
     "field 'F' access must be one of 'ro', 'rw', 'w1p', not 'wo'"),
    ({"description": None}, TypeError, "field 'F' description must be a string, not None"),
    ({"reset": 16}, ValueError, "field 'F' reset must be an integer from 0 to 15, not 16"),
    ({"reset": -1}, ValueError, "field 'F' reset must be an integer from 0 to 15, not -1"),
    ({"access": "w1p"}, ValueError,
     "w1p field 'F' must be 1 bit wide with reset 0, not 4 bits with reset 0"),
    ({"access": "w1p", "width": 1, "reset": 1}, ValueError,
     "w1p field 'F' must be 1 bit wide with reset 0, not 1 bits with reset 1"),
])
def test_field_errors(kwargs, error, message):
    arguments = {"name": "F", "width": 4, "offset": 0, "access": "rw", "description": "",
                 **kwargs}
    with pytest.raises(error, match=exactly(message)):
        Field(**arguments)


def test_field():
    field = Field("F", 5, 3, "ro", "five bits", 17)
    assert (field.msb, field.bits, field.mask) == (7, "[7:3]", 0xF8)
    assert Field("G", 32, 0, "rw", "").mask == 0xFFFFFFFF
    with pytest.raises(dataclasses.FrozenInstanceError):
        field.width = 3


def test_register_errors():
    a = Field("A", 4, 0, "rw", "")
    with pytest.raises(ValueError, match=exactly("register 'R' address must be a multiple of 4, "
                                                 "not 0x006")):
        Register("R", 6, [a], "")
    with pytest.raises(ValueError, match=exactly("register 'R' address must be a non-negative "
                                                 "integer, not -4")):
        Register("R", -4, [a], "")
    with pytest.raises(TypeError, match=exactly("register 'R' address must be a non-negative "
                                                "integer, not '0'")):
        Register("R", "0", [a], "")
    with pytest.raises(ValueError, match=exactly("register 'R' must have at least one field")):
        Register("R", 0, [], "")
    with pytest.raises(TypeError, match=exactly(f"register 'R' fields must be a sequence of "
                                                f"Field, not {a!r}")):
        Register("R", 0, a, "")
    with pytest.raises(TypeError, match=exactly("register 'R' fields must be a sequence of "
                                                "Field, not ['A']")):
        Register("R", 0, ["A"], "")
    with pytest.raises(ValueError, match=exactly("register 'R' has two fields named 'A'")):
        Register("R", 0, [a, Field("A", 4, 8, "rw", "")], "")
    with pytest.raises(ValueError, match=exactly("field 'B' bits [5:3] overlap field 'A' bits "
                                                 "[3:0] in register 'R'")):
        Register("R", 0, [Field("B", 3, 3, "ro", ""), a], "")
    with pytest.raises(ValueError, match=exactly("register name must be an upper-case identifier "
                                                 "([A-Z][A-Z0-9_]*), not 'R-1'")):
        Register("R-1", 0, [a], "")


def test_register():
    register = Register("R", 0x10, [Field("HI", 4, 28, "ro", "", 0xA),
                                    Field("GO", 1, 4, "w1p", ""),
                                    Field("LO", 4, 0, "rw", "", 3)], "")
    assert [f.name for f in register.fields] == ["LO", "GO", "HI"]  # kept in bit order
    assert register.reset == 0xA0000003
    assert register.writable and register.access == "ro/rw/w1p"
    assert register.field("GO").offset == 4
    assert not reg("S", 0, Field("X", 1, 0, "ro", "")).writable
    with pytest.raises(KeyError, match="register 'R' has no field 'NOPE'; its fields are LO, GO, "
                                       "HI"):
        register.field("NOPE")


def test_window_errors():
    with pytest.raises(ValueError, match=exactly("window 'W' address must be a multiple of "
                                                 "0x080 (its size rounded up to a power of two), "
                                                 "not 0x040")):
        Window("W", 0x40, 20, "")
    with pytest.raises(ValueError, match=exactly("window 'W' words must be an integer from 1 to "
                                                 "1073741824, not 0")):
        Window("W", 0, 0, "")
    with pytest.raises(ValueError, match=exactly("window 'W' access must be one of 'rw', 'ro', "
                                                 "not 'w1p'")):
        Window("W", 0, 4, "", "w1p")
    with pytest.raises(ValueError, match=exactly("window 'W' address must be a non-negative "
                                                 "integer, not -64")):
        Window("W", -64, 4, "")


def test_window():
    window = Window("W", 0x100, 20, "twenty words", "ro")
    assert (window.size, window.span, window.offset_width) == (80, 128, 5)
    assert (Window("ONE", 4, 1, "").span, Window("ONE", 4, 1, "").offset_width) == (4, 1)
    assert Window("P", 0x40, 16, "").offset_width == 4


# -- RegisterMap validation and lookup --------------------------------------------------------


def test_map_errors():
    with pytest.raises(ValueError, match=exactly("register 'B' at 0x004 overlaps register 'A'")):
        RegisterMap([reg("A", 4), reg("B", 4)])
    with pytest.raises(ValueError, match=exactly("register name 'A' is already used by a "
                                                 "register")):
        RegisterMap([reg("A", 0), reg("A", 4)])
    with pytest.raises(ValueError, match=exactly("window name 'A' is already used by a "
                                                 "register")):
        RegisterMap([reg("A", 0)], [Window("A", 0x1000, 4, "")])
    with pytest.raises(ValueError, match=exactly("register 'A' address must be below the "
                                                 "register space end 0x040, not 0x040")):
        RegisterMap([reg("A", 0x40)], register_space=0x40)
    with pytest.raises(ValueError, match=exactly("window 'W' at 0x020..0x03f overlaps the "
                                                 "register space at 0x000..0x03f")):
        RegisterMap([], [Window("W", 0x20, 8, "")], register_space=0x40)
    with pytest.raises(ValueError, match=exactly("window 'V' at 0x080..0x0bf overlaps window "
                                                 "'W' at 0x080..0x0ff")):
        RegisterMap([], [Window("W", 0x80, 20, ""), Window("V", 0x80, 16, "")],
                    register_space=0x40)
    with pytest.raises(ValueError, match=exactly("window 'V' at 0x0c0..0x0c3 overlaps window "
                                                 "'W' at 0x080..0x0ff")):
        RegisterMap([], [Window("W", 0x80, 20, ""), Window("V", 0xC0, 1, "")],
                    register_space=0x40)
    with pytest.raises(ValueError, match=exactly("register_space must be a power of two of at "
                                                 "least 4 bytes, not 48")):
        RegisterMap([], register_space=48)
    with pytest.raises(TypeError, match=exactly("config must be an EngineConfig or None, not "
                                                "'small'")):
        RegisterMap([], config="small")
    with pytest.raises(TypeError, match=exactly("registers must be Register objects, not 3")):
        RegisterMap([3])
    with pytest.raises(TypeError, match=exactly("windows must be Window objects, not 'W'")):
        RegisterMap([], ["W"])
    with pytest.raises(ValueError, match=exactly("register map names must give distinct C "
                                                 "macros, but CONVHW_A_B_C_SHIFT is generated "
                                                 "twice")):
        RegisterMap([reg("A_B", 0, Field("C", 1, 0, "rw", "")),
                     reg("A", 4, Field("B_C", 1, 0, "rw", ""))])


def test_map_lookup():
    regmap = engine_register_map("small")
    assert regmap["CTRL"].address == 0x020
    assert regmap.window("INPUT").address == 0x1000
    assert regmap.field("HWCFG0", "COLS").bits == "[15:8]"
    assert "STATUS" in regmap and "OUTPUT" in regmap and "NOPE" not in regmap
    with pytest.raises(KeyError, match="the register map has no register 'INPUT'"):
        regmap["INPUT"]
    with pytest.raises(KeyError, match="the register map has no window 'CTRL'"):
        regmap.window("CTRL")
    # 10 control registers, 3 x 11 geometry, 5 job-mode registers, 4 per column (4 columns)
    assert repr(regmap) == "RegisterMap(64 registers, 3 windows, 0x4000 bytes)"
    assert regmap == engine_register_map(PRESETS["small"])
    assert regmap != engine_register_map("default")


# -- generators ---------------------------------------------------------------------------------


def test_generators_deterministic():
    config = PRESETS["small"]
    first, second = engine_register_map(config), engine_register_map(EngineConfig(**{
        f.name: getattr(config, f.name) for f in dataclasses.fields(config)}))
    shuffled = list(first.registers)
    random.Random(0).shuffle(shuffled)
    third = RegisterMap(shuffled, reversed(first.windows), config=config)
    for method in ("to_markdown", "to_c_header", "to_json"):
        texts = {getattr(m, method)() for m in (first, second, third)}
        assert len(texts) == 1, method
        text = texts.pop()
        assert text.endswith("\n") and not text.endswith("\n\n")
        assert text != getattr(engine_register_map("default"), method)()


def test_json_round_trip():
    regmap = engine_register_map("default")
    text = regmap.to_json()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert data["config"] == dataclasses.asdict(PRESETS["default"])
    assert data["bus"] == {"data_width": 32, "address_width": 18, "register_space": 0x1000,
                           "size": 0x40000}
    assert [r["name"] for r in data["registers"]] == [r.name for r in regmap.registers]
    hwcfg0 = next(r for r in data["registers"] if r["name"] == "HWCFG0")
    assert hwcfg0["address"] == 8 and hwcfg0["reset"] == regmap["HWCFG0"].reset
    assert hwcfg0["fields"][1] == {"name": "COLS", "width": 8, "offset": 8, "access": "ro",
                                   "description": "Array columns (output channels)", "reset": 8}
    assert data["windows"][2]["name"] == "OUTPUT" and data["windows"][2]["access"] == "ro"
    assert RegisterMap.from_json(text) == regmap
    hand_built = RegisterMap([reg("A", 0)], register_space=0x10)
    assert RegisterMap.from_json(hand_built.to_json()) == hand_built
    with pytest.raises(ValueError, match="^data must be a 'convhw-register-map' mapping"):
        RegisterMap.from_json("{}")


def test_markdown():
    regmap = engine_register_map("default")
    text = regmap.to_markdown()
    assert "EngineConfig(rows=8, cols=8," in text
    for register in regmap.registers:
        assert f"| `{register.address:#05x}` | [{register.name}](#{register.name.lower()}) |" \
            in text
        assert f"\n### {register.name}\n" in text
        for field in register.fields:
            assert f"| {field.bits} | {field.name} | {field.access} | `{field.reset:#x}` |" \
                in text
    for window in regmap.windows:
        assert f"| `{window.address:#07x}` | `{window.address + window.size - 1:#07x}` | " \
               f"{window.words} | [{window.name}](#{window.name.lower()}) | {window.access} |" \
            in text
        assert window.layout in text
    pipe = RegisterMap([Register("A", 0, [Field("X", 1, 0, "rw", "a | b")], "c | d")],
                       register_space=0x10)
    assert "a \\| b" in pipe.to_markdown() and "c \\| d" in pipe.to_markdown()


def test_c_header_text():
    text = engine_register_map("default").to_c_header()
    lines = text.splitlines()
    assert lines[0] == "/* convhw register map."
    assert "Generated by convhw.registers from EngineConfig(rows=8" in text
    assert lines.count("#ifndef CONVHW_REGS_H") == 1 and lines[-1] == "#endif /* CONVHW_REGS_H */"
    for line in ("#define CONVHW_ID_ADDR 0x000u", "#define CONVHW_CTRL_START_MASK 0x00000001u",
                 "#define CONVHW_HWCFG0_ACC_WIDTH_SHIFT 26", "#define CONVHW_OUTPUT_BASE 0x30000u",
                 "#define CONVHW_INPUT_SIZE 0x10000u", "#define CONVHW_CFG_ROWS 8"):
        assert line in lines
    assert max(map(len, lines)) <= 100


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed: the generated C "
                                                        "header is not compiled")
@pytest.mark.parametrize("config", ["default", "small"])
def test_c_header_compiles(tmp_path, config):
    regmap = engine_register_map(config)
    (tmp_path / "convhw_regs.h").write_text(regmap.to_c_header())
    checks = [
        "CONVHW_ID_ADDR", "CONVHW_ID_RESET", "CONVHW_HWCFG0_RESET", "CONVHW_HWCFG0_COLS_SHIFT",
        "CONVHW_HWCFG0_COLS_MASK", "CONVHW_HWCFG1_INPUT_DEPTH_WIDTH", "CONVHW_CTRL_ABORT_MASK",
        "CONVHW_STATUS_ADDR", "CONVHW_CYCLES_ADDR", "CONVHW_INPUT_BASE", "CONVHW_WEIGHT_SIZE",
        "CONVHW_OUTPUT_BASE", "CONVHW_OUTPUT_WORDS", "CONVHW_CFG_ACC_DEPTH",
    ]
    source = "\n".join([
        '#include <stdio.h>',
        '#include "convhw_regs.h"',
        '#include "convhw_regs.h"  /* the include guard makes this harmless */',
        "int main(void) {",
        *(f'    printf("%s %lu\\n", "{name}", (unsigned long)({name}));' for name in checks),
        "    return 0;",
        "}",
        "",
    ])
    (tmp_path / "main.c").write_text(source)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "main"),
                    str(tmp_path / "main.c")], check=True, cwd=tmp_path)
    output = subprocess.run([str(tmp_path / "main")], check=True, capture_output=True,
                            text=True).stdout
    values = dict(line.split() for line in output.splitlines())
    cols = regmap.field("HWCFG0", "COLS")
    assert {name: int(value) for name, value in values.items()} == {
        "CONVHW_ID_ADDR": 0, "CONVHW_ID_RESET": ENGINE_ID,
        "CONVHW_HWCFG0_RESET": regmap["HWCFG0"].reset,
        "CONVHW_HWCFG0_COLS_SHIFT": cols.offset, "CONVHW_HWCFG0_COLS_MASK": cols.mask,
        "CONVHW_HWCFG1_INPUT_DEPTH_WIDTH": 21,
        "CONVHW_CTRL_ABORT_MASK": 2, "CONVHW_STATUS_ADDR": 0x24, "CONVHW_CYCLES_ADDR": 0x2C,
        "CONVHW_INPUT_BASE": regmap.window("INPUT").address,
        "CONVHW_WEIGHT_SIZE": regmap.window("WEIGHT").size,
        "CONVHW_OUTPUT_BASE": regmap.window("OUTPUT").address,
        "CONVHW_OUTPUT_WORDS": regmap.window("OUTPUT").words,
        "CONVHW_CFG_ACC_DEPTH": regmap.config.acc_depth,
    }

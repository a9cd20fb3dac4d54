"""The job descriptor and column-parameter formats (convhw.descriptor): one definition, packed
and unpacked the same way by Python and by C through the generated header."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convhw.config import EngineConfig
from convhw.descriptor import (
    COLUMN_PARAMS,
    DESCRIPTOR_MAGIC,
    JOB_DESCRIPTOR,
    FormatField,
    MemoryFormat,
)
from convhw.job_format import AXIS_FIELDS


def test_geometry_fields_come_from_the_job_registers():
    for axis in "ZYX":
        for field in AXIS_FIELDS:
            slot = JOB_DESCRIPTOR[f"{axis}_{field.name.upper()}"]
            assert slot.width == field.width_for(EngineConfig(coord_width=16, param_width=8))
    geometry = [f for f in JOB_DESCRIPTOR.fields if f.name[:2] in ("Z_", "Y_", "X_")]
    assert len(geometry) == 3 * len(AXIS_FIELDS)


def test_sizes_and_reserved_bits():
    assert (JOB_DESCRIPTOR.words, JOB_DESCRIPTOR.size) == (32, 128)
    assert (COLUMN_PARAMS.words, COLUMN_PARAMS.size) == (2, 8)
    # The last word and a half are reserved: room for later fields without a new size.
    assert JOB_DESCRIPTOR.reserved_masks[-2:] == (0xFF000000, 0xFFFFFFFF)
    words = JOB_DESCRIPTOR.encode({"MAGIC": DESCRIPTOR_MAGIC})
    assert not JOB_DESCRIPTOR.reserved_bits_set(words)
    words[0] |= 1 << 12
    assert JOB_DESCRIPTOR.reserved_bits_set(words)


@st.composite
def field_values(draw, fmt):
    values = {}
    for field in fmt.fields:
        if draw(st.booleans()):
            low = -field.limit if field.signed else 0
            values[field.name] = draw(st.integers(low, field.limit - 1))
    return values


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_encode_decode_round_trip(data):
    for fmt in (JOB_DESCRIPTOR, COLUMN_PARAMS):
        values = data.draw(field_values(fmt))
        decoded = fmt.decode(fmt.encode(values))
        assert decoded == {f.name: values.get(f.name, 0) for f in fmt.fields}


@pytest.mark.parametrize("name, value, message", [
    ("X_KERNEL", 256, r"^DESCRIPTOR\.X_KERNEL must be an integer from 0 to 255, not 256$"),
    ("LAST", -1, r"^DESCRIPTOR\.LAST must be an integer from 0 to 1, not -1$"),
])
def test_encode_refuses_values_that_do_not_fit(name, value, message):
    with pytest.raises(ValueError, match=message):
        JOB_DESCRIPTOR.encode({name: value})
    with pytest.raises(KeyError, match="no field 'NOPE'"):
        JOB_DESCRIPTOR.encode({"NOPE": 1})


def test_format_definition_errors():
    f = FormatField
    with pytest.raises(ValueError, match=r"^field 'B' bits \[7:4\] overlap field 'A'"):
        MemoryFormat("X", "x", 1, [f("A", 0, 0, 8, ""), f("B", 0, 4, 4, "")], "")
    with pytest.raises(ValueError, match=r"^field 'A' word must be below 1, not 1$"):
        MemoryFormat("X", "x", 1, [f("A", 1, 0, 8, "")], "")
    with pytest.raises(ValueError, match=r"^field 'A' must fit in bits \[31:0\]"):
        f("A", 0, 30, 4, "")


def test_json_and_markdown_list_every_field():
    data = json.loads(JOB_DESCRIPTOR.to_json())
    assert data["format"] == "convhw-memory-format" and data["bytes"] == 128
    assert [x["name"] for x in data["fields"]] == [f.name for f in JOB_DESCRIPTOR.fields]
    text = JOB_DESCRIPTOR.to_markdown()
    for field in JOB_DESCRIPTOR.fields:
        assert f"| {field.name} |" in text


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_c_header_packs_like_python(tmp_path):
    # A C program packs a descriptor with the generated macros; its words must be Python's.
    (tmp_path / "desc.h").write_text(JOB_DESCRIPTOR.to_c_header())
    (tmp_path / "params.h").write_text(COLUMN_PARAMS.to_c_header())
    values = {"LAST": 1, "MAGIC": DESCRIPTOR_MAGIC, "PADDING_MODE": 2, "IN_CHUNKS": 7,
              "OUT_CHANNELS": 5, "Y_OUT_LEN": 513, "X_DILATION": 3, "Z_SEG1_LEN": 9,
              "WEIGHT_BASE": 1024, "OUTPUT_ROW_PITCH": 0x12345678, "FIR_TAPS": 3}
    sets = "\n".join(
        f"    w[CONVHW_DESCRIPTOR_{n}_WORD] |= ((uint32_t){v}u << CONVHW_DESCRIPTOR_{n}_SHIFT)"
        f" & CONVHW_DESCRIPTOR_{n}_MASK;" for n, v in values.items())
    program = f"""
#include <stdint.h>
#include <stdio.h>
#include "desc.h"
#include "params.h"
int main(void) {{
    uint32_t w[CONVHW_DESCRIPTOR_WORDS] = {{0}};
{sets}
    for (unsigned i = 0; i < CONVHW_DESCRIPTOR_WORDS; i++) printf("%u\\n", w[i]);
    printf("%u %u\\n", CONVHW_COLUMN_PARAMS_BYTES, CONVHW_DESCRIPTOR_MAGIC_VALUE);
    return 0;
}}
"""
    (tmp_path / "pack.c").write_text(program)
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "pack"),
                    str(tmp_path / "pack.c")], check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "pack")], check=True, capture_output=True,
                         text=True).stdout.split("\n")
    words = [int(x) for x in out[:JOB_DESCRIPTOR.words]]
    assert words == JOB_DESCRIPTOR.encode(values).tolist()
    assert out[JOB_DESCRIPTOR.words] == f"8 {DESCRIPTOR_MAGIC}"
    assert np.array_equal(JOB_DESCRIPTOR.decode(words)["Y_OUT_LEN"], 513)

"""The job-field definition: the padding codes, the fields' widths and values, and that the
register map, the gateware struct and the register program are all derived from it."""

import re

import pytest

from convhw.compiler import compile_layer
from convhw.config import EngineConfig
from convhw.driver.program import register_writes
from convhw.job_format import (
    AXIS_FIELDS,
    COLUMN_FIELDS,
    DIMS,
    JOB_FIELDS,
    PaddingMode,
    field_value,
    job_fields,
    job_values,
)
from convhw.registers import engine_register_map, job_field_register
from convhw.spec import ConvSpec

PRESETS = ["small", "default", "up5k", "quantized"]


def test_padding_mode_codes():
    assert [(m.spec_name, int(m)) for m in PaddingMode] == [
        ("zeros", 0), ("circular", 1), ("reflect", 2), ("replicate", 3)]
    for mode in PaddingMode:
        assert PaddingMode.from_spec(mode.spec_name) is mode
        assert PaddingMode.from_spec(mode) is mode


def test_padding_mode_wrong():
    with pytest.raises(ValueError, match=r"^padding mode must be one of 'zeros', 'circular', "
                                         r"'reflect', 'replicate', not 'mirror'$"):
        PaddingMode.from_spec("mirror")
    with pytest.raises(TypeError, match=r"^padding mode must be a string, not 1$"):
        PaddingMode.from_spec(1)


def test_names_are_unique():
    names = [f.name for f in AXIS_FIELDS + JOB_FIELDS + COLUMN_FIELDS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_field_has_one_register_field(preset):
    config = EngineConfig.preset(preset)
    regmap = engine_register_map(config)
    places = set()
    for path, field in job_fields(config):
        register, name = job_field_register(path)
        assert (register, name) not in places
        places.add((register, name))
        placed = regmap.field(register, name)
        assert placed.width == field.width_for(config)
        assert placed.reset == field.reset_for(config)
        assert placed.access == ("rw" if field.built(config) else "ro")
    fields = list(job_fields(config))
    assert len(fields) == DIMS * len(AXIS_FIELDS) + len(JOB_FIELDS) \
        + config.cols * len(COLUMN_FIELDS)


@pytest.mark.parametrize("preset", PRESETS)
def test_register_writes_carry_job_values(preset):
    config = EngineConfig.preset(preset)
    regmap = engine_register_map(config)
    # depthwise with a 2-tap x kernel: FIR mode on every preset, so the lanes are written
    spec = ConvSpec(2, 4, 4, (3, 2), padding=1, groups=4, padding_mode="reflect")
    job = compile_layer(spec, (1, 4, 6, 7), config)[0].job
    assert job.fir_taps == 2 and job.padding_mode == "reflect"
    writes = dict(register_writes(regmap, job))
    values = job_values(job)
    assert values["padding_mode"] == PaddingMode.REFLECT
    for path, _ in job_fields(config):
        register, name = job_field_register(path)
        placed = regmap.field(register, name)
        if all(not f.built(config) for p, f in job_fields(config)
               if job_field_register(p)[0] == register):
            # a register of fields the engine does not build (INPUT_ZERO without the
            # activation offset) is not written
            assert regmap[register].address not in writes, path
            continue
        assert (writes[regmap[register].address] & placed.mask) >> placed.offset == \
            field_value(values, path), path


def test_descriptions_name_their_column():
    regmap = engine_register_map("small")
    assert regmap.field("LANE3", "VALUE").description == \
        "FIR mode: input lane column 3 multiplies"
    assert re.fullmatch(r"0 zeros, 1 circular, 2 reflect, 3 replicate \(forward only\)",
                        regmap.field("JOB_MODE", "PADDING_MODE").description)

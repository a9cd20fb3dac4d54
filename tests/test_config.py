"""``EngineConfig``: field validation, the presets, and the layers ``check_layer`` refuses for
an engine's geometry widths."""

import dataclasses

import numpy as np
import pytest

from convhw.compiler import compile_layer
from convhw.config import PRESETS, EngineConfig
from convhw.registers import engine_register_map
from convhw.spec import ConvSpec

from .helpers import exactly

UP5K = EngineConfig.preset("up5k")


# -- fields -------------------------------------------------------------------------------------


def test_geometry_width_defaults():
    config = EngineConfig()
    assert (config.coord_width, config.param_width, config.border_skipping,
            config.deep_pipeline) == (16, 8, True, True)
    assert config.signed_coord_width == 18
    assert EngineConfig(coord_width=6, param_width=4).signed_coord_width == 10


@pytest.mark.parametrize("kwargs, error, message", [
    ({"coord_width": 5}, ValueError, "coord_width must be an integer from 6 to 16, not 5"),
    ({"coord_width": 17}, ValueError, "coord_width must be an integer from 6 to 16, not 17"),
    ({"coord_width": 8.0}, TypeError, "coord_width must be an integer from 6 to 16, not 8.0"),
    ({"coord_width": True}, TypeError, "coord_width must be an integer from 6 to 16, not True"),
    ({"param_width": 1}, ValueError, "param_width must be an integer from 2 to 8, not 1"),
    ({"param_width": 9}, ValueError, "param_width must be an integer from 2 to 8, not 9"),
    ({"param_width": "4"}, TypeError, "param_width must be an integer from 2 to 8, not '4'"),
    # a kernel, stride or dilation is never wider than a coordinate
    ({"coord_width": 6, "param_width": 7}, ValueError,
     "param_width must be an integer from 2 to 6, not 7"),
    ({"border_skipping": 1}, TypeError, "border_skipping must be a bool, not 1"),
    ({"deep_pipeline": "yes"}, TypeError, "deep_pipeline must be a bool, not 'yes'"),
    ({"source_range_check": True}, ValueError,
     "source_range_check must be one of 'products', 'table', 'off', not True"),
    ({"rows": 2, "cols": 3, "dsp_pes": 7}, ValueError,
     "dsp_pes must be an integer from 0 to 6, not 7"),
    ({"dsp_pes": -1}, ValueError, "dsp_pes must be an integer from 0 to 64, not -1"),
    ({"dsp_pes": 2.0}, TypeError, "dsp_pes must be an integer from 0 to 64, not 2.0"),
])
def test_field_validation(kwargs, error, message):
    with pytest.raises(error, match=exactly(message)):
        EngineConfig(**kwargs)


def test_presets():
    assert list(PRESETS) == ["small", "default", "up5k", "quantized", "small-quantized"]
    assert PRESETS["small-quantized"].describe().startswith(
        "4x4 array, (uint8 - zero) x int8 -> int32")
    assert UP5K == EngineConfig(rows=2, cols=2, input_width=8, weight_width=8, acc_width=24,
                                input_depth=16384, weight_depth=16384, acc_depth=256,
                                coord_width=8, param_width=4, border_skipping=False,
                                deep_pipeline=False, source_range_check="table")
    with pytest.raises(ValueError, match=exactly(
            "preset must be one of 'small', 'default', 'up5k', 'quantized', 'small-quantized', "
            "not 'x'")):
        EngineConfig.preset("x")


# -- layers the geometry widths refuse ----------------------------------------------------------


@pytest.mark.parametrize("args, shape, message", [
    (dict(dims=1, kernel_size=16), None,
     "kernel_size must be below 16 in every dimension for this engine (param_width 4), "
     "not (16,)"),
    (dict(dims=2, kernel_size=3, stride=(1, 16)), None,
     "stride must be below 16 in every dimension for this engine (param_width 4), not (1, 16)"),
    (dict(dims=2, kernel_size=3, dilation=(16, 1)), None,
     "dilation must be below 16 in every dimension for this engine (param_width 4), "
     "not (16, 1)"),
    (dict(dims=2, kernel_size=3, padding=(0, 256)), None,
     "padding must be below 256 for this engine (coord_width 8), not ((0, 0), (256, 256))"),
    # (longer layers are framed, convhw.compiler.job.frame, but circular padding reads the
    # far end of the input at the near edge)
    (dict(dims=2, kernel_size=3, padding=1, padding_mode="circular"), (1, 2, 4, 256),
     "input size must be below 256 in every spatial dimension with circular padding for this "
     "engine (coord_width 8), not (4, 256)"),
    (dict(dims=2, kernel_size=3, padding=2, padding_mode="circular"), (1, 2, 4, 255),
     "output size must be below 256 in every spatial dimension with circular padding for this "
     "engine (coord_width 8), not (6, 257)"),
])
def test_check_layer_refuses_what_the_widths_cannot_hold(args, shape, message):
    spec = ConvSpec(in_channels=2, out_channels=2, **args)
    with pytest.raises(ValueError, match=exactly(message)):
        UP5K.check_layer(spec, shape)
    if shape is not None:
        # the compiler and the operand check see the input shape too
        with pytest.raises(ValueError, match=exactly(message)):
            compile_layer(spec, shape, UP5K)
        x = np.zeros(shape, dtype=np.int64)
        with pytest.raises(ValueError, match=exactly(message)):
            UP5K.check_operands(spec, x, np.zeros(spec.weight_shape, dtype=np.int64), None)
    # The default widths take all of these.
    EngineConfig.preset("small").check_layer(spec, shape)


def test_check_layer_takes_the_largest_layer_that_fits():
    # 255 long, kernel 15, padding 7 (255 outputs); and the output of a transposed layer.
    UP5K.check_layer(ConvSpec(1, 2, 2, 15, padding=7), (1, 2, 255))
    UP5K.check_layer(ConvSpec(1, 2, 2, 15, stride=15, transposed=True), (1, 2, 17))


# -- border skipping ----------------------------------------------------------------------------


def test_without_border_skipping_passes_stream_whole_ranges():
    spec = ConvSpec(2, 2, 2, 3, padding=1)
    steps = compile_layer(spec, (1, 2, 6, 6), UP5K, skip_borders=True)
    assert not any(step.job.skip_borders for step in steps)
    field = engine_register_map(UP5K)["JOB_MODE"].field("SKIP_BORDERS")
    assert (field.access, field.reset) == ("ro", 0)
    skipping = dataclasses.replace(UP5K, border_skipping=True)
    assert all(step.job.skip_borders for step in compile_layer(spec, (1, 2, 6, 6), skipping))
    field = engine_register_map(skipping)["JOB_MODE"].field("SKIP_BORDERS")
    assert (field.access, field.reset) == ("rw", 1)


def test_check_layer_refuses_a_circular_reach_past_the_coordinates():
    # (255 - 1) * 1 is in range; 128 outputs at stride 2 reach (128 - 1) * 2 = 254; 129 would
    # reach 256 = 2**coord_width, where the engine refuses the tile (SOURCE_RANGE). Other
    # layers run such tiles in frames of their own (convhw.compiler.job.frame); circular
    # padding cannot.
    circular = dict(padding_mode="circular")
    UP5K.check_layer(ConvSpec(1, 2, 2, 1, stride=2, **circular), (1, 2, 255))
    with pytest.raises(ValueError, match=r"^\(output size - 1\) \* stride must be below 256 "
                                         r"in every spatial dimension with circular padding "):
        UP5K.check_layer(ConvSpec(1, 2, 2, 1, stride=2, padding=1, **circular), (1, 2, 255))
    UP5K.check_layer(ConvSpec(1, 2, 2, 1, stride=2, padding=1), (1, 2, 255))
    UP5K.check_layer(ConvSpec(1, 2, 2, 2, stride=2, transposed=True), (1, 2, 127))
    UP5K.check_layer(ConvSpec(1, 2, 2, 3, stride=2, transposed=True), (1, 2, 4000))

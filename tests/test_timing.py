# amaranth: UnusedElaboratable=no
"""The timing constants as plain data: the values of the presets, the components' latencies
taken from them, and a host side that imports no Amaranth."""

import dataclasses
import subprocess
import sys

import pytest

from convhw import timing
from convhw.config import EngineConfig
from convhw.gateware.accumulator import Accumulator
from convhw.gateware.control import JobController
from convhw.gateware.pass_sequencer import PassSequencer
from convhw.gateware.pe import ProcessingElement
from convhw.gateware.streamer import Streamer
from convhw.gateware.systolic_array import SystolicArray
from convhw.gateware.weight_loader import WeightLoader

SMALL = EngineConfig.preset("small")
CONFIGS = [SMALL, EngineConfig.preset("up5k"), dataclasses.replace(SMALL, border_skipping=False),
           dataclasses.replace(SMALL, deep_pipeline=False),
           EngineConfig(rows=1, cols=1, input_depth=256, weight_depth=256, acc_depth=16)]


@pytest.mark.parametrize("preset, expected", [
    ("default", timing.JobTiming(check=37, setup=4, setup_unit_stride=3, setup_stride=54,
                                 setup_shift_stride=3,
                                 rows=8, guard=4, offer=0, offer_fir=9, spacing=8,
                                 streamer_latency=6, read=2, drain=22)),
    ("up5k", timing.JobTiming(check=14, setup=2, setup_unit_stride=3, setup_stride=30,
                              setup_shift_stride=30, rows=2,
                              guard=0, offer=3, offer_fir=3, spacing=0, streamer_latency=2,
                              read=1, drain=6)),
])
def test_job_timing_presets(preset, expected):
    assert timing.job_timing(EngineConfig.preset(preset)) == expected


@pytest.mark.parametrize("config", CONFIGS)
def test_components_take_their_latencies_from_timing(config):
    assert ProcessingElement.latency_for(config) == timing.pe_latency(config)
    assert SystolicArray(config).latency == timing.array_latency(config)
    assert Streamer(config).latency == timing.streamer_latency(config)
    assert PassSequencer.pipeline_for(config) == timing.sequencer_pipeline(config)
    assert WeightLoader.guard_for(config) == timing.weight_guard(config)
    assert JobController.check_cycles_for(config) == timing.check_cycles(config)
    assert Accumulator.latency_for(config) == timing.accumulator_latency(config)


def test_job_timing_wrong_config():
    with pytest.raises(TypeError, match=r"^config must be an EngineConfig, not 'small'$"):
        timing.job_timing("small")


# The host side: the front end, the compiler with its cycle model, the driver (but for
# amaranth_sim, which runs the Amaranth simulator itself; the Amaranth device imports the
# gateware lazily), the golden model, the register map and the timing constants.
HOST_CODE = """
import sys
import numpy as np
import convhw
import convhw.compiler, convhw.compiler.cycles, convhw.compiler.job, convhw.compiler.program
import convhw.driver, convhw.driver.device, convhw.driver.driver, convhw.driver.program
import convhw.driver.serial_sim, convhw.driver.serial_transport, convhw.driver.transport
import convhw.driver.verilator_build, convhw.driver.verilator_transport
import convhw.driver.amaranth_list, convhw.driver.list_driver, convhw.memory_model
import convhw.compiler.image, convhw.compiler.lower, convhw.compiler.list_model
import convhw.functional, convhw.golden, convhw.job_format, convhw.nn, convhw.registers
import convhw.regmap, convhw.spec, convhw.timing
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles
from convhw.driver.program import JobProgram
from convhw.registers import engine_register_map

config = convhw.EngineConfig.preset("small")
spec = convhw.ConvSpec(2, 4, 4, 3, padding=1)
x = np.ones((1, 4, 6, 6), np.int64)
w = np.ones(spec.weight_shape, np.int64)
for step in compile_layer(spec, x.shape, config):
    assert job_cycles(step.job) > 0
    JobProgram.build(engine_register_map(config), config, step, spec, x, w, None)
convhw.nn.Conv2d(4, 4, 3, padding=1)
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "amaranth")
print(" ".join(loaded))
sys.exit(1 if loaded else 0)
"""


def test_host_imports_no_amaranth():
    result = subprocess.run([sys.executable, "-c", HOST_CODE], capture_output=True, text=True)
    assert result.returncode == 0, f"amaranth imported: {result.stdout} {result.stderr}"

"""Running compiled layers on the engine in the Amaranth simulator.

:func:`run_layer` is the whole host flow of one layer, as an async testbench: for every job,
program the registers over Wishbone, load the buffers, start, poll STATUS, read CYCLES and the
results. Buffers can be loaded over the bus or, to save simulation time, straight into the
memories (``direct_buffers``); registers, control and results always go over the bus.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.sim import Simulator

from ..compiler import compile_layer
from ..compiler.program import input_words
from ..config import EngineConfig
from ..gateware.engine import Engine
from ..sim_helpers import wb_read, wb_write
from .program import JobProgram, pack_words

__all__ = ["JobRecord", "run_layer"]


@dataclasses.dataclass(frozen=True)
class JobRecord:
    cycles: int
    error: int


def _wide(words: np.ndarray, parts: int) -> list[int]:
    values = []
    for word in words.reshape(-1, parts):
        value = 0
        for p, part in enumerate(word):
            value |= int(part) << (32 * p)
        values.append(value)
    return values


async def run_steps(ctx, dut: Engine, spec, steps, x, weight, bias, *, direct_buffers=True,
                    out=None, records=None, max_polls=1_000_000, requantize=None,
                    relu=False):
    """The host flow of ``steps`` inside a running simulation; fills ``out`` (batched)."""
    config, regmap = dut.config, dut.register_map
    status = regmap["STATUS"].address
    out3 = out.reshape(out.shape[0], out.shape[1], *(1,) * (5 - out.ndim), *out.shape[2:])
    for step in steps:
        program = JobProgram.build(regmap, config, step, spec, x, weight, bias,
                                   requantize=requantize, relu=relu)
        for address, value in program.registers:
            await wb_write(ctx, dut.wb, address, value)
        if direct_buffers:
            inputs = pack_words(input_words(step, x, config.rows), config.input_width,
                                config.bus_words_per_input_word)
            for i, v in enumerate(_wide(inputs, config.bus_words_per_input_word)):
                ctx.set(dut.input_buffer.data[i], v)
            for i, v in enumerate(_wide(program.weight_words, config.bus_words_per_weight_word)):
                ctx.set(dut.weight_buffer.data[i], v)
        else:
            for i, word in enumerate(program.input_words):
                await wb_write(ctx, dut.wb, program.input_base + 4 * i, int(word))
            for i, word in enumerate(program.weight_words):
                await wb_write(ctx, dut.wb, program.weight_base + 4 * i, int(word))
        await wb_write(ctx, dut.wb, program.start_address, 1)
        for _ in range(max_polls):
            if not (await wb_read(ctx, dut.wb, status)) & 1:
                break
        else:
            raise TimeoutError("the engine stayed busy")
        record = JobRecord(cycles=await wb_read(ctx, dut.wb, regmap["CYCLES"].address),
                           error=await wb_read(ctx, dut.wb, regmap["ERROR"].address))
        if records is not None:
            records.append(record)
        if record.error:
            raise RuntimeError(f"engine error {record.error}")
        if program.output_addresses is not None:
            values = []
            for address in program.output_addresses:
                v = await wb_read(ctx, dut.wb, int(address))
                values.append(v - (1 << 32) if v & (1 << 31) else v)
            job = step.job
            shape = tuple(a.out_len for a in job.axes)
            block = np.array(values, dtype=np.int64).reshape(*shape, step.oc_count)
            region = tuple(slice(a.out_start, a.out_start + a.out_len) for a in job.axes)
            out3[(step.batch, slice(step.oc_start, step.oc_start + step.oc_count), *region)] = \
                np.moveaxis(block, -1, 0)


def run_layer(spec, x, weight, bias, config: EngineConfig, *, direct_buffers=True,
              skip_borders=True, vcd=None, requantize=None, relu=False, input_zero=0):
    """Run one layer on a fresh simulated engine; returns the output (batched like ``x``), the
    compiler's steps and a :class:`JobRecord` per job. ``input_zero``: the input's zero point
    (``config.activation_offset``)."""
    x, batched = spec.check_input(x)
    x, weight, bias = config.check_operands(spec, x, weight, bias, input_zero)
    steps = compile_layer(spec, x.shape, config, skip_borders=skip_borders,
                          input_zero=input_zero)
    out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
    records = []
    dut = Engine(config)

    async def testbench(ctx):
        await run_steps(ctx, dut, spec, steps, x, weight, bias, direct_buffers=direct_buffers,
                        out=out, records=records, requantize=requantize, relu=relu)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return (out if batched else out[0]), steps, records

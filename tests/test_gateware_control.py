"""The host-fed job controller (convhw/gateware/control.py) alone in the Amaranth simulator:
its source-range check (ERROR 13), made by products or by a table
(``EngineConfig.source_range_check``), against the definition ``(out_start + out_len - 1) *
stride > 2**coord_width - 1``."""

from __future__ import annotations

import dataclasses

import pytest
from amaranth.sim import Simulator

from convhw import timing
from convhw.config import EngineConfig
from convhw.gateware.control import JobController
from convhw.job_format import DIMS
from convhw.registers import ErrorCode

UP5K = EngineConfig.preset("up5k")
#: The up5k engine (whose preset checks by table) with each form of the check, and without:
#: the two forms must decide alike.
UP5K_TABLE = dataclasses.replace(UP5K, source_range_check="table")
UP5K_PRODUCTS = dataclasses.replace(UP5K, source_range_check="products")
UP5K_OFF = dataclasses.replace(UP5K, source_range_check="off")


def legal_axis(**changes):
    """A unit axis of one input and one output, whose other checks all pass."""
    axis = dict(in_size=1, kernel=1, stride=1, dilation=1, pad_lo=0, out_start=0, out_len=1,
                seg0_start=0, seg0_len=1, seg1_start=0, seg1_len=0)
    axis.update(changes)
    return axis


def run_checks(config, cases):
    """ERROR code for each ``(dimension, axis changes, transposed)`` case, one job after the
    other on one controller."""
    dut = JobController(config, drain_cycles=2)
    codes = []

    async def bench(ctx):
        for dimension, changes, transposed in cases:
            for d in range(DIMS):
                axis = legal_axis(**(changes if d == dimension else {}))
                for name, value in axis.items():
                    ctx.set(dut.job.axes[d][name], value)
            ctx.set(dut.job.in_chunks, 1)
            ctx.set(dut.job.transposed, transposed)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(timing.check_cycles(config) + 2):
                if ctx.get(dut.busy) and not ctx.get(dut.job_start):
                    await ctx.tick()
            # A legal job runs: the datapath is idle at once, and it drains.
            ctx.set(dut.pipeline_idle, 1)
            for _ in range(10):
                if not ctx.get(dut.busy):
                    break
                await ctx.tick()
            ctx.set(dut.pipeline_idle, 0)
            assert not ctx.get(dut.busy)
            codes.append(ctx.get(dut.code))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return codes


def boundary_cases(config):
    """Per dimension and stride, last outputs just inside and just past the limit, from tiles
    that start at 0 and at the end (out_start + out_len - 1 is what the check multiplies), and
    the transposed form of each (never refused)."""
    limit = (1 << config.coord_width) - 1
    cases = []
    for dimension in range(DIMS):
        for stride in range(1, 1 << config.param_width):
            largest = limit // stride
            for last in {largest - 1, largest, largest + 1, limit}:
                if not 0 <= last <= limit:
                    continue
                for length in (1, min(last + 1, 4)):
                    changes = dict(stride=stride, out_start=last - length + 1, out_len=length)
                    cases.append((dimension, changes, False))
            cases.append((dimension, dict(stride=stride, out_start=limit, out_len=1), True))
    return cases


def expected_code(config, case):
    dimension, changes, transposed = case
    last = changes["out_start"] + changes["out_len"] - 1
    wraps = last * changes["stride"] > (1 << config.coord_width) - 1
    return ErrorCode.SOURCE_RANGE if wraps and not transposed else 0


@pytest.mark.parametrize("config", [UP5K_TABLE, UP5K_PRODUCTS], ids=["table", "products"])
def test_source_range_decided_exactly(config):
    # Defect C of issue 11: without the check a forward tile whose last output times the stride
    # passes 2**coord_width runs with ERROR 0, its source coordinates wrapped onto real input
    # elements (as an engine built with the check off still does, below).
    cases = boundary_cases(config)
    codes = run_checks(config, cases)
    wrong = [(case, code) for case, code in zip(cases, codes)
             if code != expected_code(config, case)]
    assert not wrong, wrong[:5]
    # Both outcomes occur, in every dimension.
    for dimension in range(DIMS):
        outcomes = {code for case, code in zip(cases, codes) if case[0] == dimension}
        assert outcomes == {0, ErrorCode.SOURCE_RANGE}


def test_unchecked_source_range_runs():
    # source_range_check="off"'s documented hole: the same boundary cases all run with ERROR 0.
    cases = [case for case in boundary_cases(UP5K_OFF) if case[0] == 2]
    assert set(run_checks(UP5K_OFF, cases)) == {0}


def test_up5k_preset_checks_by_table():
    assert UP5K == UP5K_TABLE


def test_table_adds_no_check_cycles():
    assert timing.check_products(UP5K_TABLE) == timing.check_products(UP5K_OFF)
    assert timing.check_products(UP5K_OFF) == timing.CHECK_PRODUCTS[:3]
    assert JobController.check_cycles_for(UP5K_TABLE) == 14
    assert JobController.check_cycles_for(UP5K_PRODUCTS) == 20

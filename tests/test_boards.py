"""Board support without running the FPGA tools: PLL settings, the tops' elaboration and
constraints, the build summary. (CI builds a real bitstream with the tools: .ci/run.)"""

from __future__ import annotations

import dataclasses
import gc
import json
import re
import warnings
from pathlib import Path

import pytest
from amaranth.hdl import UnusedElaboratable
from hypothesis import given, settings
from hypothesis import strategies as st

from convhw.boards import BOARDS, board
from convhw.boards.flow import (
    Summary,
    _command,
    _read_report,
    _yosys_cells,
    constraint_file,
    critical_paths,
)
from convhw.boards.pll import ecp5_pll, ice40_pll
from convhw.cli import main
from convhw.config import PRESETS

from .helpers import tiered

ROOT = Path(__file__).resolve().parent.parent


def test_ice40_pll_known_settings():
    # The iCE40 datasheet's example and icepll agree: 12 MHz -> 24 MHz is DIVF 63, DIVQ 5.
    pll = ice40_pll(12e6, 24e6)
    assert (pll.divr, pll.divf, pll.divq, pll.output_hz) == (0, 63, 5, 24e6)
    assert pll.filter_range == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(16, 200))
def test_ice40_pll_is_in_range_and_exact(mhz):
    pll = ice40_pll(12e6, mhz * 1e6)
    pfd = pll.input_hz / (pll.divr + 1)
    vco = pfd * (pll.divf + 1)
    assert 10e6 <= pfd <= 133e6 and 533e6 <= vco <= 1066e6
    assert pll.output_hz == vco / 2 ** pll.divq
    assert abs(pll.output_hz - mhz * 1e6) <= 0.03 * mhz * 1e6


@settings(max_examples=60, deadline=None)
@given(st.integers(20, 300))
def test_ecp5_pll_is_in_range_and_exact(mhz):
    pll = ecp5_pll(25e6, mhz * 1e6)
    vco = pll.output_hz * pll.clkop_div
    assert 400e6 <= vco <= 800e6
    assert pll.output_hz == pytest.approx(25e6 * pll.clkfb_div / pll.clki_div)
    # The phase detector needs >= 3.125 MHz, so CLKI_DIV <= 8: outputs come in steps of
    # 25/8 MHz at worst.
    assert abs(pll.output_hz - mhz * 1e6) <= 25e6 / 16


def test_pll_out_of_range():
    with pytest.raises(ValueError, match="16..275 MHz"):
        ice40_pll(12e6, 8e6)
    with pytest.raises(ValueError, match="3.125..400 MHz"):
        ecp5_pll(25e6, 500e6)


def test_unknown_board():
    with pytest.raises(ValueError, match="board must be one of 'ulx3s', 'icebreaker'"):
        board("arty")
    with pytest.raises(SystemExit):
        main(["build", "--board", "arty"])


def test_build_refuses_a_memory_the_board_lacks(capsys):
    # Refused before anything is elaborated or any tool runs.
    assert main(["build", "--board", "icebreaker", "--memory", "sdram"]) == 2
    assert "memory must be 'block_ram' on the icebreaker, not 'sdram'" in capsys.readouterr().err
    assert board("ulx3s").check_memory(None) == "sdram"
    assert board("ulx3s").check_memory("block_ram") == "block_ram"


# The ULX3S (13 s: its top elaborates the default preset) in the slow tier.
@pytest.mark.parametrize("name", tiered(sorted(BOARDS), fast=1))
def test_constraints_are_current(name):
    """constraints/ holds what the build uses; `make rtl` rewrites it."""
    filename, text = constraint_file(name)
    assert (ROOT / "constraints" / filename).read_text() == text, \
        f"constraints/{filename} is stale: run `make rtl`"
    assert "FREQUENCY" in text or "set_frequency" in text


def test_summary_from_nextpnr_report(tmp_path):
    report = {"utilization": {"TRELLIS_COMB": {"used": 100, "available": 1000},
                              "MULT18X18D": {"used": 2, "available": 156},
                              "DP16KD": {"used": 3, "available": 208}},
              "fmax": {"$glbnet$clk": {"achieved": 123.4, "constraint": 100.0},
                       "other": {"achieved": 250.0, "constraint": 100.0}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    resources, fmax = _read_report(tmp_path / "report.json", "ecp5")
    assert resources == {"LUT4": [100, 1000], "DSP (MULT18X18D)": [2, 156],
                         "BRAM (DP16KD)": [3, 208]}
    summary = Summary(what="engine", device="LFE5U-85F", config="8x8", target_hz=100e6,
                      fmax_mhz=fmax, resources=resources, cells={}, seconds=1.0)
    assert summary.fmax == 123.4 and summary.passed
    assert "PASS" in summary.markdown() and "| LUT4 | 100 | 1000 | 10.0 |" in summary.markdown()
    summary.target_hz = 150e6
    assert not summary.passed and "FAIL" in summary.markdown()
    summary.write(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["passed"] is False


def test_critical_path_from_nextpnr_report(tmp_path):
    def step(kind, cell, delay):
        end = {"cell": cell, "port": "Q", "loc": [1, 1]}
        return {"type": kind, "delay": delay, "from": end, "to": end}
    path = [step("clk-to-q", "checker.entry_FF", 0.5), step("routing", "checker.entry_FF", 1.0),
            step("logic", "checker.lut", 0.25), step("routing", "checker.lut", 0.75),
            step("logic", "controller.lut", 0.25), step("setup", "controller.taking_FF", 0.0)]
    report = {"utilization": {}, "fmax": {"clk": {"achieved": 40.0, "constraint": 100.0}},
              "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": path}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    paths = critical_paths(tmp_path / "report.json")
    assert paths == {"clk": {"from": "checker.entry_FF", "to": "controller.taking_FF",
                             "logic_levels": 2, "ns": 2.75}}
    summary = Summary(what="engine", device="LFE5U-85F", config="8x8", target_hz=100e6,
                      fmax_mhz={"clk": 40.0}, resources={}, cells={}, seconds=1.0,
                      critical_paths=paths)
    assert "| clk | `checker.entry_FF` | `controller.taking_FF` | 2 | 2.75 |" \
        in summary.markdown()


def test_yosys_cell_counts():
    log = """
3. Printing statistics.
=== convhw ===
     1000   SB_LUT4
      200   SB_DFFESR
       30   SB_DFF
        8   SB_MAC16
"""
    assert _yosys_cells(log) == {"LUT4": 1000, "flip-flops": 230}


def test_summary_command_repeats_the_build():
    # The summary's command names what differs from the part's or board's own preset, so
    # that the numbers can be reproduced from it.
    default = PRESETS["default"]
    assert _command("convhw synth --part ecp5-85f", default, "default",
                    {"--clock": None, "--seed": None}) == "convhw synth --part ecp5-85f"
    large = dataclasses.replace(default, rows=12, cols=12)
    assert _command("convhw synth --part ecp5-85f", large, "default", {"--seed": 2}) == \
        "convhw synth --part ecp5-85f --rows 12 --cols 12 --seed 2"
    # PEs in logic are a command-line override too (it was named only after a "#").
    logic = dataclasses.replace(large, dsp_pes=118)
    assert _command("convhw synth --part ecp5-85f", logic, "default", {}) == \
        "convhw synth --part ecp5-85f --rows 12 --cols 12 --dsp-pes 118"
    assert _command("convhw build --board ulx3s", PRESETS["small"], "default",
                    {"--clock": "50"}) == "convhw build --board ulx3s --preset small --clock 50"
    odd = dataclasses.replace(default, acc_width=24)
    assert _command("convhw synth --part up5k", odd, "up5k", {}) == \
        f"convhw synth --part up5k # {odd!r}"


def test_board_tops():
    # The ULX3S runs the list engine with 128 KiB of device memory (its Wishbone variant); the
    # iCEBreaker keeps the host-fed engine: the list engine does not fit the UP5K.
    from convhw.boards.top import BoardTop
    from convhw.gateware.serial_engine import SerialEngine
    from convhw.gateware.serial_list_engine import SerialListEngine
    with warnings.catch_warnings():
        # The tops are built, not elaborated: their submodules are never used.
        warnings.simplefilter("ignore", UnusedElaboratable)
        ulx3s = board("ulx3s")
        top = BoardTop(ulx3s, PRESETS[ulx3s.preset], clock_hz=ulx3s.clock_hz,
                       baudrate=ulx3s.baudrate)
        # The ULX3S's device memory is its SDRAM unless block RAM is asked for.
        assert top.memory == "sdram" and top.memory_bytes == 16 << 20
        top = BoardTop(ulx3s, PRESETS[ulx3s.preset], clock_hz=ulx3s.clock_hz,
                       baudrate=ulx3s.baudrate, memory="block_ram")
        assert isinstance(top.serial_engine, SerialListEngine)
        assert top.serial_engine.memory_bytes == ulx3s.memory_bytes == 128 * 1024
        assert top.config.bus == "wishbone"
        icebreaker = board("icebreaker")
        top = BoardTop(icebreaker, PRESETS[icebreaker.preset], clock_hz=icebreaker.clock_hz,
                       baudrate=icebreaker.baudrate)
        assert isinstance(top.serial_engine, SerialEngine) and top.memory_bytes == 0
        del top
        gc.collect()


@pytest.mark.slow          # (elaborates the default engine: half a minute)
def test_ulx3s_sdram_top_elaborates():
    # The ULX3S with its SDRAM as device memory: LiteDRAM's core added to the build, its pins
    # the board's SDRAM resource (LiteDRAM's own I/O registers drive them), the chip clock a
    # DDR output; the bridge's 16 MiB window onto it.
    from convhw.boards.top import BoardTop
    ulx3s = board("ulx3s")
    top = BoardTop(ulx3s, PRESETS[ulx3s.preset], clock_hz=ulx3s.clock_hz,
                   baudrate=ulx3s.baudrate, memory="sdram")
    assert top.memory_bytes == 16 << 20
    plan = ulx3s.platform().prepare(top, name="convhw_ulx3s")
    del top
    gc.collect()
    assert "litedram_ulx3s.v" in plan.files
    lpf = plan.files["convhw_ulx3s.lpf"]
    for pin in ("F19", "J16", "M20", "U19"):        # clock, dq[0], a[0], dqm[0]
        assert f'"{pin}"' in lpf, pin
    rtlil = plan.files["convhw_ulx3s.il"]
    assert "cell \\litedram_ulx3s " in rtlil and "cell \\ODDRX1F " in rtlil
    with warnings.catch_warnings():
        # (A refused top leaves its parts unelaborated.)
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="the SDRAM controller is generated for 60 MHz"):
            BoardTop(ulx3s, PRESETS[ulx3s.preset], clock_hz=50e6, baudrate=ulx3s.baudrate,
                     memory="sdram")
        with pytest.raises(ValueError, match="memory must be 'block_ram' on the icebreaker"):
            icebreaker = board("icebreaker")
            BoardTop(icebreaker, PRESETS[icebreaker.preset], clock_hz=icebreaker.clock_hz,
                     baudrate=icebreaker.baudrate, memory="sdram")
        gc.collect()


def test_icebreaker_pll_takes_the_oscillator_pin():
    # The UP5K's PLL shares its site with pin 35, where the iCEBreaker's 12 MHz arrives: with
    # an input buffer on the pin nextpnr cannot place the PLL ("conflicts with input
    # 'oscillator.buf0' on pin '35'"), so the pin drives SB_PLL40_PAD directly.
    from convhw.boards.top import BoardTop
    icebreaker = board("icebreaker")
    top = BoardTop(icebreaker, PRESETS[icebreaker.preset], clock_hz=24e6,
                   baudrate=icebreaker.baudrate)
    assert top.clock_hz == 24e6
    plan = icebreaker.platform().prepare(top, name="convhw_icebreaker")
    del top
    gc.collect()
    rtlil = plan.files["convhw_icebreaker.il"]
    assert "cell \\SB_PLL40_PAD " in rtlil and "SB_PLL40_CORE" not in rtlil
    assert "set_io clk12_0__io 35" in plan.files["convhw_icebreaker.pcf"]
    # Without a PLL (the board's 12 MHz) the pin goes through an input buffer as before.
    top = BoardTop(icebreaker, PRESETS[icebreaker.preset], clock_hz=12e6,
                   baudrate=icebreaker.baudrate)
    plan = icebreaker.platform().prepare(top, name="convhw_icebreaker")
    del top
    gc.collect()
    assert "SB_PLL40" not in plan.files["convhw_icebreaker.il"]


def test_missing_fpga_tools_are_named_with_how_to_install_them(monkeypatch):
    from convhw.boards.flow import tool_environment
    monkeypatch.setenv("YOSYS", "convhw-no-such-yosys")
    monkeypatch.setenv("NEXTPNR_ECP5", "convhw-no-such-nextpnr")
    monkeypatch.setenv("ECPPACK", "convhw-no-such-ecppack")
    with pytest.raises(RuntimeError, match=re.escape(
            "the ecp5 flow needs convhw-no-such-yosys, convhw-no-such-nextpnr, "
            "convhw-no-such-ecppack, which are not installed: pip install -e '.[fpga]' "
            "(make bitstream and make synth install it)")):
        tool_environment("ecp5")
    assert tool_environment()["NEXTPNR_ECP5"] == "convhw-no-such-nextpnr"   # no check asked

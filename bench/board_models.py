"""Whole quantised networks on the ULX3S with its SDRAM, modelled per inference: the engine's
cycles from the RTL, the link's bytes and frames from the serial protocol, the host's torch ops
measured here.

Each model is quantised by torch (FX, fbgemm; the digits CNN on its training images) and
offloaded to the engine the ULX3S build carries (its preset, ``small-quantized``: every convolution
and Linear on the engine, the rest in torch on the host) through the same host flow a board
gets (:class:`~convhw.driver.list_driver.ListDriver`), on the Verilated list engine with a
memory that behaves like the board's SDRAM (:data:`SDRAM`: 2 bytes per cycle, the 16-bit chip
at the controller's clock). Every output is checked against torch's. Two inferences run:

* the **first** uploads every weight and parameter image (they stay in device memory:
  ``convhw.compiler.image.ResidentImages``); its extra link traffic is the *upload*;
* the **second** is the steady state: per offloaded module the host writes its input and the
  descriptor list, reads its output and polls STATUS.

Every host operation is counted as the frames :class:`~convhw.driver.serial_transport.
SerialTransport` would send (:class:`FrameCounter`: bursts of the list top's 128 words
(``serial_protocol.LARGEST_BURST``), a partial word at either end
read first, the last STATUS poll of each list; the polls while a list runs overlap its
computation). Link time = wire bytes x 10 bits / baud rate + round trips x :data:`TURNAROUND`,
the request-response round trip of the FT231X's USB link, which the transport waits for after
each group of pipelined frames (up to ``PIPELINE_FRAMES`` of one burst: the list top's bridge
has a receive FIFO) and after each single request (1 ms: the FTDI latency timer at its
minimum; Linux sets 16 ms unless told otherwise).
Engine time = the RTL's CYCLES at the bitstream's clock. Host time = the wall time of the
model's torch ops on this machine (not the board's host; the compiler's per-call lowering and
packing are not included). Nothing here ran on a board.

Run from the repository root: ``.venv/bin/python bench/board_models.py [--models ...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from report import markdown, provenance, render

import convhw
from convhw import models, progress
from convhw import serial_protocol as sp
from convhw.boards import BOARDS
from convhw.driver.serial_transport import PIPELINE_FRAMES
from convhw.memory_model import MemoryModel

RESULTS = Path(__file__).resolve().parent / "results"

#: The ULX3S's SDRAM as the harness's memory: the 16-bit chip moves 2 bytes per cycle at the
#: controller's 60 MHz; the latency of LiteDRAM's read path. ``--calibrate`` compares it with
#: the simulated board (LiteDRAM's RTL and the behavioural chip) on ResNet-8 (small):
#: bench/results/sdram_calibration.md.
SDRAM = MemoryModel(bytes_per_cycle=2, latency=24)
#: The request-response round trip of one frame over the FT231X (USB full speed).
TURNAROUND = 1e-3
#: The models: (name, size); digits runs one image per inference.
MODELS = [("digits", "-"), ("resnet8", "full"), ("dcgan_generator", "full"),
          ("mobilenet_v2", "full"), ("resnet18", "full")]
COLUMNS = ["model", "input", "convs on board", "upload kB", "upload s", "engine cycles",
           "engine s", "link kB", "link frames", "round trips", "link s", "host s",
           "inference s",
           "link share", "identical"]


class FrameCounter:
    """A transport that passes everything to ``inner`` and counts the serial frames and wire
    bytes each operation would take over the UART bridge."""

    def __init__(self, inner, burst: int = sp.LARGEST_BURST) -> None:
        self._inner = inner
        self._burst = burst
        self.frames = 0
        self.round_trips = 0
        self.wire = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _count(self, command, words: int) -> None:
        frames = 0
        while words > 0:
            n = min(words, self._burst)
            frames += 1
            self.wire += sp.exchange_length(command, n)
            words -= n
        self.frames += frames
        # A burst's frames go pipelined (the list top's receive FIFO): one round trip per
        # PIPELINE_FRAMES of them, as SerialTransport sends them on a clean line.
        self.round_trips += -(-frames // PIPELINE_FRAMES)

    def write(self, address, value):
        self._count(sp.Command.WRITE, 1)
        return self._inner.write(address, value)

    def read(self, address):
        self._count(sp.Command.READ, 1)
        return self._inner.read(address)

    def mem_write(self, address, data):
        start, end = address & ~3, (address + len(data) + 3) & ~3
        partial = (start != address) + (address + len(data) != end)
        for _ in range(partial):               # a partial word is read first, then merged
            self._count(sp.Command.READ, 1)
        self._count(sp.Command.WRITE, (end - start) // 4)
        return self._inner.mem_write(address, data)

    def mem_read(self, address, size):
        start, end = address & ~3, (address + size + 3) & ~3
        self._count(sp.Command.READ, (end - start) // 4)
        return self._inner.mem_read(address, size)

    def wait_idle(self, status_address, max_cycles):
        self._count(sp.Command.READ, 1)        # the poll that finds it idle
        return self._inner.wait_idle(status_address, max_cycles)


class CountedDevice(convhw.Device):
    """``Device("verilator", ...)`` whose transport is wrapped in a :class:`FrameCounter`."""

    def _transport(self):
        return FrameCounter(super()._transport())


def _model(name: str, size: str):
    import torch
    if name == "digits":
        model, x_test, _, x_train = models.digits()
        return model, (x_test[:1],), (x_test[1:2],), [(x_train,)], "x86"
    model, inputs = models.build(name, size)
    generator = torch.Generator().manual_seed(1)
    calibration = [tuple(torch.randn(x.shape, generator=generator) for x in inputs)
                   for _ in range(2)]
    second = tuple(torch.randn(x.shape, generator=generator) for x in inputs)
    return model, inputs, second, calibration, "fbgemm"


def run_model(name: str, size: str, device: CountedDevice, clock_hz: float,
              baudrate: int) -> dict:
    import torch

    from convhw.profile import profile
    model, first_inputs, inputs, calibration, reference = _model(name, size)
    quantized = convhw.quantize(model, calibration, reference=reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        offloaded = convhw.offload(quantized, device)
    on_board = sum(1 for r in offloaded.convhw_report if r.runs_on == device.name)
    counts = []
    identical = True
    for batch in (first_inputs, inputs):
        counter = device.driver.transport      # (the driver started: its counter exists)
        frames, trips, wire = counter.frames, counter.round_trips, counter.wire
        got, prof = profile(offloaded, *batch, name=name)
        with torch.no_grad():
            identical &= bool(torch.equal(got, quantized(*batch)))
        counts.append((counter.frames - frames, counter.round_trips - trips,
                       counter.wire - wire, prof))
    (_, trips0, wire0, _), (frames, trips, wire, prof) = counts

    def link_seconds(wire_bytes, round_trips):
        return wire_bytes * 10 / baudrate + round_trips * TURNAROUND
    engine = prof.cycles / clock_hz
    link = link_seconds(wire, trips)
    host = sum(layer.seconds for layer in prof.layers if layer.runs_on == "torch")
    total = engine + link + host
    shape = "x".join(str(s) for s in inputs[0].shape)
    return {
        "model": name if size in ("-", "full") else f"{name} ({size})", "input": shape,
        "convs on board": f"{on_board}/{len(offloaded.convhw_report)}",
        "upload kB": f"{(wire0 - wire) / 1e3:,.1f}",
        "upload s": f"{link_seconds(wire0 - wire, trips0 - trips):.2f}",
        "engine cycles": f"{prof.cycles:,}", "engine s": f"{engine:.3f}",
        "link kB": f"{wire / 1e3:,.1f}", "link frames": f"{frames:,}",
        "round trips": f"{trips:,}",
        "link s": f"{link:.2f}", "host s": f"{host:.3f}", "inference s": f"{total:.2f}",
        "link share": f"{link / total:.3f}", "identical": "yes" if identical else "NO",
        "_seconds": dict(engine=engine, link=link, host=host, total=total),
    }


def calibrate(board, config, write: bool) -> int:
    """ResNet-8 (small)'s engine cycles on the simulated board (the serial list top, LiteDRAM
    and the SDRAM chip model, through ``Device("serial")``) and on the Verilated engine with
    :data:`SDRAM`, its second call (weights resident) each; prints and records both."""
    import torch

    from convhw.driver.serial_sim import SimulatedBoard
    from convhw.profile import profile
    model, (x,) = models.build("resnet8", "small")
    calibration = [torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(i))
                   for i in range(2)]
    quantized = convhw.quantize(model, calibration, reference="fbgemm")

    def layer_cycles(device) -> list[int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offloaded = convhw.offload(quantized, device, strict=True)
        profile(offloaded, x)
        _, result = profile(offloaded, x)
        return [layer.cycles for layer in result.engine_layers]

    with SimulatedBoard(config, clock_hz=round(board.clock_hz), baudrate=board.baudrate,
                        memory_bytes=1 << 20, memory="sdram") as simulated:
        device = convhw.Device("serial", config, port=simulated.port, baudrate=board.baudrate,
                               timeout=5.0)
        try:
            on_board = layer_cycles(device)
        finally:
            device.close()
    device = convhw.Device("verilator", config, memory=SDRAM)
    try:
        modelled = layer_cycles(device)
    finally:
        device.close()
    rows = [dict(layer=i, board_cycles=f"{b:,}", model_cycles=f"{m:,}", ratio=f"{m / b:.3f}")
            for i, (b, m) in enumerate(zip(on_board, modelled))]
    rows.append(dict(layer="all", board_cycles=f"{sum(on_board):,}",
                     model_cycles=f"{sum(modelled):,}",
                     ratio=f"{sum(modelled) / sum(on_board):.3f}"))
    columns = ["layer", "board_cycles", "model_cycles", "ratio"]
    print(render(rows, columns, f"ResNet-8 (small), second call: the simulated board against "
                                f"{SDRAM}"))
    if write:
        command, machine, date = provenance("board_models.py", ["--calibrate"])
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "sdram_calibration.md").write_text("\n".join([
            "# The SDRAM memory model against the simulated ULX3S\n",
            f"- command: `{command}`", f"- date: {date}", f"- machine: {machine}",
            f"- engine: `{config.describe()}`; model: {SDRAM}", "",
            "Each offloaded module of ResNet-8 (small), its second call (weights resident): "
            "CYCLES on the simulated board (the serial list top, LiteDRAM's Verilog and the "
            "behavioural SDRAM chip, Verilated, through `Device(\"serial\")`) and on the "
            "Verilated list engine with the memory model bench/board_models.py uses. ratio = "
            "model / board: below 1, the model's engine times are that much too short.", "",
            markdown(rows, columns), ""]))
        print(f"\nwrote {RESULTS / 'sdram_calibration.md'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [name for name, _ in MODELS]
    parser.add_argument("--models", nargs="+", default=names, choices=names, metavar="NAME",
                        help=f"models to run (default: all: {' '.join(names)})")
    parser.add_argument("--calibrate", action="store_true",
                        help="instead: compare the SDRAM memory model with the simulated board")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    board = BOARDS["ulx3s"]
    config = convhw.EngineConfig.preset(board.preset)
    if args.calibrate:
        return calibrate(board, config, not args.no_write)
    device = CountedDevice("verilator", config, memory=SDRAM)
    rows = []
    try:
        for name, size in progress.items([m for m in MODELS if m[0] in args.models],
                                         "bench/board_models.py", unit="model"):
            rows.append(run_model(name, size, device, board.clock_hz, board.baudrate))
            print(render(rows[-1:], COLUMNS), flush=True)
    finally:
        device.close()
    title = (f"ULX3S ({board.device}, LiteDRAM on the SDRAM, preset `{board.preset}`, "
             f"{board.clock_hz / 1e6:g} MHz, UART {board.baudrate} Bd): one inference, "
             f"weights resident")
    print(render(rows, COLUMNS, title))
    if args.no_write:
        return 0
    command, machine, date = provenance("board_models.py", argv)
    text = [f"# {title}\n", f"- command: `{command}`", f"- date: {date}",
            f"- machine: {machine}",
            f"- engine: `{config.describe()}`, memory {SDRAM}", "",
            "Modelled, not measured on a board (none is attached): engine s = RTL cycles "
            "(Verilator, the SDRAM as the memory model above) at the board's clock; link s = "
            f"wire bytes x 10 / baud + round trips x {TURNAROUND * 1e3:g} ms (the USB round "
            f"trip the transport waits for after each group of up to {PIPELINE_FRAMES} "
            "pipelined frames of a burst, and after each single request); host s = the torch "
            "ops of the model on this machine. Upload: the first inference's extra traffic "
            "(weights and parameters, kept in device memory afterwards). See "
            "bench/board_models.py.", "",
            markdown(rows, COLUMNS), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "board_models.md").write_text("\n".join(text))
    (RESULTS / "board_models.json").write_text(json.dumps(dict(
        command=command, date=date, machine=machine, title=title,
        rows=[{k: v for k, v in row.items()} for row in rows]), indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'board_models.md'}")
    return 0 if all(row["identical"] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

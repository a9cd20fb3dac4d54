"""Where an offloaded model's time goes: one row per layer run, on the engine or in torch.

:func:`profile` runs a model that :func:`convhw.offload` made once on its inputs and returns its
outputs and a :class:`ModelProfile`: per layer the wall time, and for a layer on a hardware
device the engine's figures (CYCLES, BUSY_CYCLES, the bytes its master port moved, the bytes the
host wrote and read, the useful MACs and the end-to-end efficiency ``MACs / (rows x cols x
cycles)``), each layer's share of the model's wall time and of its engine cycles; the torch
modules the model runs in torch get a row each (timed by forward hooks), and what no module
accounts for (functional ops such as a quantised ``add``, quantise and dequantise steps) one
row, ``torch (other)``. :meth:`ModelProfile.table` is a Markdown table,
:meth:`ModelProfile.plot` a bar chart (matplotlib), :meth:`ModelProfile.to_dict` the data. A
progress bar (:mod:`convhw.progress`) counts the engine layers of a long run.

On a simulated device the wall time is the simulator's, not the engine's: the cycles are what a
board would take (at its clock), the wall time what this machine took.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from . import progress

__all__ = ["LayerProfile", "ModelProfile", "profile", "profile_file"]


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """One layer run: ``runs_on`` is a device name or ``"torch"``; the engine's figures are
    ``None`` for a layer that ran in torch or on the golden device."""

    name: str
    op: str
    runs_on: str
    seconds: float
    useful_macs: int | None = None
    cycles: int | None = None
    busy_cycles: int | None = None
    engine_bytes: int | None = None
    host_bytes: int | None = None
    efficiency: float | None = None


@dataclasses.dataclass
class ModelProfile:
    """A model's run, layer by layer (see the module documentation)."""

    model: str
    device: str
    engine: str
    seconds: float
    layers: list[LayerProfile]
    #: PEs of the engine's array (0 for the golden device).
    array: int = 0

    @property
    def engine_layers(self) -> list[LayerProfile]:
        return [layer for layer in self.layers if layer.cycles is not None]

    @property
    def cycles(self) -> int:
        """Engine cycles of the whole model (every engine layer's CYCLES)."""
        return sum(layer.cycles for layer in self.engine_layers)

    @property
    def useful_macs(self) -> int:
        return sum(layer.useful_macs for layer in self.engine_layers)

    @property
    def bytes_moved(self) -> int:
        """Every byte of the engine layers: the engine's master port and the host's."""
        return sum(layer.engine_bytes + layer.host_bytes for layer in self.engine_layers)

    def efficiency(self, array: int | None = None) -> float | None:
        """End-to-end efficiency of the engine layers: useful MACs / (PEs x cycles), on an
        array of ``array`` PEs (default: the engine's)."""
        array = array or self.array
        return self.useful_macs / (array * self.cycles) if self.cycles and array else None

    def table(self) -> str:
        """The profile as a Markdown table, one row per layer run, then the total."""
        total_cycles = self.cycles
        lines = [
            "| layer | op | runs on | wall s | share of wall | cycles | share of cycles | "
            "efficiency | engine bytes | host bytes |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for layer in self.layers:
            engine = layer.cycles is not None

            def value(v, fmt="{:,}"):
                return fmt.format(v) if v is not None else ""
            share = layer.cycles / total_cycles if engine and total_cycles else None
            lines.append(
                f"| {layer.name} | {layer.op} | {layer.runs_on} | {layer.seconds:.3f} | "
                f"{layer.seconds / self.seconds:.1%} | {value(layer.cycles)} | "
                f"{value(share, '{:.1%}')} | {value(layer.efficiency, '{:.3f}')} | "
                f"{value(layer.engine_bytes)} | {value(layer.host_bytes)} |")
        if self.engine_layers:
            engine = (f"{total_cycles:,} | 100.0% | {self.efficiency(self.array):.3f} | "
                      f"{sum(x.engine_bytes for x in self.engine_layers):,} | "
                      f"{sum(x.host_bytes for x in self.engine_layers):,} |")
        else:
            engine = " | | | | |"
        lines.append(f"| **total** | | {self.device} | {self.seconds:.3f} | 100.0% | "
                     + engine)
        return "\n".join(lines) + "\n"

    def plot(self, path) -> None:
        """A horizontal bar chart of each layer's wall time, engine layers and torch ones in
        two colours, written to ``path`` (matplotlib; the format from the suffix)."""
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot

        names = [f"{layer.name} ({layer.op})" for layer in self.layers]
        height = max(2.5, 0.22 * len(names) + 1.2)
        figure, axes = pyplot.subplots(figsize=(8, height))
        colours = ["tab:blue" if layer.cycles is not None else "tab:orange"
                   for layer in self.layers]
        axes.barh(range(len(names)), [layer.seconds for layer in self.layers], color=colours)
        axes.set_yticks(range(len(names)), names, fontsize=7)
        axes.invert_yaxis()
        axes.set_xlabel("wall time (s)")
        axes.set_title(f"{self.model} on {self.device} ({self.engine}): blue engine, "
                       f"orange torch", fontsize=9)
        figure.tight_layout()
        figure.savefig(path)
        pyplot.close(figure)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "engine": self.engine,
                "seconds": self.seconds, "cycles": self.cycles, "array": self.array,
                "efficiency": self.efficiency(),
                "useful_macs": self.useful_macs, "bytes_moved": self.bytes_moved,
                "layers": [dataclasses.asdict(layer) for layer in self.layers]}


def profile(model, *inputs, name: str | None = None):
    """Run ``model`` (an offloaded model, :func:`convhw.offload`) on ``inputs`` under
    ``torch.no_grad()``; returns ``(outputs, ModelProfile)``."""
    import torch

    from .offload import offloaded_convs

    convs = offloaded_convs(model)
    if not convs:
        raise ValueError("model has no offloaded convolution: make it with convhw.offload")
    device = convs[0].device
    records: list[LayerProfile] = []
    hooks = []
    started: dict[int, float] = {}
    engine_modules = {id(conv) for conv in convs}

    def before(module, args):
        started[id(module)] = time.perf_counter()

    def after(module, args, output):
        seconds = time.perf_counter() - started.pop(id(module))
        records.append(LayerProfile(module_names[id(module)], type(module).__name__, "torch",
                                    seconds))

    module_names = {}
    for module_name, module in model.named_modules():
        if id(module) in engine_modules or list(module.children()) or module is model:
            continue
        module_names[id(module)] = module_name
        hooks.append(module.register_forward_pre_hook(before))
        hooks.append(module.register_forward_hook(after))
    bar = progress.Bar(total=len(convs), desc=f"convhw: {name or type(model).__name__}",
                       unit="layer")
    for conv in convs:
        conv.recorder = lambda record: (records.append(record), bar.update(1))
    start = time.perf_counter()
    try:
        with torch.no_grad():
            outputs = model(*inputs)
    finally:
        seconds = time.perf_counter() - start
        bar.close()
        for hook in hooks:
            hook.remove()
        for conv in convs:
            conv.recorder = None
    other = seconds - sum(record.seconds for record in records)
    records.append(LayerProfile("(other)", "functional ops", "torch", max(other, 0.0)))
    config = device.config
    return outputs, ModelProfile(model=name or type(model).__name__, device=device.name,
                                 engine=config.label() if config is not None else "golden",
                                 seconds=seconds, layers=records,
                                 array=config.rows * config.cols if config is not None else 0)


def _load(path: Path):
    """``(model, inputs, calibration)`` from the Python file at ``path``."""
    import runpy

    import torch
    if not path.is_file():
        raise ValueError(f"file must be a Python file defining model and inputs, not {path}")
    namespace = runpy.run_path(str(path))
    if "build" in namespace:
        model, inputs = namespace["build"]()
    elif "model" in namespace and "inputs" in namespace:
        model, inputs = namespace["model"], namespace["inputs"]
    else:
        raise ValueError(f"{path} must define model and inputs, or build() returning both")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{path}: model must be a torch.nn.Module, not "
                        f"{type(model).__name__}")
    calibration = namespace.get("calibration") or [tuple(inputs)]
    return model, tuple(inputs), calibration


def _quantized(model) -> bool:
    import torch
    nnq = torch.ao.nn.quantized
    return any(isinstance(m, (nnq.Conv1d, nnq.Conv2d, nnq.Conv3d, nnq.ConvTranspose1d,
                              nnq.ConvTranspose2d, nnq.ConvTranspose3d))
               for m in model.modules())


def profile_file(path, *, device: str = "verilator", preset: str = "quantized",
                 reference: str = "x86", out_dir=None) -> int:
    """``convhw profile``: the model of a Python file (see the command's help) quantised if it
    is float, offloaded to ``device``, profiled; prints the table, writes it and the plot to
    ``out_dir`` (``build/profile/<file stem>``). 0 if every output element is torch's, 1
    otherwise."""
    import json
    import warnings

    import torch

    from .driver.device import Device
    from .offload import offload
    from .quantize import quantize

    path = Path(path)
    model, inputs, calibration = _load(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        model.eval()
        quantized = model if _quantized(model) else quantize(model, calibration,
                                                             reference=reference)
        engine = Device(device) if device == "golden" else Device(device, preset)
        offloaded = offload(quantized, engine)
        if device != "golden":
            progress.echo(f"convhw: starting {device} ({engine.config.label()}) ...")
            engine.driver.check_identity()   # built and started outside the profile
        with torch.no_grad():
            want = quantized(*inputs)
        got, result = profile(offloaded, *inputs, name=path.stem)
    engine.close()
    if isinstance(want, torch.Tensor):
        want, got = (want,), (got,)
    same = sum(int((w == g).sum()) for w, g in zip(want, got))
    total = sum(w.numel() for w in want)
    for layer in offloaded.convhw_report:
        if layer.runs_on == "torch":
            print(f"in torch: {layer.name} ({layer.op}): {layer.reason}")
    print(result.table())
    efficiency = result.efficiency()
    print(f"{result.model}: {result.seconds:.2f} s wall, {result.cycles:,} engine cycles"
          + (f", efficiency {efficiency:.3f}" if efficiency is not None else "")
          + f", {same}/{total} output elements identical to torch's")
    out = Path(out_dir) if out_dir is not None else Path("build/profile") / path.stem
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.md").write_text(result.table())
    (out / "profile.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    result.plot(out / "profile.png")
    print(f"wrote {out / 'profile.md'}, {out / 'profile.json'}, {out / 'profile.png'}")
    return 0 if same == total else 1

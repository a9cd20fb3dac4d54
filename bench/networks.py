"""Six networks layer by layer on the engine, end to end with the memory model, against the
same layers on a conventional weight-stationary array.

convhw: every distinct convolution (and Linear, as a 1x1 convolution) of the network through
:func:`convhw.estimate.estimate` on the engine's configuration (default: the ``default`` 8x8
preset) with int8 results, behind :class:`convhw.memory_model.MemoryModel` (default 8 bytes per
cycle, latency 20): the list engine's cycles from START to DONE of the layer's list, exact
(the cycle model, which equals the RTL's CYCLES register on every layer checked:
tests/test_list_cycles.py), or with ``--bound`` its lower bound (fast, a few percent low). Each
layer is modelled as the simulated devices run a layer whose input the host writes: a
low-channel layer (the stems) packed, its taps in the rows (:mod:`convhw.compiler.packing`:
x taps or im2col, whichever is fastest), reading its packed input.

Conventional: the same layers on a weight-stationary array of the same rows x cols, as
SCALE-Sim's analytical model counts them (Samajdar et al., "A Systematic Methodology for
Characterizing Scalability of DNN Accelerators using SCALE-Sim", ISPASS 2020): im2col per
group, ``Sr = in_channels / groups x taps`` rows of operands, ``Sc = out_channels / groups``
filters, ``T`` output pixels, ``(2 R + C + T - 2) x ceil(Sr / R) x ceil(Sc / C)`` cycles per
group; compute only (no memory), a transposed layer as the direct convolution over its
zero-inserted input (all of whose products the array computes). It is the ideal of such an
array, not a simulation of one.

Efficiency = useful MACs (products of real data: :meth:`convhw.spec.ConvSpec.useful_macs`) /
(rows x cols x cycles).

Networks: ResNet-18 and MobileNetV2 at 224x224, the DCGAN generator (64x64 output), the
wav2vec 2.0 feature encoder on 1 s of 16 kHz audio (torch models of :mod:`convhw.models`, their
layers found by :func:`convhw.explore.network`), the 7x7 depthwise convolutions of ConvNeXt-T
at 224x224 and R3D-18 on 16 x 112 x 112 (layer lists here: torchvision is not installed beside
torch).

Results: ``bench/results/networks.md`` and ``.json`` (per network), ``networks/<name>.md`` (per
layer) and ``networks.png``.

Examples
--------
From the repository root::

    .venv/bin/python bench/networks.py --bound r3d18       # exact but R3D-18's bound
    .venv/bin/python bench/networks.py --bound --networks resnet18 --no-write
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import report

RESULTS = Path(__file__).parent / "results"
NETWORKS = ("resnet18", "mobilenet_v2", "dcgan_generator", "convnext_t_dw", "wav2vec2_encoder",
            "r3d18")
TITLES = {"resnet18": "ResNet-18 224x224", "mobilenet_v2": "MobileNetV2 224x224",
          "dcgan_generator": "DCGAN generator 64x64", "convnext_t_dw":
          "ConvNeXt-T 7x7 depthwise convs", "wav2vec2_encoder":
          "wav2vec2 feature encoder, 1 s at 16 kHz", "r3d18": "R3D-18 16x112x112"}


def _convnext_t_dw():
    """ConvNeXt-T's depthwise 7x7 convolutions (Liu et al. 2022): stages of 96, 192, 384 and
    768 channels at 56, 28, 14 and 7 pixels (224x224 input), 3, 3, 9 and 3 blocks."""
    from convhw.explore import Layer
    from convhw.spec import ConvSpec
    return [Layer(f"stage{i} dwconv 7x7", ConvSpec(2, c, c, 7, padding=3, groups=c),
                  (1, c, s, s), n)
            for i, (c, s, n) in enumerate(((96, 56, 3), (192, 28, 3), (384, 14, 9),
                                           (768, 7, 3)), 1)]


def _r3d18():
    """R3D-18 (Tran et al. 2018, torchvision's ``r3d_18``) on a 16 x 112 x 112 clip: the stem
    3x7x7 stride (1, 2, 2), four stages of two basic blocks of 3x3x3 convolutions (64, 128, 256
    and 512 channels; stages 2-4 halve time and space in their first convolution and a 1x1x1
    stride-2 shortcut), and the classifier (400 classes) as a 1x1 convolution."""
    from convhw.explore import Layer
    from convhw.spec import ConvSpec
    layers = [Layer("stem", ConvSpec(3, 3, 64, (3, 7, 7), stride=(1, 2, 2),
                                     padding=(1, 3, 3), bias=False), (1, 3, 16, 112, 112))]
    t, s, c = 16, 56, 64
    for stage, width in enumerate((64, 128, 256, 512), 1):
        if width != c:
            layers.append(Layer(f"layer{stage}.0.conv1", ConvSpec(3, c, width, 3, stride=2,
                                                                  padding=1, bias=False),
                                (1, c, t, s, s)))
            layers.append(Layer(f"layer{stage}.0.downsample", ConvSpec(3, c, width, 1,
                                                                       stride=2, bias=False),
                                (1, c, t, s, s)))
            t, s = -(-t // 2), -(-s // 2)
            same = 3
        else:
            same = 4
        layers.append(Layer(f"layer{stage} 3x3x3 (x{same})",
                            ConvSpec(3, width, width, 3, padding=1, bias=False),
                            (1, width, t, s, s), same))
        c = width
    layers.append(Layer("fc", ConvSpec(1, 512, 400, 1), (1, 512, 1)))
    return layers


def layers_of(name: str):
    from convhw.explore import network
    if name == "convnext_t_dw":
        return _convnext_t_dw()
    if name == "r3d18":
        return _r3d18()
    return list(network(name).layers)


def conventional_cycles(spec, input_shape, rows: int, cols: int) -> int:
    """SCALE-Sim's weight-stationary cycles of one layer (see the module documentation)."""
    spatial = tuple(input_shape)[-spec.dims:]
    pixels = math.prod(spec.output_size(spatial))
    taps = math.prod(spec.kernel_size)
    operands = spec.in_channels // spec.groups * taps
    filters = spec.out_channels // spec.groups
    per_group = ((2 * rows + cols + pixels - 2) * -(-operands // rows)
                 * -(-filters // cols))
    return per_group * spec.groups


def _op(spec) -> str:
    """``Conv2d 3x3 s2x2 g32``: the operation, kernel, stride (if not 1) and groups (if not
    1)."""
    text = f"{spec.op_name} {'x'.join(map(str, spec.kernel_size))}"
    if max(spec.stride) > 1:
        text += " s" + "x".join(map(str, spec.stride))
    return text + (f" g{spec.groups}" if spec.groups > 1 else "")


def run_network(name: str, config, memory, exact: bool) -> dict:
    from convhw.estimate import estimate
    start = time.perf_counter()
    rows = []
    totals = dict(macs=0, cycles=0, busy=0, conventional=0, bytes=0)
    pes = config.rows * config.cols
    refused = []
    for layer in layers_of(name):
        shape = layer.input_shape
        macs = layer.spec.useful_macs(shape)
        try:
            result = estimate(layer.spec, shape, config=config, memory=memory,
                              requantize=True, exact=exact)
        except ValueError as error:
            # (counted in neither total: the network's figures are over the layers that run)
            refused.append(layer.name)
            rows.append({"layer": layer.name, "count": layer.count,
                         "op": f"refused: {error}"})
            continue
        conventional = conventional_cycles(layer.spec, shape, config.rows, config.cols)
        n = layer.count
        totals["macs"] += macs * n
        totals["cycles"] += result.cycles * n
        totals["busy"] += result.busy_cycles * n
        totals["conventional"] += conventional * n
        totals["bytes"] += (result.bytes_read + result.bytes_written) * n
        rows.append({
            "layer": layer.name, "count": n,
            "op": _op(layer.spec),
            "input": "x".join(map(str, shape[1:])),
            "out ch": layer.spec.out_channels,
            "MACs": f"{macs:,}", "cycles": f"{result.cycles:,}",
            "efficiency": f"{macs / (pes * result.cycles):.3f}",
            "compute only": f"{macs / (pes * result.busy_cycles):.3f}",
            "conventional": f"{macs / (pes * conventional):.3f}",
            "bytes": f"{result.bytes_read + result.bytes_written:,}",
        })
    macs = totals["macs"]
    return {
        "network": TITLES[name], "name": name, "model": "exact" if exact else "bound",
        "layers": sum(r["count"] for r in rows),
        "MACs": f"{macs:,}", "cycles": f"{totals['cycles']:,}",
        "efficiency": f"{macs / (pes * totals['cycles']):.3f}",
        "compute only": f"{macs / (pes * totals['busy']):.3f}",
        "conventional": f"{macs / (pes * totals['conventional']):.3f}",
        "bytes": f"{totals['bytes']:,}", "seconds": f"{time.perf_counter() - start:.0f}",
        "refused": ", ".join(refused), "_rows": rows,
    }


SUMMARY = ["network", "model", "layers", "MACs", "cycles", "efficiency", "compute only",
           "conventional", "bytes", "seconds", "refused"]
LAYER_COLUMNS = ["layer", "count", "op", "input", "out ch", "MACs", "cycles", "efficiency",
                 "compute only", "conventional", "bytes"]


def plot(results: list[dict], path: Path, config_text: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [r["network"].split(" ")[0] for r in results]
    ours = [float(r["efficiency"]) for r in results]
    theirs = [float(r["conventional"]) for r in results]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(len(results))
    ax.bar([i - 0.2 for i in x], ours, 0.4, label="convhw, end to end (memory model)")
    ax.bar([i + 0.2 for i in x], theirs, 0.4, label="conventional WS array (SCALE-Sim ideal)")
    ax.set_xticks(list(x), names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("useful MACs / (PEs x cycles)")
    ax.set_title(f"Efficiency per network, {config_text}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS,
                        metavar="NAME", help=f"default: all ({' '.join(NETWORKS)})")
    parser.add_argument("--preset", default="default", help="the engine (default: default)")
    parser.add_argument("--bytes-per-cycle", type=int, default=8)
    parser.add_argument("--latency", type=int, default=20)
    parser.add_argument("--bound", nargs="*", choices=NETWORKS, metavar="NAME",
                        help="the cycle model's lower bound instead of the exact model: for "
                             "the networks named, or for all when none is (R3D-18's exact "
                             "model takes an hour here)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    from convhw import progress
    from convhw.config import EngineConfig
    from convhw.memory_model import MemoryModel

    config = EngineConfig.preset(args.preset)
    memory = MemoryModel(bytes_per_cycle=args.bytes_per_cycle, latency=args.latency)
    bound = set(NETWORKS if args.bound == [] else args.bound or ())
    command, machine, date = report.provenance("networks.py", argv)
    # Networks not run here keep their recorded rows (a run of some networks adds to the
    # record: R3D-18's exact model takes an hour).
    recorded = {}
    if (RESULTS / "networks.json").is_file() and not args.no_write:
        previous = json.loads((RESULTS / "networks.json").read_text())
        if (previous["preset"], previous["memory"]) == (args.preset, {
                "bytes_per_cycle": args.bytes_per_cycle, "latency": args.latency}):
            recorded = {r["name"]: r for r in previous["networks"]}
    results = []
    for name in progress.items(args.networks, "bench/networks.py", unit="network"):
        result = run_network(name, config, memory, exact=name not in bound)
        result.update(command=command, date=date, machine=machine)
        results.append(result)
        print(report.render(result["_rows"], LAYER_COLUMNS, f"{result['network']}:"),
              flush=True)
    config_text = (f"{config.rows}x{config.cols} `{args.preset}`, {args.bytes_per_cycle} B/cycle, "
                   f"latency {args.latency}")
    print()
    print(report.render(results, SUMMARY, f"Networks on {config_text}"))
    if args.no_write:
        return 0
    recorded.update({r["name"]: r for r in results})
    results = [recorded[name] for name in NETWORKS if name in recorded]
    out_dir = RESULTS / "networks"
    out_dir.mkdir(parents=True, exist_ok=True)
    for result in results:
        (out_dir / f"{result['name']}.md").write_text(
            f"# {result['network']} on {config_text}\n\n- command: `{result['command']}`\n"
            f"- date: {result['date']}\n- machine: {result['machine']}\n"
            f"- cycle model: {result['model']}\n\n"
            + report.markdown(result["_rows"], LAYER_COLUMNS) + "\n")
    commands = sorted({(r["date"], r["command"]) for r in results})
    header = [
        f"# Networks on the engine and on a conventional array ({config_text})", "",
        *(f"- {when}: `{what}`" for when, what in commands), f"- machine: {machine}",
        f"- engine: `{args.preset}`: {config.describe()}",
        "- cycle model: `exact` (the RTL's CYCLES, as the cycle model replays it) or `bound` "
        "(its lower bound: 0.2-1.4 % below the exact figure on the configurations compared in "
        "bench/results/explore.md), per network", "",
        "convhw: the list engine's cycles per layer, end to end (descriptor fetches, loads, "
        "result writes) behind the memory model, summed over the network's convolutions and "
        "Linear layers; `compute only` the cycles the compute core is busy. Conventional: "
        "SCALE-Sim's analytical weight-stationary model of an array of the same size, "
        "compute only (see bench/networks.py). Efficiency = useful MACs / (PEs x cycles). "
        "Per-layer tables: `bench/results/networks/`. A layer the compiler refuses (`refused`) "
        "counts in neither column.", "",
        report.markdown(results, SUMMARY), ""]
    if plot(results, RESULTS / "networks.png", config_text.replace("`", "")):
        header += ["![efficiency per network](networks.png)", ""]
    (RESULTS / "networks.md").write_text("\n".join(header))
    (RESULTS / "networks.json").write_text(json.dumps({
        "command": command, "date": date, "machine": machine, "preset": args.preset,
        "memory": {"bytes_per_cycle": args.bytes_per_cycle, "latency": args.latency},
        "networks": results}, indent=1) + "\n")
    print(f"\nwritten to {RESULTS / 'networks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whole quantised torch models on the engine, end to end, bit for bit against torch.

Each network of :mod:`convhw.models` (ResNet-18, MobileNetV2, a DCGAN generator, a wav2vec2-style
1-D feature encoder, an R3D-style 3-D block) is quantised with torch's own FX quantisation
(:func:`convhw.quantize`, calibrated on two batches of random data, the ``fbgemm`` engine's
default qconfig mapping: torch's ``x86`` engine runs quantised transposed convolutions on oneDNN,
whose results are not the exact sum's), offloaded (:func:`convhw.offload`) to
``Device("verilator", "quantized")`` and run once, profiled layer by layer
(:func:`convhw.profile.profile`). The small CNN of :func:`convhw.models.digits` is trained here on
scikit-learn's digits first, quantised with torch's default ``x86`` configuration, and its
held-out accuracy is reported beside torch's.

Per model: the convolutions on the engine, the engine's cycles (every layer's CYCLES register),
the end-to-end efficiency (useful MACs / (rows x cols x cycles)), the bytes moved (the engine's
master port and the host's writes and reads of device memory), the wall time of the offloaded
model on Verilator (the simulator's time, the build excluded) and of the quantised torch model,
and the output elements identical to torch's. A model whose output differs in any element makes
the exit status 2 (after the table is written).

Results: ``bench/results/models.md`` and ``.json``, and per model its profile
(``bench/results/models/<name>.md``) and its plot (``.png``).

Examples
--------
From the repository root::

    .venv/bin/python bench/models.py                       # every model, full size
    .venv/bin/python bench/models.py --models resnet18 --size small --no-write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import report

RESULTS = Path(__file__).parent / "results"
COLUMNS = ["model", "input", "convs on engine", "engine MACs", "engine cycles",
           "efficiency", "bytes moved", "verilator s", "torch s", "identical", "accuracy"]


def quiet():
    """torch.ao.quantization's deprecation and user warnings, which say nothing here."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")


def compare(want, got) -> tuple[int, int]:
    """(identical elements, elements) of two outputs (tensors or tuples of them)."""
    import torch
    if isinstance(want, torch.Tensor):
        want, got = (want,), (got,)
    same = sum(int((w == g).sum()) for w, g in zip(want, got))
    return same, sum(w.numel() for w in want)


def timed(function, *args):
    import torch
    start = time.perf_counter()
    with torch.no_grad():
        out = function(*args)
    return out, time.perf_counter() - start


def run_model(name: str, size: str, device, out_dir: Path | None, seed: int = 0) -> dict:
    import torch

    import convhw
    from convhw import models
    from convhw.profile import profile

    accuracy = None
    if name == "digits":
        model, x_test, labels, x_train = models.digits()
        inputs, calibration, reference = (x_test,), [(x_train,)], "x86"
    else:
        model, inputs = models.build(name, size, seed=seed)
        generator = torch.Generator().manual_seed(seed + 1)
        calibration = [tuple(torch.randn(x.shape, generator=generator) for x in inputs)
                       for _ in range(2)]
        reference = "fbgemm"
    quantized = convhw.quantize(model, calibration, reference=reference)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        offloaded = convhw.offload(quantized, device)
    for warning in caught:
        if "convhw.offload" in str(warning.message):
            print(warning.message, flush=True)
    want, torch_seconds = timed(quantized, *inputs)
    got, prof = profile(offloaded, *inputs, name=name)
    same, total = compare(want, got)
    if name == "digits":
        accuracy = (f"{(got.argmax(1) == labels).float().mean().item():.4f} "
                    f"(torch {(want.argmax(1) == labels).float().mean().item():.4f})")
    engine = [r for r in offloaded.convhw_report if r.runs_on == device.name]
    if out_dir is not None:
        (out_dir / f"{name}.md").write_text(
            f"# {name} ({size}) on {device.name}, {prof.engine}\n\n" + prof.table())
        prof.plot(out_dir / f"{name}.png")
    shape = "x".join(str(s) for s in inputs[0].shape)
    return {
        "model": name, "input": shape,
        "convs on engine": f"{len(engine)}/{len(offloaded.convhw_report)}",
        "engine MACs": f"{prof.useful_macs:,}", "engine cycles": f"{prof.cycles:,}",
        "efficiency": f"{prof.efficiency():.3f}",
        "bytes moved": f"{prof.bytes_moved:,}",
        "verilator s": f"{prof.seconds:.1f}", "torch s": f"{torch_seconds:.2f}",
        "identical": f"{same}/{total}", "accuracy": accuracy or "",
        "_ok": same == total, "_profile": prof.to_dict(),
    }


def main(argv=None) -> int:
    from convhw import models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["digits", *models.NAMES],
                        choices=["digits", *models.NAMES], metavar="NAME",
                        help=f"models to run (default: all: digits {' '.join(models.NAMES)})")
    parser.add_argument("--size", choices=("full", "small"), default="full",
                        help="full-size inputs (default) or the tests' small ones")
    parser.add_argument("--config", default="quantized",
                        help="the engine's preset (default: quantized)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    quiet()
    import convhw

    device = convhw.Device("verilator", args.config)
    device.driver.check_identity()              # build and start it outside the timings
    out_dir = None if args.no_write else RESULTS / "models"
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        try:
            rows.append(run_model(name, args.size, device, out_dir))
        except Exception as error:            # reported, and the exit status says so
            rows.append({"model": name, "identical": f"failed: {error}", "_ok": False,
                         "_profile": None})
        print(report.render(rows[-1:], COLUMNS), flush=True)
    device.close()
    print()
    print(report.render(rows, COLUMNS, title=f"{args.size}-size models on Verilator, "
                                               f"{device.config.label()}"))
    if not args.no_write:
        command, machine, date = report.provenance("models.py", argv)
        text = [f"# Quantised models on the engine ({args.size} size)", "",
                f"- command: `{command}`", f"- machine: {machine}", f"- date: {date}",
                f"- engine: `Device('verilator', {args.config!r})`, "
                f"{device.config.describe()}", "",
                "Cycles are the engine's (its CYCLES register, every layer); efficiency is "
                "useful MACs / (PEs x cycles) end to end; bytes moved count the engine's "
                "master port and the host's writes and reads of device memory; wall times are "
                "this machine's (Verilator, the build excluded; torch's quantised CPU kernels). "
                "Per-layer profiles and plots: `bench/results/models/`.", "",
                report.markdown(rows, COLUMNS), ""]
        (RESULTS / "models.md").write_text("\n".join(text))
        (RESULTS / "models.json").write_text(json.dumps(
            {"command": command, "machine": machine, "date": date, "size": args.size,
             "config": args.config,
             "rows": [{k: v for k, v in r.items() if k != "_profile"} for r in rows],
             "profiles": [r["_profile"] for r in rows]}, indent=1) + "\n")
    return 0 if all(r["_ok"] for r in rows) else 2


if __name__ == "__main__":
    sys.exit(main())

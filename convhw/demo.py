"""``make demo``: a few layers of every op through ``convhw.nn`` on the default device, checked
against PyTorch when it is installed."""

from __future__ import annotations

import warnings

import numpy as np

from . import nn, progress
from .driver import Device

# (module class, constructor arguments, input shape): two layers of each op, covering every
# padding mode, groups and depthwise, dilation, stride, output_padding and batch > 1.
LAYERS = [
    (nn.Conv1d, dict(in_channels=8, out_channels=16, kernel_size=5, padding=2), (2, 8, 64)),
    (nn.Conv1d, dict(in_channels=8, out_channels=8, kernel_size=3, padding="same", dilation=2,
                     groups=8, padding_mode="reflect"), (1, 8, 50)),
    (nn.Conv2d, dict(in_channels=16, out_channels=32, kernel_size=3, padding=1), (1, 16, 28, 28)),
    (nn.Conv2d, dict(in_channels=16, out_channels=16, kernel_size=4, padding="same",
                     groups=4, padding_mode="circular"), (2, 16, 15, 17)),
    (nn.Conv3d, dict(in_channels=4, out_channels=8, kernel_size=3, padding=1,
                     padding_mode="replicate"), (1, 4, 6, 8, 8)),
    (nn.Conv3d, dict(in_channels=6, out_channels=6, kernel_size=(1, 3, 3), stride=(1, 2, 2),
                     dilation=(1, 2, 2), groups=3), (1, 6, 4, 13, 13)),
    (nn.ConvTranspose1d, dict(in_channels=8, out_channels=4, kernel_size=4, stride=2,
                              padding=1), (1, 8, 32)),
    (nn.ConvTranspose1d, dict(in_channels=6, out_channels=6, kernel_size=3, stride=3,
                              output_padding=2, groups=6), (2, 6, 20)),
    (nn.ConvTranspose2d, dict(in_channels=16, out_channels=8, kernel_size=4, stride=2,
                              padding=1), (1, 16, 16, 16)),
    (nn.ConvTranspose2d, dict(in_channels=8, out_channels=8, kernel_size=3, stride=2,
                              padding=1, output_padding=1, dilation=2, groups=2), (1, 8, 9, 7)),
    (nn.ConvTranspose3d, dict(in_channels=4, out_channels=4, kernel_size=2, stride=2),
     (1, 4, 4, 4, 4)),
    (nn.ConvTranspose3d, dict(in_channels=4, out_channels=2, kernel_size=3, stride=(1, 2, 2),
                              padding=1, output_padding=(0, 1, 1)), (2, 4, 3, 5, 5)),
]


def _torch_reference(module, x):
    try:
        import torch
    except ImportError:
        return None
    reference = getattr(torch.nn, type(module).__name__)(
        module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
        padding=module.padding, dilation=module.dilation, groups=module.groups,
        bias=module.bias is not None, padding_mode=module.padding_mode,
        **({"output_padding": module.output_padding} if module.transposed else {}),
        dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(module.weight.astype(np.float64)))
        if module.bias is not None:
            reference.bias.copy_(torch.from_numpy(module.bias.astype(np.float64)))
        with warnings.catch_warnings():
            # torch warns that even 'same' kernels copy the input; not ours to act on.
            warnings.simplefilter("ignore", UserWarning)
            return reference(torch.from_numpy(x.astype(np.float64))).numpy()


def describe(module) -> str:
    """A one-line summary of a layer: its op, channels and the arguments that differ from the
    defaults (``k`` kernel, ``s`` stride, ``p`` padding, ``d`` dilation, ``g`` groups, ``op``
    output_padding)."""
    def short(values):
        values = tuple(values)
        return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))
    spec = module.spec
    parts = [f"{type(module).__name__} {spec.in_channels}->{spec.out_channels}",
             f"k{short(spec.kernel_size)}"]
    if set(spec.stride) != {1}:
        parts.append(f"s{short(spec.stride)}")
    if isinstance(module.padding, str):
        parts.append(f"p={module.padding}")
    elif any(lo or hi for lo, hi in spec.padding):
        parts.append(f"p{short(lo for lo, _ in spec.padding)}")
    if set(spec.dilation) != {1}:
        parts.append(f"d{short(spec.dilation)}")
    if spec.groups != 1:
        parts.append(f"g{spec.groups}")
    if any(spec.output_padding):
        parts.append(f"op{short(spec.output_padding)}")
    if spec.padding_mode != "zeros":
        parts.append(spec.padding_mode)
    return " ".join(parts)


# One layer of each op for the simulated engine.
ENGINE_LAYERS = [
    (nn.Conv1d, dict(in_channels=32, out_channels=64, kernel_size=5, padding=2), (1, 32, 256)),
    (nn.Conv2d, dict(in_channels=32, out_channels=32, kernel_size=3, padding=1,
                     padding_mode="reflect"), (1, 32, 28, 28)),
    (nn.Conv2d, dict(in_channels=32, out_channels=32, kernel_size=3, padding=1, groups=32),
     (1, 32, 28, 28)),
    (nn.Conv3d, dict(in_channels=16, out_channels=16, kernel_size=3, padding=1),
     (1, 16, 6, 12, 12)),
    (nn.ConvTranspose1d, dict(in_channels=32, out_channels=16, kernel_size=4, stride=2,
                              padding=1), (1, 32, 128)),
    (nn.ConvTranspose2d, dict(in_channels=32, out_channels=16, kernel_size=4, stride=2,
                              padding=1), (1, 32, 16, 16)),
    (nn.ConvTranspose3d, dict(in_channels=16, out_channels=8, kernel_size=2, stride=2),
     (1, 16, 4, 6, 6)),
]


def engine_demo(seed: int = 0, out_dir: str = "build/demo", config=None) -> int:
    """Generate the engine of ``config`` (an :class:`~convhw.config.EngineConfig` or preset
    name; the default preset if None), then run one layer of each op through ``convhw.nn`` on
    ``Device("verilator", config)`` (the list engine's generated Verilog, compiled by
    Verilator, its memory a ``MemoryModel()``: 8 bytes per cycle, latency 20), checked against
    torch (or the golden model without torch)."""
    from .config import EngineConfig
    from .driver import Device
    from .generate import generate
    from .golden import convolution

    config = EngineConfig.coerce(config)
    name = ("the default engine" if config == EngineConfig.preset("default")
            else f"the engine of {config.label()}")
    with progress.spinner(f"convhw: generating {name}'s Verilog"):
        paths = generate(config, out_dir)
    print(f"\ngenerated {name} ({config.describe()}):")
    for path in paths:
        print(f"  {path}")
    device = Device("verilator", config)
    print(f"\neach layer through convhw.nn on {device.name!r}: the list engine's generated "
          f"Verilog, compiled by Verilator (built once, cached), one descriptor list per layer "
          f"against {device.memory}", flush=True)
    # The engine starts here, before the table: building its library (once per configuration;
    # the build says so on standard error) neither lands inside the table nor counts in the
    # first row's wall time.
    device.driver.check_identity()
    header = (f"{'layer':<34} {'input':<12} {'jobs':>4} {'cycles':>8} {'efficiency':>10} "
              f"{'mem bytes':>9} {'wall s':>6}  check")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(seed)
    failures = 0
    try:
        for cls, kwargs, shape in ENGINE_LAYERS:
            module = cls(**kwargs, device=device)
            module.weight = rng.integers(-128, 128, module.weight.shape, dtype=np.int8)
            module.bias = rng.integers(-1000, 1000, module.out_channels)
            x = rng.integers(-128, 128, shape, dtype=np.int8)
            y = module(x)
            run = module.last_run
            reference = _torch_reference(module, x)
            if reference is None:
                reference, verdict = convolution(module.spec, x, module.weight,
                                                 module.bias), "golden"
            else:
                verdict = "torch"
            exact = reference.shape == y.shape and np.array_equal(reference, y)
            failures += not exact
            print(f"{describe(module):<34} {'x'.join(map(str, shape)):<12} {run.jobs:>4} "
                  f"{run.cycles:>8} {run.efficiency:>10.3f} {run.bytes_moved:>9} "
                  f"{run.seconds:>6.2f}  {verdict + (' exact' if exact else ' MISMATCH')}")
    finally:
        device.close()
    return 1 if failures else 0


def main(seed: int = 0, device: Device | None = None) -> int:
    device = Device("golden") if device is None else device
    rng = np.random.default_rng(seed)
    print(f"convhw demo on {device!r}, seed {seed}: int8 tensors, exact int64 results")
    header = f"{'layer':<44} {'input':<16} {'output':<16} {'MACs':>9} {'ms':>6}  torch"
    print(header)
    print("-" * len(header))
    failures = 0
    for cls, kwargs, shape in LAYERS:
        module = cls(**kwargs, device=device)
        module.weight = rng.integers(-128, 128, module.weight.shape, dtype=np.int8)
        module.bias = rng.integers(-2**15, 2**15, module.out_channels, dtype=np.int32)
        x = rng.integers(-128, 128, shape, dtype=np.int8)
        y = module(x)
        run = module.last_run
        reference = _torch_reference(module, x)
        if reference is None:
            verdict = "not installed"
        elif reference.shape == y.shape and np.array_equal(reference, y):
            verdict = "exact"
        else:
            verdict = "MISMATCH"
            failures += 1
        print(f"{describe(module):<44} {'x'.join(map(str, shape)):<16} "
              f"{'x'.join(map(str, y.shape)):<16} {run.useful_macs:>9} "
              f"{run.seconds * 1e3:>6.2f}  {verdict}")
    print(f"{len(LAYERS) - failures} of {len(LAYERS)} layers agree with torch"
          if failures else f"all {len(LAYERS)} layers done")
    return 1 if failures else 0

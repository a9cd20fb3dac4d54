"""The reference layers the benchmarks run (the issues' tables name them).

Each entry is ``(name, spec, input shape, conventional, compute_target)``: ``conventional`` is
the efficiency of an im2col-style weight-stationary 8x8 array at its stall-free ideal (the
figure the engine's first issue compared against), ``compute_target`` what the datapath alone
(BUSY_CYCLES) must reach on the default 8x8 preset.
"""

from __future__ import annotations

from convhw.spec import ConvSpec

__all__ = ["LAYERS"]

LAYERS = [
    ("ResNet-18 3x3 64->64 56x56 p1", ConvSpec(2, 64, 64, 3, padding=1, bias=False),
     (1, 64, 56, 56), 0.993, 0.95),
    ("3x3 s2 64->128 56x56 p1", ConvSpec(2, 64, 128, 3, stride=2, padding=1, bias=False),
     (1, 64, 56, 56), 0.973, 0.93),
    ("3x3 d2 64->64 56x56 p2", ConvSpec(2, 64, 64, 3, dilation=2, padding=2, bias=False),
     (1, 64, 56, 56), 0.358, 0.93),
    ("ConvT 4x4 s2 64->32 16->32", ConvSpec(2, 64, 32, 4, stride=2, padding=1, bias=False,
                                            transposed=True), (1, 64, 16, 16), 0.245, 0.85),
    ("Conv1d 32->64 k5 L1024 p2", ConvSpec(1, 32, 64, 5, padding=2, bias=False),
     (1, 32, 1024), 0.979, 0.90),
    ("Conv3d 16->32 k3 8x16x16 p1", ConvSpec(3, 16, 32, 3, padding=1, bias=False),
     (1, 16, 8, 16, 16), 0.989, 0.90),
    ("depthwise 3x3 64ch 56x56 p1", ConvSpec(2, 64, 64, 3, padding=1, groups=64, bias=False),
     (1, 64, 56, 56), 0.070, 0.30),
    ("pointwise 1x1 64->128 28x28", ConvSpec(2, 64, 128, 1, bias=False), (1, 64, 28, 28),
     0.973, 0.93),
]

"""``Device``: where a layer runs.

A device takes a validated :class:`~convhw.spec.ConvSpec` and tensors and returns the result and a
:class:`RunInfo`. The front end (``convhw.nn``, ``convhw.functional``) only ever talks to a
device, so moving a layer from the golden model to a simulator or a board is a change of device,
not of code.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .. import golden
from ..spec import ConvSpec

__all__ = ["Device", "RunInfo"]


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What one layer run cost.

    ``cycles`` and ``bytes_moved`` are ``None`` on a device that has no clock or bus (the golden
    model); ``efficiency`` is then ``None`` too.
    """

    device: str
    spec: ConvSpec
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    useful_macs: int
    seconds: float
    cycles: int | None = None
    bytes_moved: int | None = None
    efficiency: float | None = None


class Device:
    """A place to run convolution layers.

    Parameters
    ----------
    name : str
        ``"golden"``: the NumPy golden model (default).
    config : optional
        Engine configuration for hardware devices; the golden model takes none.
    **options
        Device-specific options; the golden model takes none.
    """

    NAMES = ("golden",)

    def __init__(self, name: str = "golden", config=None, **options) -> None:
        if not isinstance(name, str):
            raise TypeError(f"device name must be a string, not {name!r}")
        if name not in self.NAMES:
            raise ValueError(f"device name must be one of {', '.join(map(repr, self.NAMES))}, "
                             f"not {name!r}")
        if config is not None:
            raise ValueError(f"the {name!r} device takes no engine config, not {config!r}")
        if options:
            raise TypeError(f"the {name!r} device takes no options, not "
                            f"{', '.join(sorted(options))}")
        self._name = name
        #: The :class:`RunInfo` of the newest run on this device, or ``None``.
        self.last_run: RunInfo | None = None

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"Device({self._name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)

    def run(self, spec: ConvSpec, input, weight, bias=None) -> tuple[np.ndarray, RunInfo]:
        """Run ``spec`` on the tensors; returns the output (batched like ``input``) and the
        :class:`RunInfo` of the run."""
        start = time.perf_counter()
        output = golden.convolution(spec, input, weight, bias)
        seconds = time.perf_counter() - start
        input_shape = tuple(np.shape(input))
        info = RunInfo(device=self._name, spec=spec, input_shape=input_shape,
                       output_shape=output.shape, useful_macs=spec.useful_macs(input_shape),
                       seconds=seconds)
        self.last_run = info
        return output, info


def as_device(device) -> Device:
    """``None`` -> the golden model; a name -> ``Device(name)``; a ``Device`` as it is."""
    if device is None:
        return Device("golden")
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        return Device(device)
    raise TypeError(f"device must be a convhw.Device, a device name or None, not {device!r}")

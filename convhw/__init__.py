"""convhw: a systolic-array convolution engine in Amaranth HDL, proven against a NumPy golden
model and driven from Python like ``torch.nn.Conv*d``."""

from importlib.metadata import PackageNotFoundError, version

from . import functional, golden, nn
from .driver import Device, RunInfo
from .nn import manual_seed
from .spec import ConvSpec

try:
    __version__ = version("convhw")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["ConvSpec", "Device", "RunInfo", "functional", "golden", "manual_seed", "nn",
           "__version__"]

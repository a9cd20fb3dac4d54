"""convhw: a systolic-array convolution engine in Amaranth HDL, proven against a NumPy golden
model and driven from Python like ``torch.nn.Conv*d``."""

from importlib.metadata import PackageNotFoundError, version

from . import functional, golden, nn
from .config import EngineConfig
from .driver import ConvEngineError, Device, RunInfo
from .estimate import Estimate, estimate
from .memory_model import MemoryModel, Stalls
from .nn import manual_seed
from .offload import offload
from .quantize import quantize
from .spec import ConvSpec

try:
    __version__ = version("convhw")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["ConvEngineError", "ConvSpec", "Device", "EngineConfig", "Estimate", "MemoryModel",
           "RunInfo", "Stalls", "__version__",
           "estimate", "functional", "golden", "manual_seed", "nn", "offload",
           "quantize"]

"""Devices that run convolution layers: the golden model, the simulated engine (Amaranth,
Verilator) and, through the same driver and a serial transport, a board."""

from .device import Device, RunInfo
from .driver import ConvEngineError

__all__ = ["ConvEngineError", "Device", "RunInfo"]

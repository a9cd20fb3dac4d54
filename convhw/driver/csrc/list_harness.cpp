// list_harness.cpp: a C API around the Verilated list engine (convhw.gateware.list_engine,
// AXI4 ports), loaded by convhw/driver/verilator_list.py through ctypes.
//
// The Verilated top (`Vconvhw_list`) is the simulation wrapper written by
// convhw/driver/verilator_build.py (list_wrapper_verilog): the generated `convhw_list` with
// `rst` and every input through one register stage, for speed (see engine_harness.cpp). The
// harness decides before each rising edge the inputs the engine is to see in the cycle after
// it. Both bus partners here are Moore machines: what they present in a cycle depends only on
// what happened in earlier cycles, so deciding one cycle ahead gives the engine exactly the
// cycles of partners connected directly. Each cycle (`Harness::cycle`):
//
//   1. read the engine's outputs of the current cycle (settled since the last edge) and,
//      with the inputs it sees in it (the top's input members, unchanged since that edge),
//      find the transfers of the cycle on every channel;
//   2. update the memory and the control-port master with them and set the inputs of the next
//      cycle;
//   3. clock the rising and falling edges.
//
// Memory: a byte array (size fixed at creation), read and written from the host without
// simulated time (cvl_mem_read / cvl_mem_write), behind the engine's AXI4 master as the slave
// that convhw/memory_model.py defines (the same rules, cycle for cycle, as the Python
// `axi4_slave(model=...)` of convhw/sim_memory.py):
//
// * Bandwidth: a credit of bytes, cap = max(B, bytes_per_cycle) at reset (B bytes per beat).
//   A read beat is presented (RVALID) only in a cycle that starts with at least B bytes of
//   credit; WREADY is high only if B bytes are left after a presented read beat's B bytes. At
//   the end of every cycle credit = min(cap, credit - B * beats moved + bytes_per_cycle).
// * Latency: a read burst's first beat is presented `latency` cycles after its AR transfer at
//   the earliest, bursts in order; a write burst, performed in the cycle its address and last
//   data beat are both in, is answered on B `latency` cycles later at the earliest.
//   AR and AW are ready in every cycle (unless stalled), any number outstanding.
// * Stalls: with probability p, in each cycle, AR, AW and W drop READY, and R and B present no
//   new beat, each channel from its own generator seeded from `seed` (drawn as the Python
//   slave draws: AR, AW, W in every cycle, R and B only in a cycle where a beat could be
//   presented). The generators are not Python's, so stalled runs do not repeat the Python
//   slave's cycles; they keep results exact.
// * Errors: a read beat whose address lies in an error range is answered SLVERR (data 0), one
//   beyond the memory DECERR; a write beat in an error range or beyond the memory is not
//   written and its burst answered SLVERR (DECERR beyond the memory).
// * Checks: INCR bursts, AxSIZE = the bus width, aligned addresses, no burst crossing 4 KiB,
//   WLAST on exactly the last beat of a burst. A violation is recorded (the first one's
//   message: cvl_violation) and flagged in cvl_status; the burst is served anyway.
// * Counters: bytes read (B per R beat the engine takes), bytes written (those with their
//   strobe set in the W beats it sends) and W beats; a transfer log on request (cvl_log_*).
//
// Control port: an AXI4-Lite master, one access at a time (AW and W presented together, BREADY
// and RREADY high while waiting), 32-bit, WSTRB 0b1111.
//
// Return codes: 0 OKAY; 1 answered with an error response (*resp holds it); 2 no answer in
// time; cvl_run_until_idle: 3 still busy, 4 a protocol violation was recorded.
//
// A handle must not be used from two threads at once (the Python side holds a lock); separate
// handles are independent (each has its own VerilatedContext).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "Vconvhw_list.h"
#include "verilated.h"

#if VM_TRACE_FST
#include "verilated_fst_c.h"
#elif VM_TRACE_VCD
#include "verilated_vcd_c.h"
#endif

// Verilator escapes a double underscore in a port name: `mem__arvalid` is `mem___05Farvalid`.
#define MEM(member) mem___05F##member
#define CTRL(member) ctrl___05F##member

namespace {

constexpr int kOk = 0;
constexpr int kErrorResponse = 1;
constexpr int kTimeout = 2;
constexpr int kStillBusy = 3;
constexpr int kViolation = 4;

constexpr uint32_t kOkay = 0, kSlvErr = 2, kDecErr = 3;
constexpr uint32_t kBurstIncr = 1;
// The control slave answers in a few cycles; an access unanswered after this many is a broken
// design, not a slow one.
constexpr int kAccessTimeout = 1000;
constexpr uint64_t kTracePeriod = 10;

// Status bits (cvl_status).
constexpr uint32_t kStatusViolation = 1;

#if VM_TRACE_FST
using Trace = VerilatedFstC;
#elif VM_TRACE_VCD
using Trace = VerilatedVcdC;
#endif

// Bytes per beat of the memory bus: the width of RDATA (IData, QData or VlWide<N>).
constexpr int kBeat = sizeof(Vconvhw_list::MEM(rdata));
static_assert(kBeat >= 4 && kBeat <= 64 && (kBeat & (kBeat - 1)) == 0, "memory bus width");
constexpr int kBeatLog2 = kBeat == 4 ? 2 : kBeat == 8 ? 3 : kBeat == 16 ? 4 : kBeat == 32 ? 5 : 6;

inline void put_bytes(uint32_t& signal, const uint8_t* bytes) { std::memcpy(&signal, bytes, 4); }
inline void put_bytes(uint64_t& signal, const uint8_t* bytes) { std::memcpy(&signal, bytes, 8); }
template <std::size_t N>
inline void put_bytes(VlWide<N>& signal, const uint8_t* bytes) {
    std::memcpy(signal.data(), bytes, 4 * N);
}
inline void get_bytes(const uint32_t& signal, uint8_t* bytes) { std::memcpy(bytes, &signal, 4); }
inline void get_bytes(const uint64_t& signal, uint8_t* bytes) { std::memcpy(bytes, &signal, 8); }
template <std::size_t N>
inline void get_bytes(const VlWide<N>& signal, uint8_t* bytes) {
    std::memcpy(bytes, signal.data(), 4 * N);
}

// A channel's stall generator: splitmix64, one per channel.
struct Stalls {
    uint64_t state = 0;
    double probability = 0.0;

    void seed(uint64_t seed, int channel, double p) {
        state = seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(channel) * 131 + 1;
        probability = p;
    }
    // Whether to stall in this cycle (no draw when stalls are off, as the Python slave).
    bool draw() {
        if (!(probability > 0.0)) return false;
        uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0) < probability;
    }
};

enum { kAR, kAW, kW, kR, kB, kChannels };

struct ReadBurst {
    uint64_t due;        // first cycle in which a beat may be presented
    uint64_t address;    // of the next beat
    uint32_t beats;      // left
    uint32_t id;
};

struct WriteBurst {
    uint64_t address;
    uint32_t beats;
    uint32_t id;
};

struct WriteBeat {
    uint8_t data[kBeat];
    uint64_t strb;
    bool last;
};

struct Response {
    uint64_t due;
    uint32_t resp;
    uint32_t id;
};

struct Harness {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vconvhw_list> top;
#if VM_TRACE
    std::unique_ptr<Trace> trace;
#endif
    uint8_t* memory = nullptr;
    uint64_t memory_size = 0;
    std::vector<std::pair<uint64_t, uint64_t>> errors;

    // The memory model's parameters and state.
    uint32_t bytes_per_cycle = 8;
    uint32_t latency = 20;
    int64_t cap = kBeat;
    int64_t credit = kBeat;
    Stalls stalls[kChannels];
    std::deque<ReadBurst> reads;
    std::deque<WriteBurst> writes;
    std::deque<WriteBeat> wbeats;
    std::deque<Response> bresps;
    uint64_t r_address = 0;       // of the R beat presented

    uint64_t cycles = 0;          // since creation
    uint64_t bytes_read = 0;      // B per R beat taken by the engine
    uint64_t bytes_written = 0;   // bytes with their strobe set in the W beats taken from it
    uint64_t write_beats = 0;     // W beats taken
    uint32_t status = 0;
    std::string violation;

    // Whether a control-port access is in progress (`lite`).
    bool lite_busy = false;

    // Transfer log (cvl_log_enable): 4 words per transfer: cycle, channel (kAR ... kB),
    // address (AR, AW, R; W: the strobes; B: 0), length (AR, AW: AxLEN; R: RRESP | RLAST << 2;
    // W: WLAST; B: BRESP).
    bool logging = false;
    std::vector<uint64_t> log;

    inline void note(int channel, uint64_t address, uint64_t info) {
        if (logging) log.insert(log.end(), {cycles, uint64_t(channel), address, info});
    }

    explicit Harness(uint64_t size) : context(new VerilatedContext) {
        memory = static_cast<uint8_t*>(std::calloc(size ? size : 1, 1));  // pages on first use
        if (!memory) throw std::bad_alloc();
        memory_size = size;
#if VM_TRACE
        context->traceEverOn(true);
#endif
        top.reset(new Vconvhw_list(context.get(), "convhw_list"));
        set_model(8, 20, 0.0, 0);
        idle_inputs();
        top->clk = 0;
        top->rst = 0;
        top->eval();
    }

    ~Harness() {
        top->final();
#if VM_TRACE
        if (trace) trace->close();
#endif
        std::free(memory);
    }

    void set_model(uint32_t rate, uint32_t cycles_latency, double probability, uint64_t seed) {
        bytes_per_cycle = rate;
        latency = cycles_latency;
        cap = std::max<int64_t>(kBeat, rate);
        credit = cap;
        for (int channel = 0; channel < kChannels; ++channel)
            stalls[channel].seed(seed, channel, probability);
    }

    void idle_inputs() {
        top->CTRL(awaddr) = 0;
        top->CTRL(awprot) = 0;
        top->CTRL(awvalid) = 0;
        top->CTRL(wdata) = 0;
        top->CTRL(wstrb) = 0;
        top->CTRL(wvalid) = 0;
        top->CTRL(bready) = 0;
        top->CTRL(araddr) = 0;
        top->CTRL(arprot) = 0;
        top->CTRL(arvalid) = 0;
        top->CTRL(rready) = 0;
        top->MEM(awready) = 0;
        top->MEM(wready) = 0;
        top->MEM(bvalid) = 0;
        top->MEM(bresp) = 0;
        top->MEM(bid) = 0;
        top->MEM(arready) = 0;
        top->MEM(rvalid) = 0;
        top->MEM(rresp) = 0;
        top->MEM(rlast) = 0;
        top->MEM(rid) = 0;
        static const uint8_t zero[kBeat] = {};
        put_bytes(top->MEM(rdata), zero);
    }

    // The memory's state back to its reset (contents, counters and errors kept).
    void reset_memory() {
        reads.clear();
        writes.clear();
        wbeats.clear();
        bresps.clear();
        credit = cap;
        lite_busy = false;
        idle_inputs();
    }

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

    void violate(const std::string& message) {
        if (!(status & kStatusViolation)) violation = message;
        status |= kStatusViolation;
    }

    bool in_errors(uint64_t address) const {
        for (const auto& range : errors)
            if (range.first <= address && address < range.second) return true;
        return false;
    }

    void check_burst(const char* channel, uint64_t address, uint32_t len, uint32_t burst,
                     uint32_t size) {
        char text[160];
        if (burst != kBurstIncr) {
            std::snprintf(text, sizeof text, "%sburst %u at %#llx: only INCR served", channel,
                          burst, static_cast<unsigned long long>(address));
            violate(text);
        } else if (size != kBeatLog2) {
            std::snprintf(text, sizeof text, "%ssize %u at %#llx, bus is %d", channel, size,
                          static_cast<unsigned long long>(address), kBeatLog2);
            violate(text);
        } else if (address % kBeat) {
            std::snprintf(text, sizeof text, "%saddr %#llx not aligned to %d bytes", channel,
                          static_cast<unsigned long long>(address), kBeat);
            violate(text);
        } else if (address / 4096 != (address + uint64_t(len + 1) * kBeat - 1) / 4096) {
            std::snprintf(text, sizeof text, "%s burst at %#llx, %u beats, crosses a 4 KiB "
                          "boundary", channel, static_cast<unsigned long long>(address), len + 1);
            violate(text);
        }
    }

    // Step 2 of a cycle for the memory: the transfers of the current cycle `now` (numbered as
    // `cycles`), then the memory's inputs to the engine for the next cycle.
    void memory_cycle() {
        const uint64_t now = cycles;
        const bool r_moved = top->MEM(rvalid) && top->MEM(rready);
        const bool w_moved = top->MEM(wready) && top->MEM(wvalid);
        const bool b_moved = top->MEM(bvalid) && top->MEM(bready);
        const bool ar_moved = top->MEM(arready) && top->MEM(arvalid);
        const bool aw_moved = top->MEM(awready) && top->MEM(awvalid);
        credit = std::min<int64_t>(cap, credit - int64_t(kBeat) * (r_moved + w_moved)
                                   + bytes_per_cycle);
        if (r_moved) {
            bytes_read += kBeat;
            note(kR, r_address, top->MEM(rresp) | uint64_t(top->MEM(rlast)) << 2);
        }
        if (b_moved) note(kB, 0, top->MEM(bresp));
        if (ar_moved) {
            const uint64_t address = top->MEM(araddr);
            const uint32_t len = top->MEM(arlen);
            check_burst("ar", address, len, top->MEM(arburst), top->MEM(arsize));
            reads.push_back({now + latency, address, len + 1, uint32_t(top->MEM(arid))});
            note(kAR, address, len);
        }
        if (aw_moved) {
            const uint64_t address = top->MEM(awaddr);
            const uint32_t len = top->MEM(awlen);
            check_burst("aw", address, len, top->MEM(awburst), top->MEM(awsize));
            writes.push_back({address, len + 1, uint32_t(top->MEM(awid))});
            note(kAW, address, len);
        }
        if (w_moved) {
            WriteBeat beat;
            get_bytes(top->MEM(wdata), beat.data);
            beat.strb = top->MEM(wstrb);
            beat.last = top->MEM(wlast);
            wbeats.push_back(beat);
            note(kW, beat.strb, beat.last);
            bytes_written += __builtin_popcountll(beat.strb);
            ++write_beats;
        }
        // Write bursts whose address and data are all in.
        while (!writes.empty() && wbeats.size() >= writes.front().beats) {
            const WriteBurst burst = writes.front();
            writes.pop_front();
            uint32_t resp = kOkay;
            for (uint32_t index = 0; index < burst.beats; ++index) {
                const WriteBeat& beat = wbeats.front();
                if (beat.last != (index == burst.beats - 1)) {
                    char text[120];
                    std::snprintf(text, sizeof text, "wlast %d on beat %u of the %u-beat write "
                                  "burst at %#llx", int(beat.last), index, burst.beats,
                                  static_cast<unsigned long long>(burst.address));
                    violate(text);
                }
                const uint64_t address = burst.address + uint64_t(index) * kBeat;
                if (address + kBeat > memory_size) {
                    resp = kDecErr;
                } else if (in_errors(address)) {
                    if (resp == kOkay) resp = kSlvErr;
                } else {
                    for (int byte = 0; byte < kBeat; ++byte)
                        if (beat.strb >> byte & 1) memory[address + byte] = beat.data[byte];
                }
                wbeats.pop_front();
            }
            bresps.push_back({now + latency, resp, burst.id});
        }

        // -- the next cycle's inputs ----------------------------------------------------------
        const uint64_t next = now + 1;
        if (!top->MEM(rvalid) || r_moved) {
            bool present = false;
            if (!reads.empty() && reads.front().due <= next && credit >= kBeat
                && !stalls[kR].draw()) {
                ReadBurst& burst = reads.front();
                const uint64_t address = burst.address;
                uint32_t resp = kOkay;
                if (address + kBeat > memory_size) resp = kDecErr;
                else if (in_errors(address)) resp = kSlvErr;
                static const uint8_t zero[kBeat] = {};
                put_bytes(top->MEM(rdata), resp == kOkay ? memory + address : zero);
                top->MEM(rresp) = resp;
                top->MEM(rlast) = burst.beats == 1;
                top->MEM(rid) = burst.id;
                r_address = address;
                burst.address += kBeat;
                if (--burst.beats == 0) reads.pop_front();
                present = true;
            }
            top->MEM(rvalid) = present;
        }
        if (!top->MEM(bvalid) || b_moved) {
            bool present = false;
            if (!bresps.empty() && bresps.front().due <= next && !stalls[kB].draw()) {
                top->MEM(bresp) = bresps.front().resp;
                top->MEM(bid) = bresps.front().id;
                bresps.pop_front();
                present = true;
            }
            top->MEM(bvalid) = present;
        }
        top->MEM(arready) = !stalls[kAR].draw();
        top->MEM(awready) = !stalls[kAW].draw();
        const bool w_open = !stalls[kW].draw();
        top->MEM(wready) = w_open && credit - (top->MEM(rvalid) ? kBeat : 0) >= kBeat;
    }

    // The control-port access in progress (lite_busy): its kind and, once done, its answer.
    struct Lite {
        bool write = false;
        bool done = false;
        uint32_t data = 0;
        uint32_t resp = 0;
    } lite;

    // Step 2 of a cycle for the control-port master: the access's transfers of the current
    // cycle, and its inputs for the next one.
    void lite_cycle() {
        if (!lite_busy) return;
        if (lite.write) {
            if (top->CTRL(awvalid) && top->CTRL(awready)) top->CTRL(awvalid) = 0;
            if (top->CTRL(wvalid) && top->CTRL(wready)) top->CTRL(wvalid) = 0;
            if (top->CTRL(bready) && top->CTRL(bvalid)) {
                lite.resp = top->CTRL(bresp);
                top->CTRL(bready) = 0;
                lite_busy = false;
                lite.done = true;
            }
        } else {
            if (top->CTRL(arvalid) && top->CTRL(arready)) top->CTRL(arvalid) = 0;
            if (top->CTRL(rready) && top->CTRL(rvalid)) {
                lite.data = top->CTRL(rdata);
                lite.resp = top->CTRL(rresp);
                top->CTRL(rready) = 0;
                lite_busy = false;
                lite.done = true;
            }
        }
    }

    // One clock cycle of engine, memory and control-port master.
    inline void cycle() {
        memory_cycle();
        lite_cycle();
        tick();
    }

    // One control-port access; the first cycle presents it.
    int access(uint32_t address, bool write, uint32_t data, uint32_t* read_data,
               uint32_t* resp) {
        lite = Lite();
        lite.write = write;
        lite_busy = true;
        if (write) {
            top->CTRL(awaddr) = address;
            top->CTRL(awvalid) = 1;
            top->CTRL(wdata) = data;
            top->CTRL(wstrb) = 0xF;
            top->CTRL(wvalid) = 1;
            top->CTRL(bready) = 1;
        } else {
            top->CTRL(araddr) = address;
            top->CTRL(arvalid) = 1;
            top->CTRL(rready) = 1;
        }
        tick_memory_only();
        for (int i = 0; i < kAccessTimeout && !lite.done; ++i) cycle();
        if (!lite.done) {
            lite_busy = false;
            top->CTRL(awvalid) = 0;
            top->CTRL(wvalid) = 0;
            top->CTRL(bready) = 0;
            top->CTRL(arvalid) = 0;
            top->CTRL(rready) = 0;
            return kTimeout;
        }
        if (read_data) *read_data = lite.data;
        if (resp) *resp = lite.resp;
        return lite.resp == kOkay ? kOk : kErrorResponse;
    }

    // A cycle in which the control master's inputs were just set for the next cycle: the
    // memory's step, then the edge.
    inline void tick_memory_only() {
        memory_cycle();
        tick();
    }

    void step(uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) cycle();
    }
};

inline Harness* cast(void* handle) { return static_cast<Harness*>(handle); }

}  // namespace

extern "C" {

// Bumped whenever a signature below changes; the Python side refuses a mismatch.
int cvl_api_version(void) { return 2; }

int cvl_has_trace(void) { return VM_TRACE ? 1 : 0; }

// Bytes per beat of the memory bus.
int cvl_beat_bytes(void) { return kBeat; }

// Reset the engine for `cycles` cycles (at least 1) with every input idle, and the memory
// model's state (its contents, counters, error ranges and parameters are kept).
void cvl_reset(void* handle, int cycles) {
    Harness* h = cast(handle);
    h->reset_memory();
    h->top->rst = 1;
    const int n = cycles < 1 ? 1 : cycles;
    for (int i = 0; i < n; ++i) h->tick();
    h->top->rst = 0;
    h->tick();
}

// A new model with a memory of `memory_size` bytes (zero), after 4 cycles of reset; NULL when
// it cannot be made.
void* cvl_new(uint64_t memory_size) {
    try {
        Harness* harness = new Harness(memory_size);
        cvl_reset(harness, 4);
        return harness;
    } catch (...) {
        return nullptr;
    }
}

void cvl_free(void* handle) { delete cast(handle); }

// The memory model (convhw/memory_model.py); its state restarts (full credit).
void cvl_set_model(void* handle, uint32_t bytes_per_cycle, uint32_t latency,
                   double stall_probability, uint64_t seed) {
    cast(handle)->set_model(bytes_per_cycle, latency, stall_probability, seed);
}

// Byte ranges [pairs[2i], pairs[2i+1]) answered SLVERR from now on (replacing earlier ones).
void cvl_set_errors(void* handle, const uint64_t* pairs, uint64_t n) {
    Harness* h = cast(handle);
    h->errors.clear();
    for (uint64_t i = 0; i < n; ++i) h->errors.emplace_back(pairs[2 * i], pairs[2 * i + 1]);
}

// Host access to the memory, in no simulated time: 0, or 1 when the range is beyond it.
int cvl_mem_write(void* handle, uint64_t address, const uint8_t* data, uint64_t n) {
    Harness* h = cast(handle);
    if (address > h->memory_size || n > h->memory_size - address) return 1;
    if (n) std::memcpy(h->memory + address, data, n);
    return 0;
}

int cvl_mem_read(void* handle, uint64_t address, uint8_t* data, uint64_t n) {
    Harness* h = cast(handle);
    if (address > h->memory_size || n > h->memory_size - address) return 1;
    if (n) std::memcpy(data, h->memory + address, n);
    return 0;
}

uint64_t cvl_memory_size(void* handle) { return cast(handle)->memory_size; }

// Control-port accesses; *resp gets BRESP / RRESP.
int cvl_write(void* handle, uint32_t address, uint32_t data, uint32_t* resp) {
    return cast(handle)->access(address, true, data, nullptr, resp);
}

int cvl_read(void* handle, uint32_t address, uint32_t* data, uint32_t* resp) {
    return cast(handle)->access(address, false, 0, data, resp);
}

// Clock until STATUS (at `status_address`) reads with the bits of `busy_mask` clear. STATUS is
// read over the control port; between reads the harness clocks until the engine's `busy`
// output falls or `poll_interval` cycles pass. Returns 0 (*cycles_waited: the cycles clocked
// here), 3 when `max_cycles` pass with the engine still busy, 4 when the memory recorded a
// protocol violation, or a failing read's code (*resp: its RRESP).
int cvl_run_until_idle(void* handle, uint32_t status_address, uint32_t busy_mask,
                       uint64_t max_cycles, uint32_t poll_interval, uint64_t* cycles_waited,
                       uint32_t* resp) {
    Harness* h = cast(handle);
    const uint64_t start = h->cycles;
    int result = kOk;
    for (;;) {
        uint32_t status = 0;
        result = h->access(status_address, false, 0, &status, resp);
        if (result != kOk) break;
        if (h->status & kStatusViolation) {
            result = kViolation;
            break;
        }
        if (!(status & busy_mask)) break;
        const uint64_t spent = h->cycles - start;
        if (spent >= max_cycles) {
            result = kStillBusy;
            break;
        }
        const uint64_t left = max_cycles - spent;
        const uint64_t wait = poll_interval < left ? poll_interval : left;
        for (uint64_t i = 0; i < wait && h->top->busy; ++i) h->cycle();
    }
    if (cycles_waited) *cycles_waited = h->cycles - start;
    return result;
}

// Log every transfer on the memory bus from now on (1) or stop (0; the log is kept).
void cvl_log_enable(void* handle, int enable) { cast(handle)->logging = enable != 0; }

// Entries in the log (4 words each: see Harness::log).
uint64_t cvl_log_size(void* handle) { return cast(handle)->log.size() / 4; }

// Move the log's first `n` entries (at most its size) to `out` (4 * n words); returns n.
uint64_t cvl_log_take(void* handle, uint64_t* out, uint64_t n) {
    Harness* h = cast(handle);
    n = std::min<uint64_t>(n, h->log.size() / 4);
    std::memcpy(out, h->log.data(), 4 * n * sizeof(uint64_t));
    h->log.erase(h->log.begin(), h->log.begin() + 4 * n);
    return n;
}

void cvl_step(void* handle, uint64_t n) { cast(handle)->step(n); }

uint64_t cvl_cycles(void* handle) { return cast(handle)->cycles; }
uint64_t cvl_bytes_read(void* handle) { return cast(handle)->bytes_read; }
uint64_t cvl_bytes_written(void* handle) { return cast(handle)->bytes_written; }
uint64_t cvl_write_beats(void* handle) { return cast(handle)->write_beats; }
int cvl_busy(void* handle) { return cast(handle)->top->busy; }
int cvl_irq(void* handle) { return cast(handle)->top->irq; }

// Status bits: 1 a protocol violation was recorded (its message: cvl_violation).
uint32_t cvl_status(void* handle) { return cast(handle)->status; }

// The first violation's message into `buffer` (NUL-terminated, cut to `size`).
void cvl_violation(void* handle, char* buffer, uint64_t size) {
    if (!size) return;
    const std::string& text = cast(handle)->violation;
    const uint64_t n = std::min<uint64_t>(text.size(), size - 1);
    std::memcpy(buffer, text.data(), n);
    buffer[n] = 0;
}

void cvl_clear_status(void* handle) {
    Harness* h = cast(handle);
    h->status = 0;
    h->violation.clear();
}

int cvl_trace_open(void* handle, const char* path) {
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

void cvl_trace_close(void* handle) {
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

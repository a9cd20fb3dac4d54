// serial_harness.cpp: a simulated board. The Verilated serial top (`convhw_serial`: UART,
// bridge, list engine and device memory) behind a file descriptor, normally the master side of a
// pseudo-terminal, so that a host's serial code talks to it as to a real board. Loaded by
// convhw/driver/serial_sim.py through ctypes.
//
// The Verilated top (`Vconvhw_serial`) is the simulation wrapper written by
// convhw/driver/verilator_build.py: `convhw_serial` with its `rst` and `rx` inputs through one
// register stage (for the reason given in engine_harness.cpp), ports clk, rst, rx, tx, busy,
// active. The stage delays `rx` by one cycle, which a UART does not notice.
//
// A worker thread owns the model while it runs. Each loop iteration is one bit time of the
// host->device line (`divisor` clock cycles):
//   * bytes read from the fd (non-blocking) are serialised onto `rx`, 8N1, LSB first, each
//     frame followed by at least one idle bit;
//   * `tx` is sampled after every rising edge and decoded (start bit found on the falling edge,
//     every bit sampled in its middle); decoded bytes are written to the fd;
//   * the fd is served only at bit boundaries, at most every kIoCycles cycles; it is read only
//     when the bytes read before have all been sent, so the pseudo-terminal's buffer pushes back
//     on a host that writes faster than the simulated line carries (a real UART would lose the
//     bytes instead), and decoded bytes are written in batches (kFlushBytes, or when `tx` has
//     gone idle).
// When nothing is in flight in either direction (no host byte pending or on `rx`, `busy` and
// `active` low, `tx` idle for kIdleBits bit times) the design's state cannot change, so the
// worker stops clocking and blocks in poll() until the host writes; an idle board costs no CPU.
// Simulated time therefore only passes while something happens, and runs as fast as Verilator
// evaluates: it bears no relation to wall time or to the pseudo-terminal's baud rate.
//
// Fault injection (csh_inject), for tests of the host's error handling. Byte numbers count the
// bytes of one direction from the call on: host->device bytes as the worker reads them from the
// fd, device->host bytes as they are decoded from `tx`. Noise (csh_set_noise): every byte of
// both directions is flipped (one random bit) or dropped with a given probability, from a
// seeded generator, so that a run is repeatable as far as the bytes' order is.
//
// Thread safety: csh_inject, csh_cycles and csh_idle may be called from any thread while the
// worker runs; csh_reset, csh_start, csh_stop and csh_free not concurrently with each other.

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "Vconvhw_serial.h"
#include "verilated.h"

#if VM_TRACE_FST
#include "verilated_fst_c.h"
#elif VM_TRACE_VCD
#include "verilated_vcd_c.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Return codes.
constexpr int kOk = 0;
constexpr int kRunning = 1;       // csh_reset, csh_start: the worker runs
constexpr int kBadArgument = 2;   // csh_start: divisor; csh_inject: kind or arg
constexpr int kFdError = 3;       // csh_start: the fd cannot be made non-blocking

// Fault kinds of csh_inject.
constexpr int kFlipToDevice = 0;
constexpr int kDropToDevice = 1;
constexpr int kFlipToHost = 2;
constexpr int kDropToHost = 3;
constexpr int kStall = 4;

constexpr uint32_t kMinDivisor = 4;
// Bit times `tx` must have been idle before the worker may stop clocking: the end of a stop bit
// is not the end of a transmission when the design pauses between bytes.
constexpr uint64_t kIdleBits = 4;
// How long the idle worker blocks in poll() before it looks at the stop flag again.
constexpr int kIdlePollMs = 20;
// Host bytes read from the fd at once.
constexpr size_t kReadChunk = 4096;
// The fewest cycles between two looks at the fd while the worker clocks: a read() or write()
// costs about as much as simulating a few cycles of the tiniest design, so at small divisors
// the fd is served every few bit times rather than every bit time. A byte waits at most this
// long on its way in or out.
constexpr uint64_t kIoCycles = 64;
// Decoded bytes collected before a write to the fd, unless `tx` goes idle first.
constexpr size_t kFlushBytes = 64;
// One frame on `rx`: start bit, 8 data bits, stop bit, one idle bit.
constexpr int kFrameBits = 11;
constexpr uint64_t kTracePeriod = 10;

#if VM_TRACE_FST
using Trace = VerilatedFstC;
#elif VM_TRACE_VCD
using Trace = VerilatedVcdC;
#endif

struct Fault {
    int kind;
    uint64_t byte;   // absolute number of the byte in its direction
    uint32_t arg;
};

// The pending faults and the byte counts they refer to. Shared by the worker and the threads
// that inject, under one mutex; the worker takes it once per chunk read and per decoded byte.
class Faults {
  public:
    int inject(int kind, uint64_t index, uint32_t arg) {
        if (kind < kFlipToDevice || kind > kStall) return kBadArgument;
        if ((kind == kFlipToDevice || kind == kFlipToHost) && arg > 7) return kBadArgument;
        std::lock_guard<std::mutex> lock(mutex_);
        const bool to_host = kind == kFlipToHost || kind == kDropToHost;
        faults_.push_back({kind, (to_host ? to_host_ : to_device_) + index, arg});
        return kOk;
    }

    // Host->device bytes read from the fd at `now`: the survivors are appended to `out`.
    // Returns the end of the stall in force after them (a time point <= now when none is).
    // Random flips and drops of every byte with probabilities `flip` and `drop` (both 0: none).
    void set_noise(double flip, double drop, uint64_t seed) {
        std::lock_guard<std::mutex> lock(mutex_);
        flip_ = flip;
        drop_ = drop;
        random_.seed(seed);
        noise_counts_[0] = noise_counts_[1] = 0;
    }

    // Bytes flipped and dropped by the noise since it was set.
    void noise_counts(uint64_t* out) {
        std::lock_guard<std::mutex> lock(mutex_);
        out[0] = noise_counts_[0];
        out[1] = noise_counts_[1];
    }

    Clock::time_point to_device(const uint8_t* data, size_t n, Clock::time_point now,
                                std::vector<uint8_t>& out) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (size_t i = 0; i < n; ++i) {
            uint8_t byte = data[i];
            const uint64_t number = to_device_++;
            bool keep = now >= stall_until_ && noise(byte);
            for (auto fault = faults_.begin(); fault != faults_.end();) {
                const bool hit = fault->byte == number &&
                                 (fault->kind == kFlipToDevice || fault->kind == kDropToDevice ||
                                  fault->kind == kStall);
                if (!hit) {
                    ++fault;
                    continue;
                }
                if (fault->kind == kFlipToDevice) byte ^= static_cast<uint8_t>(1u << fault->arg);
                if (fault->kind == kDropToDevice) keep = false;
                if (fault->kind == kStall) {
                    stall_until_ = now + std::chrono::milliseconds(fault->arg);
                    keep = false;
                }
                fault = faults_.erase(fault);
            }
            if (keep) out.push_back(byte);
        }
        return stall_until_;
    }

    // One decoded device->host byte, possibly flipped; false when it is dropped.
    bool to_host(uint8_t& byte) {
        std::lock_guard<std::mutex> lock(mutex_);
        const uint64_t number = to_host_++;
        bool keep = noise(byte);
        for (auto fault = faults_.begin(); fault != faults_.end();) {
            if (fault->byte != number ||
                (fault->kind != kFlipToHost && fault->kind != kDropToHost)) {
                ++fault;
                continue;
            }
            if (fault->kind == kFlipToHost) byte ^= static_cast<uint8_t>(1u << fault->arg);
            else keep = false;
            fault = faults_.erase(fault);
        }
        return keep;
    }

  private:
    // The noise on one byte (under the mutex): false when it is dropped.
    bool noise(uint8_t& byte) {
        if (flip_ <= 0 && drop_ <= 0) return true;
        const double draw = uniform_(random_);
        if (draw < drop_) {
            ++noise_counts_[1];
            return false;
        }
        if (draw < drop_ + flip_) {
            ++noise_counts_[0];
            byte ^= static_cast<uint8_t>(1u << (random_() % 8));
        }
        return true;
    }

    std::mutex mutex_;
    double flip_ = 0;
    double drop_ = 0;
    std::mt19937_64 random_;
    std::uniform_real_distribution<double> uniform_{0.0, 1.0};
    uint64_t noise_counts_[2] = {0, 0};
    std::vector<Fault> faults_;
    uint64_t to_device_ = 0;
    uint64_t to_host_ = 0;
    Clock::time_point stall_until_{};
};

struct Board {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Vconvhw_serial> top;
#if VM_TRACE
    std::unique_ptr<Trace> trace;
#endif
    Faults faults;
    std::thread worker;
    std::atomic<bool> stop{false};
    std::atomic<bool> idle{false};
    // Published for other threads at every bit boundary; `cycles` is the worker's own count.
    std::atomic<uint64_t> published_cycles{0};
    uint64_t cycles = 0;
    int fd = -1;
    uint32_t divisor = 0;
    uint64_t next_io = 0;      // the cycle from which the fd is served again

    // Host->device: bytes read and not yet sent, and the frame on `rx` (LSB next).
    std::vector<uint8_t> input;
    size_t input_next = 0;
    uint32_t frame = 0;
    int frame_bits = 0;
    Clock::time_point stall_until{};

    // Device->host: the decoder of `tx`, and decoded bytes not yet written to the fd.
    enum class Rx { kWaitHigh, kHunt, kReceive } state = Rx::kWaitHigh;
    uint32_t countdown = 0;   // cycles to the next sample while receiving
    int bit = 0;              // 0 start bit, 1..8 data, 9 stop bit
    uint32_t shift = 0;
    uint64_t high_cycles = 0; // cycles `tx` has been high while hunting
    std::vector<uint8_t> output;
    size_t output_next = 0;

    Board() : context(new VerilatedContext) {
        // The model is single-threaded; by default the context would start an idle thread pool
        // sized to the machine's cores.
        context->threads(1);
#if VM_TRACE
        // Must precede the model's construction so that it allocates its trace hooks.
        context->traceEverOn(true);
#endif
        top.reset(new Vconvhw_serial(context.get(), "convhw_serial"));
        top->clk = 0;
        top->rst = 0;
        top->rx = 1;
        top->eval();
    }

    ~Board() {
        halt();
        top->final();
#if VM_TRACE
        if (trace) trace->close();
#endif
    }

    // One clock cycle: rising edge, then falling edge; `tx` is valid after the rising edge's.
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

    void reset(int n) {
        input.clear();
        input_next = 0;
        frame_bits = 0;
        output.clear();
        output_next = 0;
        state = Rx::kWaitHigh;
        top->rx = 1;
        top->rst = 1;
        // One cycle more than asked, so that the design behind the stage sees all of them.
        for (int i = 0; i <= n; ++i) tick();
        top->rst = 0;
        tick();
        published_cycles.store(cycles, std::memory_order_relaxed);
    }

    // `tx` after a rising edge.
    inline void sample(bool tx) {
        switch (state) {
        case Rx::kWaitHigh:
            if (tx) {
                state = Rx::kHunt;
                high_cycles = 0;
            }
            break;
        case Rx::kHunt:
            if (tx) {
                ++high_cycles;
            } else {
                state = Rx::kReceive;
                countdown = divisor / 2;
                bit = 0;
                shift = 0;
            }
            break;
        case Rx::kReceive:
            if (--countdown) break;
            countdown = divisor;
            if (bit == 0) {
                if (tx) state = Rx::kHunt;  // a glitch, not a start bit
                high_cycles = 0;
            } else if (bit <= 8) {
                shift |= static_cast<uint32_t>(tx) << (bit - 1);
            } else {
                // A low stop bit is a framing error: the byte is lost, and the decoder waits
                // for the line to go high before it looks for a start bit again.
                if (tx) {
                    uint8_t byte = static_cast<uint8_t>(shift);
                    if (faults.to_host(byte)) output.push_back(byte);
                }
                state = tx ? Rx::kHunt : Rx::kWaitHigh;
                high_cycles = 0;
            }
            ++bit;
            break;
        }
    }

    size_t pending_input() const { return input.size() - input_next; }

    // Reads what the host wrote, if the bytes read before are sent or a stall is discarding.
    void read_input() {
        const bool stalled = stall_until != Clock::time_point{};
        if (pending_input() && !stalled) return;
        if (!pending_input()) {
            input.clear();
            input_next = 0;
        }
        uint8_t chunk[kReadChunk];
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) {
            if (stalled && Clock::now() >= stall_until) stall_until = {};
            return;
        }
        const Clock::time_point now = Clock::now();
        const Clock::time_point until = faults.to_device(chunk, static_cast<size_t>(n), now,
                                                         input);
        stall_until = until > now ? until : Clock::time_point{};
    }

    // The next bit time of `rx`.
    void advance_rx() {
        if (!frame_bits && pending_input()) {
            frame = (static_cast<uint32_t>(input[input_next++]) << 1) | (3u << 9);
            frame_bits = kFrameBits;
        }
        if (frame_bits) {
            top->rx = frame & 1;
            frame >>= 1;
            --frame_bits;
        } else {
            top->rx = 1;
        }
    }

    void flush_output() {
        while (output_next < output.size()) {
            const ssize_t n = ::write(fd, output.data() + output_next,
                                      output.size() - output_next);
            if (n > 0) {
                output_next += static_cast<size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && errno == EAGAIN) {
                return;           // the host is not reading: try again later
            } else {
                break;            // nobody can read it: a UART loses it too
            }
        }
        output.clear();
        output_next = 0;
    }

    bool quiescent() const {
        return !frame_bits && !pending_input() && !top->busy && !top->active &&
               state == Rx::kHunt && high_cycles >= kIdleBits * divisor;
    }

    // Blocks until the host writes (or the fd can take output the host has not made room for),
    // at most kIdlePollMs.
    void wait() {
        struct pollfd p = {fd, static_cast<short>(POLLIN | (output.empty() ? 0 : POLLOUT)), 0};
        const int ready = ::poll(&p, 1, kIdlePollMs);
        // A hung-up fd (no slave open) would wake poll() at once, every time: sleep instead.
        if (ready > 0 && !(p.revents & (POLLIN | POLLOUT)))
            std::this_thread::sleep_for(std::chrono::milliseconds(kIdlePollMs));
        if (ready > 0 && (p.revents & POLLOUT)) flush_output();
    }

    void run() {
        while (!stop.load(std::memory_order_relaxed)) {
            if (cycles >= next_io) {
                read_input();
                if (output_next < output.size() &&
                    (output.size() - output_next >= kFlushBytes ||
                     (state == Rx::kHunt && high_cycles >= divisor)))
                    flush_output();
                next_io = cycles + kIoCycles;
            }
            advance_rx();
            if (quiescent()) {
                flush_output();
                // Only now: a host that sees the board idle finds all its output in the fd.
                if (!idle.load(std::memory_order_relaxed))
                    idle.store(true, std::memory_order_relaxed);
                wait();
                next_io = cycles;           // the host may have written: read at once
                continue;
            }
            if (idle.load(std::memory_order_relaxed)) idle.store(false, std::memory_order_relaxed);
            for (uint32_t i = 0; i < divisor; ++i) {
                tick();
                sample(top->tx);
            }
            published_cycles.store(cycles, std::memory_order_relaxed);
        }
        flush_output();
        idle.store(false, std::memory_order_relaxed);
    }

    int start(int file, uint32_t bit_cycles) {
        if (worker.joinable()) return kRunning;
        if (bit_cycles < kMinDivisor) return kBadArgument;
        const int flags = ::fcntl(file, F_GETFL);
        if (flags < 0 || ::fcntl(file, F_SETFL, flags | O_NONBLOCK) < 0) return kFdError;
        fd = file;
        divisor = bit_cycles;
        stop.store(false);
        try {
            worker = std::thread([this] { run(); });
        } catch (...) {
            return kFdError;
        }
        return kOk;
    }

    void halt() {
        if (!worker.joinable()) return;
        stop.store(true);
        worker.join();
    }
};

inline Board* cast(void* handle) { return static_cast<Board*>(handle); }

}  // namespace

extern "C" {

// Bumped whenever a signature below changes; the Python side refuses a mismatch.
int csh_api_version(void) { return 2; }

// 1 when the library was built with tracing (csh_new accepts a trace path), else 0.
int csh_has_trace(void) { return VM_TRACE ? 1 : 0; }

// Hold reset for `cycles` cycles (at least 1) with `rx` idle, and forget the bytes in flight.
// 0, or 1 while the worker runs (stop it first).
int csh_reset(void* handle, int cycles) {
    Board* board = cast(handle);
    if (board->worker.joinable()) return kRunning;
    board->reset(cycles < 1 ? 1 : cycles);
    return kOk;
}

// A new board after 4 cycles of reset, writing every signal to `trace_path` (VCD or FST, as
// built) unless it is NULL. NULL when it cannot be made: out of memory, or a trace path given
// to a library built without tracing or a file that cannot be opened.
void* csh_new(const char* trace_path) {
    std::unique_ptr<Board> board;
    try {
        board.reset(new Board);
    } catch (...) {
        return nullptr;
    }
    if (trace_path) {
#if VM_TRACE
        board->trace.reset(new Trace);
        board->top->trace(board->trace.get(), 99);
        board->trace->open(trace_path);
        if (!board->trace->isOpen()) return nullptr;
#else
        return nullptr;
#endif
    }
    board->reset(4);
    return board.release();
}

// Stops the worker if it runs, then frees the board (and closes its trace). Not the fd.
void csh_free(void* handle) { delete cast(handle); }

// Run the board on `fd` (made non-blocking) with `divisor` clock cycles per bit (at least 4)
// in a worker thread. 0; 1 already running; 2 divisor too small; 3 fd or thread error.
int csh_start(void* handle, int fd, uint32_t divisor) { return cast(handle)->start(fd, divisor); }

// Stop the worker (within kIdlePollMs when idle) after writing what it decoded; idempotent.
// The fd stays open.
void csh_stop(void* handle) { cast(handle)->halt(); }

// Clock cycles simulated since creation (resets included), as of the last bit boundary.
uint64_t csh_cycles(void* handle) {
    return cast(handle)->published_cycles.load(std::memory_order_relaxed);
}

// 1 while the worker is blocked waiting for the host (the design quiescent), else 0.
int csh_idle(void* handle) { return cast(handle)->idle.load(std::memory_order_relaxed); }

// Fault `kind` on byte `index` (counted from this call on) of its direction: 0 flip bit `arg`
// (0..7) of a host->device byte, 1 drop a host->device byte, 2 flip bit `arg` of a device->host
// byte, 3 drop a device->host byte, 4 from host->device byte `index` on, discard every
// host->device byte for `arg` milliseconds of wall time. 0, or 2 for a bad kind or bit.
int csh_inject(void* handle, int kind, uint64_t index, uint32_t arg) {
    return cast(handle)->faults.inject(kind, index, arg);
}

// From now on flip one random bit of each byte of both directions with probability `flip` and
// drop a byte with probability `drop` (flip + drop <= 1), drawn from a generator seeded with
// `seed`; 0 and 0 end the noise. 0, or 2 for probabilities outside that range.
int csh_set_noise(void* handle, double flip, double drop, uint64_t seed) {
    if (!(flip >= 0 && drop >= 0 && flip + drop <= 1)) return kBadArgument;
    cast(handle)->faults.set_noise(flip, drop, seed);
    return kOk;
}

// The bytes the noise flipped (out[0]) and dropped (out[1]) since it was last set.
void csh_noise_counts(void* handle, uint64_t* out) { cast(handle)->faults.noise_counts(out); }

}  // extern "C"

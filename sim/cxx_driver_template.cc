// Host-bus driver for a compiled model of a fetta accelerator top, exported with a C ABI
// for ctypes. One driver for both compiled simulators: sim/cxxrtl_build.py and
// sim/verilator_check.py fill in the prelude: a Model (the CXXRTL or Verilator
// design behind SET/GET/EVAL/reset_model), and the port placeholders with that
// simulator's member names of the top's ports and the constants of sw_model/hostmap.py.
//
// Clocking discipline (one call of cycle() = one clock period):
//   1. inputs for this cycle are set;
//   2. clk=0, step(): combinational logic settles from the current flops and inputs,
//      so outputs (rvalid, rdata, busy) are valid for *this* cycle and are sampled;
//   3. clk=1, step(): the rising edge; flops take their next values.
// After 3, outputs fed by flops are stale in CXXRTL until the next step 2 (it evaluates
// combinational logic only in eval()); nothing reads them there.
@PRELUDE@

#include <cstddef>
#include <cstdint>

namespace {

struct Driver {
  Model model;
  uint64_t cycles = 0;  // rising edges since create/reset

  void set_idle() {
    SET(@WRITE@, false);
    SET(@READ@, false);
  }

  // Steps 2 and 3 above; returns nothing, the caller samples between via settle().
  inline void settle() {
    SET(@CLK@, false);
    EVAL();
  }
  inline void edge() {
    SET(@CLK@, true);
    EVAL();
    cycles++;
  }
  inline void cycle() {
    settle();
    edge();
  }

  void reset() {
    model.reset_model();
    SET(@RST@, false);
    set_idle();
    SET(@ADDR@, 0);
    SET(@WDATA@, 0);
    // Power-on state (like Amaranth's simulator): all flops at their init values.
    settle();
    cycles = 0;
  }

  void write_burst(uint32_t addr, const uint32_t *words, size_t n) {
    SET(@READ@, false);
    SET(@WRITE@, true);
    for (size_t i = 0; i < n; i++) {
      SET(@ADDR@, addr + (uint32_t)i);
      SET(@WDATA@, words[i]);
      cycle();
    }
    SET(@WRITE@, false);
  }

  // Pipelined: one read strobe per cycle; rvalid answers READ_LATENCY cycles later.
  // Returns the number of words received (n unless the top broke the protocol).
  size_t read_burst(uint32_t addr, uint32_t *out, size_t n) {
    size_t got = 0;
    SET(@WRITE@, false);
    const size_t limit = n + @READ_LATENCY@ + 8;
    for (size_t i = 0; i < limit && got < n; i++) {
      if (i < n) {
        SET(@READ@, true);
        SET(@ADDR@, addr + (uint32_t)i);
      } else {
        SET(@READ@, false);
      }
      settle();
      if (GET(@RVALID@))
        out[got++] = GET(@RDATA@);
      edge();
    }
    SET(@READ@, false);
    return got;
  }

  // Write CTRL.START (one cycle), then clock until busy is low. Returns the edges
  // after the START edge, or -1 if max_cycles pass first (the model stays as it is).
  int64_t run_until_idle(int64_t max_cycles) {
    uint32_t start = @CTRL_START@;
    write_burst(@CTRL_ADDR@, &start, 1);
    int64_t n = 0;
    for (;;) {
      settle();
      if (!GET(@BUSY@))
        return n;
      if (n >= max_cycles)
        return -1;
      edge();
      n++;
    }
  }
};

}  // namespace

extern "C" {

void *fetta_create() {
  Driver *d = new Driver();
  d->reset();
  return d;
}

void fetta_destroy(void *h) { delete static_cast<Driver *>(h); }

void fetta_reset(void *h) { static_cast<Driver *>(h)->reset(); }

uint64_t fetta_cycles(void *h) { return static_cast<Driver *>(h)->cycles; }

void fetta_step(void *h, uint64_t n) {
  Driver *d = static_cast<Driver *>(h);
  d->set_idle();
  for (uint64_t i = 0; i < n; i++)
    d->cycle();
}

void fetta_bus_write_burst(void *h, uint32_t addr, const uint32_t *words, size_t n) {
  static_cast<Driver *>(h)->write_burst(addr, words, n);
}

size_t fetta_bus_read_burst(void *h, uint32_t addr, uint32_t *out, size_t n) {
  return static_cast<Driver *>(h)->read_burst(addr, out, n);
}

int64_t fetta_run_until_idle(void *h, int64_t max_cycles) {
  return static_cast<Driver *>(h)->run_until_idle(max_cycles);
}

// The benchmark ceiling: run the loaded program `reps` times back to back with no
// Python in between. Returns the total edges spent in the runs, or -1 on timeout.
int64_t fetta_run_repeat(void *h, int64_t reps, int64_t max_cycles) {
  Driver *d = static_cast<Driver *>(h);
  int64_t total = 0;
  for (int64_t r = 0; r < reps; r++) {
    int64_t c = d->run_until_idle(max_cycles);
    if (c < 0)
      return -1;
    total += c;
  }
  return total;
}

}  // extern "C"

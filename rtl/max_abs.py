"""Largest magnitude of a program's CONTRACT results (the adaptive-shift vote's input)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fetta.sw_model.accel.hostmap import BUFFER_WORD_BITS

__all__ = ["MaxAbs"]


class MaxAbs(wiring.Component):
    """Tracks ``max |word|`` over the result words the output stages write to C.

    A word counts when it is written (``valid`` and its lane in ``mask``) and its lane
    is one the mapping uses (``lane < used``: ``used = ga * gb * pe_cols``, the result
    lanes; lanes beyond hold no result). Padding inside the used lanes (rows and lanes
    past the tensor's edge) holds 0, so it never raises the maximum. ``clear`` (a
    program's START) restarts it at 0. Words are two's complement
    ``BUFFER_WORD_BITS`` wide; ``|-32768| = 32768`` fits the unsigned result.

    Latency: 2 cycles from a write to ``max`` (lane magnitudes registered, then the
    lane maximum folded into the running maximum); a program's last C write is at the
    end of its CONTRACT's tail, 2 cycles before HALT sets DONE.

    Members:
        clear:          restart at 0.
        valid, mask:    a C row write and its lanes (the output stages' ``out_valid``,
                        ``out_mask``).
        data[lanes]:    the words written.
        used:           lanes holding results (``1..lanes``).
        max:            the running maximum magnitude.
        row_max:        the largest magnitude of the row written the previous cycle
                        (0 when none; the max log's input, ``rtl/max_log.py``).
    """

    LATENCY = 2

    def __init__(self, lanes: int):
        self.lanes = lanes
        W = BUFFER_WORD_BITS
        super().__init__({
            "clear": In(1), "valid": In(1), "mask": In(lanes),
            "data": In(W).array(lanes), "used": In(range(lanes + 1)),
            "max": Out(W), "row_max": Out(W),
        })

    def elaborate(self, platform):
        m = Module()
        W = BUFFER_WORD_BITS
        mags = [Signal(W, name=f"mag{i}") for i in range(self.lanes)]
        for i, mag in enumerate(mags):
            v = self.data[i].as_signed()
            counts = self.valid & self.mask[i] & (i < self.used)
            m.d.sync += mag.eq(Mux(counts, Mux(v < 0, -v, v), 0))
        # lane maximum: a comparator tree
        level = mags
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level), 2):
                if j + 1 == len(level):
                    nxt.append(level[j])
                    continue
                a, b = level[j], level[j + 1]
                nxt.append(Mux(a > b, a, b))
            level = nxt
        top = level[0]
        m.d.comb += self.row_max.eq(top)
        with m.If(self.clear):
            m.d.sync += [self.max.eq(0)] + [mag.eq(0) for mag in mags]
        with m.Elif(top > self.max):
            m.d.sync += self.max.eq(top)
        return m

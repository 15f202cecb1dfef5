"""The pass sequencer shared by the serial range checks (``rtl/bound_check.py`` for
CONTRACT, ``rtl/move_unit.py`` for MOVE)."""

from amaranth import *

__all__ = ["pass_sequencer"]


def pass_sequencer(m, *, start, cancel, busy, acc_phase, p, hd, n_passes, n_next):
    """Next state of a serial Horner check: pass ``p``, Horner bit ``hd`` and the
    accumulate flag ``acc_phase`` (registers of the caller), one Horner step per cycle
    from the highest set bit of the pass's ``n`` (``count - 1``) down to bit 0, then one
    accumulate cycle; a pass whose ``n`` is 0 goes straight to its accumulate cycle
    (``isa.pass_cycles``: ``bit_length(n) + 1`` cycles a pass).

    ``start`` enters pass 0; ``cancel`` returns to pass 0 idle; after the last pass's
    accumulate cycle the sequencer rests on pass 0. ``n_next``: the ``n`` of pass
    ``p_n``, a signal the caller drives from the returned ``p_n``.

    Returns ``(p_n, hd_n, acc_n)``: the next pass, Horner bit and accumulate flag; the
    caller registers them (and anything selected from ``p_n``, so that a Horner step's
    path starts at flip-flops).
    """
    p_n = Signal.like(p, name="p_n")
    hd_n = Signal.like(hd, name="hd_n")
    acc_n = Signal(name="acc_n")
    enter = Signal(name="enter")            # a pass starts next cycle
    m.d.comb += [p_n.eq(p), hd_n.eq(hd), acc_n.eq(acc_phase)]
    with m.If(start):
        m.d.comb += [enter.eq(1), p_n.eq(0)]
    with m.Elif(cancel):
        m.d.comb += [p_n.eq(0), acc_n.eq(0)]
    with m.Elif(busy & ~acc_phase):
        with m.If(hd == 0):
            m.d.comb += acc_n.eq(1)
        with m.Else():
            m.d.comb += hd_n.eq(hd - 1)
    with m.Elif(busy & (p != n_passes - 1)):
        m.d.comb += [enter.eq(1), p_n.eq(p + 1)]
    with m.Elif(busy):
        m.d.comb += [p_n.eq(0), acc_n.eq(0)]     # done: idle on pass 0
    with m.If(enter):
        m.d.comb += acc_n.eq(n_next == 0)
        for k in range(len(n_next)):             # the highest set bit wins
            with m.If(n_next[k]):
                m.d.comb += hd_n.eq(k)
    return p_n, hd_n, acc_n

"""Independent checks of an allocator result (``sw_model.program.allocator``), shared by
the allocator's, the training step's and the command line's tests."""


def check_allocation(alloc) -> None:
    """No two pieces of a bank share a row while both are live; every piece lies inside
    the bank with its home's footprint; every operand is resident in its bank when it
    is read and every result somewhere it can be written (its consumers' bank or C)."""
    pl = alloc.placements
    depth = alloc.config.bank_depth
    for i, p in enumerate(pl):
        assert 0 <= p.base and p.base + p.rows <= depth, p
        assert p.rows == alloc.tensors[p.tensor].homes[p.bank].rows, p
        for q in pl[i + 1:]:
            assert not p.overlaps(q), (p, q)

    def resident(name, bank, pos):
        return any(p.tensor == name and p.bank == bank and p.start <= pos <= p.end
                   for p in pl)

    for pos, c in enumerate(alloc.contractions):
        assert resident(c.a, "A", pos), (c.a, pos)
        assert resident(c.b, "B", pos), (c.b, pos)
        assert any(resident(c.out, b, pos) for b in alloc.tensors[c.out].homes), (c.out, pos)

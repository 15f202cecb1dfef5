"""``sw_model.accel.routing`` re-exports the network names its remaining importers read:
each is the very object of the module that defines it (``benes``, ``reduction_net``),
and nothing else is exported."""

from fetta.sw_model.accel import benes, reduction_net, routing

# The names the compiler, the fabric model, the ISA, the timing model and the RTL
# controller read from ``routing``.
READ_FROM_ROUTING = {
    "DISTRIBUTION_LATENCY", "distribution_n_switch_bits", "reduction_latency",
    "reduction_n_switch_bits", "route_distribution", "route_reduction",
    "pack_distribution", "pack_reduction", "unpack_distribution", "unpack_reduction",
    "apply_distribution", "apply_reduction",
}


def test_reexports_are_the_defining_modules_objects():
    assert set(routing.__all__) == READ_FROM_ROUTING
    for name in routing.__all__:
        home = benes if name in benes.__all__ else reduction_net
        assert name in home.__all__, name
        assert getattr(routing, name) is getattr(home, name), name

"""Compiled simulation models: C++ emission, the C++ host-bus driver, the build cache
and profile-guided builds used by the ``cxxrtl`` and ``verilator`` backends.

Modules: ``toolchain`` (C++ compiler, CXXRTL runtime, identities), ``driver_template``
(the host-bus driver both simulators fill in), ``cxxrtl_emit`` (RTLIL, CXXRTL C++ and
its driver), ``build_cache`` (keyed, atomic, once-per-key builds and the source-token
index), ``pgo`` (profile-guided builds), ``cxxrtl_build`` (the CXXRTL model's build),
``bus_fixture`` (a stand-in top with the host-bus contract), ``verilator_tool`` (which
Verilator builds the Verilator model and how)."""

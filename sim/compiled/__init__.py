"""Compiled simulation models: C++ emission, the C++ host-bus driver, the build cache
and profile-guided builds used by the ``cxxrtl`` and ``verilator`` backends."""

"""Tensor-train-matrix networks: contraction plans (``plan``), the contraction-sequence
search engine (``csse``), TTM layers (``layers``), model presets (``models``) and the
TTM workload suite of the README and ``fetta sweep`` (``workloads``).
Imports ``sw_model.program``, ``sw_model.accel`` and ``sw_model.arith``."""

"""Tensor-train-matrix networks: contraction plans (``plan``), the contraction-sequence
search engine (``csse``), TTM layers (``layers``), model presets (``models``), the
TTM workload suite of the README, ``fetta sweep`` and ``fetta eval`` (``workloads``)
and a training step's event counts on an accelerator configuration (``step_events``).
Imports ``sw_model.program``, ``sw_model.accel`` and ``sw_model.arith``."""

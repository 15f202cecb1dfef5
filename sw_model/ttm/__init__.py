"""Tensor-train-matrix networks: contraction plans (``plan``), the contraction-sequence
search engine (``csse``), TTM layers (``layers``), model presets (``models``), the
TTM workload suite of the README, ``fetta sweep`` and ``fetta eval`` (``workloads``),
a training step's event counts on an accelerator configuration (``step_events``) and
its tensors placed in the on-chip buffers (``step_memory``).
Imports ``sw_model.program``, ``sw_model.accel`` and ``sw_model.arith``."""

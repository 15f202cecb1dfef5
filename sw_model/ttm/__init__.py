"""Tensor-train-matrix networks: contraction plans (``plan``), the contraction-sequence
search engine (``csse``), TTM layers (``layers``) and model presets (``models``).
Imports ``sw_model.program``, ``sw_model.accel`` and ``sw_model.arith``."""

"""Accelerator programs: the compiler from one einsum contraction to a program, buffer
layout and exact cycle count (``compiler``), and the fabric's functional model that runs
a program on NumPy arrays (``fabric_model``); the memory model of a resident step
(``memory_model``: tensors, their layouts and live ranges) and its allocator
(``allocator``: placement by liveness, spills, micro-batches). Imports
``sw_model.accel`` and ``sw_model.arith``."""

"""fetta-hdl software model: NumPy-only fixed-point arithmetic, TTM layers, the
reference trainer, contraction-sequence search, the compiler and its cycle model.

Importable without Amaranth or any hardware tool."""

__version__ = "0.1.0"

"""Golden arithmetic: the fixed-point contract (``fixedpoint``), einsum parsing
(``einsum_spec``) and the golden pairwise contraction (``contraction``). NumPy only;
imports nothing else of the project."""

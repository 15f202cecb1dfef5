"""The NumPy reference trainer (``trainer``), its float and fixed-point paths
(``paths``), the contraction executor contract (``executor``), fixed-point training
arithmetic (``quant_train``), rank adaptation (``rank_adapt``), datasets (``data``),
checkpoints (``checkpoint``) and memory accounting (``memory``). The top layer of
``sw_model``."""

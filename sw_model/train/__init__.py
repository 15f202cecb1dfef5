"""The NumPy reference trainer (``trainer``), fixed-point training arithmetic
(``quant_train``), rank adaptation (``rank_adapt``), datasets (``data``), checkpoints
(``checkpoint``) and memory accounting (``memory``). The top layer of ``sw_model``."""

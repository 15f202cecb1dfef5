"""The accelerator as software sees it: configuration and presets (``config``), the
instruction set (``isa``), the host address map (``hostmap``) and the network routers
and functional network models (``routing``). Imports only ``sw_model.arith``."""

"""The accelerator as software sees it: configuration and presets (``config``), the
instruction set (``isa``), the host address map (``hostmap``), the network routers and
functional network models (``routing``) and the energy model (``energy``). Imports only
``sw_model.arith``."""

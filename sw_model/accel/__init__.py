"""The accelerator as software sees it: configuration and presets (``config``), the
instruction set (``isa``), the host address map (``hostmap``), the network routers and
functional network models (``benes``: the Benes distribution network;
``reduction_net``: the reduction network; ``switch_settings``: lanes and settings
packing; ``ce_patterns``: the CE-array mapping requests; ``routing`` re-exports the
names older importers read) and the energy model (``energy``). Imports only
``sw_model.arith``."""

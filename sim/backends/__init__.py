"""Backends that run the accelerator top for the harness: the interface and the
registry (``base``: ``Backend``, ``BACKENDS``, ``get_backend``), Amaranth's simulator
(``pysim``), the compiled CXXRTL model (``cxxrtl``), a Verilator model (``verilator``)
and a board over UART (``board``). Each registers by name in ``base.BACKENDS``."""

"""fetta-hdl: a cycle-accurate accelerator that trains tensor-train-matrix networks.

The project's folders install as sub-packages of this one: ``fetta.sw_model`` (NumPy
golden model, compiler, trainer), ``fetta.rtl`` (Amaranth components), ``fetta.sim``
(harness, backends, the ``fetta`` command line) and ``fetta.boards`` (FPGA platforms,
UART link, synthesis).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fetta-hdl")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"

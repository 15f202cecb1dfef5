"""Design-space exploration: ``fetta sweep``.

A layer above ``fetta.sim``: it may import ``fetta.sw_model``, ``fetta.sim`` and
``fetta.boards``; nothing imports it but the ``fetta sweep`` command.

* ``space``: the space file (TOML): the ``AccelConfig`` fields to vary, constraints,
  workloads; expands to points, each validated;
* ``cost``: one point on one workload with the compiler's exact cycle model;
* ``tasks``: what a Dask worker runs per point (cost, Verilator check, synthesis);
* ``store``: the SQLite store (WAL mode; one transaction per finished task);
* ``runner``: the Dask client, the progress bar, resuming;
* ``report``: the Pareto front per workload, tables, JSON and plots.
"""

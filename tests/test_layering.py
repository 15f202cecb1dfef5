"""The import graph of the installed ``fetta`` package: no cycles between modules or
packages, and every import points down the layer map (CONTRIBUTING.md, "Layers").

The graph is read with ``ast`` from the files of the installed packages (every
``import``/``from ... import`` of a ``fetta`` module, including the lazy ones inside
functions); nothing is imported to build it.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The layer map, lowest first: a module may import its own package and any package of
# a lower rank, never a higher one. ``fetta`` is the root package (version, errors).
LAYERS = (
    "fetta.sw_model",
    "fetta.sw_model.arith",
    "fetta.sw_model.accel",
    "fetta.sw_model.program",
    "fetta.sw_model.ttm",
    "fetta.sw_model.train",
    "fetta",
    "fetta.rtl",
    "fetta.boards",
    "fetta.sim.compiled",
    "fetta.sim.backends",
    "fetta.sim",
    "fetta.sweep",
    "fetta.sim.commands",
)
RANK = {name: i for i, name in enumerate(LAYERS)}
# sw_model imports nothing else of the project (not even the root package).
SELF_CONTAINED = ("fetta.sw_model",)


def package_modules(top: str = "fetta") -> dict[str, Path]:
    """Module name -> file of every module of the installed ``top`` package and its
    sub-packages (those whose folders hold an ``__init__.py``)."""
    out: dict[str, Path] = {}

    def walk(name: str) -> None:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        for loc in spec.submodule_search_locations:
            folder = Path(loc)
            out[name] = folder / "__init__.py"
            for f in sorted(folder.iterdir()):
                if f.suffix == ".py" and f.name != "__init__.py":
                    out[f"{name}.{f.stem}"] = f
                elif f.is_dir() and (f / "__init__.py").exists():
                    walk(f"{name}.{f.name}")

    walk(top)
    for name in list(out):  # fetta's sub-packages live in their own folders
        if name.count(".") == 0:
            for sub in ("rtl", "sim", "sw_model", "boards", "sweep"):
                walk(f"{name}.{sub}")
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` (file ``path``) imports."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:     # ``fetta.x.y`` of a non-module y
            target = target.rpartition(".")[0]
        if target:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fetta":
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "fetta":
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                add(sub if sub in modules else mod)
    found.discard(name)
    return found


def package_of(module: str, modules: dict[str, Path]) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to itself)."""
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def violations(graph: dict[str, set[str]], modules: dict[str, Path]) -> list[str]:
    """Imports that point up the layer map or out of a self-contained package."""
    bad = []
    for src, targets in sorted(graph.items()):
        ps = package_of(src, modules)
        for dst in sorted(targets):
            pd = package_of(dst, modules)
            if ps == pd:
                continue
            for top in SELF_CONTAINED:
                if (ps == top or ps.startswith(top + ".")) and not \
                        (pd == top or pd.startswith(top + ".")):
                    bad.append(f"{src} -> {dst}: {top} imports nothing else of the project")
            if ps not in RANK or pd not in RANK:
                bad.append(f"{src} -> {dst}: package {ps if ps not in RANK else pd} is "
                           f"not in the layer map")
            elif RANK[pd] > RANK[ps]:
                bad.append(f"{src} -> {dst}: {ps} may not import {pd} (a higher layer)")
    return bad


@pytest.fixture(scope="module")
def graph():
    modules = package_modules()
    return modules, {m: imports_of(m, p, modules) for m, p in modules.items()}


def test_graph_is_read(graph):
    """The walk finds the project's modules and their imports (a broken walk would make
    the checks below pass vacuously)."""
    modules, g = graph
    assert {"fetta.sw_model.program.compiler", "fetta.rtl.controller",
            "fetta.sim.harness", "fetta.boards.bridge"} <= set(modules)
    assert "fetta.sw_model.accel.config" in g["fetta.rtl.controller"]
    assert "fetta.sim.backends.base" in g["fetta.sim.harness"]


def test_no_module_cycles(graph):
    _, g = graph
    assert cycles(g) == []


def test_no_package_cycles(graph):
    modules, g = graph
    pg: dict[str, set[str]] = {}
    for src, targets in g.items():
        ps = package_of(src, modules)
        pg.setdefault(ps, set()).update(package_of(t, modules) for t in targets)
        pg[ps].discard(ps)
    assert cycles(pg) == []


def test_layers_point_down(graph):
    modules, g = graph
    assert violations(g, modules) == []


def test_every_package_is_in_the_layer_map_and_installed(graph):
    """Every package folder is a layer and is listed in pyproject's ``packages`` (a
    non-editable install ships only those)."""
    modules, _ = graph
    pkgs = {m for m, p in modules.items() if p.name == "__init__.py"}
    assert pkgs <= set(RANK)
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    assert pkgs == listed


def test_checker_finds_cycles_and_upward_imports():
    """The checks can fail: a two-module cycle and an upward import are reported."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    modules = {"fetta.rtl.x": Path("x.py"), "fetta.sim.harness": Path("h.py"),
               "fetta.sw_model.arith.y": Path("y.py"), "fetta.errors": Path("e.py")}
    bad = violations({"fetta.rtl.x": {"fetta.sim.harness"},
                      "fetta.sw_model.arith.y": {"fetta.errors"}}, modules)
    assert bad == ["fetta.rtl.x -> fetta.sim.harness: fetta.rtl may not import fetta.sim "
                   "(a higher layer)",
                   "fetta.sw_model.arith.y -> fetta.errors: fetta.sw_model imports nothing "
                   "else of the project",
                   "fetta.sw_model.arith.y -> fetta.errors: fetta.sw_model.arith may not "
                   "import fetta (a higher layer)"]


def test_contributing_layer_table_matches():
    """CONTRIBUTING.md's layer table lists the packages in this file's order."""
    import re
    text = (ROOT / "CONTRIBUTING.md").read_text()
    table = re.findall(r"^\| (\d+) \| `(fetta[\w.]*)` \|", text, re.M)
    # (the bare ``fetta.sw_model`` package holds only its sub-packages)
    assert [name for _, name in table] == [n for n in LAYERS if n != "fetta.sw_model"], table
    assert [int(rank) for rank, _ in table] == list(range(1, len(table) + 1))

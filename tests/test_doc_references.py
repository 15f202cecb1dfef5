"""Docs point where things are: every repository path that README.md, CONTRIBUTING.md,
docs/*.md and the package's docstrings name in backticks exists, and the README's
layout table names every top-level folder and package of the tree."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("sw_model", "rtl", "sim", "boards", "sweep", "fetta", "scripts", "docs", "tests",
       ".ci")
# `path/to/file.ext` or `path/to/dir/` under one of the top-level folders; a trailing
# `::name`, `:name` or ` (...)` is not part of the path.
PATH = re.compile(r"`((?:%s)/[\w./*<>-]*)" % "|".join(re.escape(t) for t in TOP))


def _paths(text: str):
    for m in PATH.finditer(text):
        p = m.group(1).rstrip(".")
        if "<" in p or "*" in p:          # patterns (synth_reports/<preset>.json)
            p = p[:min(i for i in (p.find("<"), p.find("*")) if i >= 0)].rpartition("/")[0]
        yield p


def _docs():
    for f in ["README.md", "CONTRIBUTING.md", *sorted(p.relative_to(ROOT).as_posix()
                                                        for p in (ROOT / "docs").glob("*.md"))]:
        yield f, (ROOT / f).read_text()


def _docstrings():
    for folder in ("sw_model", "rtl", "sim", "boards", "sweep", "fetta"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        yield f.relative_to(ROOT).as_posix(), doc


@pytest.mark.parametrize("source", ["docs", "docstrings"])
def test_named_paths_exist(source):
    items = _docs() if source == "docs" else _docstrings()
    missing = sorted({(where, p) for where, text in items for p in _paths(text)
                      if p and not (ROOT / p).exists()})
    assert not missing, "named but not in the tree: " + "; ".join(f"{w}: {p}" for w, p in missing)


def test_readme_layout_table_covers_the_tree():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):readme.index("## Tests")]
    named = set(re.findall(r"^\| `([\w/]+)/` \|", table, re.M))
    packages = {p.parent.relative_to(ROOT).as_posix() for folder in
                ("sw_model", "rtl", "sim", "boards", "sweep", "fetta")
                for p in (ROOT / folder).rglob("__init__.py")}
    packages -= {"sw_model"}                 # only its sub-packages hold modules
    assert packages - named == set(), f"packages missing from README Layout: {packages - named}"
    assert named - packages - {"scripts", "docs", "tests"} == set()


def test_readme_layout_table_names_every_module():
    """Each package's row of the README layout table names every module of it."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):readme.index("## Tests")]
    rows = dict(re.findall(r"^\| `([\w/]+)/` \| (.*) \|$", table, re.M))
    missing = []
    for folder, text in rows.items():
        if folder in ("scripts", "docs", "tests"):
            continue
        for f in sorted((ROOT / folder).glob("*.py")):
            if f.name != "__init__.py" and f"`{f.name}`" not in text and f"`{f.stem}`" not in text:
                missing.append(f"{folder}/{f.name}")
    assert not missing, f"modules missing from README Layout: {missing}"

"""The package's shape: every module imports on its own, and the packages
form layers (no import cycle between them), so a newcomer can read the
request path bottom-up and a module can be tested alone."""

import ast
import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
PACKAGE = os.path.join(SRC, "tenantkv")


def all_modules() -> list:
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), SRC)[:-3].replace(os.sep, ".")
            found.append(rel[:-len(".__init__")] if rel.endswith(".__init__") else rel)
    return sorted(found)


def test_every_module_imports_alone():
    """`python -c "import tenantkv.X"` for every X, each in a fresh interpreter
    (one interpreter per module would take a minute: a small driver imports
    each one in a child process of its own, 8 at a time)."""
    modules = [m for m in all_modules() if m != "tenantkv.__main__"]
    script = ("import importlib, sys\n"
              "importlib.import_module(sys.argv[1])\n")
    failures = {}
    running = []

    def reap(entry):
        module, proc = entry
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            failures[module] = err.decode(errors="replace").strip().splitlines()[-1]
    for module in modules:
        running.append((module, subprocess.Popen([sys.executable, "-c", script, module],
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
        if len(running) >= 8:
            reap(running.pop(0))
    for entry in running:
        reap(entry)
    assert not failures, failures


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or os.path.isdir(os.path.join(PACKAGE, parts[-1])) else "(top)"


def import_graph() -> dict:
    """package -> {imported package: [module that imports it, ...]}, counting
    every import statement (top-level or inside a function)."""
    graph: dict = {}
    for module in all_modules():
        path = os.path.join(SRC, *module.split("."))
        path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
        tree = ast.parse(open(path, encoding="utf-8").read())
        source = package_of(module)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "tenantkv" or len(parts) < 2:
                    continue
                target = parts[1] if os.path.isdir(os.path.join(PACKAGE, parts[1])) else "(top)"
                if target != source and target != "(top)" and source != "(top)":
                    graph.setdefault(source, {}).setdefault(target, []).append(module)
    return graph


def test_no_import_cycle_between_packages():
    graph = import_graph()
    cycles = []

    def visit(node, path):
        for target in graph.get(node, {}):
            if target in path:
                cycle = path[path.index(target):] + [target]
                cycles.append(" -> ".join(cycle))
            elif len(path) < 12:
                visit(target, path + [target])
    for start in graph:
        visit(start, [start])
    assert not cycles, "\n".join(sorted(set(cycles))) + "\n" + repr(graph)

"""The layout contract (DESIGN.md section 1): who may import whom, and how models are found."""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"lm_eval_tasks": "lm_eval_tasks", "qr_metrics": "qr_metrics", "qr_adapters": "adapters",
           "qr_leaderboard": "leaderboard"}
ALLOWED = {
    "qr_metrics": set(),
    "lm_eval_tasks": {"qr_metrics"},
    "qr_adapters": {"qr_metrics", "lm_eval_tasks"},  # qr-lm-eval runs lm_eval with the qr tasks
    "qr_leaderboard": {"qr_metrics"},
}
"""DESIGN.md section 1: ``lm_eval_tasks`` -> ``qr_metrics`` <- ``qr_adapters``, and
``qr_leaderboard`` -> ``qr_metrics``; never the other way."""
REACHING_UP = {"leaderboard/demo", "leaderboard/cli/models.py"}
"""The only leaderboard code that runs models (the demo, and the verbs that start it or the
quantizer), so the only code that may import ``qr_adapters`` and ``lm_eval_tasks``."""


def module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    package = next(p for p, f in FOLDERS.items() if f == folder)
    parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files():
    return [path for folder in FOLDERS.values() for path in (ROOT / folder).rglob("*.py")]


MODULES = {module_name(path) for path in project_files()}


def imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function, as absolute names."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            submodules = {f"{module}.{alias.name}" for alias in node.names} & MODULES  # ``from . import x``
            found |= submodules or {module}
    return {name for name in found if name.split(".")[0] in FOLDERS}


@pytest.mark.parametrize("package", sorted(FOLDERS))
def test_dependency_direction(package):
    for path in (ROOT / FOLDERS[package]).rglob("*.py"):
        where = path.relative_to(ROOT).as_posix()
        allowed = ALLOWED[package] | {package}
        if any(where == up or where.startswith(up + "/") for up in REACHING_UP):
            allowed |= {"qr_adapters", "lm_eval_tasks"}
        wrong = {name.split(".")[0] for name in imports(path)} - allowed
        assert not wrong, f"{where} imports {sorted(wrong)}"


def test_no_import_circle():
    """No module imports itself back through others (function-level imports included)."""
    modules = {module_name(path): path for path in project_files()}
    graph = {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            circle = trail[trail.index(name):] + [name]
            raise AssertionError("import circle: " + " -> ".join(circle))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_leaderboard_module_over_350_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / "leaderboard").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 350}
    assert not long, f"split these into rooms that each own one thing: {long}"


def test_models_are_declared_for_harnesses_that_load_plugins():
    found = {ep.name: ep for ep in entry_points(group="lm_eval.models")}
    assert found["qr-hf"].value == "qr_adapters.hf:QRHFLM"
    assert found["qr-vllm"].value == "qr_adapters.vllm:QRVLLM"
    assert found["qr-completions"].value == "qr_adapters.completions:QRCompletions"
    from qr_adapters.hf import QRHFLM

    assert found["qr-hf"].load() is QRHFLM


def test_qr_hf_is_registered_with_lm_eval():
    from lm_eval.api.registry import get_model

    from qr_adapters.hf import QRHFLM

    assert get_model("qr-hf") is QRHFLM


@pytest.mark.parametrize("package", sorted(FOLDERS))
def test_tests_never_shadow_a_package(package):
    """tests/<package>/ folders hold tests only: the package itself loads from its own folder."""
    module = importlib.import_module(package)
    assert Path(module.__file__).resolve().parent == (ROOT / FOLDERS[package]).resolve()

"""The layout contract (DESIGN.md section 1): who may import whom, and how models are found."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"lm_eval_tasks": "lm_eval_tasks", "qr_metrics": "qr_metrics", "qr_adapters": "adapters",
           "qr_leaderboard": "leaderboard"}
# lm_eval_tasks -> qr_metrics <- qr_adapters, and qr_leaderboard -> qr_metrics (the leaderboard's
# demo also runs the adapters); never the other way.
ALLOWED = {
    "qr_metrics": set(),
    "lm_eval_tasks": {"qr_metrics"},
    "qr_adapters": {"qr_metrics", "lm_eval_tasks"},
    "qr_leaderboard": {"qr_metrics", "qr_adapters", "lm_eval_tasks"},
}


def imported_packages(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(FOLDERS)


@pytest.mark.parametrize("package", sorted(FOLDERS))
def test_dependency_direction(package):
    for path in (ROOT / FOLDERS[package]).rglob("*.py"):
        # lm_eval_tasks' in-harness baseline ratio reads the baseline run through the one run
        # reader, lazily, inside a function; every other import must follow the direction.
        top_level_only = path.name == "baseline_ratio.py"
        wrong = imported_packages(path, top_level_only) - ALLOWED[package] - {package}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


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

"""A built wheel holds every import package and the task YAMLs (the editable install is what
the other tests use)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_imports_every_package_and_finds_the_tasks(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("qr_eval-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "lm_eval_tasks/qr_math/qr_math.yaml",
        "lm_eval_tasks/_qr_generative_template_yaml",
        "lm_eval_tasks/qr_task.py",
        "qr_adapters/__init__.py",
        "qr_leaderboard/cli/__init__.py",
        "qr_adapters/toy_model/model.safetensors",
        "qr_adapters/toy_model/tokenizer.json",
        "lm_eval_tasks/qr_toy/utils.py",
        "qr_metrics/measure.py",
    ):
        assert expected in names, expected
    installed = {"lm_eval_tasks": "lm_eval_tasks", "qr_metrics": "qr_metrics", "adapters": "qr_adapters",
                 "leaderboard": "qr_leaderboard"}
    for folder, package in installed.items():  # every module of every subpackage (pyproject packages)
        for path in (ROOT / folder).rglob("*.py"):
            assert f"{package}/{path.relative_to(ROOT / folder)}" in names, f"{path} is not packaged"
    tasks = ROOT / "lm_eval_tasks"
    for path in [*tasks.rglob("*.yaml"), *tasks.rglob("*_yaml"), *tasks.rglob("README.md")]:
        assert f"lm_eval_tasks/{path.relative_to(tasks)}" in names, f"{path} is not packaged (pyproject packages)"
    assert not any(name.startswith(("adapters/", "leaderboard/", "tests/")) for name in names)

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import lm_eval_tasks, qr_metrics, qr_adapters, qr_leaderboard.cli;"
        "from lm_eval.tasks import TaskManager;"
        "print(lm_eval_tasks.__file__);"
        "print(TaskManager(include_defaults=False, include_path=str(lm_eval_tasks.TASKS_DIR)).all_tasks)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    first, tasks = done.stdout.splitlines()[:2]
    assert first.startswith(str(unpacked))
    assert "qr_math" in tasks

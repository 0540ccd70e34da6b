"""qr-lm-eval: lm_eval with the qr tasks on its include path."""

import os
import subprocess
import sys

from lm_eval_tasks import TASKS_DIR
from qr_adapters.lm_eval_entry import with_qr_tasks


def test_include_path_is_added_or_extended():
    assert with_qr_tasks(["--model", "hf"]) == ["--include_path", str(TASKS_DIR), "--model", "hf"]
    assert with_qr_tasks(["run", "--tasks", "qr_math"])[:3] == ["run", "--include_path", str(TASKS_DIR)]
    assert with_qr_tasks(["--include_path", "/mine"]) == ["--include_path", f"/mine{os.pathsep}{TASKS_DIR}"]
    assert with_qr_tasks(["--include_path=/mine"]) == [f"--include_path=/mine{os.pathsep}{TASKS_DIR}"]


def test_qr_lm_eval_validates_the_qr_tasks():
    done = subprocess.run(
        ["qr-lm-eval", "validate", "--tasks", "qr_math,qr_suite"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_help_says_what_qr_lm_eval_adds():
    for flag in ("--help", "-h"):
        done = subprocess.run(
            [sys.executable, "-c", "from qr_adapters.lm_eval_entry import main; main()", flag],
            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "--model_args" in done.stdout  # lm-eval's own help comes first
        added = done.stdout.split("qr-lm-eval:", 1)[1]
        for name in ("qr-hf", "qr-vllm", "qr-completions", "rescue=", "reference=", "plan_tokens=", "sidecar=",
                     "quant=", "qr_math", "qr_suite", "tasks-path"):
            assert name in added, (flag, name)

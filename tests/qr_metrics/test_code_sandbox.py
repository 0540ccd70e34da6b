"""The code sandbox: hostile programs are contained, graded as failures, and the next run works."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qr_metrics import code_sandbox
from qr_metrics.code_sandbox import SandboxLimits, check_code, extract_code, run_program

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox supports Linux only")

FAST = SandboxLimits(timeout_s=1.5, memory_mb=256, max_processes=8)


@pytest.fixture(autouse=True)
def _confirmed(monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def _next_run_works() -> None:
    result = run_program("assert sum([1, 2]) == 3\nprint('fine')", FAST)
    assert result.passed, result


def _sandbox_processes() -> list[tuple[int, str, int]]:
    low, high = code_sandbox._UID_BASE, code_sandbox._UID_BASE + code_sandbox._UID_SPAN
    return [p for p in code_sandbox._processes() if low <= p[0] < high]


def _children_of_this_process() -> list[int]:
    """This process's children. Tests compare them before and after a run: an earlier test
    (a vLLM engine's spawn start method) may leave a helper such as multiprocessing's
    resource tracker, which is not the sandbox's."""
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[1] == me.encode():
                found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


def _fs_contained(result) -> bool:
    return "uid" in result.containment or "landlock-fs" in result.containment


# --- grading ----------------------------------------------------------------------------


def test_correct_code_passes_and_wrong_code_fails_humaneval_style():
    tests = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
    good = check_code("def add(a, b):\n    return a + b\n", tests, entry_point="add", limits=FAST)
    assert good.passed and good.status == "passed" and good.returncode == 0
    assert good.network_isolated == ("netns" in good.containment)
    wrong = check_code("def add(a, b):\n    return a * b\n", tests, entry_point="add", limits=FAST)
    assert not wrong.passed and wrong.status == "failed" and "AssertionError" in wrong.reason


def test_mbpp_style_asserts_and_syntax_errors():
    tests = "assert is_even(4)\nassert not is_even(3)\n"
    assert check_code("def is_even(n):\n    return n % 2 == 0", tests, limits=FAST).passed
    broken = check_code("def is_even(n) return n % 2 == 0", tests, limits=FAST)
    assert broken.status == "failed" and "SyntaxError" in broken.stderr_tail


def test_check_code_refuses_a_non_identifier_entry_point():
    with pytest.raises(ValueError, match="entry_point"):
        check_code("x = 1", "pass", entry_point="f); import os; (", limits=FAST)


def test_refuses_to_run_unless_confirmed(monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL")
    with pytest.raises(PermissionError, match="--confirm_run_unsafe_code"):
        run_program("print(1)", FAST)
    with pytest.raises(PermissionError, match="HF_ALLOW_CODE_EVAL"):
        code_sandbox.require_unsafe_code_confirmation()
    assert run_program("print(1)", FAST, confirm_run_unsafe_code=True).passed


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"timeout_s": 0}, "timeout_s"), ({"memory_mb": 8}, "memory_mb"), ({"max_processes": 0}, "max_processes"),
     ({"max_file_mb": 0}, "max_file_mb"), ({"cpu_s": 0}, "cpu_s"), ({"memory_mb": 1.5}, "memory_mb"),
     ({"timeout_s": "1"}, "timeout_s")],
)
def test_limits_are_validated_with_name_value_and_range(kwargs, name):
    with pytest.raises(ValueError, match=rf"SandboxLimits\.{name}=.* must be "):
        SandboxLimits(**kwargs)


# --- hostile programs ---------------------------------------------------------------------


def test_infinite_loop_times_out():
    result = run_program("while True:\n    pass\n", FAST)
    assert result.status == "timeout" and not result.passed and result.returncode is None
    assert 1.4 < result.duration_s < 3.0
    _next_run_works()


def test_fork_bomb_is_contained():
    children = set(_children_of_this_process())
    # First a bounded bomb: if the process limit did not hold, it makes 64 processes, not millions.
    counted = run_program(
        "import os, time\nn = 0\ntry:\n    while n < 64:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\n"
        "print('forked', n)\n",
        FAST,
    )
    forked = int(counted.stdout_tail.split()[-1])
    assert forked < FAST.max_processes, counted
    result = run_program("import os\nwhile True:\n    os.fork()\n", FAST)
    assert not result.passed and result.status in ("failed", "timeout", "error")
    assert [p for p in _sandbox_processes() if p[1] not in "ZX"] == []
    assert set(_children_of_this_process()) - children == set()
    _next_run_works()


def test_children_that_leave_the_process_group_are_killed():
    result = run_program(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        print(os.getpid(), flush=True)\n        time.sleep(60)\n    os._exit(0)\n"
        "time.sleep(0.3)\n",
        FAST,
    )
    assert result.passed, result
    escaped = int(result.stdout_tail.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(escaped, 0)


def test_huge_allocation_is_stopped():
    result = run_program("x = bytearray(10**11)\n", FAST)
    assert result.status == "error" and "memory" in result.reason
    growing = run_program("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", FAST)
    assert not growing.passed and growing.status in ("error", "timeout")
    _next_run_works()


def test_output_flood_is_capped():
    result = run_program("while True:\n    print('x' * 100000)\n", SandboxLimits(timeout_s=5, max_file_mb=1))
    assert result.status == "error" and "file size" in result.reason
    assert len(result.stdout_tail) <= 4000


def test_writes_outside_the_working_directory_fail():
    targets = [Path(tempfile.gettempdir()) / f"qr_escape_test_{os.getpid()}",
               Path(__file__).resolve().parent / f"qr_escape_test_{os.getpid()}"]
    program = "".join(f"open({str(t)!r}, 'w').write('escaped')\n" for t in targets)
    try:
        result = run_program(program + "print('wrote')\n", FAST)
        if not _fs_contained(result):
            pytest.skip(f"no uid change and no Landlock here: {result.containment}")
        assert not result.passed and "wrote" not in result.stdout_tail
        assert [t for t in targets if t.exists()] == []
        inside = run_program("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n", FAST)
        assert inside.passed and "ok" in inside.stdout_tail
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


def test_environment_secrets_are_not_inherited(monkeypatch):
    monkeypatch.setenv("QR_TEST_SECRET", "s3cr3t")
    result = run_program(
        "import os\nprint(os.environ.get('QR_TEST_SECRET'))\nassert 'QR_TEST_SECRET' in os.environ\n", FAST
    )
    assert result.status == "failed" and "s3cr3t" not in result.stdout_tail + result.stderr_tail
    assert result.stdout_tail == "None\n"
    assert set(dict(line.split("=", 1) for line in
                    run_program("import os\nfor k, v in os.environ.items(): print(f'{k}={v}')", FAST)
                    .stdout_tail.splitlines())) <= {"PATH", "LANG", "HOME", "TMPDIR", "LC_CTYPE"}


def test_the_callers_proc_environ_is_unreadable(monkeypatch):
    monkeypatch.setenv("QR_TEST_SECRET", "s3cr3t")
    result = run_program(f"print(open('/proc/{os.getpid()}/environ').read())\n", FAST)
    if not _fs_contained(result):
        pytest.skip(f"no uid change and no Landlock here: {result.containment}")
    assert result.status == "failed" and "s3cr3t" not in result.stdout_tail


def test_network_is_unreachable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        result = run_program(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')\n",
            FAST,
        )
        if not result.network_isolated and "landlock-net" not in result.containment:
            pytest.skip(f"no network namespace and no Landlock network rules here: {result.containment}")
        assert not result.passed and "connected" not in result.stdout_tail
        with pytest.raises(OSError):
            server.accept()
        if result.network_isolated:
            udp = run_program("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                              ".sendto(b'x', ('192.0.2.1', 9))\n", FAST)
            assert udp.status == "failed" and "unreachable" in udp.stderr_tail
    finally:
        server.close()


def test_concurrent_runs_are_graded_independently_and_leave_nothing_behind():
    before = set(os.listdir(tempfile.gettempdir()))
    children = set(_children_of_this_process())
    programs = ["import os\nwhile True:\n    os.fork()\n", "assert 2 + 2 == 4\n", "while True:\n    pass\n",
                "assert 2 + 2 == 5\n"]
    limits = SandboxLimits(timeout_s=1, memory_mb=256, max_processes=8)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: run_program(p, limits), programs))
    assert [r.status for r in results][1:] == ["passed", "timeout", "failed"]
    assert not results[0].passed
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("qr_sandbox_")}
    assert left == set()
    assert set(_children_of_this_process()) - children == set()
    assert [p for p in _sandbox_processes() if p[1] not in "ZX"] == []


# --- extracting code ----------------------------------------------------------------------


def test_extract_code_takes_the_last_python_block():
    answer = ("First try:\n```python\ndef f(): return 1\n```\nBetter:\n```python\ndef f():\n    return 2\n```\n"
              "Output:\n```text\n2\n```\n")
    assert extract_code(answer) == "def f():\n    return 2\n"


def test_extract_code_accepts_other_tags_untagged_and_indented_fences():
    assert extract_code("```py\nx = 1\n```") == "x = 1\n"
    assert extract_code("Here:\n```\ny = 2\n```\ndone") == "y = 2\n"
    assert extract_code("  ```Python\n  z = 3\n  ```") == "  z = 3\n"


def test_extract_code_handles_missing_empty_and_unclosed_blocks():
    assert extract_code("def f():\n    return 1\n") is None
    assert extract_code("") is None
    assert extract_code("use ```x = 1``` inline") is None
    assert extract_code("```python\n\n```\n") is None
    assert extract_code("```python\ndef f():\n    return 1\n") == "def f():\n    return 1\n"
    assert extract_code("```python\nok = 1\n```\n```python\n   \n```") == "ok = 1\n"

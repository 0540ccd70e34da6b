"""Run model-written programs against a task's tests (HumanEval, MBPP) in a sandbox.

Three verbs: ``extract_code`` takes the program out of a model's answer, ``check_code`` joins
it with the task's tests, ``run_program`` runs a program under ``SandboxLimits`` and returns
an ``ExecutionResult``. Running model code is refused unless confirmed, see
``require_unsafe_code_confirmation``.

How a run is contained (Linux only; other platforms raise ``NotImplementedError``)
---------------------------------------------------------------------------------
Each call starts a small supervisor (this file run as ``python -I -S``; it becomes a child
subreaper), which forks the program and sets up, in the program's process, before ``exec``:

* its own session and process group; a fresh temporary working directory (HOME and TMPDIR
  point there), deleted afterwards; a minimal environment (PATH, LANG, HOME, TMPDIR: nothing
  from ``os.environ``); stdin from /dev/null; ``python -I -B program.py``;
* rlimits: address space (``memory_mb``), CPU seconds (``cpu_s``), file size (``max_file_mb``,
  which also caps what the program prints), processes (``max_processes``), open files, no
  core dumps; and ``PR_SET_NO_NEW_PRIVS`` (set-uid binaries stay unprivileged).

At the wall-clock limit (``timeout_s``), or when the program exits, the supervisor kills its
process group, then every descendant left: orphans are re-parented to the supervisor (the
subreaper), even those that called ``setsid``, so nothing outlives the run, and it reaps them.

What depends on privilege and kernel:

* **As root** the program runs as a dedicated unprivileged uid/gid (one per concurrent run,
  no supplementary groups), because Linux does not enforce RLIMIT_NPROC for root: this is
  what contains a fork bomb. The supervisor also kills every process of that uid
  (``kill(-1)`` sent from that uid, atomic against forks). That uid cannot write to root's
  files nor read files that are not world-readable; the working directory is chowned to it.
  The interpreter must be reachable by it: ``sys.executable`` when every directory above it
  is world-searchable, else ``/usr/local/bin/python3`` or ``/usr/bin/python3`` (or
  ``python=``); programs then run under that interpreter, not the caller's.
* **As another user** there is no uid change: RLIMIT_NPROC is that user's current task count
  plus ``max_processes``, so concurrent runs (and the user's other processes) share the
  headroom.
* **Network**: a fresh network namespace (no interface but a loopback that is down) when
  the kernel allows one: ``unshare(CLONE_NEWNET)`` as root with CAP_SYS_ADMIN, else
  ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` where unprivileged user namespaces are allowed.
  ``ExecutionResult.network_isolated`` says whether it happened. Landlock ABI >= 4 also
  forbids TCP connect and bind (``landlock-net``); UDP is blocked only by the namespace.
* **Landlock** (Linux >= 5.13, unless seccomp blocks it): writes only beneath the working
  directory (and to /dev/null); reads and execution only beneath /usr, /lib*, /bin, /sbin,
  /etc, /dev, /proc, /sys and the interpreter's prefixes and ``sys.path``, so the repository,
  caches and tokens elsewhere cannot be read. Landlock also denies ptrace-style access such as
  the caller's ``/proc/PID/environ``, and with ABI >= 6 signals to processes outside.
* **Without Landlock**, as root, the program can create files in world-writable directories
  (/tmp, /var/tmp, /dev/shm) while it runs; what its uid left at the top of them is deleted
  afterwards. As another user without Landlock, the program can write wherever that user can
  and read the caller's ``/proc/PID/environ``: use root or a Landlock kernel for real models.

Never contained: disk space used inside the working directory beyond one file's size limit,
total memory across processes (up to ``max_processes * memory_mb`` of address space), and
reads of world-readable files under the allowed read roots. ``ExecutionResult.containment``
lists the layers each run had: session, clean-env, fresh-dir, rlimits, uid, netns,
no-new-privs, landlock-fs, landlock-net, landlock-scope.
"""

from __future__ import annotations

# The supervisor below runs as a script (`python -I -S code_sandbox.py --supervise`) once per
# program, so it comes first and needs only these light imports; the public API follows.
import ctypes
import json
import os
import resource
import signal
import stat
import sys
import time

# --- the supervisor (runs as `python -I -S code_sandbox.py --supervise`, stdlib only) -----

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LL_READ = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE | READ_FILE | READ_DIR
_LL_FILE_ONLY = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _landlock_ruleset(libc, read_roots: list[str], write_root: str) -> tuple[int, list[str]]:
    """A Landlock ruleset fd (-1 when unavailable) and the layers it will add."""
    syscall = libc.syscall
    abi = syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return -1, []
    fs = (1 << 13) - 1
    fs |= (1 << 13) if abi >= 2 else 0  # REFER
    fs |= (1 << 14) if abi >= 3 else 0  # TRUNCATE
    fs |= (1 << 15) if abi >= 5 else 0  # IOCTL_DEV
    attr = _RulesetAttr(fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    fd = syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                 ctypes.c_uint32(0))
    if fd < 0:
        return -1, []
    rules = [(root, _LL_READ) for root in read_roots] + [(write_root, fs), ("/dev/null", fs & _LL_FILE_ONLY)]
    for path, allowed in rules:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISDIR(os.fstat(pfd).st_mode):
                allowed &= _LL_FILE_ONLY
            rule = _PathBeneath(allowed & fs, pfd)
            if syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(1),
                       ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
        finally:
            os.close(pfd)
    layers = ["landlock-fs"] + (["landlock-net"] if abi >= 4 else []) + (["landlock-scope"] if abi >= 6 else [])
    return fd, layers


def _processes() -> list[tuple[int, str, int]]:
    """(real uid, state letter, thread count) of every process on this machine."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                text = f.read().decode(errors="replace")
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            found.append((int(fields["Uid"].split()[0]), fields["State"].strip()[:1], int(fields["Threads"])))
        except (OSError, KeyError, ValueError, IndexError):
            continue  # the process ended while we looked
    return found


def _live_processes_of(uid: int) -> int:
    return sum(1 for u, state, _ in _processes() if u == uid and state not in ("Z", "X"))


def _child(spec: dict, report_fd: int) -> None:
    """In the forked child: contain ourselves, then exec the program. Never returns."""
    try:
        libc = _libc()
        layers = ["session", "clean-env", "fresh-dir"]
        os.setsid()
        uid = spec["uid"]
        netns = False
        if uid is not None and libc.unshare(ctypes.c_int(_CLONE_NEWNET)) == 0:
            netns = True
        nproc = spec["max_processes"]
        if uid is None:
            nproc += sum(threads for u, _, threads in _processes() if u == os.getuid())
        cpu = spec["cpu_s"]
        for res, value in (
            (resource.RLIMIT_AS, spec["memory_bytes"]),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_FSIZE, spec["max_file_bytes"]),
            (resource.RLIMIT_NPROC, nproc),
            (resource.RLIMIT_NOFILE, spec["max_open_files"]),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(res, value if isinstance(value, tuple) else (value, value))
        layers.append("rlimits")
        ruleset, landlock_layers = _landlock_ruleset(libc, spec["read_roots"], spec["workdir"])
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            layers.append("uid")
        if not netns and libc.unshare(ctypes.c_int(_CLONE_NEWUSER | _CLONE_NEWNET)) == 0:
            netns = True
        if netns:
            layers.append("netns")
        if libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        layers.append("no-new-privs")
        if ruleset >= 0:
            if libc.syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)):
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")
            os.close(ruleset)
            layers += landlock_layers
        os.chdir(spec["workdir"])
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(spec["stdout_fd"], 1)
        os.dup2(spec["stderr_fd"], 2)
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, 1 << 20)
        os.write(report_fd, ("OK " + json.dumps(layers) + "\n").encode())
        argv = [spec["python"], "-I", "-B", spec["program"]]
        os.execve(spec["python"], argv, spec["env"])
    except BaseException as e:  # noqa: BLE001 - reported to the supervisor, then exit
        try:
            os.write(report_fd, f"ERR {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(127)


def _kill_all_of_uid(uid: int) -> int:
    """Kill every process of ``uid`` with ``kill(-1)`` sent from that uid (atomic against
    forks); return how many live ones are left."""
    left = 0
    for attempt in range(50):
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:  # noqa: BLE001
                os._exit(1)
            os._exit(0)
        os.waitpid(pid, 0)
        left = _live_processes_of(uid)
        if left == 0:
            return 0
        time.sleep(0.01 * min(attempt + 1, 10))
    return left


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(pid) for pid in f.read().split()]
    except OSError:
        pass
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                        found.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _reap_descendants(limit_s: float = 10.0) -> int:
    """Kill and reap every descendant. As a child subreaper, the supervisor inherits the
    program's orphans, even those that left its process group; return how many remain."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for pid in _children():
            try:  # our own child: its pid cannot be reused before we reap it
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return 0
        time.sleep(0.002)
    return len(_children())


def _supervise_main() -> None:
    spec = json.loads(sys.stdin.read())
    _libc().prctl(ctypes.c_int(_PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), ctypes.c_ulong(0),
                  ctypes.c_ulong(0), ctypes.c_ulong(0))
    report_r, report_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _child(spec, report_w)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    layers, setup_error = [], None
    for line in message.splitlines():
        if line.startswith("OK "):
            layers = json.loads(line[3:])
        elif line.startswith("ERR "):
            setup_error = line[4:]
    deadline = start + spec["timeout_s"]
    timed_out = False
    pause = 0.001
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, 0.02)
    duration = time.monotonic() - start
    try:  # the leader is not reaped yet, so its group id cannot have been reused
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    uid = spec["uid"]
    leftover = _kill_all_of_uid(uid) if uid is not None else 0
    leftover = max(leftover, _reap_descendants())
    returncode = None if timed_out else (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    json.dump({"returncode": returncode, "timed_out": timed_out, "duration_s": round(duration, 4),
               "layers": layers, "setup_error": setup_error, "leftover_processes": leftover}, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--supervise"]:
        _supervise_main()
    elif sys.argv[1:2] == ["--kill-uid"]:
        sys.exit(1 if _kill_all_of_uid(int(sys.argv[2])) else 0)
    else:
        sys.exit("usage: code_sandbox.py --supervise < spec.json | --kill-uid UID")
    sys.exit(0)

import secrets  # noqa: E402  (the public API: not needed by the supervisor)
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import lru_cache  # noqa: E402

from .fences import PYTHON_TAGS, fenced_blocks  # noqa: E402
from .params import check, is_int  # noqa: E402

__all__ = [
    "SandboxLimits",
    "ExecutionResult",
    "run_program",
    "check_code",
    "extract_code",
    "require_unsafe_code_confirmation",
    "code_execution_confirmed",
]

# --- the public API ---------------------------------------------------------------------

ALLOW_ENV_VAR = "HF_ALLOW_CODE_EVAL"


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed run.

    timeout_s: wall clock, seconds, then the whole run is killed.
    memory_mb: address space per process (RLIMIT_AS), MiB.
    max_processes: processes (tasks) the program may have at once (RLIMIT_NPROC).
    max_file_mb: largest file the program may write, stdout and stderr included (RLIMIT_FSIZE).
    cpu_s: CPU seconds per process (RLIMIT_CPU); None means ``ceil(timeout_s)``.
    max_open_files: RLIMIT_NOFILE.
    """

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 16
    max_file_mb: int = 16
    cpu_s: int | None = None
    max_open_files: int = 256

    def __post_init__(self) -> None:
        check("SandboxLimits", isinstance(self.timeout_s, (int, float)) and not isinstance(self.timeout_s, bool)
              and 0 < self.timeout_s <= 3600, "timeout_s", self.timeout_s, "a number in (0, 3600]")
        check("SandboxLimits", is_int(self.memory_mb) and 64 <= self.memory_mb <= 1 << 20, "memory_mb",
              self.memory_mb, "an integer in [64, 1048576]")
        check("SandboxLimits", is_int(self.max_processes) and 1 <= self.max_processes <= 4096, "max_processes",
              self.max_processes, "an integer in [1, 4096]")
        check("SandboxLimits", is_int(self.max_file_mb) and 1 <= self.max_file_mb <= 1 << 20, "max_file_mb",
              self.max_file_mb, "an integer in [1, 1048576]")
        check("SandboxLimits", self.cpu_s is None or (is_int(self.cpu_s) and 1 <= self.cpu_s <= 3600), "cpu_s",
              self.cpu_s, "None or an integer in [1, 3600]")
        check("SandboxLimits", is_int(self.max_open_files) and 16 <= self.max_open_files <= 65536, "max_open_files",
              self.max_open_files, "an integer in [16, 65536]")
        for name in ("memory_mb", "max_processes", "max_file_mb", "cpu_s", "max_open_files"):
            value = getattr(self, name)  # a numpy integer becomes an int: the limits travel as JSON
            object.__setattr__(self, name, None if value is None else int(value))

    @property
    def effective_cpu_s(self) -> int:
        return self.cpu_s if self.cpu_s is not None else max(1, int(-(-self.timeout_s // 1)))


@dataclass(frozen=True)
class ExecutionResult:
    """What happened to one program.

    status: "passed" (exit 0), "failed" (non-zero exit: a failed assertion, an exception),
        "timeout" (wall clock or CPU limit), "error" (stopped by the sandbox: memory, file
        size, a signal).
    returncode: the exit status, negative for a signal, None when killed at the timeout.
    reason: one line saying why, for a status other than "passed".
    containment: the layers that were in place (see the module docstring).
    """

    passed: bool
    status: str
    returncode: int | None
    reason: str
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    network_isolated: bool
    containment: tuple[str, ...]


# --- the safety switch ------------------------------------------------------------------


def code_execution_confirmed(confirm_run_unsafe_code: bool = False) -> bool:
    """True when running model code was allowed: by the argument or ``HF_ALLOW_CODE_EVAL=1``."""
    return bool(confirm_run_unsafe_code) or os.environ.get(ALLOW_ENV_VAR) == "1"


def require_unsafe_code_confirmation(confirm_run_unsafe_code: bool = False) -> None:
    """Raise ``PermissionError`` unless running model-written code was explicitly allowed.

    lm-eval 0.4.13 checks ``--confirm_run_unsafe_code`` once, in ``evaluator.evaluate``, for
    tasks whose YAML says ``unsafe_code: true``, and does not pass it on to task code or
    metrics. Its own code tasks (humaneval, mbpp) rely on the ``code_eval`` metric, which
    refuses unless ``HF_ALLOW_CODE_EVAL=1``. We accept the same variable, or an explicit
    ``confirm_run_unsafe_code=True`` from a caller that saw the flag.
    """
    if not code_execution_confirmed(confirm_run_unsafe_code):
        raise PermissionError(
            "refusing to run model-generated code: pass --confirm_run_unsafe_code to lm_eval, "
            "--confirm-run-unsafe-code to qr-eval, or set HF_ALLOW_CODE_EVAL=1"
        )


# --- extracting and assembling programs ---------------------------------------------------

def extract_code(answer_text: str) -> str | None:
    """The last block tagged as Python in an answer (```python, ```py, ...), else its last
    untagged block, else its last fenced block of any kind (``fences.PYTHON_TAGS``).

    A block left open at the end of the text (a generation cut by its token budget) counts.
    Empty blocks are ignored. None when the answer has no fenced block. Pass the answer
    segment, not the reasoning, for reasoning models. The code's lines end in a newline
    whatever line break the answer used (CRLF, ...).
    """
    blocks = [block for block in fenced_blocks(answer_text) if block.body.strip()]
    tagged = [block for block in blocks if block.tag and block.tag in PYTHON_TAGS]
    untagged = [block for block in blocks if not block.tag]
    for candidates in (tagged, untagged, blocks):
        if candidates:
            return "\n".join(candidates[-1].body.splitlines()).strip("\n") + "\n"
    return None


def check_code(
    completion_code: str,
    test_code: str,
    entry_point: str | None = None,
    limits: SandboxLimits | None = None,
    *,
    python: str | None = None,
    confirm_run_unsafe_code: bool = False,
) -> ExecutionResult:
    """Run ``completion_code`` followed by ``test_code``; HumanEval style when ``entry_point``
    is given (the tests define ``check(candidate)``, called as ``check(entry_point)``)."""
    program = completion_code.rstrip("\n") + "\n\n\n" + test_code.rstrip("\n") + "\n"
    if entry_point is not None:
        if not entry_point.isidentifier():
            raise ValueError(f"entry_point={entry_point!r} is invalid: must be a Python identifier")
        program += f"\n\ncheck({entry_point})\n"
    return run_program(program, limits, python=python, confirm_run_unsafe_code=confirm_run_unsafe_code)


# --- running ------------------------------------------------------------------------------

_TAIL_CHARS = 4000
_UID_BASE = 1_700_000_000  # dedicated uids, far above any account's
_UID_SPAN = 1 << 16
_uids_in_use: set[int] = set()
_uid_lock = threading.Lock()


def run_program(
    program: str,
    limits: SandboxLimits | None = None,
    *,
    python: str | None = None,
    confirm_run_unsafe_code: bool = False,
) -> ExecutionResult:
    """Run ``program`` (Python source) in a fresh sandbox and say how it ended.

    Raises ``PermissionError`` when running model code was not confirmed, ``RuntimeError``
    when the sandbox itself could not be set up (never graded as the program's failure).
    """
    require_unsafe_code_confirmation(confirm_run_unsafe_code)
    if not sys.platform.startswith("linux"):
        raise NotImplementedError("the code sandbox supports Linux only")
    limits = limits or SandboxLimits()
    as_root = os.geteuid() == 0
    interpreter, read_roots = _interpreter(python, need_world_access=as_root)
    uid = _acquire_uid() if as_root else None
    workdir = tempfile.mkdtemp(prefix="qr_sandbox_")
    report: dict | None = None
    try:
        program_path = os.path.join(workdir, "program.py")
        with open(program_path, "w", encoding="utf-8") as f:
            f.write(program)
        os.chmod(program_path, 0o644)  # readable by the sandbox uid whatever our umask
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            spec = {
                "python": interpreter,
                "program": program_path,
                "workdir": workdir,
                "uid": uid,
                "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
                        "TMPDIR": workdir},
                "timeout_s": limits.timeout_s,
                "cpu_s": limits.effective_cpu_s,
                "memory_bytes": limits.memory_mb << 20,
                "max_processes": limits.max_processes,
                "max_file_bytes": limits.max_file_mb << 20,
                "max_open_files": limits.max_open_files,
                "read_roots": read_roots,
                "stdout_fd": out.fileno(),
                "stderr_fd": err.fileno(),
            }
            report = _supervise(spec)
            stdout_tail, stderr_tail = _tail(out), _tail(err)
    finally:
        if uid is not None and (report is None or report.get("leftover_processes")):
            _kill_uid_via_launcher(uid)
        _remove_tree(workdir)
        if uid is not None:
            if report is None or "landlock-fs" not in report.get("layers", ()):
                _sweep_world_writable(uid, keep=workdir)
            with _uid_lock:
                _uids_in_use.discard(uid)
    if report.get("setup_error"):
        raise RuntimeError(f"code sandbox could not start the program: {report['setup_error']}")
    status, reason = _classify(report, stderr_tail)
    return ExecutionResult(
        passed=status == "passed",
        status=status,
        returncode=report["returncode"],
        reason=reason,
        stdout_tail=stdout_tail,
        stderr_tail=stderr_tail,
        duration_s=report["duration_s"],
        network_isolated="netns" in report["layers"],
        containment=tuple(report["layers"]),
    )


def _classify(report: dict, stderr_tail: str) -> tuple[str, str]:
    code = report["returncode"]
    if report["timed_out"]:
        return "timeout", "wall-clock limit reached; the program and its descendants were killed"
    if code == 0:
        return "passed", ""
    if code is not None and code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return "timeout", "CPU time limit (SIGXCPU)"
        if sig == signal.SIGXFSZ:
            return "error", "file size limit (SIGXFSZ): a file or the program's output grew too large"
        if sig == signal.SIGKILL:
            return "error", "killed by SIGKILL (CPU hard limit or out of memory)"
        return "error", f"killed by {name}"
    last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
    if last.startswith("MemoryError"):
        return "error", "memory limit (MemoryError)"
    if "[Errno 27]" in last:  # EFBIG: Python ignores SIGXFSZ, so the write fails instead
        return "error", "file size limit: a file or the program's output grew too large"
    return "failed", last or f"exit status {code}"


def _tail(f) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 4 * _TAIL_CHARS))
    return f.read().decode("utf-8", errors="replace")[-_TAIL_CHARS:]


def _launcher_command(*args: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), *args]


def _supervise(spec: dict) -> dict:
    try:
        proc = subprocess.run(
            _launcher_command("--supervise"),
            input=json.dumps(spec).encode(),
            capture_output=True,
            pass_fds=(spec["stdout_fd"], spec["stderr_fd"]),
            timeout=spec["timeout_s"] + 30,
            start_new_session=True,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError("code sandbox supervisor did not finish") from e
    try:
        return json.loads(proc.stdout.decode())
    except ValueError:
        raise RuntimeError(
            f"code sandbox supervisor failed (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        ) from None


def _kill_uid_via_launcher(uid: int) -> None:
    subprocess.run(_launcher_command("--kill-uid", str(uid)), capture_output=True, timeout=60)


def _acquire_uid() -> int:
    busy = {u for u, _, _ in _processes() if _UID_BASE <= u < _UID_BASE + _UID_SPAN}
    with _uid_lock:
        for _ in range(256):
            uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
            if uid in _uids_in_use or uid in busy or _uid_has_account(uid):
                continue
            _uids_in_use.add(uid)
            return uid
    raise RuntimeError("code sandbox: no free sandbox uid")


def _uid_has_account(uid: int) -> bool:
    import grp
    import pwd

    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


def _sweep_world_writable(uid: int, keep: str) -> None:
    """Delete what the sandbox uid left at the top of world-writable directories (not ``keep``)."""
    for directory in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if os.path.realpath(path) == os.path.realpath(keep):
                continue
            try:
                st = os.lstat(path)
                if st.st_uid != uid:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                continue


def _remove_tree(path: str) -> None:
    """Delete the working directory. Never changes anything outside it."""
    if os.geteuid() != 0:  # the program may have left directories we cannot list or empty
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                os.chmod(path, 0o700)
            for dirpath, dirnames, _ in os.walk(path):  # does not follow symbolic links
                for name in dirnames:
                    directory = os.path.join(dirpath, name)
                    if stat.S_ISDIR(os.lstat(directory).st_mode):
                        os.chmod(directory, 0o700)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


_PROBE = (
    "import json, os, sys; print(json.dumps({'stdlib': os.path.dirname(os.__file__), "
    "'roots': [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path]}))"
)
_SYSTEM_READ_ROOTS = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/dev", "/proc", "/sys"]


@lru_cache(maxsize=8)
def _interpreter(python: str | None, need_world_access: bool) -> tuple[str, list[str]]:
    """The interpreter for programs and the directories it needs to read."""
    candidates = [python] if python else [sys.executable, "/usr/local/bin/python3", "/usr/bin/python3"]
    refused = []
    for candidate in candidates:
        if not candidate or not os.path.isfile(candidate):
            refused.append(f"{candidate}: not a file")
            continue
        try:
            probe = subprocess.run([candidate, "-I", "-c", _PROBE], capture_output=True, timeout=60, check=True,
                                   env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
            paths = json.loads(probe.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            refused.append(f"{candidate}: {e}")
            continue
        real = os.path.realpath(candidate)
        if need_world_access and not (_world_reachable(real, stat.S_IXOTH)
                                      and _world_reachable(paths["stdlib"], stat.S_IROTH | stat.S_IXOTH)):
            refused.append(f"{candidate}: not readable by an unprivileged uid")
            continue
        roots = [os.path.dirname(real), os.path.dirname(os.path.abspath(candidate))]
        roots += [p for p in paths["roots"] if p and os.path.isabs(p)]
        roots += _SYSTEM_READ_ROOTS
        unique = list(dict.fromkeys(os.path.realpath(r) for r in roots if os.path.exists(r)))
        return candidate, unique
    raise RuntimeError("code sandbox: no usable Python interpreter (" + "; ".join(refused) + "); pass python=")


def _world_reachable(path: str, mode: int) -> bool:
    path = os.path.realpath(path)
    try:
        if os.stat(path).st_mode & mode != mode:
            return False
        parent = os.path.dirname(path)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False

"""A local ``vllm serve`` process for a model: what ``qr-eval demo --backend server``, the
``qr-completions`` tests and ``benchmarks/served_rescue.py`` run against.

It is started as ``python -m vllm.entrypoints.openai.api_server`` (the server ``vllm serve``
runs): the CPU build's ``vllm`` command asks for the version of a distribution named
``vllm`` and stops, as lm-eval's import does.

It listens on a free loopback port, is ready when ``/health`` answers, writes its log to a
file (a pipe nobody reads would stall it), and is stopped with its engine processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

from .errors import ServerError


@dataclass(frozen=True)
class Server:
    """A running ``vllm serve``: its completions URL, its process and its log file."""

    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def vllm_server(model: str | Path, *args: str, startup_s: float = 600, log: Path | None = None) -> Iterator[Server]:
    """Serve ``model`` with ``vllm serve`` (``args`` added to its command line) until the
    block ends; its URL is ``http://127.0.0.1:PORT/v1/completions`` and the model's name on the
    server is ``str(model)``. The CPU build needs ``VLLM_CPU_KVCACHE_SPACE`` (1 GiB unless set)."""
    port = _free_port()
    if log is None:
        handle, name = tempfile.mkstemp(prefix="vllm-serve-", suffix=".log")
        os.close(handle)
        log = name
    log = Path(log)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_until_healthy(process, port, startup_s, log)
        yield Server(f"http://127.0.0.1:{port}/v1/completions", process, log)
    finally:
        stop(process)


def stop(process: subprocess.Popen, grace_s: float = 30) -> None:
    """Stop the server and the engine processes it started (its whole process group)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_until_healthy(process: subprocess.Popen, port: int, startup_s: float, log: Path) -> None:
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"vllm serve exited with {process.returncode} before it was ready: {_tail(log)}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(process)
    raise ServerError(f"vllm serve was not ready after {startup_s:.0f}s (log: {log})")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(log: Path, lines: int = 3) -> str:
    text = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(text[-lines:]) + f" (log: {log})"

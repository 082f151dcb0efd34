"""Helpers for tests that run genprior/run.py in processes of its own."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from genprior import run

RUN_PY = str(Path(run.__file__))


def child_env(**extra: str) -> dict:
    """The environment of a run in a process of its own, read when the process starts: the
    test's own cache and data folders (tests/conftest.py sets them per test), one thread."""
    return dict(os.environ, OMP_NUM_THREADS="1", **extra)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(args: list[str], run_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`args` under accelerate launch with 2 CPU processes (gloo); `env` adds variables."""
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "--main_process_port", str(free_port()), RUN_PY, *args, f"run_dir={run_dir}"],
                          env=child_env(**(env or {})), capture_output=True, text=True)


def kill_after_first_checkpoint(args: list[str], run_dir: Path, iterations: int) -> int:
    """Start a run, SIGKILL it as soon as its first checkpoint exists; the checkpoint's step."""
    proc = subprocess.Popen([sys.executable, RUN_PY, *args, f"run_dir={run_dir}"], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < at < iterations, "the run finished before it could be killed; make it longer"
    return at

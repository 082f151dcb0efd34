"""genprior.host: with the allocator set to retain, freed large buffers stay mapped (no re-faulting)."""
import os
import subprocess
import sys

import pytest

# Allocate and free a 256 MB tensor; print how much of it is still resident afterwards.
PROBE = """
import os, torch
from genprior.host import retain_freed_memory
applied = retain_freed_memory()
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
before = rss()
x = torch.ones(64 * 2**20)  # 256 MB, touched
del x
print(applied, (rss() - before) / 2**20)
"""


def probe(mode: str) -> tuple[bool, float]:
    env = {**os.environ, "GENPRIOR_MALLOC": mode, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    applied, kept_mb = out.stdout.split()
    return applied == "True", float(kept_mb)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_stays_mapped_and_default_returns_it():
    applied, kept = probe("retain")
    assert applied and kept > 200  # the freed 256 MB are still mapped, ready for the next step
    applied, kept = probe("default")
    assert not applied and kept < 50  # glibc's default: a block this large was mmap'd and is gone


THREADS = """
import torch
from genprior.host import cpu_threads
print(cpu_threads({requested}))
"""


def threads_in(env: dict, requested=None) -> int:
    env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    out = subprocess.run([sys.executable, "-c", THREADS.format(requested=requested)], env=env, capture_output=True,
                         text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 usable CPUs")
def test_cpu_threads_undo_accelerate_launch_pinning_but_respect_everything_else():
    usable = len(os.sched_getaffinity(0))
    launched = {"ACCELERATE_DYNAMO_BACKEND": "NO", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    assert threads_in({**launched, "LOCAL_WORLD_SIZE": "1"}) == usable  # accelerate's OMP_NUM_THREADS=1 undone
    assert threads_in({**launched, "LOCAL_WORLD_SIZE": str(usable)}) == 1  # one core per local process
    assert threads_in({**launched, "LOCAL_WORLD_SIZE": "1"}, requested=1) == 1  # threads=1 wins
    plain = {"ACCELERATE_DYNAMO_BACKEND": None, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    assert threads_in(plain) == 1  # not under accelerate launch: the user's OMP_NUM_THREADS stands


def test_a_sweep_job_with_no_thread_count_gets_the_process_default_back():
    """threads=1,null under one process: the second job is not left on the first one's single thread."""
    import torch

    from genprior import host

    start = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # as this process started (whatever the machine)
        host._initial_threads = None
        assert host.cpu_threads(1) == 1
        assert host.cpu_threads(None) == 3
    finally:
        torch.set_num_threads(start)
        host._initial_threads = None


def test_an_unknown_allocator_mode_is_one_line(monkeypatch):
    from genprior.errors import ConfigError
    from genprior.host import retain_freed_memory

    monkeypatch.setenv("GENPRIOR_MALLOC", "defualt")
    with pytest.raises(ConfigError, match="GENPRIOR_MALLOC must be retain or default, got 'defualt'"):
        retain_freed_memory()

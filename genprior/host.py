"""Process-level settings for the host a job runs on: the C allocator, CPU threads, the device.

A training loop on the CPU allocates and frees the same large buffers every step
(activations, gradients, a batch of real images). glibc serves blocks above 32 MB with
mmap and gives them back with munmap, and trims the heap top back to the OS when it is
free, so the next step faults every page in again and the kernel zeroes it. In a VM each
fault is dearer still. Measured on this project's 2-core VM (`bench/iteration_time.py`,
FashionMNIST IPC 10, fp32, median of 3; bench/results/iteration_time_cpu_glibc_default.json
against iteration_time_cpu.json): exact MTT 101.5 -> 19.8 s per iteration, DC 30.7 -> 27.5 s,
DM 4.2 -> 3.1 s; the price is that peak memory stays allocated (MTT's 6.1 -> 7.9 GB peak).

`retain_freed_memory()` tells glibc to keep freed memory for reuse instead. The command
lines call it first (run, evaluate, experts, generators.train); importing genprior alone
changes nothing. Set GENPRIOR_MALLOC=default to leave the allocator alone, or preload
another allocator (jemalloc, tcmalloc): then glibc's malloc is not the one in use and
the call is moot.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_PR_SET_PDEATHSIG = 1  # prctl option, from linux/prctl.h


def retain_freed_memory() -> bool:
    """Serve every block from the heap and never trim it (glibc on Linux); True if applied.

    Otherwise glibc maps and unmaps every large activation buffer: training a ConvNet on an
    IPC-10 set spent ~20 % of its CPU time in the kernel, and took 0.78x the wall time with
    this (median of 3 alternating pairs of 100-epoch runs, farm-bench, 2-core CPU)."""
    mode = os.environ.get("GENPRIOR_MALLOC", "retain")
    if mode not in ("retain", "default"):
        from genprior.errors import ConfigError

        raise ConfigError(f"GENPRIOR_MALLOC must be retain or default, got {mode!r}")
    if mode == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # musl and others have no mallopt semantics to rely on
    except (OSError, AttributeError):
        return False
    # no mmap'd blocks: large buffers come from the heap and go back to it, not to the OS
    # trim threshold -1: never hand the heap top back (mallopt(3): "-1 disables trimming completely")
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))


def end_with_launcher() -> bool:
    """Under `accelerate launch`, receive SIGTERM when the launcher dies; True if arranged.

    Accelerate's single-process launcher does not pass SIGTERM on: `kill <launcher>`
    would end the launcher and leave the run going, still holding its run directory.
    Linux's parent-death signal (prctl PR_SET_PDEATHSIG) turns the launcher's death into
    a SIGTERM here, which the run handles like any other (every finished step saved)."""
    if "ACCELERATE_DYNAMO_BACKEND" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def cpu_threads(requested: int | None) -> int:
    """Set and return the intra-op threads of this process when it computes on the CPU.

    `accelerate launch` exports OMP_NUM_THREADS=1 to its workers unless it was passed
    `--cpu` or a thread count, even for a single process on a machine with no GPU: the
    README's main job would use one core of two. So under that launcher (which always
    exports ACCELERATE_DYNAMO_BACKEND) the default (None) shares the CPUs this process may
    run on among the processes of this node. Started any other way, OMP_NUM_THREADS and
    torch's own default are left as they are. An int sets the count outright (threads=1
    pins a run to one core, e.g. beside another job)."""
    import torch

    global _initial_threads
    if _initial_threads is None:
        _initial_threads = torch.get_num_threads()
    if requested is not None:
        torch.set_num_threads(int(requested))
    elif "ACCELERATE_DYNAMO_BACKEND" in os.environ and not torch.cuda.is_available():
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, usable // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    else:  # as the process started: an earlier job of a sweep (threads=1) must not carry over
        torch.set_num_threads(_initial_threads)
    return torch.get_num_threads()


_initial_threads: int | None = None  # torch's thread count before cpu_threads first set it


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks that nothing be downloaded (weights of any kind)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_device(name: str, what: str = "device") -> str:
    """`name` if this machine has that torch device, else one ConfigError naming what it has."""
    import torch

    from genprior.errors import ConfigError

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what} {name} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    here = "cpu" + (f", cuda (0..{torch.cuda.device_count() - 1})" if torch.cuda.is_available() else "")
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        reason = "has no CUDA device" if not torch.cuda.is_available() else f"has no {name}"
        raise ConfigError(f"{what} {name}: this machine {reason}; valid here: {here}")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{what} {name} is not supported here; valid here: {here}")
    return name

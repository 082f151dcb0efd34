"""Process-level settings for the host a job runs on: the C allocator.

A training loop on the CPU allocates and frees the same large buffers every step
(activations, gradients, a batch of real images). glibc serves blocks above 32 MB with
mmap and gives them back with munmap, and trims the heap top back to the OS when it is
free, so the next step faults every page in again and the kernel zeroes it. In a VM each
fault is dearer still. Measured on this project's 2-core VM (`bench/iteration_time.py`,
FashionMNIST IPC 10, fp32): exact MTT 31.5 -> 20.7 s per iteration with 12x fewer page
faults (24M -> 2M), DM 3.6 -> 3.0 s; the price is that peak memory stays allocated
(MTT's 6.1 -> 8.0 GB peak RSS).

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
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Serve every block from the heap and never trim it (glibc on Linux); True if applied."""
    if os.environ.get("GENPRIOR_MALLOC", "retain") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # musl and others have no mallopt semantics to rely on
    except (OSError, AttributeError):
        return False
    # no mmap'd blocks: large buffers come from the heap and go back to it, not to the OS
    # trim threshold -1: never hand the heap top back (mallopt(3): "-1 disables trimming completely")
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))

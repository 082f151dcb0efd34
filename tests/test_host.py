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

"""tune_malloc fixes glibc's thresholds for real: freed large blocks go back to the system.

Each case runs in a fresh interpreter, since the tuning is process-wide. The scenario is the one
that grew the gateway's RSS: large blocks freed once (which raises glibc's dynamic threshold),
then allocated again and freed below a block still in use, so the heap cannot shrink.
"""

from __future__ import annotations

import subprocess
import sys

SCENARIO = """
import ctypes, ctypes.util, sys
from pathlib import Path
from sipbridge.memory import THRESHOLD, tune_malloc

def anonymous_kb():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1])

if sys.argv[1] == "tuned":
    assert tune_malloc() is True
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 2 * THRESHOLD
libc.free(libc.malloc(size))  # glibc now serves blocks of this size from its heap
before = anonymous_kb()
blocks = [libc.malloc(size) for _ in range(200)]
pin = libc.malloc(64)  # still in use, above the blocks
for block in blocks:
    libc.memset(block, 1, size)
held = anonymous_kb() - before
for block in blocks:
    libc.free(block)
print(held, anonymous_kb() - before)
"""


def _held_and_kept_kb(mode: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    held, kept = map(int, done.stdout.split())
    return held, kept


def test_freed_blocks_go_back_after_tuning():
    held, kept = _held_and_kept_kb("tuned")
    assert held > 40_000, held  # 200 touched blocks of 256 KiB were resident
    assert kept < 5_000, f"{kept} KiB still resident after free"


def test_without_tuning_glibc_keeps_them():
    # The behaviour tune_malloc exists for; if a glibc stops doing this, the tuning can go.
    held, kept = _held_and_kept_kb("default")
    assert held > 40_000, held
    assert kept > 40_000, f"only {kept} KiB kept: glibc returned the freed blocks by itself"

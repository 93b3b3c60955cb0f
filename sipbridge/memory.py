"""Process memory: keep glibc's heap from holding on to what a long run frees.

glibc raises its mmap threshold each time an mmap'd chunk is freed (mallopt(3), "dynamic mmap
threshold"), after which large blocks come from the heap, whose middle it cannot give back. A
steady 1,500-2,000 commands/s then grew RSS in 8-14 MB steps that never came back (pjsip's
transaction pools and pydantic-core's buffers are malloc'd; Python's own heap and SQLite's stayed
flat, measured with tracemalloc and sqlite3_memory_used). Fixing both thresholds at 128 KiB, as
the GLIBC_TUNABLES `glibc.malloc.mmap_threshold` / `trim_threshold` would, kept it flat after
warm-up in the same run (docs/performance.md, "Memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds; False (and nothing done) on another libc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set: int = mallopt(_M_MMAP_THRESHOLD, THRESHOLD)
    trim_set: int = mallopt(_M_TRIM_THRESHOLD, THRESHOLD)
    done = mmap_set == 1 and trim_set == 1
    log.debug("malloc thresholds fixed at %d bytes: %s", THRESHOLD, done)
    return done

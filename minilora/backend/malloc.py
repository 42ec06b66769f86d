"""Allocator tuning: keep large temporaries in the heap (Linux, glibc only)."""

import ctypes
import ctypes.util
import os

# glibc serves every allocation above 128 KiB with a fresh mmap and hands it back
# to the system when freed, so each (B, T, C) temporary of every op is faulted in
# page by page on every training step. Raising the mmap threshold and the trim
# threshold once keeps those blocks in the process for reuse: training steps got
# about 25% faster here (README, "Speed and threads"). MINILORA_NO_MALLOPT=1 turns it off.

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_malloc():
    """Apply the thresholds above if this is glibc; returns whether it did."""
    if os.environ.get("MINILORA_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): leave malloc alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest allowed value on 64-bit
    ok &= mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    ok &= mallopt(_M_TOP_PAD, 64 * 1024 * 1024)
    return bool(ok)


MALLOC_TUNED = tune_malloc()


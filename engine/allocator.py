"""Memory settings for CPU training and extraction: the page-fault churn of large tensors, measured and removed.

Why: glibc serves every block over its mmap threshold (dynamic, at most 32 MiB on 64-bit) with a fresh mmap and
unmaps it on free, so a training step's large tensors are faulted in again, 4 KiB page by 4 KiB page, on every
step: 30-50 % of DeepEmoCluster's and the chunk LSTM's CPU time was the kernel handling minor page faults
(issue 25). Two remedies, measured by bench/bench_allocator.py (README, "Speed"):

  thp    (default) torch's large CPU tensors (>= 2 MiB) on transparent huge pages (torch's THP_MEM_ALLOC_ENABLE):
         one fault per 2 MiB instead of per 4 KiB, and memory is returned as before, so the peak is unchanged.
         Works where the kernel allows THP on request (/sys/kernel/mm/transparent_hugepage/enabled: always or
         madvise); elsewhere it changes nothing. numpy's own request of huge pages for its arrays >= 4 MiB is
         turned off (NUMPY_MADVISE_HUGEPAGE=0): those are the loaders' short-lived batch arrays, and each
         huge page they fault in right after a training step freed torch's cost the kernel a compaction, 100-400
         ms of kernel time per audio-text batch (tests/test_allocator.py, docs/speed.md).
  heap   thp, and no mmap for large blocks at all (mallopt M_MMAP_MAX 0; M_TRIM_THRESHOLD 2 GiB - 1, the largest
         mallopt takes; M_TOP_PAD 1 GiB): freed blocks stay in the heap and are reused, so almost no fault is left,
         at the price of memory the process keeps (peak RSS up to 3.5x: docs/speed.md's table).
  glibc  neither: glibc's and torch's own defaults.

The mode is SER_ALLOCATOR (default thp). torch reads THP_MEM_ALLOC_ENABLE once, at its first CPU allocation, so
the variable is set when the engine package is imported (`early`, engine/__init__.py: before any script builds a
tensor); a value the user
set is kept. The mallopt settings are made by engine.cli.entry (`configure`) before the script's work, per
process, through ctypes: no preloaded library, no variable needed at launch. Off glibc the mallopt part is
skipped (said once on stderr).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
NAMES = {M_TRIM_THRESHOLD: "M_TRIM_THRESHOLD", M_TOP_PAD: "M_TOP_PAD", M_MMAP_MAX: "M_MMAP_MAX"}
MODES = {  # mode -> (torch tensors on huge pages, mallopt settings)
    "thp": (True, {}),
    "heap": (True, {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 1 << 30}),
    "glibc": (False, {}),
}
DEFAULT = "thp"
ENV = "SER_ALLOCATOR"
THP_ENV = "THP_MEM_ALLOC_ENABLE"  # torch's (c10/core/alloc_cpu.cpp): its allocations >= 2 MiB madvised huge
NUMPY_ENV = "NUMPY_MADVISE_HUGEPAGE"  # numpy's: read at its import; numpy's _set_madvise_hugepage after it
_applied: str | None = None


def mode_from_env() -> str:
    """SER_ALLOCATOR's mode (DEFAULT when unset); ValueError naming the variable for an unknown one."""
    mode = os.environ.get(ENV, "").strip().lower() or DEFAULT
    if mode not in MODES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: not one of {', '.join(MODES)}")
    return mode


def early() -> None:
    """Set torch's huge-page variable for SER_ALLOCATOR's mode, before torch's first CPU allocation reads it
    (called when the engine package is imported). An unknown mode does nothing here: `configure` reports it."""
    try:
        thp = MODES[mode_from_env()][0]
    except ValueError:
        return
    if thp:
        os.environ.setdefault(THP_ENV, "1")
        if NUMPY_ENV not in os.environ:  # a value the user set is kept (numpy applied it at its import)
            os.environ[NUMPY_ENV] = "0"  # for child processes
            numpy_hugepages(False)


def numpy_hugepages(on: bool) -> bool:
    """Whether numpy madvises huge pages for its large arrays from now on (numpy's private switch, the same as
    NUMPY_MADVISE_HUGEPAGE at its import); returns the previous setting, False where numpy lacks the switch."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        return False
    return bool(_set_madvise_hugepage(on))


def _libc():
    """glibc's handle, or None elsewhere (mallopt is glibc's)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (musl's mallopt is a stub)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return libc


def configure(mode: str | None = None) -> dict[str, int | str]:
    """Apply `mode` (default: SER_ALLOCATOR, else DEFAULT) to this process once; returns what is in effect
    ({setting: value}; THP_MEM_ALLOC_ENABLE as the environment holds it). A second call with another mode is
    refused (ValueError): settings made for one workload must not silently change under another in the same
    process. The huge-page part takes effect only where `early` ran before torch's first allocation."""
    global _applied
    mode = mode or mode_from_env()
    if mode not in MODES:
        raise ValueError(f"allocator mode {mode!r}: not one of {', '.join(MODES)}")
    thp, settings = MODES[mode]
    if _applied is not None and _applied != mode:
        raise ValueError(f"allocator already set to {_applied!r} in this process; cannot switch to {mode!r}")
    done: dict[str, int | str] = {e: os.environ[e] for e in (THP_ENV, NUMPY_ENV) if thp and e in os.environ}
    if _applied == mode:
        return {**done, **{NAMES[k]: v for k, v in settings.items()}}
    _applied = mode
    if not settings:
        return done
    libc = _libc()
    if libc is None:
        print(f"note: {ENV}={mode}: not glibc, the heap settings are skipped", file=sys.stderr)
        return done
    for param, value in settings.items():
        if libc.mallopt(param, value):
            done[NAMES[param]] = value
    return done


def applied() -> str | None:
    """The mode this process runs with (None before configure)."""
    return _applied

"""engine.allocator (issue 25): the default mode puts torch's large CPU tensors on huge pages, so a training step's
big tensors cost a few faults instead of thousands; `heap` keeps freed blocks for reuse; glibc's own defaults are
one SER_ALLOCATOR away; a bad mode is a clear error of every script. Each case runs in its own process: a mode is
per process, and torch reads its huge-page switch once."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# minor faults per allocate-fill-free cycle of a 64 MiB torch tensor, after one warm-up cycle, in a process that
# imports the engine first (as every script does)
PROBE = """
import resource
import engine
import torch
from engine import allocator
print(allocator.configure())
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16 << 20); del x
f0 = faults()
for _ in range(10):
    x = torch.ones(16 << 20); del x
print((faults() - f0) / 10)
"""
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def probe(mode: str) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "NUMPY_MADVISE_HUGEPAGE")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**env, "PYTHONPATH": str(ROOT), "SER_ALLOCATOR": mode}).stdout.split("\n")
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or "[never]" in (THP.read_text() if THP.is_file() else
                                                                          "[never]"),
                    reason="needs Linux with transparent huge pages on request (always or madvise)")
def test_the_default_mode_takes_far_fewer_page_faults_per_large_tensor():
    settings, glibc = probe("glibc")
    assert settings == "{}" and glibc > 10_000  # 64 MiB of 4 KiB pages, faulted in again every cycle
    settings, thp = probe("")  # unset: the default
    assert settings == "{'THP_MEM_ALLOC_ENABLE': '1', 'NUMPY_MADVISE_HUGEPAGE': '0'}" and thp < glibc / 10  # 2 MiB pages
    settings, heap = probe("heap")
    assert "'M_MMAP_MAX': 0" in settings and heap < thp  # the freed block comes back from the heap


def test_a_bad_mode_is_a_clear_error_of_every_script(tmp_path):
    r = subprocess.run([sys.executable, "corpus_info.py", "--corpus", "manifest", "--root", str(tmp_path / "x.csv")],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "SER_ALLOCATOR": "jemalloc"})
    assert r.returncode == 1 and r.stderr.strip() == "error: SER_ALLOCATOR='jemalloc': not one of thp, heap, glibc"


def test_one_mode_per_process():
    from engine import allocator
    allocator.configure()  # this test process: whatever its first script set (or the default now)
    mode = allocator.applied()
    assert allocator.configure(mode) == allocator.configure(mode)  # the same mode again: fine, nothing changes
    other = next(m for m in allocator.MODES if m != mode)
    with pytest.raises(ValueError, match=f"already set to {mode!r}"):
        allocator.configure(other)


NUMPY_PROBE = """
import engine
from numpy._core.multiarray import _get_madvise_hugepage
import os
print(_get_madvise_hugepage(), os.environ.get("NUMPY_MADVISE_HUGEPAGE"))
"""


@pytest.mark.parametrize("mode, user, expected", [("", None, "False 0"), ("heap", None, "False 0"),
                                                  ("glibc", None, "True None"), ("", "1", "True 1")])
def test_numpy_batch_arrays_stay_off_huge_pages_under_the_thp_modes(mode, user, expected):
    """thp and heap stop numpy's madvise of huge pages (the loaders' arrays, right after a step freed torch's huge
    pages, cost a compaction each), for child processes too; glibc leaves numpy's default; a user's value is kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "NUMPY_MADVISE_HUGEPAGE")}
    env.update({"PYTHONPATH": str(ROOT), "SER_ALLOCATOR": mode}, **({"NUMPY_MADVISE_HUGEPAGE": user} if user else {}))
    out = subprocess.run([sys.executable, "-c", NUMPY_PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=env).stdout.strip()
    assert out == expected

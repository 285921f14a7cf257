"""The engine every script imports before torch: the training loop, checkpoints, command-line helpers, plots.

One process-wide setting lives here because it must be made before torch loads its OpenMP runtime: OpenMP
threads that wait for work sleep (OMP_WAIT_POLICY=PASSIVE) instead of spinning. With spinning (libgomp's
default), a multi-threaded training beside other busy processes collapsed: each parallel region's threads burn
their time slices waiting for a descheduled peer (two concurrent MDREA runs on 2 cores: ~9x slower per step
than one thread). Sleeping keeps the thread count (so a seeded run's numbers do not change) and costs little
on a quiet machine; `python bench/bench_threads.py` measures both (docs/speed.md "Determinism"). A value the user
set is kept.

The second, for the same reason: torch reads THP_MEM_ALLOC_ENABLE (its large CPU tensors on transparent huge
pages, far fewer page faults per training step) once, at its first CPU allocation, so engine.allocator sets it
here for SER_ALLOCATOR's mode (default thp), before any script builds a tensor.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine import allocator  # noqa: E402

allocator.early()

#!/usr/bin/env python
"""FeatureStore read throughput (utterances/s, random order) and memory while iterating a multi-GB store.

    python bench/bench_store.py [--gb 4] [--frames 300] [--dims 128] [--dir /tmp/bench_store]

Writes a synthetic store of about --gb gigabytes (mel-sized utterances), then reads every utterance once in
random order, touching all its values. Reports anonymous resident memory (the process's own heap: what a
store held in Python objects would need) separately from file-backed pages (the OS page cache mapped in,
reclaimable), sampled during the store's passes.

Baseline, measured in the same run: the same random-order read-and-sum of every utterance in plain numpy on the
store's own shard files (`np.load(mmap_mode="r")` of each shard once per pass, then slices at the offsets and
frame counts taken from the store's index beforehand, so no FeatureStore lookup is timed): exactly the bytes the
store reads, and the two totals must agree. The passes alternate (store, baseline, store, baseline), best of 2
each, so both meet the same page-cache state; the ratio is store seconds / baseline seconds (1 = no overhead).
"""
import math
import shutil
import sys
import time
from array import array
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from features.store import FeatureStore, dir_size  # noqa: E402
from engine.cli import parser  # noqa: E402


def rss_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon", "RssFile", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


def write_store(root: Path, gb: float, frames: int, dims: int, rng) -> tuple[int, float]:
    """A synthetic store of about `gb` GiB under `root` (mel-sized utterances); (utterances, write seconds)."""
    n = int(gb * 2**30 / (frames * dims * 4))
    shutil.rmtree(root, ignore_errors=True)
    store = FeatureStore.create(root, name="bench", extractor="Bench", params={}, dims=dims, frame_rate=62.5)
    block = rng.normal(size=(frames * 2, dims)).astype(np.float32)
    t0 = time.time()
    with store.writer() as w:
        for i in range(n):
            w.add(f"utt{i:07d}", block[: int(rng.integers(frames // 2, frames * 3 // 2))])
    return n, time.time() - t0


def timed_passes(root: Path, order, plan, shard_files: list, peak: dict) -> tuple[float, float]:
    """Best-of-2 seconds of the store's and the plain-numpy baseline's read-and-sum of every utterance in `order`,
    the passes alternating so both meet the same page-cache state; the four sums must agree. `peak` gets the
    store passes' peak RSS."""
    def sample() -> None:
        r = rss_kb()
        for k in peak:
            peak[k] = max(peak[k], r[k])

    def store_pass() -> tuple[float, float]:
        s = FeatureStore(root)  # fresh: its shards are mapped lazily inside the pass, as on first use
        total = 0.0
        t0 = time.perf_counter()
        for j, utt in enumerate(order):
            total += float(s[utt].sum())  # touch every value
            if j % 2000 == 0:
                sample()
        t = time.perf_counter() - t0
        sample()
        return t, total

    def numpy_pass() -> tuple[float, float]:
        total = 0.0
        t0 = time.perf_counter()
        maps = [np.load(f, mmap_mode="r") for f in shard_files]  # each shard mapped once, inside the clock
        for j, (k, off, frames) in enumerate(zip(*plan)):
            total += float(maps[k][off: off + frames].sum())
            if j % 2000 == 0:
                rss_kb()  # the same sampling cost as the store's pass (not recorded)
        t = time.perf_counter() - t0
        del maps
        return t, total

    runs: dict[str, list[tuple[float, float]]] = {"store": [], "numpy": []}
    for _ in range(2):
        runs["store"].append(store_pass())
        runs["numpy"].append(numpy_pass())
    totals = [t for v in runs.values() for _, t in v]
    if not all(math.isclose(t, totals[0], rel_tol=1e-9, abs_tol=1e-6) for t in totals):
        raise SystemExit(f"the store's and the baseline's sums differ: {totals}")
    return min(t for t, _ in runs["store"]), min(t for t, _ in runs["numpy"])


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--gb", type=float, default=4.0, help="store size to write and read")
    ap.add_argument("--frames", type=int, default=300, help="frames per utterance")
    ap.add_argument("--dims", type=int, default=128, help="feature dimension")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench_store"), help="where the store is written")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, t_write = write_store(args.dir, args.gb, args.frames, args.dims, rng)
    size = dir_size(args.dir)
    base = rss_kb()
    t0 = time.time()
    store = FeatureStore(args.dir)
    t_open = time.time() - t0
    order = rng.permutation(store.keys())
    # the baseline's work list, taken from the index before any clock starts: shard, offset and frames of each
    # utterance in `order` (compact int arrays: they add almost nothing to the anonymous RSS reported below)
    shard_files, n_shards = list(store._shards), len(store._shards)
    entries = [store._index[utt] for utt in order]
    plan = [array("q", (getattr(e, f) for e in entries)) for f in ("shard", "offset", "frames")]
    del store, entries  # each store pass opens its own: one index in memory at a time
    peak = {"RssAnon": 0, "RssFile": 0}
    t_read, t_base = timed_passes(args.dir, order, plan, shard_files, peak)
    print(f"store: {n} utterances, {size / 2**30:.2f} GiB on disk, {n_shards} shards, "
          f"written in {t_write:.1f} s ({size / 2**20 / t_write:.0f} MiB/s)")
    print(f"open (index load): {t_open:.2f} s")
    print(f"random-order read of every utterance: {n / t_read:,.0f} utt/s, {size / 2**20 / t_read:,.0f} MiB/s "
          f"({t_read:.3f} s, best of 2)")
    print(f"baseline (plain numpy: np.load mmap of each shard, slices at the index's offsets, same order and sum): "
          f"{n / t_base:,.0f} utt/s, {size / 2**20 / t_base:,.0f} MiB/s ({t_base:.3f} s, best of 2); "
          f"ratio {t_read / t_base:.2f} (store seconds / baseline seconds)")
    print(f"anonymous RSS: {base['RssAnon'] / 1024:.0f} MiB before, peak {peak['RssAnon'] / 1024:.0f} MiB during the "
          f"pass (the store is {size / 2**20:,.0f} MiB); file-backed RSS peak {peak['RssFile'] / 1024:.0f} MiB "
          f"(page cache)")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)

if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""FeatureStore read throughput (utterances/s, random order) and memory while iterating a multi-GB store.

    python bench/bench_store.py [--gb 4] [--frames 300] [--dims 128] [--dir /tmp/bench_store]

Writes a synthetic store of about --gb gigabytes (mel-sized utterances), then reads every utterance once in
random order, touching all its values. Reports anonymous resident memory (the process's own heap: what a
store held in Python objects would need) separately from file-backed pages (the OS page cache mapped in,
reclaimable), sampled during the pass.
"""
import shutil
import sys
import time
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


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--gb", type=float, default=4.0, help="store size to write and read")
    ap.add_argument("--frames", type=int, default=300, help="frames per utterance")
    ap.add_argument("--dims", type=int, default=128, help="feature dimension")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench_store"), help="where the store is written")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    args = ap.parse_args()
    per_utt = args.frames * args.dims * 4
    n = int(args.gb * 2**30 / per_utt)
    shutil.rmtree(args.dir, ignore_errors=True)
    store = FeatureStore.create(args.dir, name="bench", extractor="Bench", params={}, dims=args.dims,
                                frame_rate=62.5)
    rng = np.random.default_rng(0)
    block = rng.normal(size=(args.frames * 2, args.dims)).astype(np.float32)
    t0 = time.time()
    with store.writer() as w:
        for i in range(n):
            k = int(rng.integers(args.frames // 2, args.frames * 3 // 2))
            w.add(f"utt{i:07d}", block[:k])
    t_write = time.time() - t0
    size = dir_size(args.dir)
    base = rss_kb()
    t0 = time.time()
    store = FeatureStore(args.dir)
    t_open = time.time() - t0
    order = rng.permutation(store.keys())
    peak_anon, peak_file, total = 0, 0, 0.0
    t0 = time.time()
    for j, utt in enumerate(order):
        total += float(store[utt].sum())  # touch every value
        if j % 2000 == 0:
            r = rss_kb()
            peak_anon, peak_file = max(peak_anon, r["RssAnon"]), max(peak_file, r["RssFile"])
    t_read = time.time() - t0
    r = rss_kb()
    peak_anon, peak_file = max(peak_anon, r["RssAnon"]), max(peak_file, r["RssFile"])
    print(f"store: {n} utterances, {size / 2**30:.2f} GiB on disk, {len(store._shards)} shards, "
          f"written in {t_write:.1f} s ({size / 2**20 / t_write:.0f} MiB/s)")
    print(f"open (index load): {t_open:.2f} s")
    print(f"random-order read of every utterance: {n / t_read:,.0f} utt/s, {size / 2**20 / t_read:,.0f} MiB/s")
    print(f"anonymous RSS: {base['RssAnon'] / 1024:.0f} MiB before, peak {peak_anon / 1024:.0f} MiB during the pass "
          f"(the store is {size / 2**20:,.0f} MiB); file-backed RSS peak {peak_file / 1024:.0f} MiB (page cache)")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Temporal pyramid pooling inside one audio-text training batch's preparation: the batched float32 matrix product
of systems.audio_text_inputs against the float64 running sums it replaced (kept here as the baseline), on 32
utterances of 1024-d frames (150-550 frames, 5-30 words), the best of 5 batches, and their largest difference.

    python bench/bench_tpp.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import random  # noqa: E402
import time  # noqa: E402
import numpy as np  # noqa: E402
import systems.audio_text_inputs as ati  # noqa: E402
from engine.cli import parser  # noqa: E402


def old_tpp(chunks, lengths=None):
    x = np.asarray(chunks); C, m, D = x.shape
    L = np.full(C, m, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64).reshape(-1)
    csum = np.zeros((C, m + 1, D), dtype=np.float64)
    np.cumsum(x, axis=1, dtype=np.float64, out=csum[:, 1:])
    h, q = L // 2, L // 4
    zero = np.zeros_like(L)
    lo = np.stack([zero, zero, h, zero, q, 2 * q, 3 * q], axis=1); hi = np.stack([L, h, L, q, 2 * q, 3 * q, L], axis=1)
    short = L < 5; lo[short] = 0; hi[short] = L[short, None]
    rows = np.arange(C)[:, None]
    means = (csum[rows, hi] - csum[rows, lo]) / (hi - lo)[:, :, None]
    return means.reshape(C, 7 * D).astype(np.float32)


new_tpp = ati.temporal_pyramid_pool


def main(argv=None) -> None:
    parser(__doc__).parse_args(argv)
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(int(rng.integers(150, 550)), 1024)).astype(np.float32) for _ in range(32)]
    nw = [int(rng.integers(5, 30)) for _ in feats]
    def batch():
        r = random.Random(0)
        return [ati.audio_sequence(f, n, "multiscale", rng=r, train=True) for f, n in zip(feats, nw)]
    res = {}
    for name, fn in (("float64 running sums (before)", old_tpp), ("batched matmul (now)", new_tpp)) * 2:
        ati.temporal_pyramid_pool = fn
        batch()
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(5):
            out = batch()
        res.setdefault(name, []).append(((time.process_time() - c0) / 5, (time.perf_counter() - w0) / 5))
        res[name + " out"] = out
    diff = max(float(np.abs(a - b).max()) for a, b in zip(res["float64 running sums (before) out"], res["batched matmul (now) out"]))
    for name in ("float64 running sums (before)", "batched matmul (now)"):
        cpu, wall = min(res[name])
        print(f"{name}: {cpu * 1000:.0f} CPU-ms ({wall * 1000:.0f} ms wall) per batch of 32")
    print(f"max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()

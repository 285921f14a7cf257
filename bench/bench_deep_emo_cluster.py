#!/usr/bin/env python
"""DeepEmoCluster epoch time, split into its parts.

The embedding pass, k-means (faiss and the torch fallback), sampling
and training, and the share of training time spent waiting for data.

    python bench/bench_deep_emo_cluster.py [--sentences 600] [--batch 16] [--clusters 10] [--variant Temp-Trans] [--rounds 1]

Trains one epoch through engine/loop.py on a synthetic 128-mel store (MSP-Podcast-like lengths of 170-690
frames) and reads the loop's own timings from log.csv; then times both k-means backends on the same
embeddings. The epoch's training stage is compared with pure compute of the same batches
(bench.common.pure_training: project/pure, --rounds epochs). The original re-reads each sentence file 11 times per pass; here each batch reads its sentences
once from the memory-mapped store, while the previous batch trains.
"""
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.clustering import faiss_available, kmeans  # noqa: E402
from engine.cli import parser  # noqa: E402
from bench.common import loop_and_pure, project_pure_line  # noqa: E402
from engine.loop import LoopConfig  # noqa: E402
from features.normterm import NormTerm  # noqa: E402
from features.store import FeatureStore  # noqa: E402
from systems.deep_emo_cluster import DeepEmoClusterMethod  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sentences", type=int, default=600, help="training sentences in the synthetic store")
    ap.add_argument("--batch", type=int, default=16, help="sentences per batch")
    ap.add_argument("--clusters", type=int, default=10, help="k-means clusters K")
    ap.add_argument("--variant", default="Temp-Trans", help="temporal variant")
    ap.add_argument("--rounds", type=int, default=1,
                    help="epochs timed, each beside its pure-compute baseline, order alternating (median ratio shown)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--kmeans-rows", type=int, default=220_000,
                    help="rows of a second, corpus-sized k-means timing (20,000 sentences x 11 chunks)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_dec_"))
    rng = np.random.default_rng(0)
    store = FeatureStore.create(tmp / "mel", name="Mel_Spec128", extractor="Bench", params={}, dims=128,
                                frame_rate=62.5)
    with store.writer() as w:
        for i in range(args.sentences + 40):
            w.add(f"u{i}", rng.gamma(0.5, 1.0, size=(int(rng.integers(170, 690)), 128)).astype(np.float32))
    store = FeatureStore(tmp / "mel")
    items = [(u, float(rng.uniform(1, 7))) for u in store.keys()]
    nt = NormTerm(np.full(128, 0.5), np.full(128, 0.7), {"act": (4.0, 1.0)})
    method = DeepEmoClusterMethod(store, nt, "act", args.variant, args.clusters, args.batch)
    cfg = LoopConfig(out_dir=tmp / "run", iterations=0, epochs=1, batch_size=args.batch, device=args.device,
                     progress=False)
    # each round: the epoch through engine/loop.py, and its training stage in a plain loop on the same batches
    # (the baseline's own embedding pass and k-means untimed); the breakdown below is the last round's epoch
    res, pure, ratios = loop_and_pure(method, items[:args.sentences], items[args.sentences:], cfg, rounds=args.rounds)
    total = res.seconds
    row = next(csv.DictReader(open(tmp / "run" / "log.csv")))
    steps, train_s, wait_s = int(row["steps"]), float(row["labelled_train_seconds"]), float(row["labelled_data_wait_seconds"])
    print(f"{args.variant}, K={args.clusters}, {args.sentences} sentences ({args.sentences * 11} chunks), "
          f"batch {args.batch}, device {args.device}")
    print(f"epoch {total:.1f} s: embedding pass {float(row['labelled_embed_seconds']):.1f} s, k-means "
          f"{float(row['labelled_kmeans_seconds']):.2f} s ({method.kmeans_backend}), sampling "
          f"{float(row['labelled_sampling_seconds']) * 1000:.1f} ms, training {train_s:.1f} s "
          f"({steps} steps, {1000 * train_s / steps:.0f} ms/step), validation and saving the rest")
    print(f"waiting for data: {100 * wait_s / train_s:.2f}% of training time")
    print(project_pure_line(res, pure, ratios))
    from systems.deep_emo_cluster import CHUNKS
    model = method.build_model()
    from engine.loop import Context
    import torch
    emb = method.embeddings(model, store, store.keys()[:args.sentences], Context(torch.device(args.device), 0, 1,
                                                                                  64, False))
    for backend in (["faiss"] if faiss_available() else []) + ["torch"]:
        t = time.perf_counter()
        r = kmeans(emb, args.clusters, niter=20, seed=0, backend=backend)
        print(f"k-means {backend}: {time.perf_counter() - t:.2f} s for {len(emb)} x {emb.shape[1]} "
              f"(20 iterations, K={args.clusters}), objective {r.objective[-1]:.1f}")
    assert len(emb) == args.sentences * CHUNKS
    big = np.concatenate([emb] * (args.kmeans_rows // len(emb) + 1))[: args.kmeans_rows]
    big = big + np.random.default_rng(1).normal(scale=0.01, size=big.shape).astype(np.float32)
    for backend in (["faiss"] if faiss_available() else []) + ["torch"]:
        t = time.perf_counter()
        kmeans(big, 30, niter=20, seed=0, backend=backend)
        print(f"k-means {backend}: {time.perf_counter() - t:.1f} s for {len(big)} x 256, K=30, 20 iterations")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""MDRE family training speed, per model at the original's batch size.

Utterances/s, ms/step and the share of step time spent waiting for data, for
each model at the original's batch size, on synthetic stores with IEMOCAP-like lengths.

    python bench/bench_mdre_training.py [--device cpu|cuda] [--batch 128] [--steps 10] [--rounds 3] [--models ARE,TRE,MDREA]

Stores: 39-d MFCC frames (444 +- 306 frames, 56-3412, as the sheet reports for IEMOCAP; the first 750 are
used) and one 35-d prosody row per utterance, 2,000 utterances; word ids of 15 +- 12 tokens from a 3,747-word
vocabulary with 300-d embeddings (the GloVe size). The loop is engine/loop.py as mdre.py runs it (clip 10);
its baseline is pure compute of the same batches (bench.common.pure_training, --rounds times): project/pure.
"""
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import parser  # noqa: E402
from bench.common import loop_and_pure, project_pure_line  # noqa: E402
from engine.loop import LoopConfig  # noqa: E402
from features.store import FeatureStore  # noqa: E402
from systems.mdre import MDREMethod  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=128, help="training batch size (the original's 128)")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the loop and its pure-compute baseline, order alternating (the median ratio is shown)")
    ap.add_argument("--models", default="ARE,TRE,MDREA", help="comma-separated models to time")
    ap.add_argument("--utterances", type=int, default=2000, help="utterances in the synthetic stores")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_mdre_"))
    try:
        rng = np.random.default_rng(0)
        mfcc = FeatureStore.create(tmp / "mfcc", name="MDRE_MFCC39", extractor="Bench", params={}, dims=39,
                                   frame_rate=100.0)
        pros = FeatureStore.create(tmp / "pros", name="MDRE_Prosody35", extractor="Bench", params={}, dims=35,
                                   frame_rate=None)
        lengths = np.clip(rng.normal(444, 306, args.utterances), 56, 3412).astype(int)
        with mfcc.writer() as wm, pros.writer() as wp:
            for i, T in enumerate(lengths):
                wm.add(f"u{i}", rng.normal(size=(T, 39)).astype(np.float32))
                wp.add(f"u{i}", rng.normal(size=(1, 35)).astype(np.float32))
        mfcc, pros = FeatureStore(tmp / "mfcc"), FeatureStore(tmp / "pros")
        vocab = ["_PAD_", "_UNK_"] + [f"w{i}" for i in range(3745)]
        tokens = {f"u{i}": rng.integers(2, 3747, int(np.clip(rng.normal(15, 12), 1, 128)))
                  for i in range(args.utterances)}
        items = [(f"u{i}", int(rng.integers(0, 4))) for i in range(args.utterances)]
        emb = rng.uniform(-0.25, 0.25, (3747, 300)).astype(np.float32)
        print(f"device {args.device}, batch {args.batch}, {args.steps} steps per model, {args.utterances} utterances "
              f"(mean {lengths.mean():.0f} frames, {np.minimum(lengths, 750).mean():.0f} used)")
        for kind in args.models.split(","):
            method = MDREMethod(kind, mfcc, pros, tokens, vocab, embedding=emb)
            cfg = LoopConfig(out_dir=tmp / kind, iterations=args.steps, batch_size=args.batch, lr=1e-3,
                             val_every=10**9, device=args.device, progress=False, clip_value=10.0)
            res, pure, ratios = loop_and_pure(method, items, items[:2], cfg, rounds=args.rounds)
            print(f"{kind:>6}: {res.steps_run * res.batch_size / res.train_seconds:7.1f} utt/s, "
                  f"{100 * res.data_seconds / res.train_seconds:.1f}% of step time waiting for data; "
                  + project_pure_line(res, pure, ratios))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

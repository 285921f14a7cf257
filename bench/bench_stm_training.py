#!/usr/bin/env python
"""Speech + text + mocap fusion training speed, per configuration.

Utterances/s, ms/step and the share of step time spent waiting
for data, per configuration, at the default model size (d_model 128, 2 layers, batch 32), on synthetic stores
with IEMOCAP-like lengths.

    python bench/bench_stm_training.py [--device cpu|cuda] [--batch 32] [--steps 10] [--rounds 3] [--configs speech,...]
                                       [--speech-rows derived|loader|both]

Stores: 1024-d wav2vec2-large frames at 50 frames/s for 4.5 +- 3.2 s utterances (0.6-34 s; pooled by 5 into at
most 400 encoder steps), 768-d BERT token rows (15 +- 12 words + 2 specials, at most 128), and (200, 189) mocap
for about half of them (the listener utterances have none), 1,000 utterances. The loop is engine/loop.py as
speech_text_mocap.py runs it; its baseline is pure compute of the same batches (bench.common.pure_training,
--rounds times, order alternating): project/pure, with the batch preparation's CPU cost. The speech rows are
read from the store derived once (FusionMethod.derive_speech_rows, timed apart) or, `--speech-rows loader`,
z-normalised and pooled by the loader in every batch as before it; `both` times the two one after the other.
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import parser  # noqa: E402
from bench.common import loop_and_pure, ratio_text  # noqa: E402
from engine.loop import LoopConfig  # noqa: E402
from features.mocap import MocapStats  # noqa: E402
from features.store import FeatureStore  # noqa: E402
from systems.speech_text_mocap import CONFIGURATIONS, FusionMethod  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=32, help="training batch size")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per configuration")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the loop and its pure-compute baseline, order alternating (the median ratio is shown)")
    ap.add_argument("--configs", default="speech,text,mocap,speech+text+mocap",
                    help="comma-separated configurations to time")
    ap.add_argument("--utterances", type=int, default=1000, help="utterances in the synthetic stores")
    ap.add_argument("--speech-rows", choices=("derived", "loader", "both"), default="derived",
                    help="speech rows from the derived store, computed by the loader, or both arms")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_stm_"))
    try:
        rng = np.random.default_rng(0)
        make = lambda name, dims: FeatureStore.create(tmp / name, name=name, extractor="Bench", params={},  # noqa: E731
                                                      dims=dims, frame_rate=None)
        stores = {"speech": make("speech", 1024), "text": make("text", 768), "mocap": make("mocap", 189)}
        seconds = np.clip(rng.normal(4.5, 3.2, args.utterances), 0.6, 34.0)
        words = np.clip(rng.normal(15, 12, args.utterances), 1, 126).astype(int)
        with stores["speech"].writer() as ws, stores["text"].writer() as wt, stores["mocap"].writer() as wm:
            for i in range(args.utterances):
                ws.add(f"u{i}", rng.normal(size=(int(seconds[i] * 50), 1024)).astype(np.float32))
                wt.add(f"u{i}", rng.normal(size=(words[i] + 2, 768)).astype(np.float32))
                if i % 2 == 0:
                    wm.add(f"u{i}", rng.normal(size=(200, 189)).astype(np.float32))
        stores = {k: FeatureStore(tmp / k) for k in stores}
        norm = {"speech": (np.zeros(1024), np.ones(1024)), "text": (np.zeros(768), np.ones(768)),
                "mocap": MocapStats(np.zeros(189), np.ones(189))}
        items = [(f"u{i}", int(rng.integers(0, 4))) for i in range(args.utterances)]
        print(f"device {args.device}, batch {args.batch}, {args.steps} steps per configuration, {args.utterances} "
              f"utterances (speech {seconds.mean():.1f} s mean, {words.mean() + 2:.0f} tokens mean, mocap for half)")
        print("| configuration | speech rows | parameters | utt/s | ms/step | waiting for data | pure compute ms/step "
              "| project/pure | batch preparation CPU-ms (median) | derived once (s) |\n|---|---|---|---|---|---|---|---|---|---|")
        arms = ("derived", "loader") if args.speech_rows == "both" else (args.speech_rows,)
        for config in args.configs.split(","):
            for arm in arms if "speech" in CONFIGURATIONS[config] else ("-",):
                method = FusionMethod(CONFIGURATIONS[config], **stores, norm=norm)
                derive_s = "-"
                if arm == "derived":
                    t = time.perf_counter()
                    method.derive_speech_rows([u for u, _ in items], progress=False)
                    derive_s = f"{time.perf_counter() - t:.1f}"
                params = sum(p.numel() for p in method.build_model().parameters())
                cfg = LoopConfig(out_dir=tmp / f"{config}-{arm}", iterations=args.steps, batch_size=args.batch,
                                 lr=1e-4, val_every=10**9, device=args.device, progress=False)
                res, pure, ratios = loop_and_pure(method, items, items[:2], cfg, rounds=args.rounds)
                steps = res.steps_run
                print(f"| {config} | {arm} | {params:,} | {steps * res.batch_size / res.train_seconds:.1f} | "
                      f"{res.train_seconds / steps * 1000:.0f} | {100 * res.data_seconds / res.train_seconds:.1f}% | "
                      f"{sum(pure) / len(pure) * 1000:.0f} | {ratio_text(ratios)} | "
                      f"{1000 * float(np.median(pure.prep)):.0f} | {derive_s} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

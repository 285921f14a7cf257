#!/usr/bin/env python
"""Per-step training time of every system, default mode against --deterministic, alone and under load.

Alone and beside a second identical training (a loaded machine): what made the default mode collapse under load, and
what the shared fix (engine/__init__.py: OpenMP threads sleep instead of spinning while they wait) costs and saves.

    python bench/bench_threads.py [--systems chunk-lstm,deep-emo-cluster,audio-text,mdre,stm] [--steps 5]
                                  [--modes spin,passive,deterministic]

Modes (each a fresh worker process, since OpenMP reads its wait policy when torch loads):
  spin           torch's intra-op threads = the cores, OMP_WAIT_POLICY=ACTIVE: the default before the fix
  passive        the same threads, OMP_WAIT_POLICY=PASSIVE: today's default (engine/__init__.py)
  deterministic  --deterministic: one thread, deterministic kernels (LoopConfig.deterministic)
Loads: "alone" (one worker) and "x2" (two identical workers started together; their mean).
Each worker trains a tiny synthetic model of one system through engine/loop.py (the systems' own Method
classes, at small batch sizes) after one warm-up step, and reports the mean time of a training step (forward,
backward, optimiser) between the first and the last timed step; DeepEmoCluster's from the loop's own
training-stage timing. Prints one table (docs/speed.md "Speed under load"); 45 short trainings in all: about 10
minutes on a 2-core CPU with other jobs running, so --systems / --modes time a part.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYSTEMS = ("chunk-lstm", "deep-emo-cluster", "audio-text", "mdre", "stm")
MODES = {"spin": {"OMP_WAIT_POLICY": "ACTIVE"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
         "deterministic": {"OMP_WAIT_POLICY": "PASSIVE"}}
UTTERANCES = 48


def make_stores(root: Path) -> None:
    """Small synthetic stores of every shape the systems read, written once and shared by every worker."""
    from features.store import FeatureStore
    rng = np.random.default_rng(0)
    shapes = {"lld": (130, lambda: int(rng.integers(200, 400))), "mel": (128, lambda: int(rng.integers(170, 400))),
              "mfcc": (39, lambda: int(rng.integers(100, 750))), "prosody": (35, lambda: 1),
              "speech": (1024, lambda: int(rng.integers(50, 300))), "text": (768, lambda: int(rng.integers(5, 30))),
              "mocap": (189, lambda: 200)}
    for name, (dims, frames) in shapes.items():
        store = FeatureStore.create(root / name, name=name, extractor="Bench", params={}, dims=dims, frame_rate=50.0)
        with store.writer() as w:
            for i in range(UTTERANCES):
                w.add(f"u{i}", rng.normal(size=(frames(), dims)).astype(np.float32))
    from bench.bench_audio_text import grow_stores
    grow_stores(root / "at", UTTERANCES, rng)


def build(system: str, root: Path):
    """(method, items, LoopConfig settings) of a tiny training of `system` on the stores under `root`."""
    from features.normterm import NormTerm
    from features.store import FeatureStore
    store = lambda name: FeatureStore(root / name)  # noqa: E731
    rng = np.random.default_rng(1)
    if system in ("chunk-lstm", "deep-emo-cluster"):
        dims = 130 if system == "chunk-lstm" else 128
        nt = NormTerm(np.zeros(dims), np.ones(dims), {"act": (4.0, 1.0)})
        items = [(f"u{i}", float(rng.uniform(1, 7))) for i in range(UTTERANCES)]
        if system == "chunk-lstm":
            from systems.chunk_lstm import ChunkLSTMMethod
            return ChunkLSTMMethod(store("lld"), nt, "act", "RnnAttenVec"), items, {"batch_size": 16}
        from systems.deep_emo_cluster import DeepEmoClusterMethod
        return (DeepEmoClusterMethod(store("mel"), nt, "act", "Temp-Trans", 4, 4), items[:20],  # an epoch: 4 steps
                {"batch_size": 4, "epochs": 1, "iterations": 0})
    if system == "audio-text":
        from bench.bench_audio_text import make_method
        method, items = make_method(root / "at", "multiscale")
        return method, items, {"batch_size": 8}
    items = [(f"u{i}", int(rng.integers(0, 4))) for i in range(UTTERANCES)]
    if system == "mdre":
        from systems.mdre import MDREMethod
        vocab = ["_PAD_", "_UNK_"] + [f"w{i}" for i in range(998)]
        tokens = {f"u{i}": rng.integers(2, 1000, int(rng.integers(3, 40))) for i in range(UTTERANCES)}
        return MDREMethod("MDREA", store("mfcc"), store("prosody"), tokens, vocab), items, {"batch_size": 32,
                                                                                            "clip_value": 10.0}
    from features.mocap import MocapStats
    from systems.speech_text_mocap import CONFIGURATIONS, FusionMethod
    norm = {"speech": (np.zeros(1024), np.ones(1024)), "text": (np.zeros(768), np.ones(768)),
            "mocap": MocapStats(np.zeros(189), np.ones(189))}
    return (FusionMethod(CONFIGURATIONS["speech+text+mocap"], speech=store("speech"), text=store("text"),
                         mocap=store("mocap"), norm=norm), items, {"batch_size": 16})


class Timed:
    """The method, with the start time of every training loss call recorded (one per optimiser step)."""

    def __init__(self, method):
        self.inner, self.starts = method, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, model, batch):
        self.starts.append(time.perf_counter())
        return self.inner.loss(model, batch)


def worker(system: str, mode: str, steps: int, root: Path) -> dict:
    """One tiny training in this process: {"ms_per_step", "threads"}."""
    import csv

    import torch

    from engine.loop import LoopConfig, train
    method, items, settings = build(system, root)
    runs = Path(tempfile.mkdtemp(prefix="bench_threads_"))
    try:
        common = {"lr": 1e-4, "val_every": 10**9, "progress": False, "deterministic": mode == "deterministic"}
        epochs = settings.get("epochs", 0)
        if epochs:  # DeepEmoCluster: an epoch of its stages; the step time from the loop's own stage timing
            cfg = LoopConfig(out_dir=runs / "run", **settings, **common)
            train(method, items[:-4], items[-4:], cfg)
            row = next(csv.DictReader(open(runs / "run" / "log.csv")))
            ms = 1000 * float(row["labelled_train_seconds"]) / int(row["steps"])
        else:
            train(method, items[:-4], items[-4:], LoopConfig(out_dir=runs / "warm", iterations=1, **settings, **common))
            timed = Timed(method)
            train(timed, items[:-4], items[-4:], LoopConfig(out_dir=runs / "run", iterations=steps + 1, **settings,
                                                           **common))
            ms = 1000 * (timed.starts[-1] - timed.starts[0]) / (len(timed.starts) - 1)
        threads = json.loads((runs / "run" / "config.json").read_text())["loop"]["threads"]
        return {"ms_per_step": round(ms, 1), "threads": threads, "torch_threads_now": torch.get_num_threads()}
    finally:
        shutil.rmtree(runs, ignore_errors=True)


def launch(system: str, mode: str, steps: int, root: Path) -> subprocess.Popen:
    env = {**os.environ, **MODES[mode]}
    return subprocess.Popen([sys.executable, __file__, "--worker", system, mode, str(steps), str(root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    from engine.cli import parser
    ap = parser(__doc__)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per worker")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_threads_stores_"))
    t0 = time.time()
    try:
        make_stores(root)
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start; {args.steps} steps; "
              f"ms per training step (x2: two identical trainings at once, their mean)")
        print("| system | mode | threads | alone | x2 | x2 / alone |\n|---|---|---|---|---|---|")
        for system in args.systems.split(","):
            for mode in args.modes.split(","):
                alone = result(launch(system, mode, args.steps, root))
                pair = [result(p) for p in [launch(system, mode, args.steps, root) for _ in range(2)]]
                x2 = float(np.mean([p["ms_per_step"] for p in pair]))
                print(f"| {system} | {mode} | {alone['threads']} | {alone['ms_per_step']:.0f} | {x2:.0f} | "
                      f"{x2 / alone['ms_per_step']:.2f} |", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at the end; {time.time() - t0:.0f} s in all")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # one timed training, started by main: --worker SYSTEM MODE STEPS ROOT
        system, mode, steps, root = sys.argv[2:6]
        print(json.dumps(worker(system, mode, int(steps), Path(root))))
    else:
        main()

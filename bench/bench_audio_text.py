#!/usr/bin/env python
"""Audio-text co-attention (System 3) speed: training and test throughput, and memory.

Training throughput, share of step time spent waiting for data, test real-time factor, and training under a memory
cap from a store larger than the cap.

    python bench/bench_audio_text.py [--device cpu|cuda] [--batch 32] [--steps 20] [--store-gb 2] [--rounds 3]
                                     [--strategy multiscale|fixed|lexical] [--deterministic]
                                     [--mem-cap-gb 1.5] [--mem-store-gb 3] [--mem-batch 16] [--mem-steps 80]

Training runs engine/loop.py on synthetic stores shaped like the paper's: 1024-d wav2vec2-like frames at 50
frames/s (--store-gb GiB, MSP-Podcast-like lengths of 2.75-11 s = 138-550 frames), 768-d token rows (10-57 per
utterance) and evenly spaced TextGrid words at 2.5 words/s. "Waiting" is the time the loop waited for its next
batch (z-norm of both streams, chunking, pyramid pooling, padding), measured by the loop itself; the baseline is
pure compute of the same batches (bench.common.pure_training, --rounds times, order alternating): project/pure.
Test RTF: the loop's evaluate() on stored features (seconds of compute per second of audio), against the model's
forward alone on the same batches prepared beforehand.

Memory: the same stores are grown to --mem-store-gb and a child process trains on them under RLIMIT_DATA =
--mem-cap-gb (by default 80 steps x 16: 56% of the utterances, ~1.8 GiB of features; --mem-steps 0 reads
them all). RLIMIT_DATA caps the process's private writable memory (heap, anonymous maps, thread stacks); the
store's read-only shard maps are page cache, which the kernel may drop at any time, so they are not charged,
and a process that copied the store into its own memory would fail (the child checks that allocating the
store's size is refused). RLIMIT_AS cannot serve: it counts the mapped shards and torch's reservations.
"""
import importlib
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpora.textgrid import Interval  # noqa: E402
from engine.cli import parser  # noqa: E402
from bench.common import loop_and_pure, project_pure_line, pure_forward_seconds  # noqa: E402
from engine.loop import LoopConfig, evaluate, to_device, train  # noqa: E402
from features.normterm import NormTerm  # noqa: E402
from features.store import FeatureStore, dir_size  # noqa: E402
from systems.audio_text import STRATEGIES, AudioTextMethod  # noqa: E402

FPS, LO, HI = 50.0, 138, 551  # frames per second; utterance lengths [LO, HI) frames = 2.75-11 s
BYTES_PER_UTT = (LO + HI - 1) / 2 * 1024 * 4  # mean audio bytes of one utterance


def proc_status() -> dict:
    """VmPeak, VmHWM, VmData, RssAnon, RssFile ... of this process, in MiB."""
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) / 1024 for k, v in (ln.split(":", 1) for ln in f) if v.strip().endswith("kB")}


def words_for(frames: int) -> list:
    n = max(1, round(2.5 * frames / FPS))
    dur = frames / FPS
    return [Interval(round(k * dur / n, 5), round((k + 1) * dur / n, 5), f"w{k}") for k in range(n)]


def grow_stores(root: Path, n: int, rng) -> None:
    """Utterances u<i> up to n in the audio and text stores under `root` (created on first use)."""
    audio = FeatureStore.create(root / "audio", name="wav2vec2", extractor="Bench", params={"model": "synthetic"},
                                dims=1024, frame_rate=FPS, extra={"norm_pooling": "utterance"})
    text = FeatureStore.create(root / "text", name="roberta", extractor="Bench", params={"model": "synthetic"},
                               dims=768, frame_rate=None, extra={"norm_pooling": "utterance"})
    ablock = rng.normal(size=(HI, 1024)).astype(np.float32)
    tblock = rng.normal(size=(64, 768)).astype(np.float32)
    with audio.writer() as wa, text.writer() as wt:
        for i in range(len(audio), n):
            frames = int(rng.integers(LO, HI))
            nw = len(words_for(frames))
            wa.add(f"u{i}", ablock[:frames])
            wt.add(f"u{i}", tblock[: int(rng.integers(int(1.2 * nw) + 2, 2 * nw + 3))])


def make_method(root: Path, strategy: str, seed: int = 0):
    audio, text = FeatureStore(root / "audio"), FeatureStore(root / "text")
    labels = {a: (4.0, 1.0) for a in ("act", "dom", "val")}
    nt_a = NormTerm(np.zeros(1024, np.float32), np.ones(1024, np.float32), labels)
    nt_t = NormTerm(np.zeros(768, np.float32), np.ones(768, np.float32), labels)
    words = {u: words_for(audio.frames(u)) for u in audio.keys()}
    rng = np.random.default_rng(seed)
    items = [(u, tuple(float(v) for v in rng.uniform(1, 7, 3))) for u in audio.keys()]
    return AudioTextMethod(audio, text, nt_a, nt_t, words, strategy=strategy, seed=seed), items


def child(args) -> None:
    """Train under RLIMIT_DATA; write what happened to <folder>/child.json."""
    root, cap = Path(args.child), int(args.mem_cap_gb * 2**30)
    before = proc_status()
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    store_bytes = dir_size(root / "audio") + dir_size(root / "text")
    try:
        np.empty(store_bytes, np.uint8)
        refused = False
    except MemoryError:
        refused = True
    method, items = make_method(root, args.strategy)
    steps = args.mem_steps or math.ceil(len(items) / args.mem_batch)
    cfg = LoopConfig(out_dir=root / "run_capped", iterations=steps, batch_size=args.mem_batch, val_every=10**9,
                     device=args.device, progress=False, resume=False)
    res = train(method, items, items[:2], cfg)
    (root / "child.json").write_text(json.dumps({"before": before, "after": proc_status(), "steps": res.steps_run,
                                                 "items": len(items), "refused": refused, "seconds": res.seconds,
                                                 "data_seconds": res.data_seconds}))


def batch_preparation_cost(method, items: list, batch: int, step_seconds: float) -> None:
    """Print the data pipeline's CPU cost, not only its waiting share: what the loop's background thread spends per
    training batch (read, z-norm, chunk, crop, pyramid-pool, pad), here run alone in this thread, the mean of 5 batches."""
    method.train_collate(items[:batch])  # warm-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k in range(5):
        method.train_collate(items[k * batch: (k + 1) * batch])
    cpu, wall = (time.process_time() - cpu0) / 5, (time.perf_counter() - wall0) / 5
    print(f"batch preparation: {cpu * 1000:.0f} CPU-ms per batch of {batch} ({wall * 1000:.0f} ms wall), "
          f"{100 * cpu / step_seconds:.1f}% of a training step's wall time")


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=32, help="training batch size")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the loop and its pure-compute baseline, order alternating (the median ratio is shown)")
    ap.add_argument("--store-gb", type=float, default=2.0, help="size of the synthetic 1024-d audio store trained from")
    ap.add_argument("--strategy", choices=STRATEGIES, default="multiscale", help="chunking strategy")
    ap.add_argument("--deterministic", action="store_true", help="train as main.py --deterministic does")
    ap.add_argument("--mem-cap-gb", type=float, default=1.5, help="RLIMIT_DATA of the memory run, GiB")
    ap.add_argument("--mem-store-gb", type=float, default=3.0, help="audio store size of the memory run, GiB")
    ap.add_argument("--mem-batch", type=int, default=16, help="batch size of the memory run")
    ap.add_argument("--mem-steps", type=int, default=80, help="steps of the memory run (0: one pass over the store)")
    ap.add_argument("--child", metavar="FOLDER",
                    help="internal: the capped training run on the stores in FOLDER (default: none, the parent)")
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench_audio_text_"))
    try:
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        grow_stores(tmp, int(args.store_gb * 2**30 / BYTES_PER_UTT), rng)
        t_write = time.perf_counter() - t0
        method, items = make_method(tmp, args.strategy)
        importlib.import_module("matplotlib.pyplot")  # the loop plots after its last step: keep the import untimed
        rss0 = proc_status()["RssAnon"]
        cfg = LoopConfig(out_dir=tmp / "run", iterations=args.steps, batch_size=args.batch, val_every=10**9,
                         device=args.device, progress=False, deterministic=args.deterministic)
        res, pure, ratios = loop_and_pure(method, items, items[:2], cfg, rounds=args.rounds)
        rss1 = proc_status()["RssAnon"]
        gib = dir_size(tmp / "audio") / 2**30
        print(f"device {args.device}, {args.strategy}, batch {res.batch_size}, deterministic {args.deterministic}, "
              f"audio store {gib:.2f} GiB + text store {dir_size(tmp / 'text') / 2**20:.0f} MiB ({len(items)} "
              f"utterances, written in {t_write:.0f} s)")
        print(f"training: {res.steps_run * res.batch_size / res.train_seconds:.1f} utt/s, "
              f"{100 * res.data_seconds / res.train_seconds:.1f}% of step time waiting for data")
        print(project_pure_line(res, pure, ratios))
        print(f"anonymous RSS: {rss0:.0f} MiB before training, {rss1:.0f} MiB after")
        batch_preparation_cost(method, items, args.batch, res.train_seconds / res.steps_run)
        model = method.build_model().to(args.device)
        test = items[:256]
        seconds = sum(method.audio.frames(u) for u, _ in test) / FPS
        evaluate(method, model, test[:8], 64, args.device)  # warm-up
        t0 = time.perf_counter()
        evaluate(method, model, test, 64, args.device)
        dt = time.perf_counter() - t0
        batches = [to_device(method.collate(test[b: b + 64]), args.device) for b in range(0, len(test), 64)]
        pure = pure_forward_seconds(lambda b, m=method, net=model: m.predict(net, b), batches)
        print(f"testing (stored features -> Act/Dom/Val, batch 64): RTF {dt / seconds:.5f} "
              f"({len(test)} utterances, {seconds:.0f} s); the model's forward alone on the same batches: RTF "
              f"{pure / seconds:.5f}; project/pure {dt / pure:.2f}")
        del method, model
        grow_stores(tmp, int(args.mem_store_gb * 2**30 / BYTES_PER_UTT), rng)
        store_gib = (dir_size(tmp / "audio") + dir_size(tmp / "text")) / 2**30
        print(f"memory: cap RLIMIT_DATA = {args.mem_cap_gb:.2f} GiB (private writable memory) on a child process; "
              f"stores on disk {store_gib:.2f} GiB")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(tmp), "--mem-cap-gb",
               str(args.mem_cap_gb), "--mem-batch", str(args.mem_batch), "--mem-steps", str(args.mem_steps),
               "--strategy", args.strategy, "--device", args.device]
        rc = subprocess.run(cmd).returncode
        if rc != 0 or not (tmp / "child.json").is_file():
            print(f"memory: training under the cap did NOT finish (exit code {rc})")
            return
        c = json.loads((tmp / "child.json").read_text())
        a = c["after"]
        seen = min(1.0, c["steps"] * args.mem_batch / c["items"])  # the sampler's first permutation, no repeats
        print(f"memory: training finished under the cap: {c['steps']} steps x {args.mem_batch}, {100 * seen:.0f}% of "
              f"the {c['items']} utterances (~{seen * store_gib:.2f} GiB of features) in {c['seconds']:.0f} s "
              f"({100 * c['data_seconds'] / c['seconds']:.1f}% waiting); allocating the stores' size "
              f"privately was {'refused' if c['refused'] else 'ALLOWED'}")
        # the child's own VmHWM: ru_maxrss of RUSAGE_CHILDREN would also count this process's RSS at the fork
        print(f"memory: child peak RSS (VmHWM) {a['VmHWM']:.0f} MiB; at the end {a['RssAnon']:.0f} MiB anonymous + "
              f"{a['RssFile']:.0f} MiB file pages (mapped store, libraries); private writable memory (what the "
              f"cap counts) {c['before']['VmData']:.0f} MiB at start, {a['VmData']:.0f} MiB at the end; address "
              f"space {a['VmPeak'] / 1024:.2f} GiB at peak")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

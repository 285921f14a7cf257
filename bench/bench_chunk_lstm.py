#!/usr/bin/env python
"""Chunk-LSTM speed: training and inference throughput, and memory, each beside a baseline run in the same process.

Training throughput, share of step time outside forward/backward, test and prediction real-time factors, and memory
when training from a store far larger than the batch.

    python bench/bench_chunk_lstm.py [--device cpu|cuda] [--batch 32] [--steps 20] [--store-gb 2] [--rounds 3]

Training runs engine/loop.py on a synthetic 130-d LLD store (--store-gb GiB, MSP-Podcast-like lengths of
170-690 frames); "waiting" is the time the loop waited for its next batch (z-norm, chunk gathering from the
memory map), measured by the loop itself. Its baseline is pure compute of the same batches
(bench.common.pure_training), --rounds times with the order alternating: project/pure. Test RTF: Predictor on
stored LLDs, against the model's forward alone on the same chunks; prediction RTF: the whole prediction_process.py
path (WAV decode, resample, openSMILE LLDs, three models) on the demo corpus, against openSMILE's own calls for the
LLDs alone.
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.loop import LoopConfig  # noqa: E402
from features.normterm import NormTerm  # noqa: E402
from features.store import FeatureStore, dir_size  # noqa: E402
from systems.chunk_lstm import ChunkLSTMMethod, Predictor  # noqa: E402
from systems.common import chunk_batch  # noqa: E402
from engine.cli import parser  # noqa: E402
from bench.common import loop_and_pure, plain_is13_smiles, project_pure_line, pure_forward_seconds  # noqa: E402


def rss_anon_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
    return float("nan")


def plain_opensmile_seconds(audio: list) -> float:
    """The library baseline of prediction: openSMILE's own process_signal calls for the 130 IS13 LLD columns
    (lld, then lld_de; bench_opensmile.py's "plain lld + lld_de") on each decoded 16 kHz signal."""
    smiles = plain_is13_smiles().values()
    t0 = time.perf_counter()
    for x in audio:
        for smile in smiles:
            smile.process_signal(x, 16000)
    return time.perf_counter() - t0


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=32, help="training batch size")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the loop and its pure-compute baseline, order alternating (the median ratio is shown)")
    ap.add_argument("--store-gb", type=float, default=2.0, help="size of the synthetic LLD store trained from")
    ap.add_argument("--atten", default="RnnAttenVec", help="attention variant")
    ap.add_argument("--deterministic", action="store_true", help="train as training.py --deterministic does")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_lstm_"))
    rng = np.random.default_rng(0)
    n = int(args.store_gb * 2**30 / (430 * 130 * 4))
    store = FeatureStore.create(tmp / "store", name="lld", extractor="Bench", params={}, dims=130, frame_rate=62.5)
    block = rng.normal(size=(700, 130)).astype(np.float32)
    with store.writer() as w:
        for i in range(n):
            w.add(f"u{i}", block[: int(rng.integers(170, 690))])
    store = FeatureStore(tmp / "store")
    nt = NormTerm(np.zeros(130), np.ones(130), {"act": (4.0, 1.0)})
    items = [(u, float(rng.uniform(1, 7))) for u in store.keys()]
    method = ChunkLSTMMethod(store, nt, "act", args.atten)
    rss0 = rss_anon_mib()
    cfg = LoopConfig(out_dir=tmp / "run", iterations=args.steps, batch_size=args.batch, val_every=10**9,
                     device=args.device, progress=False, deterministic=args.deterministic)
    res, pure, ratios = loop_and_pure(method, items, items[:2], cfg, rounds=args.rounds)
    rss1 = rss_anon_mib()
    print(f"device {args.device}, {args.atten}, batch {args.batch}, deterministic {args.deterministic}, store {dir_size(tmp / 'store') / 2**30:.2f} GiB "
          f"({n} utterances)")
    print(f"training: {res.steps_run * res.batch_size / res.train_seconds:.1f} utt/s, "
          f"{100 * res.data_seconds / res.train_seconds:.1f}% of step time waiting for data")
    print(project_pure_line(res, pure, ratios))
    print(f"anonymous RSS: {rss0:.0f} MiB before training, {rss1:.0f} MiB after (store on disk "
          f"{dir_size(tmp / 'store') / 2**20:.0f} MiB)")
    model_dir = Path(__file__).resolve().parents[1] / "trained_models" / "LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act"
    pred = Predictor.load(model_dir, device=args.device)
    arrays = [store[u] for u in store.keys()[:500]]
    seconds = sum(len(a) for a in arrays) / 62.5
    pred.predict(arrays[:64])  # warm-up
    t0 = time.perf_counter()
    pred.predict(arrays)
    dt = time.perf_counter() - t0
    chunks = [chunk_batch(arrays[b: b + 64], pred.normterm, **pred.chunking) for b in range(0, len(arrays), 64)]
    pure = pure_forward_seconds(pred.model, chunks)
    print(f"testing (stored LLDs -> CCC inputs): RTF {dt / seconds:.5f} ({len(arrays)} utterances, {seconds:.0f} s); "
          f"the model's forward alone on the same chunks: RTF {pure / seconds:.5f}; project/pure {dt / pure:.2f}")
    import prediction_process
    from bench.common import BENCH_CORPUS as demo, corpus_wavs
    wavs = corpus_wavs(100)
    from features.audio import load_audio
    audio = [load_audio(w) for w in wavs]
    audio_s = sum(len(a) for a in audio) / 16000
    t0 = time.perf_counter()
    prediction_process.main(["--wav-dir", str(demo / "Audios"), "--out", str(tmp / "pred.csv"), "--no-progress",
                             "--device", args.device])
    dt = time.perf_counter() - t0
    lib = plain_opensmile_seconds(audio)
    print(f"prediction_process.py (WAV -> LLDs -> 3 models): RTF {dt / audio_s:.5f} ({len(wavs)} files, "
          f"{audio_s:.0f} s); the library's share, the plain opensmile lld + lld_de calls on the decoded audio "
          f"(one thread): RTF {lib / audio_s:.5f}; ratio {dt / lib:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

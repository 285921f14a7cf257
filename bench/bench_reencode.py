#!/usr/bin/env python
"""What re-encoding degraded transcripts costs (the `words` and `wer` conditions), beside scoring a model.

    python bench/bench_reencode.py [--n 200] [--model minilm] [--device cpu|cuda] [--rounds 3]

A token store of --n synthetic transcripts (10-40 words each, conversational lengths) is extracted with
--model (default the offline MiniLM; `roberta-base` is the paper's, if it is in your cache). Then, per
condition and simulation seed (words:0.3 and wer:0.3): the cold cost (edit + encode + write the cache store,
`DegradedText.prepare`, the encoder already loaded) and the warm cost (every draw found in the cache: what a second checkpoint of the same
sweep pays). Beside them, the audio-text co-attention model at the paper's size (7 x 1024-d audio, 768-d text,
or the store's width) scoring the same number of utterances from stored features (`engine.loop.evaluate`):
the cost of one condition's evaluation without any re-encoding. Prints ms per utterance of each, best of
--rounds.
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import parser  # noqa: E402

WORDS = ("so i was thinking we could go to the beach tomorrow if the weather holds up and maybe take the car "
         "but honestly i do not know what she wants to do after all that happened last week at work").split()


def transcripts(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {f"utt{i:05d}": " ".join(rng.choice(WORDS, size=int(rng.integers(10, 41)))) for i in range(n)}


def token_store(root: Path, texts: dict, model: str, device: str):
    from features.store import FeatureStore
    from features.text import TokenFeatures
    enc = TokenFeatures(model, device=device)
    store = FeatureStore.create(root, name=enc.name, extractor="TokenFeatures", params=enc.params, dims=enc.dims,
                                frame_rate=None)
    utts = list(texts)
    with store.writer() as w:
        for k in range(0, len(utts), 64):
            for u, f in zip(utts[k:k + 64], enc([texts[u] for u in utts[k:k + 64]])):
                w.add(u, f)
    return FeatureStore(root)


def model_eval_seconds(store, n: int, device: str, rounds: int) -> float:
    """Seconds for the paper-size audio-text model to score n utterances of ~6 s from stored features."""
    import torch

    from models.audio_text_coatten import AudioTextCoAttention
    from systems.audio_text import model_inputs
    from corpora.textgrid import Interval
    rng = np.random.default_rng(0)
    model = AudioTextCoAttention(audio_dim=7 * 1024, text_dim=store.dims).to(device).eval()
    audios = [rng.standard_normal((300, 1024)).astype(np.float32) for _ in range(n)]
    utts = store.keys()[:n]
    texts = [np.asarray(store[u]) for u in utts]
    words = [[Interval(k * 0.4, (k + 1) * 0.4, "w") for k in range(15)] for _ in range(n)]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        with torch.inference_mode():
            for k in range(0, n, 64):
                b = model_inputs(audios[k:k + 64], texts[k:k + 64], words[k:k + 64], "multiscale")
                model(*(b[x].to(device) for x in ("audio", "text", "mask_audio", "mask_text")))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=200, help="synthetic transcripts to time on")
    ap.add_argument("--model", default="minilm", help="text encoder of the token store (minilm is offline)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported")
    args = ap.parse_args(argv)
    from features.degraded_text import DegradedText
    texts = transcripts(args.n)
    tmp = Path(tempfile.mkdtemp(prefix="bench_reencode_"))
    try:
        store = token_store(tmp / "text", texts, args.model, args.device)
        vocab = sorted(set(WORDS))
        from features.text import TokenFeatures
        encoder = TokenFeatures(args.model, device=args.device)  # loaded once: the bench times encoding, not loading
        rows = []
        for cond in ("words:0.3", "wer:0.3"):
            cold, warm = float("inf"), float("inf")
            for r in range(args.rounds):
                shutil.rmtree(tmp / "text" / "degraded", ignore_errors=True)
                deg = DegradedText(store, vocab, device=args.device, encoder=encoder)
                t0 = time.perf_counter()
                deg.prepare(texts, cond, 0)
                cold = min(cold, time.perf_counter() - t0)
                again = DegradedText(store, vocab, device=args.device, encoder=encoder)
                t0 = time.perf_counter()
                again.prepare(texts, cond, 0)
                for u, t in texts.items():
                    again.features(u, t, cond, 0)
                warm = min(warm, time.perf_counter() - t0)
                assert again.encoded == 0
            rows.append((cond, cold, warm))
        ev = model_eval_seconds(store, args.n, args.device, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ms = 1000.0 / args.n
    print(f"{args.n} transcripts, text model {args.model} ({store.meta['name']}), device {args.device}; "
          f"ms per utterance, best of {args.rounds}")
    print(f"{'condition':<12} {'re-encode (cold)':>17} {'cached (warm)':>14}")
    for cond, cold, warm in rows:
        print(f"{cond:<12} {cold * ms:>17.2f} {warm * ms:>14.2f}")
    print(f"audio-text model (paper size) scoring from stored features: {ev * ms:.2f} ms per utterance")
    return 0


if __name__ == "__main__":
    sys.exit(main())

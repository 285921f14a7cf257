#!/usr/bin/env python
"""Real-time factor of feat_mel's extractor vs a direct librosa call with the same parameters.

    python bench/bench_mel.py [--n 100]

Uses the synthetic MSP-Podcast demo corpus (written to /tmp/bench_msp if absent). Reports librosa's first
call separately: it includes librosa's one-off JIT/initialisation cost, which our NumPy version does not have.
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import corpus_wavs  # noqa: E402
from features.audio import load_audio  # noqa: E402
from features.mel import MelSpectrogram  # noqa: E402
from engine.cli import parser  # noqa: E402



def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=100, help="utterances of the bench corpus")
    args = ap.parse_args()
    audio = [load_audio(p) for p in corpus_wavs(args.n)]
    seconds = sum(len(a) for a in audio) / 16000
    mel = MelSpectrogram()
    t0 = time.perf_counter()
    mel(audio)
    ours = time.perf_counter() - t0
    import librosa
    t0 = time.perf_counter()
    librosa.feature.melspectrogram(y=audio[0] / np.abs(audio[0]).max(), sr=16000, n_fft=512, hop_length=256,
                                   n_mels=128, pad_mode="reflect")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a in audio:
        librosa.feature.melspectrogram(y=a / np.abs(a).max(), sr=16000, n_fft=512, hop_length=256, n_mels=128,
                                       pad_mode="reflect")
    ref = time.perf_counter() - t0
    print(f"{len(audio)} utterances, {seconds:.0f} s of audio")
    print(f"ours:    {ours:.3f} s, RTF {ours / seconds:.5f}")
    print(f"librosa: {ref:.3f} s, RTF {ref / seconds:.5f} (after a first call of {first:.1f} s)")
    print(f"ours / librosa: {ours / ref:.2f}")


if __name__ == "__main__":
    main()

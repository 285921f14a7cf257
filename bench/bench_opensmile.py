#!/usr/bin/env python
"""Real-time factor of feat_opensmile's extractor vs the plain `opensmile.Smile.process_signal` calls.

    python bench/bench_opensmile.py [--n 100] [--rounds 3]

Uses the synthetic MSP-Podcast demo corpus (written to /tmp/bench_msp if absent) and at most 2 CPU cores.
All single-thread variants are timed interleaved, utterance by utterance, and each utterance keeps its fastest
of `rounds` repetitions, so background load on a shared machine hits every variant alike.

    plain lld + lld_de   the library calls a user needs for the 130 columns: process_signal with the plain
                         edited config (functionals included), feature_level 'lld' and then 'lld_de'
    plain lld            one such call (65 columns): the cost of a single openSMILE run
    package call, lean   Smile.__call__ on our lean config (level lld_lldde, no functionals), no wrapper
    ours                 OpenSmileLLD.one: the above plus input checks and the (T, 130) copy
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import best_of_rounds, corpus_wavs, plain_is13_smiles  # noqa: E402
from features.audio import load_audio  # noqa: E402
from engine.cli import parser  # noqa: E402



def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=100, help="utterances of the bench corpus")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (best is reported)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cores)
    import opensmile

    from features.opensmile_lld import LEVEL, OpenSmileLLD

    audio = [load_audio(p) for p in corpus_wavs(args.n)]
    seconds = sum(len(a) for a in audio) / 16000
    t0 = time.perf_counter()
    ours = OpenSmileLLD()
    setup = time.perf_counter() - t0
    plain = plain_is13_smiles()
    lld, lld_de = plain["lld"], plain["lld_de"]
    lean = opensmile.Smile(feature_set=str(ours.config_path), feature_level=LEVEL, sampling_rate=16000, loglevel=0)
    variants = {
        "plain lld + lld_de": lambda x: (lld.process_signal(x, 16000), lld_de.process_signal(x, 16000)),
        "plain lld": lambda x: lld.process_signal(x, 16000),
        "package call, lean": lambda x: lean(x, 16000),
        "ours": ours.one,
    }
    total = best_of_rounds(variants, audio, args.rounds)
    threaded = OpenSmileLLD(threads=2)
    wall2 = np.inf
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        threaded(audio)
        wall2 = min(wall2, time.perf_counter() - t0)

    ref2, ref1 = total["plain lld + lld_de"], total["plain lld"]
    print(f"{len(audio)} utterances, {seconds:.0f} s of audio, cores {sorted(os.sched_getaffinity(0))}, "
          f"opensmile {opensmile.__version__}; extractor set-up (config + Smile) {setup:.2f} s once")
    print(f"{'variant':24s} {'seconds':>8s} {'RTF':>8s} {'vs plain lld+lld_de':>20s} {'vs plain lld':>13s}")
    for k in variants:
        print(f"{k:24s} {total[k]:8.3f} {total[k] / seconds:8.5f} {100 * (total[k] / ref2 - 1):+19.1f}% "
              f"{100 * (total[k] / ref1 - 1):+12.1f}%")
    print(f"{'ours, 2 threads (wall)':24s} {wall2:8.3f} {wall2 / seconds:8.5f} {100 * (wall2 / ref2 - 1):+19.1f}% "
          f"{100 * (wall2 / ref1 - 1):+12.1f}%")
    w = total["ours"] / total["package call, lean"] - 1
    print(f"our wrapper on top of its own package call: {100 * w:+.1f}%")


if __name__ == "__main__":
    main()

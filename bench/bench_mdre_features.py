#!/usr/bin/env python
"""Real-time factor of feat_mdre's extractors against plain openSMILE calls.

MDRE MFCC 39-d frames and prosody 35-d functionals, against the plain `opensmile.Smile(feature_set=<our .conf>,
feature_level=...)` calls on the same generated configs.

    python bench/bench_mdre_features.py [--corpus msp-podcast|iemocap] [--n 100] [--rounds 3]

Timed on a synthetic demo corpus: the MSP-Podcast bench corpus of bench/common.py (/tmp/bench_msp), or a
synthetic IEMOCAP release in /tmp/bench_iemocap (utterance WAVs), each written on first use. At most 2 CPU
cores. All single-thread variants are timed interleaved, utterance by utterance, each utterance keeping its
fastest of `rounds` repetitions, so background load on a shared machine hits every variant alike.

    plain process_signal   Smile.process_signal (what a user of the package calls; returns a DataFrame)
    package call           Smile.__call__ (raw array, no DataFrame)
    ours                   MdreMfcc.one / MdreProsody.one: the package call plus input checks and the float32 copy
"""
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import best_of_rounds, corpus_wavs  # noqa: E402
from engine.cli import int_at_least, parser  # noqa: E402
from features.audio import load_audio  # noqa: E402

BENCH_IEMOCAP = Path("/tmp/bench_iemocap")


def iemocap_wavs(n: int) -> list[Path]:
    """The first `n` utterance WAVs of a synthetic IEMOCAP release in /tmp/bench_iemocap (written on first use)."""
    if not (BENCH_IEMOCAP / "synth_summary.json").is_file():
        from corpora.synth.iemocap import write_iemocap
        write_iemocap(BENCH_IEMOCAP, n=max(n, 100), seed=0, progress=False)
    return sorted(BENCH_IEMOCAP.glob("Session*/sentences/wav/*/*.wav"))[:n]


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--corpus", choices=("msp-podcast", "iemocap"), default="msp-podcast",
                    help="which synthetic demo corpus to time on")
    ap.add_argument("--n", type=int_at_least(1), default=100, help="utterances of the bench corpus")
    ap.add_argument("--rounds", type=int_at_least(1), default=3, help="timing rounds (best is reported)")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    import opensmile

    from features.mdre_acoustic import MFCC_LEVEL, PROSODY_LEVEL, MdreMfcc, MdreProsody

    paths = corpus_wavs(args.n) if args.corpus == "msp-podcast" else iemocap_wavs(args.n)
    audio = [load_audio(p) for p in paths]
    seconds = sum(len(a) for a in audio) / 16000
    t0 = time.perf_counter()
    ours = {"mfcc": MdreMfcc(), "prosody": MdreProsody()}
    setup = time.perf_counter() - t0
    levels = {"mfcc": MFCC_LEVEL, "prosody": PROSODY_LEVEL}
    variants = {}
    for kind, ex in ours.items():
        plain = opensmile.Smile(feature_set=str(ex.config_path), feature_level=levels[kind], sampling_rate=16000,
                                loglevel=0)
        variants[f"{kind}: plain process_signal"] = lambda x, s=plain: s.process_signal(x, 16000)
        variants[f"{kind}: package call"] = lambda x, s=plain: s(x, 16000)
        variants[f"{kind}: ours"] = ex.one
    total = best_of_rounds(variants, audio, args.rounds)
    for who in ("plain process_signal", "package call", "ours"):
        total[f"both: {who}"] = total[f"mfcc: {who}"] + total[f"prosody: {who}"]
    print(f"{args.corpus} demo corpus: {len(audio)} utterances, {seconds:.0f} s of audio, cores "
          f"{sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, opensmile "
          f"{opensmile.__version__}; extractor set-up (configs + Smile) {setup:.2f} s once")
    print(f"{'variant':32s} {'seconds':>8s} {'RTF':>9s} {'vs plain process_signal':>24s}")
    for k in total:
        ref = total[k.split(":")[0] + ": plain process_signal"]
        print(f"{k:32s} {total[k]:8.3f} {total[k] / seconds:9.5f} {100 * (total[k] / ref - 1):+23.1f}%")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""openSMILE IS13 ComParE LLDs + deltas (130-d, 32 ms window / 16 ms hop, 62.5 frames/s: the chunk-level
attention LSTM's input features) for a corpus or a WAV folder -> feature store.

    python feat_opensmile.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.10
    python feat_opensmile.py --corpus manifest --root /data/mycorpus/corpus.csv
    python feat_opensmile.py --wav-dir my_wavs --store Features/OpenSmile_lld_IS13ComParE [--shard 0/4]

Default store: <root>/Features/OpenSmile_lld_IS13ComParE (a manifest: beside the manifest file), float32. The edited openSMILE config is generated
from the installed `opensmile` package on first use (see features/opensmile_lld.py). Resumable (finished
utterances are kept), shardable (--shard i/N or torchrun), bad inputs listed in <store>/errors-*.csv.
`python mat_io.py export` writes the original per-utterance Audio_data .mat files (time column first).
"""
import sys

from engine.cli import entry, int_at_least, parser
from features.extract import add_io_args, run_cli


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_io_args(ap)
    o = ap.add_argument_group("openSMILE")
    o.add_argument("--threads", type=int_at_least(1), default=1,
                   help="utterances of a batch processed in parallel threads (or use --shard)")
    o.add_argument("--config-cache", help="folder for the generated config (default $SER_OPENSMILE_CACHE or "
                                          "~/.cache/ser-toolkit/opensmile)")
    args = ap.parse_args(argv)
    from features.opensmile_lld import OpenSmileLLD

    return run_cli(OpenSmileLLD(cache_dir=args.config_cache, threads=args.threads), args, dtype="float32")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""MDRE family acoustic features (reference sheet mdre.md section 4) for a corpus or a WAV folder -> feature store.

    python feat_mdre.py --features mfcc --corpus iemocap --root /data/IEMOCAP_full_release
    python feat_mdre.py --features prosody --corpus iemocap --root /data/IEMOCAP_full_release
    python feat_mdre.py --features mfcc --wav-dir my_wavs --store Features/MDRE_MFCC39 [--shard 0/4]

mfcc     39-d per 10 ms frame: 12 MFCCs + log energy, deltas, delta-deltas (25 ms Hamming window, pre-emphasis
         0.97, 26 HTK mel bands 0-8000 Hz, lifter 22); store MDRE_MFCC39, T = floor((N - 400) / 160) + 1 rows.
prosody  35-d per utterance (one row): SHS/Viterbi F0, log F0, voicing, HNR, loudness x 7 functionals;
         store MDRE_Prosody35.
Default store: <root>/Features/<store name>, float32, values never normalised (as the original). The openSMILE
configs are generated from the sheet's parameters on first use (see features/mdre_acoustic.py). Resumable
(finished utterances are kept), shardable (--shard i/N or torchrun), bad inputs listed in <store>/errors-*.csv.
"""
import sys

from engine.cli import entry, int_at_least, parser
from features.extract import add_io_args, run_cli


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--features", choices=("mfcc", "prosody"), required=True,
                    help="mfcc: (T, 39) MFCC-E-D-A frames; prosody: (1, 35) prosody functionals")
    add_io_args(ap)
    o = ap.add_argument_group("openSMILE")
    o.add_argument("--threads", type=int_at_least(1), default=1,
                   help="utterances of a batch processed in parallel threads (or use --shard)")
    o.add_argument("--config-cache", help="folder for the generated configs (default $SER_OPENSMILE_CACHE or "
                                          "~/.cache/ser-toolkit/opensmile)")
    args = ap.parse_args(argv)
    from features.mdre_acoustic import EXTRACTORS

    extractor = EXTRACTORS[args.features](cache_dir=args.config_cache, threads=args.threads)
    return run_cli(extractor, args, dtype="float32")


if __name__ == "__main__":
    sys.exit(main())

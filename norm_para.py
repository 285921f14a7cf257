#!/usr/bin/env python
"""Train-split normalisation statistics -> a NormTerm folder of the originals' .mat files.

    python norm_para.py --store Features/OpenSmile_lld_IS13ComParE --corpus msp-podcast --root R --out NormTerm
    python norm_para.py --store Features/Wav2Vec1024 --corpus msp-podcast --root R --out NormTerm_Speech

--method frames          mean/std over every Train frame (chunk LSTM LLDs, DeepEmoCluster mel)
--method utterance-mean  mean/std of per-utterance mean vectors (audio-text system's wav2vec2 and text)
Default: utterance-mean for wav2vec2/token/word stores, frames otherwise. Label statistics (mean and
population std of the Train labels of each attribute) go into the same folder. Train utterances without
features are listed, never silently left out.
"""
import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError, entry, parser
from features.normterm import (NormTerm, finite_only, frame_pooled_stats, label_stats, store_pooling,
                               utterance_mean_stats)
from features.store import FeatureStore, with_features
from utils import writable_dir


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--store", type=Path, help="feature store (default: none, for label statistics only)")
    ap.add_argument("--corpus", choices=("msp-podcast",), default="msp-podcast", help="corpus the labels come from")
    ap.add_argument("--root", type=Path, required=True,
                    help="MSP-Podcast root, the folder holding Labels/ (no audio needed)")
    ap.add_argument("--split", default="train", help="split the statistics come from")
    ap.add_argument("--method", choices=("auto", "frames", "utterance-mean"), default="auto",
                    help="auto = the pooling the store records (refused when it records none)")
    ap.add_argument("--out", type=Path, required=True, help="NormTerm folder to write")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    writable_dir(args.out)
    from corpora.msp_podcast import read_msp_podcast
    corpus = read_msp_podcast(args.root, split=args.split, require_audio=False)
    corpus.report()
    records = corpus.records
    mean = std = None
    if args.store:
        store = FeatureStore(args.store)
        method = args.method
        if method == "auto":
            method = store_pooling(store.meta)
            if method is None:
                raise UserError(f"{args.store}: the store does not record how its features are pooled "
                                f"(extractor {store.meta.get('extractor')!r}); give --method frames (every frame, "
                                "as for LLDs and mel) or --method utterance-mean (utterance means, as for wav2vec2 "
                                "and text)")
        have = with_features(records, store, args.split)
        bad: list[str] = []
        arrays = finite_only(((r.utt_id, store[r.utt_id]) for r in have), bad)
        try:
            if method == "frames":
                mean, std = frame_pooled_stats(arrays, progress=not args.no_progress)
            else:
                # the original averages float32 audio features in float32; never accumulate in float16
                dtype = np.promote_types(store.dtype, np.float32)
                mean, std = utterance_mean_stats(arrays, dtype=dtype, progress=not args.no_progress)
        except ValueError:  # nothing left to compute statistics from
            mean = None
        if bad:
            print(f"warning: {len(bad)} {args.split} utterance(s) hold NaN/inf features in {args.store} and are left "
                  f"out of the statistics: {', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''}", file=sys.stderr)
        if mean is None:
            raise UserError(f"{args.store}: no {args.split} utterance with finite features to compute statistics from")
        print(f"{method} statistics of {len(have) - len(bad)} utterances, {mean.shape[0]} dims")
    labels = label_stats(records)
    NormTerm(mean, std, labels).save(args.out)
    for a, (m, s) in labels.items():
        print(f"  {a}: mean {m:.6f} std {s:.6f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import argparse
import sys
from pathlib import Path

import numpy as np

from corpora.records import CorpusError
from features.normterm import NormTerm, frame_pooled_stats, label_stats, utterance_mean_stats
from features.store import FeatureStore, StoreError, with_features

UTTERANCE_MEAN_EXTRACTORS = {"Wav2Vec2Features", "TokenFeatures", "WordFeatures"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="feature store (omit for label statistics only)")
    ap.add_argument("--corpus", choices=("msp-podcast",), default="msp-podcast")
    ap.add_argument("--root", type=Path, required=True, help="MSP-Podcast root (labels and splits)")
    ap.add_argument("--split", default="train", help="split the statistics come from (default train)")
    ap.add_argument("--method", choices=("auto", "frames", "utterance-mean"), default="auto")
    ap.add_argument("--out", type=Path, required=True, help="NormTerm folder to write")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    from corpora.msp_podcast import read_msp_podcast
    try:
        corpus = read_msp_podcast(args.root, split=args.split)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    corpus.report()
    records = corpus.records
    mean = std = None
    if args.store:
        try:
            store = FeatureStore(args.store)
        except StoreError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        have = with_features(records, store, args.split)
        if not have:
            print(f"error: no {args.split} utterance has features in {args.store}", file=sys.stderr)
            return 1
        method = args.method
        if method == "auto":
            method = "utterance-mean" if store.meta.get("extractor") in UTTERANCE_MEAN_EXTRACTORS else "frames"
        arrays = (store[r.utt_id] for r in have)
        if method == "frames":
            mean, std = frame_pooled_stats(arrays, progress=not args.no_progress)
        else:
            # the original averages float32 audio features in float32; never accumulate in float16
            dtype = np.promote_types(store.dtype, np.float32)
            mean, std = utterance_mean_stats(arrays, dtype=dtype, progress=not args.no_progress)
        print(f"{method} statistics of {len(have)} utterances, {mean.shape[0]} dims")
    labels = label_stats(records)
    NormTerm(mean, std, labels).save(args.out)
    for a, (m, s) in labels.items():
        print(f"  {a}: mean {m:.6f} std {s:.6f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

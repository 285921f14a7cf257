#!/usr/bin/env python
"""Train-split normalisation statistics -> a NormTerm folder of the originals' .mat files.

    python norm_para.py --store Features/OpenSmile_lld_IS13ComParE --corpus msp-podcast --root R --out NormTerm
    python norm_para.py --store Features/Wav2Vec1024 --corpus msp-podcast --root R --out NormTerm_Speech
    python norm_para.py --store D/Features/OpenSmile_lld_IS13ComParE --corpus manifest --root D/corpus.csv --out D/NormTerm

--method frames          mean/std over every Train frame (chunk LSTM LLDs, DeepEmoCluster mel)
--method utterance-mean  mean/std of per-utterance mean vectors (audio-text system's wav2vec2 and text)
Default: utterance-mean for wav2vec2/token/word stores, frames otherwise. Label statistics (mean and
population std of the Train labels of each attribute) go into the same folder. Train utterances without
features are listed, never silently left out. Statistics are accumulated in float64 over finite values only
and written in the dtype the original writes (single for wav2vec2, double otherwise).
"""
import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError, entry, parser
from features.normterm import (NormTerm, count_non_finite, frame_pooled_stats, label_stats, store_pooling,
                               utterance_mean_stats, written_dtype)
from features.store import FeatureStore, with_features
from utils import writable_dir


def feature_stats(store: FeatureStore, records, method: str, args) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the records' features, accumulated in float64 over finite values only and cast to the
    dtype the original writes; utterances holding NaN/inf (imported originals) are listed with their counts."""
    repaired: dict[str, int] = {}

    def arrays():
        for r in records:
            x = store[r.utt_id]
            if n := count_non_finite(x):
                repaired[r.utt_id] = n
            yield x
    try:
        if method == "frames":
            mean, std = frame_pooled_stats(arrays(), progress=not args.no_progress)
        else:
            mean, std = utterance_mean_stats(arrays(), progress=not args.no_progress)
    except ValueError as e:
        raise UserError(f"{args.store}: {args.split} split: {e}") from None
    if repaired:
        listed = ", ".join(f"{u} ({n})" for u, n in list(repaired.items())[:10])
        print(f"note: {len(repaired)} {args.split} utterance(s) hold NaN/inf feature values in {args.store}; the "
              f"statistics use their finite values only (z-normalisation maps NaN to 0 and +-inf to +-3): "
              f"{listed}{' ...' if len(repaired) > 10 else ''}", file=sys.stderr)
    dtype = written_dtype(store.meta)
    return mean.astype(dtype), std.astype(dtype)


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--store", type=Path, help="feature store (default: none, for label statistics only)")
    from features.extract import add_corpus_args, check_fold
    from systems.common import DIMENSIONAL_KINDS
    add_corpus_args(ap, DIMENSIONAL_KINDS, "msp-podcast", "corpus the labels come from (emobox rows have no "
                    "dimensional labels: its NormTerm holds feature statistics only)")
    ap.add_argument("--root", type=Path, required=True,
                    help="MSP-Podcast root, the folder holding Labels/; the manifest file for --corpus manifest; "
                         "EmoBox's data/<corpus> folder for --corpus emobox (no audio needed)")
    ap.add_argument("--split", default="train", help="split the statistics come from (default: train)")
    ap.add_argument("--method", choices=("auto", "frames", "utterance-mean"), default="auto",
                    help="auto = the pooling the store records (refused when it records none)")
    ap.add_argument("--out", type=Path, required=True, help="NormTerm folder to write")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    check_fold(args.corpus, args.fold)
    writable_dir(args.out)
    from systems.common import read_split
    corpus = read_split(args.corpus, args.root, args.split, fold=args.fold)
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
        mean, std = feature_stats(store, have, method, args)
        print(f"{method} statistics of {len(have)} utterances, {mean.shape[0]} dims, written as {mean.dtype}")
    labels = label_stats(records)
    if not labels:  # said, never a NormTerm that silently lacks what training will ask for
        print(f"note: no {args.split} utterance of {corpus.name} has arousal/dominance/valence labels: {args.out} "
              "holds no label statistics (the dimensional systems need them)", file=sys.stderr)
    NormTerm(mean, std, labels).save(args.out)
    for a, (m, s) in labels.items():
        print(f"  {a}: mean {m:.6f} std {s:.6f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

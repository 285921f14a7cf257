#!/usr/bin/env python
"""Check a corpus folder and summarise it: utterances per split, speakers, label ranges, skipped rows.

    python corpus_info.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.10 [--split dev]
    python corpus_info.py --corpus iemocap --root /data/IEMOCAP_full_release

Exit code 1 when the corpus cannot be read; skipped rows are listed (and written with --skipped-csv).
"""
import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from corpora import read_corpus
from corpora.records import ATTRIBUTES, CorpusError


def summarise(records, key) -> str:
    counts = Counter(key(r) for r in records)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=("msp-podcast", "iemocap"), required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--split", help="MSP-Podcast split or alias (train, dev, test1, test2, test3, test, ...)")
    ap.add_argument("--skipped-csv", type=Path, help="write the skipped rows (utterance, file, reason) here")
    args = ap.parse_args(argv)
    try:
        corpus = read_corpus(args.corpus, args.root, args.split)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    recs = corpus.records
    print(f"{corpus.name} at {corpus.root}: {len(recs)} utterances, {len({r.speaker for r in recs})} speakers")
    if args.corpus == "msp-podcast":
        print("  splits:", summarise(recs, lambda r: r.split))
    else:
        from corpora.iemocap import FOUR_CLASS, four_class
        print("  sessions:", summarise(recs, lambda r: r.session))
        for scheme in FOUR_CLASS:
            print(f"  4-class ({scheme}): {len(four_class(recs, scheme))} utterances")
    print("  categories:", summarise(recs, lambda r: r.category))
    for a in ATTRIBUTES:
        v = np.array([r.labels[a] for r in recs if a in r.labels])
        if len(v):
            print(f"  {a}: n={len(v)} mean={v.mean():.3f} std={v.std():.3f} min={v.min():.3f} max={v.max():.3f}")
    corpus.report(stream=sys.stdout)
    if args.skipped_csv:
        corpus.write_skipped(args.skipped_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Check a corpus folder and summarise it: utterances per split, speakers, label ranges, skipped rows.

    python corpus_info.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.10 [--split dev]
    python corpus_info.py --corpus iemocap --root /data/IEMOCAP_full_release

Exit code 1 when the corpus cannot be read; skipped rows are listed (and written with --skipped-csv).
"""
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from corpora import read_corpus
from corpora.records import ATTRIBUTES
from engine.cli import entry, parser
from utils import writable_dir


def summarise(records, key) -> str:
    counts = Counter(key(r) for r in records)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--corpus", choices=("msp-podcast", "iemocap"), required=True, help="which reader")
    ap.add_argument("--root", type=Path, required=True, help="corpus root folder")
    ap.add_argument("--split", help="MSP-Podcast split or alias (train, dev, test1, test2, test3, test, ...; default: all)")
    ap.add_argument("--skipped-csv", type=Path, help="write the skipped rows (utterance, file, reason) here (default: none)")
    args = ap.parse_args(argv)
    if args.skipped_csv:
        writable_dir(args.skipped_csv.parent)
    corpus = read_corpus(args.corpus, args.root, args.split)
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

#!/usr/bin/env python
"""IEMOCAP motion capture per utterance (face 165 + head 6 + hand 18 columns, resampled to --frames rows)
-> feature store <root>/Features/Mocap189x<frames>.

    python feat_mocap.py --root /data/IEMOCAP_full_release [--store S] [--frames 200]

Column order, NaN policy and the marker-wearer rule: see features/mocap.py. Utterances without usable mocap
(spoken by the actor who did not wear markers, a missing mocap file, no rows in the span) are listed with the
reason in <store>/errors-0of1.csv. Resumable: utterances already in the store are skipped.
"""
import sys
import time
from pathlib import Path

from corpora.iemocap import MOCAP_STREAMS, read_iemocap
from engine.cli import entry, int_at_least, parser
from features.mocap import STREAM_WIDTHS, extract_mocap, mocap_store
from utils import writable_dir


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, required=True, help="IEMOCAP_full_release folder (Session1..5)")
    ap.add_argument("--store", type=Path, help="feature store folder (default: <root>/Features/Mocap189x<frames>)")
    ap.add_argument("--frames", type=int_at_least(1), default=200, help="rows per utterance after resampling")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    dims = sum(STREAM_WIDTHS[s] for s in MOCAP_STREAMS)
    name = f"Mocap{dims}x{args.frames}"
    store_dir = writable_dir(args.store or args.root / "Features" / name)
    corpus = read_iemocap(args.root)
    corpus.report()
    store = mocap_store(store_dir, args.frames, corpus.name)
    t0 = time.time()
    ok, done, err = extract_mocap(corpus.records, store, root=args.root, n=args.frames, progress=not args.no_progress)
    print(f"{store_dir}: extracted {ok}, already there {done}, without mocap {err} in {time.time() - t0:.1f} s")
    if err:
        print(f"  utterances without usable mocap are listed in {store_dir}/errors-0of1.csv", file=sys.stderr)
    return 0 if ok or done else 1


if __name__ == "__main__":
    sys.exit(main())

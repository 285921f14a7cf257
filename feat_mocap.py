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

from tqdm import tqdm

from corpora.iemocap import MOCAP_STREAMS, read_iemocap
from engine.cli import entry, int_at_least, parser
from features.mocap import STREAM_WIDTHS, column_layout, store_arrays, utterance_mocap
from features.store import FeatureStore
from utils import writable_dir


def extract_mocap(records, store: FeatureStore, *, root=None, n: int = 200, streams=MOCAP_STREAMS,
                  progress: bool = True) -> tuple[int, int, int]:
    """(extracted, already there, without mocap) for `records` into `store`."""
    with store.writer(worker="0of1") as w:
        todo = [r for r in records if r.utt_id not in store]
        ok = err = 0
        for r in tqdm(todo, desc=store.meta["name"], unit="utt", disable=not progress):
            x, reason = utterance_mocap(r, root, n=n, streams=streams)
            if x is None:
                w.error(r.utt_id, f"{r.dialog} MOCAP", reason)
                err += 1
                continue
            feats, side = store_arrays(x)
            w.add(r.utt_id, feats, side)
            ok += 1
    return ok, len(records) - len(todo), err


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
    store = FeatureStore.create(
        store_dir, name=name, extractor="utterance_mocap",
        params={"frames": args.frames, "streams": list(MOCAP_STREAMS), "interpolate": True},
        dims=dims, frame_rate=None, corpus=corpus.name,
        extra={"norm_pooling": "frames", "column_order": column_layout(MOCAP_STREAMS),
               "nan_policy": "NaN kept through block averaging, then linear interpolation over frames per column; "
                             "whole-NaN columns stored as 0 and listed in the index side information "
                             "(nan_columns): read with features.mocap.stored_mocap, fill after normalisation",
               "wearer_rule": "mocap only for utterances whose speaker letter equals the dialog's marker letter"})
    t0 = time.time()
    ok, done, err = extract_mocap(corpus.records, store, root=args.root, n=args.frames, progress=not args.no_progress)
    print(f"{store_dir}: extracted {ok}, already there {done}, without mocap {err} in {time.time() - t0:.1f} s")
    if err:
        print(f"  utterances without usable mocap are listed in {store_dir}/errors-0of1.csv", file=sys.stderr)
    return 0 if ok or done else 1


if __name__ == "__main__":
    sys.exit(main())

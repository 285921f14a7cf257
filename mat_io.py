#!/usr/bin/env python
"""Move features between a feature store and the originals' per-utterance .mat layout.

    python mat_io.py export --store Features/OpenSmile_lld_IS13ComParE --out Features/OpenSmile_lld_IS13ComParE/feat_mat
    python mat_io.py import --mat-dir OLD/Features/Mel_Spec128/feat_mat --store Features/Mel_Spec128 \\
        --name Mel_Spec128 --dims 128 --frame-rate 62.5 [--key Audio_data] [--time-column]

--time-column: the .mat arrays carry the frame time as column 0 (the original openSMILE LLD files do);
it is dropped on import and written on export.
"""
import argparse
import sys
from pathlib import Path

from features.matio import export_mat, import_mat
from features.store import FeatureStore, StoreError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="store -> <out>/<utt>.mat")
    ex.add_argument("--store", type=Path, required=True)
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--key", help="variable name (default: the store's, Audio_data or Text_data)")
    ex.add_argument("--time-column", action=argparse.BooleanOptionalAction, default=None)
    ex.add_argument("--float64", action="store_true", help="write float64 (the LLD originals' dtype)")
    im = sub.add_parser("import", help="<mat-dir>/*.mat -> store")
    im.add_argument("--mat-dir", type=Path, required=True)
    im.add_argument("--store", type=Path, required=True)
    im.add_argument("--name", required=True, help="feature set name, e.g. OpenSmile_lld_IS13ComParE")
    im.add_argument("--dims", type=int, required=True, help="feature dimension (without the time column)")
    im.add_argument("--frame-rate", type=float, help="rows per second (omit for token-level text)")
    im.add_argument("--key", default="Audio_data")
    im.add_argument("--time-column", action="store_true")
    for p in (ex, im):
        p.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "export":
            n = export_mat(FeatureStore(args.store), args.out, key=args.key, time_column=args.time_column,
                           dtype="float64" if args.float64 else None, progress=not args.no_progress)
            print(f"wrote {n} .mat files to {args.out}")
            return 0
        store = FeatureStore.create(args.store, name=args.name, extractor="mat-import",
                                    params={"source": str(args.mat_dir)}, dims=args.dims, frame_rate=args.frame_rate,
                                    extra={"mat_key": args.key, "mat_time_column": args.time_column})
        added, bad = import_mat(args.mat_dir, store, key=args.key, drop_time_column=args.time_column,
                                progress=not args.no_progress)
    except (StoreError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"imported {added} utterances into {args.store}; {len(bad)} file(s) failed")
    for f, why in bad[:20]:
        print(f"  {f}: {why}", file=sys.stderr)
    return 0 if added or len(store) else 1


if __name__ == "__main__":
    sys.exit(main())

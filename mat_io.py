#!/usr/bin/env python
"""Move features between a feature store and the originals' per-utterance .mat layout.

    python mat_io.py export --store Features/OpenSmile_lld_IS13ComParE --out Features/OpenSmile_lld_IS13ComParE/feat_mat
    python mat_io.py import --mat-dir OLD/Features/Mel_Spec128/feat_mat --store Features/Mel_Spec128 \\
        --name Mel_Spec128 --dims 128 --frame-rate 62.5 [--key Audio_data] [--time-column]

--time-column: the .mat arrays carry the frame time as column 0 (the original openSMILE LLD files do);
it is dropped on import and written on export. NaN/inf values in imported files are kept, as the originals
scored such utterances (norm_para.py's statistics leave them out; z-normalisation maps NaN to 0 and +-inf to
+-3); the utterances and their counts are listed in <store>/nonfinite-import.csv.
"""
import argparse
import sys
from pathlib import Path

from engine.cli import UserError, entry, parser
from features.matio import NONFINITE_CSV, export_mat, import_mat, source_dtype
from features.normterm import POOLING_BY_NAME, POOLINGS
from features.store import FeatureStore
from utils import writable_dir


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="store -> <out>/<utt>.mat", formatter_class=ap.formatter_class)
    ex.add_argument("--store", type=Path, required=True, help="feature store to export")
    ex.add_argument("--out", type=Path, required=True, help="folder for the .mat files (existing files are kept)")
    ex.add_argument("--key", help="variable name (default: the store's, Audio_data or Text_data)")
    ex.add_argument("--time-column", action=argparse.BooleanOptionalAction, default=None,
                    help="write the frame time as column 0 (default: as the store records, on for LLDs)")
    ex.add_argument("--float64", action="store_true", help="write float64 (the LLD originals' dtype)")
    im = sub.add_parser("import", help="<mat-dir>/*.mat -> store", formatter_class=ap.formatter_class)
    im.add_argument("--mat-dir", type=Path, required=True, help="folder of <utt>.mat files")
    im.add_argument("--store", type=Path, required=True, help="feature store to create or add to")
    im.add_argument("--name", required=True, help="feature set name, e.g. OpenSmile_lld_IS13ComParE")
    im.add_argument("--dims", type=int, required=True, help="feature dimension (without the time column)")
    im.add_argument("--frame-rate", type=float, help="rows per second (default: none, for token-level text)")
    im.add_argument("--key", default="Audio_data", help="variable name in the .mat files (Text_data for text)")
    im.add_argument("--time-column", action="store_true", help="column 0 is the frame time: drop it")
    im.add_argument("--dtype", choices=("auto", "float16", "float32", "float64"), default="auto",
                    help="store dtype; auto = the .mat files' own (float64 stays float64)")
    im.add_argument("--norm-pooling", choices=POOLINGS,
                    help="how norm_para.py pools these features (default: known for the originals' names "
                         f"{', '.join(POOLING_BY_NAME)}; otherwise unrecorded and norm_para.py asks for --method)")
    for p in (ex, im):
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    writable_dir(args.out if args.cmd == "export" else args.store)
    try:
        if args.cmd == "export":
            n = export_mat(FeatureStore(args.store), args.out, key=args.key, time_column=args.time_column,
                           dtype="float64" if args.float64 else None, progress=not args.no_progress)
            print(f"wrote {n} .mat files to {args.out}")
            return 0
        dtype = source_dtype(args.mat_dir, args.key) if args.dtype == "auto" else args.dtype
        pooling = args.norm_pooling or POOLING_BY_NAME.get(args.name)
        store = FeatureStore.create(args.store, name=args.name, extractor="mat-import",
                                    params={"source": str(args.mat_dir)}, dims=args.dims, frame_rate=args.frame_rate,
                                    dtype=str(dtype), extra={"mat_key": args.key, "mat_time_column": args.time_column,
                                                             "norm_pooling": pooling})
        added, bad, repaired = import_mat(args.mat_dir, store, key=args.key, drop_time_column=args.time_column,
                                          progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print(f"imported {added} utterances into {args.store} ({store.dtype}); {len(bad)} file(s) failed"
          + (f", listed in {args.store}/errors-import.csv" if bad else ""))
    for f, why in bad[:20]:
        print(f"  {f}: {why}", file=sys.stderr)
    if repaired:
        print(f"note: {len(repaired)} imported utterance(s) hold NaN/inf values, kept as the originals kept them "
              "(statistics leave them out; z-normalisation maps NaN to 0 and +-inf to +-3); counts per utterance "
              f"in {args.store}/{NONFINITE_CSV}", file=sys.stderr)
        for utt, nan, pos, neg in repaired[:20]:
            print(f"  {utt}: {nan} NaN, {pos} +inf, {neg} -inf", file=sys.stderr)
    if pooling is None:
        print(f"note: {args.name} is not a feature set whose pooling is known; norm_para.py will need --method "
              "(or re-import with --norm-pooling)", file=sys.stderr)
    return 0 if added or len(store) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""float16 vs float32 feature stores: the rounding error of every stored value, raw and after z-normalisation.

    python bench/bench_f16_store.py --root demo_data/msp-podcast [--stores Wav2Vec32 MiniLM384]

For each float32 store under ROOT/Features/ (and its NormTerm folder ROOT/NormTerm_<store>), every utterance's
features are rounded to float16 as a `--dtype float16` store holds them, and the largest absolute error is
reported before and after the NormTerm z-normalisation the systems apply (docs/corpora.md, "float16 stores").
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.cli import parser  # noqa: E402
from features.normterm import NormTerm  # noqa: E402
from features.store import FeatureStore  # noqa: E402


def rounding(store: FeatureStore, nt: NormTerm) -> dict:
    raw = normed = 0.0
    values = 0
    for u in store.keys():
        x = np.asarray(store[u], np.float32)
        h = x.astype(np.float16).astype(np.float32)
        raw = max(raw, float(np.abs(h - x).max()))
        normed = max(normed, float(np.abs(nt.features(h) - nt.features(x)).max()))
        values += x.size
    return {"utterances": len(store.keys()), "values": values, "max_abs_error": raw, "max_abs_error_znorm": normed}


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, required=True, help="corpus root holding Features/<store> and NormTerm_<store>")
    ap.add_argument("--stores", nargs="+", default=["Wav2Vec32", "MiniLM384"], help="store names under Features/")
    args = ap.parse_args(argv)
    print("| store | utterances | values | max abs error | max abs error after z-normalisation |\n|---|---|---|---|---|")
    for name in args.stores:
        r = rounding(FeatureStore(args.root / "Features" / name), NormTerm.load(args.root / f"NormTerm_{name}"))
        print(f"| {name} | {r['utterances']} | {r['values'] / 1e6:.1f} M | {r['max_abs_error']:.1e} | "
              f"{r['max_abs_error_znorm']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

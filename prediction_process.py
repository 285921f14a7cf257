#!/usr/bin/env python
"""Predict arousal, dominance and valence (1-7 scale) for every WAV in a folder -> pred_result.csv.

    python prediction_process.py --wav-dir my_wavs [--out pred_result.csv]
    python prediction_process.py --wav-dir my_wavs --models Models/RUN_Act Models/RUN_Dom Models/RUN_Val

By default it uses the published v1.6 chunk-level attention LSTMs shipped in trained_models/ (SelfAttenVec;
`--atten RnnAttenVec` for the others): IS13 LLDs at 32 ms / 16 ms, their NormTerm, their networks. Any sample
rate, bit depth and channel count is accepted (resampled to 16 kHz, down-mixed). Files that cannot be read
are listed with the reason in <out>_errors.csv and the rest are predicted. Exit code 0 when at least one
file was predicted.
"""
import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from features.audio import AudioError
from features.extract import Item, load_input
from systems.chunk_lstm import ATTRIBUTE_NAMES, Predictor
from utils import atomic_path

COLUMNS = {"act": "Aro-Score", "dom": "Dom-Score", "val": "Val-Score"}
SHIPPED = Path(__file__).resolve().parent / "trained_models"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wav-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("pred_result.csv"))
    ap.add_argument("--models", type=Path, nargs="+", help="checkpoint folders (any subset of act/dom/val)")
    ap.add_argument("--atten", default="SelfAttenVec", choices=("SelfAttenVec", "RnnAttenVec"),
                    help="which shipped published models to use")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    paths = args.models or [SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_{args.atten}_{e}" for e in ("Act", "Dom", "Val")]
    try:
        predictors = [Predictor.load(p, device=args.device) for p in paths]
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    predictors.sort(key=lambda p: list(COLUMNS).index(p.attribute))
    feature_sets = {p.config["features"]["name"] for p in predictors}
    if feature_sets != {"OpenSmile_lld_IS13ComParE"}:
        print(f"error: the models use feature set(s) {sorted(feature_sets)}; prediction_process.py extracts "
              "IS13 LLDs (OpenSmile_lld_IS13ComParE)", file=sys.stderr)
        return 1
    from features.opensmile_lld import OpenSmileLLD
    extractor = OpenSmileLLD()
    wavs = sorted(p for p in args.wav_dir.rglob("*") if p.suffix.lower() == ".wav") if args.wav_dir.is_dir() else []
    if not wavs:
        print(f"error: no .wav files in {args.wav_dir}", file=sys.stderr)
        return 1
    rows, errors = [], []
    for b in tqdm(range(0, len(wavs), args.batch_size), desc="predict", unit="batch", disable=args.no_progress):
        names, feats = [], []
        for w in wavs[b: b + args.batch_size]:
            try:
                x = load_input(Item(w.stem, w), "audio", extractor.min_seconds)
                f = extractor([x])[0]
                if not np.isfinite(f).all():
                    raise AudioError(w, "non-finite features")
            except AudioError as e:
                errors.append((str(w.relative_to(args.wav_dir)), e.reason))
                continue
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
                errors.append((str(w.relative_to(args.wav_dir)), f"feature extraction failed: {e}"))
                continue
            names.append(str(w.relative_to(args.wav_dir)))
            feats.append(f)
        if not names:
            continue
        scores = {p.attribute: p.predict(feats) for p in predictors}
        rows += [[n] + [f"{scores[a][i]:.4f}" for a in scores] for i, n in enumerate(names)]
    header = ["File_Name"] + [COLUMNS[p.attribute] for p in predictors]
    with atomic_path(args.out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    err_path = args.out.with_name(args.out.stem + "_errors.csv")
    if errors:
        with atomic_path(err_path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["File_Name", "reason"])
            w.writerows(errors)
    print(f"predicted {len(rows)} of {len(wavs)} files -> {args.out}"
          + (f"; {len(errors)} could not be read, listed in {err_path}" if errors else ""))
    print("models: " + ", ".join(f"{ATTRIBUTE_NAMES[p.attribute]} {p.source}" for p in predictors))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Predict arousal, dominance and valence (1-7 scale) for every WAV in a folder -> pred_result.csv.

    python prediction_process.py --wav-dir my_wavs [--out pred_result.csv]
    python prediction_process.py --wav-dir my_wavs --models Models/RUN_Act Models/RUN_Dom Models/RUN_Val
    python prediction_process.py --wav-dir my_wavs --models X_Act.pth.tar --normterm NormTerm
    python prediction_process.py --system deep-emo-cluster --models Models/dec --wav-dir my_wavs

--system picks the system and with it the features extracted in memory: chunk-lstm (IS13 LLDs; by default
the published v1.6 chunk-level attention LSTMs shipped in trained_models/, SelfAttenVec, or `--atten
RnnAttenVec`) or deep-emo-cluster (128-mel; no published weights exist, so --models is required). --models
takes checkpoint folders or original .pth.tar files, one per attribute, or one folder holding them. Any
sample rate, bit depth and channel count is accepted (resampled to 16 kHz, down-mixed).

pred_result.csv: File_Name (the WAV's path below --wav-dir without .wav, e.g. sub/a: unique and stable),
one score column per attribute, and Warning (empty, or why a score is less reliable: a truncated file, audio
shorter than one chunk). Files that cannot be read are listed with the reason in <out>_errors.csv (removed
when a run has none) and the rest are predicted. Exit code 0 when at least one file was predicted.
"""
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.cli import UserError, entry, int_at_least, parser
from features.audio import AudioError, truncated_wav
from features.extract import load_input, wav_folder
from systems.common import ATTRIBUTE_NAMES
from utils import atomic_path, writable_dir

COLUMNS = {"act": "Aro-Score", "dom": "Dom-Score", "val": "Val-Score"}
HERE = Path(__file__).resolve().parent
SHIPPED = HERE / "trained_models"


def system_parts(name: str):
    """(Predictor class, extractor, feature set name) of a system."""
    if name == "chunk-lstm":
        from features.opensmile_lld import OpenSmileLLD
        from systems.chunk_lstm import Predictor
        return Predictor, OpenSmileLLD(), "OpenSmile_lld_IS13ComParE"
    from features.mel import MelSpectrogram
    from systems.deep_emo_cluster import Predictor
    return Predictor, MelSpectrogram(), "Mel_Spec128"


def checkpoint_paths(paths: list[Path]) -> list[Path]:
    """The checkpoints named: a checkpoint folder or .pth.tar as it is, a folder of them by its contents."""
    out = []
    for p in paths:
        if p.is_dir() and not (p / "config.json").is_file():
            found = sorted(q for q in p.iterdir() if (q / "config.json").is_file() or q.name.endswith(".pth.tar"))
            if not found:
                raise UserError(f"{p}: neither a checkpoint folder nor a folder holding checkpoints")
            out += found
        else:
            out.append(p)
    return out


def load_predictors(predictor_cls, paths: list[Path], normterm: Path | None, device: str, feature_set: str) -> list:
    """One predictor per attribute, in Act, Dom, Val order; two models for one attribute are refused."""
    try:
        predictors = [predictor_cls.load(p, normterm=normterm if p.suffix == ".tar" else None, device=device)
                      for p in checkpoint_paths(paths)]
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    by_attr: dict[str, list[str]] = {}
    for p in predictors:
        by_attr.setdefault(p.attribute, []).append(p.source)
    twice = {a: srcs for a, srcs in by_attr.items() if len(srcs) > 1}
    if twice:
        raise UserError("--models: one model per attribute; " + "; ".join(
            f"{ATTRIBUTE_NAMES[a]} is predicted by {' and '.join(srcs)}" for a, srcs in twice.items()))
    feature_sets = {p.config.get("features", {}).get("name", feature_set) for p in predictors}
    if feature_sets != {feature_set}:
        raise UserError(f"the models use feature set(s) {sorted(feature_sets)}; this system extracts {feature_set}")
    return sorted(predictors, key=lambda p: list(COLUMNS).index(p.attribute))


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--wav-dir", type=Path, required=True, help="folder of WAVs (searched recursively)")
    ap.add_argument("--out", type=Path, default=Path("pred_result.csv"), help="CSV to write")
    ap.add_argument("--system", choices=("chunk-lstm", "deep-emo-cluster"), default="chunk-lstm",
                    help="which system's models and features")
    ap.add_argument("--models", type=Path, nargs="+",
                    help="checkpoint folders or original .pth.tar files, one per attribute (any subset of "
                         "Act/Dom/Val), or one folder holding them (default: the shipped published chunk-LSTM "
                         "models of --atten)")
    ap.add_argument("--normterm", type=Path,
                    help="NormTerm folder for original .pth.tar models (our checkpoints carry their own; default: "
                         "NormTerm/, the v1.6 statistics of the shipped chunk-LSTM models)")
    ap.add_argument("--atten", default="SelfAttenVec", choices=("SelfAttenVec", "RnnAttenVec"),
                    help="which shipped published models to use when --models is not given")
    ap.add_argument("--batch-size", type=int_at_least(1), default=16, help="files per forward pass")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    writable_dir(args.out.parent)  # fail now, not after the whole folder
    if args.models is None and args.system != "chunk-lstm":
        raise UserError("the DeepEmoCluster weights were never published (the original repository names them but "
                        "does not hold them), so there is no default: train with main.py and give --models")
    paths = args.models or [SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_{args.atten}_{e}" for e in ("Act", "Dom", "Val")]
    predictor_cls, extractor, feature_set = system_parts(args.system)
    normterm = args.normterm or (HERE / "NormTerm" if args.system == "chunk-lstm" else None)
    predictors = load_predictors(predictor_cls, paths, normterm, args.device, feature_set)
    if not args.wav_dir.is_dir():
        raise UserError(f"{args.wav_dir}: no such folder")
    items, clashes = wav_folder(args.wav_dir)
    if not items:
        raise UserError(f"{args.wav_dir}: no .wav files")
    min_frames = max(p.chunking["m"] for p in predictors)
    rows, errors = [], list(clashes)
    for b in tqdm(range(0, len(items), args.batch_size), desc="predict", unit="batch", disable=args.no_progress):
        names, feats, notes = [], [], []
        for it in items[b: b + args.batch_size]:
            rel = it.audio_path.relative_to(args.wav_dir).as_posix()
            try:
                x = load_input(it, "audio", extractor.min_seconds)
                f = extractor([x])[0]
            except AudioError as e:
                errors.append((rel, e.reason))
                continue
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
                errors.append((rel, f"feature extraction failed: {e}"))
                continue
            if not np.isfinite(f).all():
                errors.append((rel, "non-finite features"))
                continue
            note = [w for w in (truncated_wav(it.audio_path),) if w]
            if len(f) < min_frames:
                note.append(f"short: {len(x) / 16000:.2f} s gives {len(f)} frames, fewer than one chunk "
                            f"({min_frames}); padded with zeros")
            if note:
                print(f"warning: {rel}: {'; '.join(note)}", file=sys.stderr)
            names.append(it.utt_id)
            feats.append(f)
            notes.append("; ".join(note))
        if not names:
            continue
        scores = {p.attribute: p.predict(feats) for p in predictors}
        rows += [[n] + [f"{scores[a][i]:.4f}" for a in scores] + [notes[i]] for i, n in enumerate(names)]
    header = ["File_Name"] + [COLUMNS[p.attribute] for p in predictors] + ["Warning"]
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
    else:
        err_path.unlink(missing_ok=True)  # an earlier run's list must not sit beside these results
    warned = sum(1 for r in rows if r[-1])
    print(f"predicted {len(rows)} of {len(items) + len(clashes)} files -> {args.out}"
          + (f" ({warned} with a warning in its Warning column)" if warned else "")
          + (f"; {len(errors)} could not be read, listed in {err_path}" if errors else ""))
    print("models: " + ", ".join(f"{ATTRIBUTE_NAMES[p.attribute]} {p.source}" for p in predictors))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

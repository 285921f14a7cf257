#!/usr/bin/env python
"""Predict arousal, dominance and valence (1-7 scale) for every WAV in a folder -> pred_result.csv.

    python prediction_process.py --wav-dir my_wavs [--out pred_result.csv]
    python prediction_process.py --wav-dir my_wavs --models Models/RUN_Act Models/RUN_Dom Models/RUN_Val
    python prediction_process.py --wav-dir my_wavs --models X_Act.pth.tar --normterm NormTerm
    python prediction_process.py --system deep-emo-cluster --models Models/dec --wav-dir my_wavs
    python prediction_process.py --system audio-text --models Models/TransformerCoAtten_... --wav-dir my_wavs
    python prediction_process.py --wav-dir my_wavs --onnx Act.onnx Dom.onnx Val.onnx [--threads 1]   (export_onnx.py)
    python prediction_process.py --wav-dir my_wavs --track [--window 11 --hop 5.5]   (+ tracks/ beside --out)

--system picks the system and with it the features extracted in memory: chunk-lstm (IS13 LLDs; by default
the published v1.6 chunk-level attention LSTMs shipped in trained_models/, SelfAttenVec, or `--atten
RnnAttenVec`), deep-emo-cluster (128-mel; no published weights exist, so --models is required) or audio-text
(wav2vec2 frames + text tokens with the extractors the checkpoint was trained on, `--audio-model`/
`--text-model` to load them from elsewhere; one model predicts all three attributes; an original
TransformerCoAtten_*.pth.tar needs --normterm, the folder holding NormTerm_Speech and NormTerm_Text). For
audio-text the transcript is DIR/<name>.txt beside each WAV and the word alignment DIR/<name>.TextGrid:
a WAV without transcript is predicted with the text modality absent (column Text = absent; the system's one
absent stream, systems.audio_text.absent_stream, as in training and evaluation); without a
TextGrid the chunk count comes from the transcript's words, or from the duration at 2.5 words/s.
--models takes checkpoint folders or original .pth.tar files, one per attribute, or one folder holding them.
Any sample rate, bit depth and channel count is accepted (resampled to 16 kHz, down-mixed).

pred_result.csv: File_Name (the WAV's path below --wav-dir without .wav, e.g. sub/a: unique and stable),
one score column per attribute, (audio-text) Text, and Warning (empty, or why a score is less reliable: a
truncated WAV, audio shorter than one chunk, input the model does not see whole - `truncated: ...` with the
rows, seconds and tokens kept of the total, `partly seen: ...` when the chunks cover under half of a long file -
and any library warning raised while that file was scored). The summary line counts and names the files not
seen whole. Files that cannot be read are listed with the reason in
<out>_errors.csv (removed when a run has none) and the rest are predicted. Exit code 0 when at least one
file was predicted.

--track (docs/tracks.md): also writes, per file, <out dir>/tracks/<File_Name>.csv (each chunk's start and end
second, its output per attribute, its attention weight) and .png. A file longer than --window is scored as a
sliding sequence of windows read one at a time (constant memory): its pred_result row is the mean of its window
scores and its Warning says "scored as N windows of W s every H s"; a shorter file's row is unchanged.
"""
import csv
import sys
from pathlib import Path

from engine.cli import UserError, add_allow_unfinished_arg, add_precision_arg, check_precision, entry, int_at_least, parser
from features.extract import wav_folder
from systems.predict import CUT, SYSTEMS, Predictor, load_models
from systems.tracks import TRAINING_SECONDS, Windows, track_items
from utils import atomic_path, writable_dir


def build_parser():
    ap = parser(__doc__)
    ap.add_argument("--wav-dir", type=Path, required=True, help="folder of WAVs (searched recursively)")
    ap.add_argument("--out", type=Path, default=Path("pred_result.csv"), help="CSV to write")
    ap.add_argument("--system", choices=SYSTEMS, default="chunk-lstm", help="which system's models and features")
    ap.add_argument("--audio-model", help="audio-text: wav2vec2 model id, folder or tiny-random-wav2vec2 (the demo's "
                                          "tiny local model) instead of the one the checkpoint records (same output "
                                          "size; default: the recorded one)")
    ap.add_argument("--text-model", help="audio-text: text encoder id, folder or minilm instead of the one the "
                                         "checkpoint records (same output size; default: the recorded one)")
    ap.add_argument("--models", type=Path, nargs="+",
                    help="checkpoint folders or original .pth.tar files, one per attribute (any subset of "
                         "Act/Dom/Val), or one folder holding them (default: the shipped published chunk-LSTM "
                         "models of --atten)")
    ap.add_argument("--onnx", type=Path, nargs="+",
                    help="score with exported ONNX file(s) (export_onnx.py; one per attribute, or a folder of them) "
                         "on onnxruntime instead of --models; the system comes from the files (docs/onnx.md; default: none, --models)")
    ap.add_argument("--threads", type=int_at_least(1), help="--onnx: onnxruntime threads (default: all cores)")
    ap.add_argument("--normterm", type=Path,
                    help="NormTerm folder for original .pth.tar models (our checkpoints carry their own; default: "
                         "NormTerm/, the v1.6 statistics of the shipped chunk-LSTM models); audio-text: the folder "
                         "holding NormTerm_Speech and NormTerm_Text")
    ap.add_argument("--atten", default="SelfAttenVec", choices=("SelfAttenVec", "RnnAttenVec"),
                    help="which shipped published models to use when --models is not given")
    ap.add_argument("--batch-size", type=int_at_least(1), default=16, help="files per forward pass")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    add_precision_arg(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--track", action="store_true",
                    help="also write per-chunk tracks (CSV + PNG) to <out dir>/tracks/ and score files longer than "
                         "--window as the mean of sliding windows")
    ap.add_argument("--window", type=positive_seconds, default=TRAINING_SECONDS,
                    help="--track: window length in seconds (default: %(default)s, MSP-Podcast's longest turn: no "
                         "checkpoint records its training length)")
    ap.add_argument("--hop", type=positive_seconds, help="--track: seconds between window starts, at most --window "
                                                         "(default: half the window)")
    add_allow_unfinished_arg(ap)
    return ap


def positive_seconds(text: str) -> float:
    import argparse
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: give a positive number of seconds")
    return v


@entry
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    windows = check_flags(args)
    writable_dir(args.out.parent)  # fail now, not after the whole folder
    predictor = load_predictor(args)
    if not args.wav_dir.is_dir():
        raise UserError(f"{args.wav_dir}: no such folder")
    items, clashes = wav_folder(args.wav_dir)
    if not items:
        raise UserError(f"{args.wav_dir}: no .wav files")
    warn = lambda name, why: print(f"warning: {name}: {why}", file=sys.stderr)  # noqa: E731
    if args.track:
        rows, errors = track_items(predictor, items, windows, args.wav_dir, not args.no_progress, warn,
                                   on_track=lambda t: t.write(args.out.parent / "tracks"))
    else:
        rows, errors = predictor.score(items, args.wav_dir, progress=not args.no_progress, on_warning=warn)
    errors = [*clashes, *errors]
    write_csv(args.out, predictor.header, rows)
    err_path = args.out.with_name(args.out.stem + "_errors.csv")
    if errors:
        write_csv(err_path, ["File_Name", "reason"], errors)
    else:
        err_path.unlink(missing_ok=True)  # an earlier run's list must not sit beside these results
    summary(args, rows, len(items) + len(clashes), errors, err_path)
    print(f"models: {predictor.describe_models()}")
    if args.track:
        print(f"tracks: {args.out.parent / 'tracks'} (one CSV and PNG per file)")
    return 0 if rows else 1


def check_flags(args) -> Windows:
    """The sliding-window rule of --track; every flag that cannot apply refused before any work."""
    if not args.track and (args.hop is not None or args.window != TRAINING_SECONDS):
        raise UserError("--window and --hop apply with --track only")
    if args.onnx and (args.models or args.normterm or args.track or args.device != "cpu" or args.precision != "fp32"):
        raise UserError("--onnx replaces --models and --normterm, runs on the CPU in fp32 and gives no --track (the "
                        "exported graph returns utterance scores only)")
    check_precision(args.precision, args.device)
    if args.threads is not None and not args.onnx:
        raise UserError("--threads applies with --onnx only")
    try:
        return Windows(args.window, args.hop)
    except ValueError as e:
        raise UserError(str(e)) from None


def load_predictor(args) -> Predictor:
    """The models named (checkpoints, original files or exported ONNX graphs) with their system's features."""
    try:
        if args.onnx:
            from systems.onnx_predict import load_onnx
            system, models = load_onnx(args.onnx, threads=args.threads)
        else:
            system, models = load_models(args.models, args.system, args.normterm, args.device,
                                         args.allow_unfinished, args.atten)
        return Predictor(system, models, audio_model=args.audio_model, text_model=args.text_model,
                         device=args.device, batch_size=args.batch_size, precision=args.precision)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None


def summary(args, rows: list, files: int, errors: list, err_path: Path) -> None:
    """The closing line: how many files were predicted, warned, not seen whole, unreadable."""
    warned = sum(1 for r in rows if r[-1])
    cut = [r[0] for r in rows if any(w.startswith(CUT) for w in r[-1].split("; "))]
    print(f"predicted {len(rows)} of {files} files -> {args.out}"
          + (f" ({warned} with a warning in its Warning column)" if warned else "")
          + (f"; {len(cut)} not seen whole (truncated or partly seen, see Warning): {', '.join(cut[:10])}"
             f"{' ...' if len(cut) > 10 else ''}" if cut else "")
          + (f"; {len(errors)} could not be read, listed in {err_path}" if errors else ""))


def write_csv(path: Path, header: list[str], rows: list) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Predict arousal, dominance and valence (1-7 scale) for every WAV in a folder -> pred_result.csv.

    python prediction_process.py --wav-dir my_wavs [--out pred_result.csv]
    python prediction_process.py --wav-dir my_wavs --models Models/RUN_Act Models/RUN_Dom Models/RUN_Val
    python prediction_process.py --wav-dir my_wavs --models X_Act.pth.tar --normterm NormTerm
    python prediction_process.py --system deep-emo-cluster --models Models/dec --wav-dir my_wavs
    python prediction_process.py --system audio-text --models Models/TransformerCoAtten_... --wav-dir my_wavs

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
"""
import csv
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.cli import UserError, add_allow_unfinished_arg, entry, int_at_least, parser
from features.audio import AudioError, truncated_wav
from features.extract import InputError, load_input, wav_folder
from systems.audio_text_inputs import M_FRAMES
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
    if name == "audio-text":
        from systems.audio_text import Predictor
        return Predictor, None, None  # extractors come from the checkpoint
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


def load_predictors(predictor_cls, paths: list[Path], normterm: Path | None, device: str, feature_set: str,
                    allow_unfinished: bool = False) -> list:
    """One predictor per attribute, in Act, Dom, Val order; two models for one attribute are refused."""
    try:
        predictors = [predictor_cls.load(p, normterm=normterm if p.suffix == ".tar" else None, device=device,
                                         allow_unfinished=allow_unfinished)
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


COVERAGE_WARN = 0.5  # a file whose chunks see less than this share of its frames says so in its Warning
CUT = ("truncated", "partly seen")  # how the Warning of a file the model did not see whole begins


def chunk_coverage(n_frames: int, seconds: float, m: int, C: int, n: int = 1) -> str:
    """'' or, when the n*C chunks of m frames (utils.dynamic_chunks, the systems' one chunker) see less than
    COVERAGE_WARN of a file's frames, how much they see: a long file is sampled, never seen whole."""
    from utils import dynamic_chunks
    starts = np.sort(dynamic_chunks([n_frames], m=m, C=C, n=n)[0])
    ends = np.minimum(starts + m, n_frames)
    seen = int(np.sum(np.maximum(ends - np.maximum(starts, np.concatenate([[0], ends[:-1]])), 0)))
    share = seen / max(n_frames, 1)
    if share >= COVERAGE_WARN:
        return ""
    return (f"partly seen: {n * C} chunks of {m} frames cover {share * seconds:.1f} s of {seconds:.1f} s "
            f"({share:.0%}); the rest of the file is not heard")


def per_attribute_parts(predictors, extractor):
    """(featurize, predict, columns) of the one-model-per-attribute systems (chunk LSTM, DeepEmoCluster)."""
    min_frames = max(p.chunking["m"] for p in predictors)

    def featurize(it):
        x = load_input(it, "audio", extractor.min_seconds)
        f = extractor([x])[0]
        if not np.isfinite(f).all():
            raise InputError(it.audio_path, "non-finite features")
        note = []
        if len(f) < min_frames:
            note.append(f"short: {len(x) / 16000:.2f} s gives {len(f)} frames, fewer than one chunk "
                        f"({min_frames}); padded with zeros")
        c = predictors[0].chunking  # every model of one system chunks alike; the widest coverage is the first's
        note += [w for w in (chunk_coverage(len(f), len(x) / 16000, c["m"], c["C"], c.get("n", 1)),) if w]
        return f, [], note

    def predict(feats):
        return np.stack([p.predict(feats) for p in predictors], 1)
    return featurize, predict, [COLUMNS[p.attribute] for p in predictors]


def audio_text_parts(predictors, args):
    """(featurize, predict, columns) of the audio-text system: wav2vec2 frames of the WAV, text tokens of
    <name>.txt beside it (absent when there is none), words of <name>.TextGrid (else counted)."""
    from corpora.records import CorpusError, read_transcript_file
    from corpora.textgrid import read_words
    from systems.audio_text import WORDS_PER_SECOND
    (pred,) = predictors
    try:
        audio_ext, text_ext = pred.extractors(args.audio_model, args.text_model, args.device)
    except Exception as e:  # noqa: BLE001 - transformers raises many types for a wrong or broken model folder
        why = str(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"  # an OSError names its flag
        raise UserError(f"cannot load the feature extractors of {pred.source}: {why}") from None

    def featurize(it):
        x = load_input(it, "audio", audio_ext.min_seconds)
        a = audio_ext([x])[0]
        note, text, transcript = [], None, it.audio_path.with_suffix(".txt")
        if transcript.is_file():
            words_text = read_transcript_file(transcript)
            if words_text:
                text = text_ext([words_text])[0]
            else:
                note.append(f"{transcript.name} is empty: predicted without text")
        for f in (a, text):
            if f is not None and not np.isfinite(f).all():
                raise InputError(it.audio_path, "non-finite features")
        grid = it.audio_path.with_suffix(".TextGrid")
        try:
            words = read_words(grid) if grid.is_file() else None
        except CorpusError as e:
            note.append(f"{e}; chunks counted without it")
            words = None
        if words is None:
            words = len(words_text.split()) if text is not None else max(2, round(len(x) / 16000 * WORDS_PER_SECOND))
            if text is None:
                note.append(f"no TextGrid or transcript: {words} chunks from the duration at {WORDS_PER_SECOND} "
                            "words/s")
        if len(a) < M_FRAMES:
            note.append(f"short: {len(x) / 16000:.2f} s gives {len(a)} frames, fewer than one chunk ({M_FRAMES}); "
                        "padded with zeros")
        note += [w for w in (pred.truncation(a, text, words),) if w]
        return (a, text, words), ["transcript" if text is not None else "absent"], note

    return featurize, pred.predict, [COLUMNS[a] for a in pred.attributes] + ["Text"]


def with_warnings(fn, *args):
    """(fn(*args), the messages of the warnings it raised): a library's warning, which names no file, becomes a
    note of the file being processed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))


def predict_batch(predict, inputs: list) -> tuple[np.ndarray, list[list[str]]]:
    """(scores, each input's warnings): a batch whose forward pass warns is re-run input by input so that each
    warning lands on the file that raised it (a warning of the batch as a whole goes to every file of it)."""
    scores, caught = with_warnings(predict, inputs)
    if not caught or len(inputs) == 1:
        return scores, [caught] * len(inputs)
    each = [with_warnings(predict, [x])[1] for x in inputs]
    return scores, each if any(each) else [[f"{w} (in a batch of {len(inputs)} files)" for w in caught]] * len(inputs)


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--wav-dir", type=Path, required=True, help="folder of WAVs (searched recursively)")
    ap.add_argument("--out", type=Path, default=Path("pred_result.csv"), help="CSV to write")
    ap.add_argument("--system", choices=("chunk-lstm", "deep-emo-cluster", "audio-text"), default="chunk-lstm",
                    help="which system's models and features")
    ap.add_argument("--audio-model", help="audio-text: wav2vec2 model id, folder or tiny-random-wav2vec2 (the demo's "
                                          "tiny local model) instead of the one the checkpoint records (same output "
                                          "size; default: the recorded one)")
    ap.add_argument("--text-model", help="audio-text: text encoder id, folder or minilm instead of the one the "
                                         "checkpoint records (same output size; default: the recorded one)")
    ap.add_argument("--models", type=Path, nargs="+",
                    help="checkpoint folders or original .pth.tar files, one per attribute (any subset of "
                         "Act/Dom/Val), or one folder holding them (default: the shipped published chunk-LSTM "
                         "models of --atten)")
    ap.add_argument("--normterm", type=Path,
                    help="NormTerm folder for original .pth.tar models (our checkpoints carry their own; default: "
                         "NormTerm/, the v1.6 statistics of the shipped chunk-LSTM models); audio-text: the folder "
                         "holding NormTerm_Speech and NormTerm_Text")
    ap.add_argument("--atten", default="SelfAttenVec", choices=("SelfAttenVec", "RnnAttenVec"),
                    help="which shipped published models to use when --models is not given")
    ap.add_argument("--batch-size", type=int_at_least(1), default=16, help="files per forward pass")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_allow_unfinished_arg(ap)
    args = ap.parse_args(argv)

    writable_dir(args.out.parent)  # fail now, not after the whole folder
    if args.models is None and args.system != "chunk-lstm":
        what = {"deep-emo-cluster": "DeepEmoCluster weights were never published (the original repository names "
                                    "them but does not hold them)",
                "audio-text": "audio-text weights were never published (the original repository ships only its "
                              "NormTerm statistics)"}[args.system]
        raise UserError(f"the {what}, so there is no default: train with main.py and give --models")
    paths = args.models or [SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_{args.atten}_{e}" for e in ("Act", "Dom", "Val")]
    predictor_cls, extractor, feature_set = system_parts(args.system)
    normterm = args.normterm or (HERE / "NormTerm" if args.system == "chunk-lstm" else None)
    if args.system == "audio-text":
        found = checkpoint_paths(paths)
        if len(found) != 1:
            raise UserError(f"--models: an audio-text model predicts all three attributes; give one (got "
                            f"{', '.join(map(str, found))})")
        try:
            predictors = [predictor_cls.load(found[0], normterm=normterm, device=args.device,
                                             allow_unfinished=args.allow_unfinished)]
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
    else:
        predictors = load_predictors(predictor_cls, paths, normterm, args.device, feature_set, args.allow_unfinished)
    if not args.wav_dir.is_dir():
        raise UserError(f"{args.wav_dir}: no such folder")
    items, clashes = wav_folder(args.wav_dir)
    if not items:
        raise UserError(f"{args.wav_dir}: no .wav files")
    if args.system == "audio-text":
        featurize, predict, columns = audio_text_parts(predictors, args)
    else:
        featurize, predict, columns = per_attribute_parts(predictors, extractor)
    rows, errors = [], list(clashes)
    for b in tqdm(range(0, len(items), args.batch_size), desc="predict", unit="batch", disable=args.no_progress):
        names, inputs, extra, notes = [], [], [], []
        for it in items[b: b + args.batch_size]:
            rel = it.audio_path.relative_to(args.wav_dir).as_posix()
            try:
                (x, cells, note), caught = with_warnings(featurize, it)
            except (AudioError, InputError) as e:
                errors.append((rel, e.reason))
                continue
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
                errors.append((rel, f"feature extraction failed: {e}"))
                continue
            names.append(it.utt_id)
            inputs.append(x)
            extra.append(cells)
            notes.append([w for w in (truncated_wav(it.audio_path),) if w] + note + caught)
        if not names:
            continue
        scores, caught = predict_batch(predict, inputs)
        for i, n in enumerate(names):
            notes[i] = "; ".join(dict.fromkeys(notes[i] + caught[i]))
            if notes[i]:
                print(f"warning: {n}: {notes[i]}", file=sys.stderr)
        rows += [[n, *(f"{v:.4f}" for v in scores[i]), *extra[i], notes[i]] for i, n in enumerate(names)]
    header = ["File_Name", *columns, "Warning"]
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
    cut = [r[0] for r in rows if any(w.startswith(CUT) for w in r[-1].split("; "))]
    print(f"predicted {len(rows)} of {len(items) + len(clashes)} files -> {args.out}"
          + (f" ({warned} with a warning in its Warning column)" if warned else "")
          + (f"; {len(cut)} not seen whole (truncated or partly seen, see Warning): {', '.join(cut[:10])}"
             f"{' ...' if len(cut) > 10 else ''}" if cut else "")
          + (f"; {len(errors)} could not be read, listed in {err_path}" if errors else ""))
    print("models: " + ", ".join(f"{ATTRIBUTE_NAMES[p.attribute]} {p.source}" if hasattr(p, "attribute")
                                 else f"Act, Dom and Val {p.source}" for p in predictors))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

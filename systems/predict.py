"""Prediction with trained models on raw audio: load any of our checkpoints or an original .pth.tar, score WAVs.

The one core under prediction_process.py and the Python API (ser.load): `load_models` reads the checkpoints of
one system (chunk LSTM, DeepEmoCluster, audio-text), `Predictor` extracts that system's features in memory and
scores a folder, a file or a signal into the rows of pred_result.csv (File_Name, one score column per
attribute, Text for audio-text, Warning). A file that cannot be read is listed with the reason, never dropped.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from features.audio import TARGET_SR, AudioError, mono_at, truncated_wav
from features.extract import InputError, Item, load_input, wav_folder
from systems.audio_text_inputs import M_FRAMES
from systems.common import ATTRIBUTE_NAMES

COLUMNS = {"act": "Aro-Score", "dom": "Dom-Score", "val": "Val-Score"}
HERE = Path(__file__).resolve().parents[1]
SHIPPED = HERE / "trained_models"
SYSTEMS = ("chunk-lstm", "deep-emo-cluster", "audio-text")
COVERAGE_WARN = 0.5  # a file whose chunks see less than this share of its frames says so in its Warning
CUT = ("truncated", "partly seen")  # how the Warning of a file the model did not see whole begins


def shipped_models(atten: str = "SelfAttenVec") -> list[Path]:
    """The published v1.6 chunk-LSTM models shipped in trained_models/ (Act, Dom, Val) of one attention."""
    return [SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_{atten}_{e}" for e in ("Act", "Dom", "Val")]


def system_parts(name: str):
    """(Predictor class, feature extractor class, feature set name) of a system."""
    if name == "chunk-lstm":
        from features.opensmile_lld import OpenSmileLLD
        from systems.chunk_lstm import Predictor
        return Predictor, OpenSmileLLD, "OpenSmile_lld_IS13ComParE"
    if name == "audio-text":
        from systems.audio_text import Predictor
        return Predictor, None, None  # extractors come from the checkpoint
    from features.mel import MelSpectrogram
    from systems.deep_emo_cluster import Predictor
    return Predictor, MelSpectrogram, "Mel_Spec128"


def checkpoint_paths(paths: list[Path]) -> list[Path]:
    """The checkpoints named: a checkpoint folder or .pth.tar as it is, a folder of them by its contents."""
    out = []
    for p in paths:
        if p.is_dir() and not (p / "config.json").is_file():
            found = sorted(q for q in p.iterdir() if (q / "config.json").is_file() or q.name.endswith(".pth.tar"))
            if not found:
                raise ValueError(f"{p}: neither a checkpoint folder nor a folder holding checkpoints")
            out += found
        else:
            out.append(p)
    return out


# what each checkpoint's config.json calls its system; the IEMOCAP classifiers are scored by their scripts
CONFIG_SYSTEMS = {"chunk_lstm": "chunk-lstm", "deep_emo_cluster": "deep-emo-cluster", "audio_text": "audio-text"}
SCORED_BY_THEIR_SCRIPT = {"mdre": "mdre.py", "speech-text-mocap": "speech_text_mocap.py"}


def system_of(path: Path) -> str:
    """The system of one checkpoint: its config.json says it; an original .pth.tar, its name (the original's
    pattern)."""
    from systems import audio_text, chunk_lstm, deep_emo_cluster
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint folder or file")
    if (path / "config.json").is_file():
        recorded = json.loads((path / "config.json").read_text()).get("system")
        if recorded in SCORED_BY_THEIR_SCRIPT:
            raise ValueError(f"{path}: a {recorded} checkpoint, an IEMOCAP emotion classifier scored on its corpus "
                             f"with {SCORED_BY_THEIR_SCRIPT[recorded]}; prediction from audio supports "
                             f"{', '.join(SYSTEMS)}")
        if recorded not in CONFIG_SYSTEMS:
            raise ValueError(f"{path}: a {recorded!r} checkpoint; prediction from audio supports {', '.join(SYSTEMS)}")
        return CONFIG_SYSTEMS[recorded]
    named = {"chunk-lstm": chunk_lstm, "audio-text": audio_text, "deep-emo-cluster": deep_emo_cluster}
    for name, module in named.items():
        if module.LEGACY_NAME.search(path.name):
            return name
    raise ValueError(f"{path}: its name does not say which system's model it is; give system= ({', '.join(SYSTEMS)})")


def load_models(paths: list[Path] | None, system: str | None = None, normterm: Path | None = None,
                device: str = "cpu", allow_unfinished: bool = False, atten: str = "SelfAttenVec") -> tuple[str, list]:
    """(system, its loaded models): one per attribute in Act, Dom, Val order, or the one audio-text model.
    `paths` as --models takes them (None: the shipped chunk-LSTM models of `atten`); `system` None: read from
    the checkpoints. Every problem is a ValueError (or FileNotFoundError) saying what to give."""
    if system not in (None, *SYSTEMS):
        raise ValueError(f"system {system!r}: prediction from audio supports {', '.join(SYSTEMS)}"
                         + (f"; {system} is scored on its corpus with {SCORED_BY_THEIR_SCRIPT[system]}"
                            if system in SCORED_BY_THEIR_SCRIPT else ""))
    if paths is None:
        if system not in (None, "chunk-lstm"):
            what = {"deep-emo-cluster": "DeepEmoCluster weights were never published (the original repository "
                                        "names them but does not hold them)",
                    "audio-text": "audio-text weights were never published (the original repository ships only "
                                  "its NormTerm statistics)"}[system]
            raise ValueError(f"the {what}, so there is no default: train with main.py and give --models")
        paths, system = shipped_models(atten), "chunk-lstm"
    found = checkpoint_paths([Path(p) for p in paths])
    if system is None:
        systems = sorted({system_of(p) for p in found})
        if len(systems) > 1:
            raise ValueError(f"--models: checkpoints of several systems ({', '.join(systems)}); give one system's")
        (system,) = systems
    predictor_cls, _, feature_set = system_parts(system)
    normterm = normterm or (HERE / "NormTerm" if system == "chunk-lstm" else None)
    if system == "audio-text":
        if len(found) != 1:
            raise ValueError(f"--models: an audio-text model predicts all three attributes; give one (got "
                             f"{', '.join(map(str, found))})")
        return system, [predictor_cls.load(found[0], normterm=normterm, device=device,
                                           allow_unfinished=allow_unfinished)]
    models = [predictor_cls.load(p, normterm=normterm if p.suffix == ".tar" else None, device=device,
                                 allow_unfinished=allow_unfinished) for p in found]
    by_attr: dict[str, list[str]] = {}
    for p in models:
        by_attr.setdefault(p.attribute, []).append(p.source)
    twice = {a: srcs for a, srcs in by_attr.items() if len(srcs) > 1}
    if twice:
        raise ValueError("--models: one model per attribute; " + "; ".join(
            f"{ATTRIBUTE_NAMES[a]} is predicted by {' and '.join(srcs)}" for a, srcs in twice.items()))
    feature_sets = {p.config.get("features", {}).get("name", feature_set) for p in models}
    if feature_sets != {feature_set}:
        raise ValueError(f"the models use feature set(s) {sorted(feature_sets)}; this system extracts {feature_set}")
    return system, sorted(models, key=lambda p: list(COLUMNS).index(p.attribute))


@dataclass(frozen=True)
class SignalItem(Item):
    """An input given as samples (any rate; (n,) or (n, channels)) instead of a WAV file."""
    signal: np.ndarray | None = None
    sr: int = TARGET_SR
    words: tuple | None = None  # audio-text: the word intervals of this signal (a window of a long file's TextGrid)


def audio_of(it: Item, min_seconds: float) -> np.ndarray:
    """16 kHz mono float32 samples of an input, refused as features.extract.load_input refuses a WAV's: no
    samples, non-finite, shorter than `min_seconds`, silent."""
    if not isinstance(it, SignalItem):
        return load_input(it, "audio", min_seconds)
    x = mono_at(it.signal, int(it.sr), it.utt_id, min_seconds=min_seconds)
    if not np.any(x):
        raise AudioError(it.utt_id, "silent (all-zero) audio")
    return x


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


def per_attribute_parts(models, extractor):
    """(featurize, predict, columns) of the one-model-per-attribute systems (chunk LSTM, DeepEmoCluster)."""
    min_frames = max(p.chunking["m"] for p in models)

    def featurize(it):
        x = audio_of(it, extractor.min_seconds)
        f = extractor([x])[0]
        if not np.isfinite(f).all():
            raise InputError(it.audio_path or it.utt_id, "non-finite features")
        note = []
        if len(f) < min_frames:
            note.append(f"short: {len(x) / 16000:.2f} s gives {len(f)} frames, fewer than one chunk "
                        f"({min_frames}); padded with zeros")
        c = models[0].chunking  # every model of one system chunks alike; the widest coverage is the first's
        note += [w for w in (chunk_coverage(len(f), len(x) / 16000, c["m"], c["C"], c.get("n", 1)),) if w]
        return f, [], note

    def predict(feats):
        return np.stack([p.predict(feats) for p in models], 1)
    return featurize, predict, [COLUMNS[p.attribute] for p in models]


def per_attribute_track(models):
    """The track function of the one-model-per-attribute systems: inputs -> per input {"score": (K,),
    "chunks": (C, K), "weights": (C, K), "frames": (C, 2)} over the K models (systems.chunk_lstm.Predictor.track)."""
    def track(feats):
        per_model = [p.track(feats) for p in models]  # [model][input]
        out = []
        for recs in zip(*per_model):
            frames = recs[0]["frames"]
            assert all(np.array_equal(r["frames"], frames) for r in recs), "the models chunk one file differently"
            out.append({"score": np.array([r["score"] for r in recs]), "frames": frames,
                        "chunks": np.stack([r["chunks"] for r in recs], axis=1),     # (C, K)
                        "weights": np.stack([r["weights"] for r in recs], axis=1)})  # (C, K)
        return out
    return track


def transcript_of(it: Item) -> tuple[str | None, str]:
    """(the transcript's text or None, its name for a note): the text given with the input, else the file
    beside the WAV (DIR/<name>.txt) when there is one."""
    from corpora.records import read_transcript_file
    if it.transcript is not None:
        return it.transcript.strip(), "the transcript"
    if it.transcript_path is not None and it.transcript_path.is_file():
        return read_transcript_file(it.transcript_path), it.transcript_path.name
    return None, ""


def audio_text_parts(model, audio_model: str | None, text_model: str | None, device: str):
    """(featurize, predict, columns) of the audio-text system: wav2vec2 frames of the WAV, text tokens of its
    transcript (absent when there is none), words of <name>.TextGrid (else counted)."""
    from corpora.records import CorpusError
    from corpora.textgrid import read_words
    from systems.audio_text import WORDS_PER_SECOND
    try:
        audio_ext, text_ext = model.extractors(audio_model, text_model, device)
    except Exception as e:  # noqa: BLE001 - transformers raises many types for a wrong or broken model folder
        why = str(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"  # an OSError names its flag
        raise ValueError(f"cannot load the feature extractors of {model.source}: {why}") from None

    def featurize(it):
        x = audio_of(it, audio_ext.min_seconds)
        a = audio_ext([x])[0]
        note, text = [], None
        words_text, named = transcript_of(it)
        if words_text:
            text = text_ext([words_text])[0]
        elif words_text is not None:
            note.append(f"{named} is empty: predicted without text")
        for f in (a, text):
            if f is not None and not np.isfinite(f).all():
                raise InputError(it.audio_path or it.utt_id, "non-finite features")
        grid = it.alignment_path
        try:
            words = read_words(grid) if grid is not None and grid.is_file() else getattr(it, "words", None)
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
        note += [w for w in (model.truncation(a, text, words),) if w]
        return (a, text, words), ["transcript" if text is not None else "absent"], note

    return featurize, model.predict, [COLUMNS[a] for a in model.attributes] + ["Text"]


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


def in_precision(fn, device: str, precision: str):
    """`fn` with its forward passes in `precision` on `device` (engine.loop.autocast: the models' forward, not the
    feature extraction before it); fp32: `fn` itself. fp16 off CUDA is a UserError now, not at the first file."""
    if precision == "fp32":
        return fn
    from engine.loop import autocast
    with autocast(device, precision):  # checks the pair now
        pass

    def run(*args, **kw):
        with autocast(device, precision):
            return fn(*args, **kw)
    return run


class Predictor:
    """One system's trained models with that system's feature extraction: scores WAV folders, files and signals
    into the rows of pred_result.csv (`header`), the same for prediction_process.py and the Python API."""

    def __init__(self, system: str, models: list, *, audio_model: str | None = None, text_model: str | None = None,
                 device: str = "cpu", batch_size: int = 16, precision: str = "fp32"):
        """`models` as load_models returns them; audio-text: its extractors are loaded now (`audio_model` /
        `text_model` instead of the ones the checkpoint records), a failure is a ValueError. `precision`: the
        models' forward passes in fp32 (the reference), bf16 or fp16 (CUDA only); scores come back as float32."""
        self.system, self.models, self.batch_size, self.precision = system, models, batch_size, precision
        if system == "audio-text":
            self.featurize, self.forward, columns = audio_text_parts(models[0], audio_model, text_model, device)
            self.track_inputs = models[0].track
            self.frame_rate = models[0].config["features"]["audio"].get("frame_rate") or 50.0
            self.attributes = [ATTRIBUTE_NAMES[a] for a in models[0].attributes]
        else:
            extractor = system_parts(system)[1]()
            self.featurize, self.forward, columns = per_attribute_parts(models, extractor)
            self.track_inputs, self.frame_rate = per_attribute_track(models), extractor.frame_rate
            self.attributes = [ATTRIBUTE_NAMES[p.attribute] for p in models]
        self.forward = in_precision(self.forward, device, precision)
        self.track_inputs = in_precision(self.track_inputs, device, precision)
        self.header = ["File_Name", *columns, "Warning"]
        self.scores = [c for c in columns if c != "Text"]

    def describe_models(self) -> str:
        """Which model predicts what ("Act <source>, ..." or "Act, Dom and Val <source>")."""
        return ", ".join(f"{ATTRIBUTE_NAMES[p.attribute]} {p.source}" if hasattr(p, "attribute")
                         else f"Act, Dom and Val {p.source}" for p in self.models)

    def score(self, items: list[Item], root: Path | None = None, progress: bool = False,
              on_warning=None, on_features=None) -> tuple[list[list], list[tuple[str, str]]]:
        """(rows of pred_result.csv, scores as '%.4f' text; (file, why) of every input that could not be read),
        `batch_size` inputs per forward pass. Files are named relative to `root`; `on_warning(name, warning)` is
        told each warned row as its batch is done; `on_features(item, input)` each input the model is given
        (systems.tracks reuses the features for a file's track)."""
        rows, errors = [], []
        for b in tqdm(range(0, len(items), self.batch_size), desc="predict", unit="batch", disable=not progress):
            names, inputs, extra, notes = [], [], [], []
            for it in items[b: b + self.batch_size]:
                rel = (it.utt_id if it.audio_path is None else str(it.audio_path) if root is None
                       else it.audio_path.relative_to(root).as_posix())
                try:
                    (x, cells, note), caught = with_warnings(self.featurize, it)
                except (AudioError, InputError) as e:
                    errors.append((rel, e.reason))
                    continue
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
                    errors.append((rel, f"feature extraction failed: {e}"))
                    continue
                names.append(it.utt_id)
                inputs.append(x)
                if on_features is not None:
                    on_features(it, x)
                extra.append(cells)
                notes.append([w for w in (it.audio_path and truncated_wav(it.audio_path),) if w] + note + caught)
            if not names:
                continue
            scores, caught = predict_batch(self.forward, inputs)
            for i, n in enumerate(names):
                notes[i] = "; ".join(dict.fromkeys(notes[i] + caught[i]))
                if notes[i] and on_warning is not None:
                    on_warning(n, notes[i])
            rows += [[n, *(f"{v:.4f}" for v in scores[i]), *extra[i], notes[i]] for i, n in enumerate(names)]
        return rows, errors

    def frame(self, rows: list[list], errors: list[tuple[str, str]]):
        """The rows as a pandas DataFrame with the values pred_result.csv holds (scores as the floats its text
        reads as); the inputs that could not be read in .attrs["errors"]: [(file, why)]."""
        import pandas as pd
        k = len(self.scores)  # the score columns follow File_Name
        df = pd.DataFrame([[r[0], *map(float, r[1: 1 + k]), *r[1 + k:]] for r in rows], columns=self.header)
        df.attrs["errors"] = list(errors)
        return df

    def predict_folder(self, folder: str | Path, progress: bool = False):
        """Every WAV below `folder` (transcript <name>.txt and <name>.TextGrid beside it, for audio-text), as
        prediction_process.py writes pred_result.csv: File_Name is the path below `folder` without .wav; the
        files that could not be read, with why, in .attrs["errors"]."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        items, clashes = wav_folder(folder)
        rows, errors = self.score(items, folder, progress)
        return self.frame(rows, [*clashes, *errors])

    def predict_file(self, path: str | Path, transcript: str | None = None):
        """One WAV as a one-row DataFrame (File_Name: its name without .wav); audio-text: `transcript` is the
        text (default: <name>.txt beside it, absent when there is none), <name>.TextGrid its words. A file that
        cannot be read is a ValueError saying why."""
        path = Path(path)
        it = Item(path.stem, path, path.with_suffix(".txt"), transcript, path.with_suffix(".TextGrid"))
        return self.one(it)

    def predict(self, signal, sr: int, transcript: str | None = None, name: str = "signal"):
        """One signal (samples at `sr` Hz, (n,) or (n, channels)) as a one-row DataFrame named `name`;
        audio-text: `transcript` is its text (None: text absent), the chunks counted from its words."""
        return self.one(SignalItem(name, signal=signal, sr=sr, transcript=transcript))

    def one(self, it: Item):
        """One input as a one-row DataFrame; one that cannot be read is a ValueError saying why."""
        rows, errors = self.score([it])
        if errors:
            raise ValueError(f"{errors[0][0]}: {errors[0][1]}")
        return self.frame(rows, errors)

    def track_file(self, path: str | Path, *, window: float | None = None, hop: float | None = None,
                   out: str | Path | None = None, transcript: str | None = None):
        """One WAV's per-second track (systems.tracks) as a DataFrame (the track CSV's columns); .attrs["scores"]
        holds the file-level scores {attribute: score} (one window: predict_file's; longer: the window mean) and
        .attrs["warning"] its notes. `window`/`hop` in seconds (default 11 s / half the window); `out`: a folder
        to write <name>.csv and <name>.png into. A file that cannot be read is a ValueError saying why."""
        path = Path(path)
        it = Item(path.stem, path, path.with_suffix(".txt"), transcript, path.with_suffix(".TextGrid"))
        return self._track_one(it, window, hop, out)

    def track(self, signal, sr: int, *, window: float | None = None, hop: float | None = None,
              out: str | Path | None = None, transcript: str | None = None, name: str = "signal"):
        """One signal's per-second track, as track_file."""
        return self._track_one(SignalItem(name, signal=signal, sr=sr, transcript=transcript), window, hop, out)

    def _track_one(self, it: Item, window, hop, out):
        from systems.tracks import Windows, track_items
        tracks = []
        rows, errors = track_items(self, [it], Windows(window or Windows.window, hop), on_track=tracks.append)
        if errors:
            raise ValueError(f"{errors[0][0]}: {errors[0][1]}")
        df = tracks[0].frame()
        df.attrs["scores"] = dict(zip(self.attributes, map(float, tracks[0].scores)))
        df.attrs["warning"] = rows[0][-1]
        if out is not None:
            tracks[0].write(Path(out))
        return df

    def track_folder(self, folder: str | Path, out: str | Path, *, window: float | None = None,
                     hop: float | None = None, progress: bool = False):
        """Every WAV below `folder` tracked into <out>/<File_Name>.csv and .png, as prediction_process.py --track;
        returns predict_folder's DataFrame with a long file's scores the mean of its windows."""
        from systems.tracks import Windows, track_folder
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        rows, errors = track_folder(self, folder, Path(out), Windows(window or Windows.window, hop), progress)
        return self.frame(rows, errors)


def load(path=None, *, system: str | None = None, normterm=None, device: str = "cpu", allow_unfinished: bool = False,
         atten: str = "SelfAttenVec", audio_model: str | None = None, text_model: str | None = None,
         batch_size: int = 16, threads: int | None = None, precision: str = "fp32") -> Predictor:
    """A Predictor of any of our checkpoint folders (chunk-lstm, deep-emo-cluster, audio-text: the system read
    from its config.json) or original .pth.tar files (their NormTerm folder `normterm`), one per attribute as a
    list, or a folder holding them; None: the shipped published chunk-LSTM models of `atten`. Exported .onnx
    files (export_onnx.py) run on onnxruntime with `threads` threads (None: all cores). `precision`: the forward
    passes in fp32, bf16 or fp16 (CUDA only); exported files run in fp32."""
    paths = None if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    if paths and all(str(p).endswith(".onnx") for p in paths):  # exported files: onnxruntime on the CPU
        from systems.onnx_predict import load_onnx
        if precision != "fp32":
            raise ValueError(f"precision {precision}: exported .onnx files run in fp32 on onnxruntime")
        system, models = load_onnx([Path(p) for p in paths], threads=threads)
    else:
        system, models = load_models(paths, system, None if normterm is None else Path(normterm), device,
                                     allow_unfinished, atten)
    return Predictor(system, models, audio_model=audio_model, text_model=text_model, device=device,
                     batch_size=batch_size, precision=precision)

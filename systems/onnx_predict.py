"""Prediction with exported ONNX models (export_onnx.py) on onnxruntime's CPU: the same interface as the torch
predictors systems/predict.py assembles (`predict(arrays)` -> label-scale scores, `attribute` / `attributes`,
`chunking`, `config`, `source`; audio-text also `extractors`, `truncation`, from the torch Predictor itself), so
prediction_process.py and ser.load score WAVs with either. The .onnx file is the only file needed: its record
(engine.onnx_io) holds the checkpoint's config, chunking, features and, for audio-text, the NormTerms.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from engine.onnx_io import Session
from features.normterm import NormTerm
from systems.audio_text import Predictor as AudioTextPredictor
from systems.audio_text import absent_stream, model_inputs
from systems.common import ATTRIBUTE_NAMES
from systems.onnx_export import raw_chunks
from systems.predict import COLUMNS, SCORED_BY_THEIR_SCRIPT, SYSTEMS, system_parts


# per-second tracks read each chunk's output and attention weight, which the exported graph does not return
NO_TRACKS = "{}: an ONNX export returns utterance scores only; per-second tracks need the PyTorch checkpoint"


def exported_from(session: Session) -> str:
    """How a graph is named in messages and pred_result's model line: the file and the checkpoint it came from."""
    return f"{session.path} (onnxruntime {session.runtime}; exported from {session.record['source']})"


class OnnxChunkPredictor:
    """A chunk LSTM or DeepEmoCluster graph: raw (T, F) arrays -> chunks (numpy, the one chunker) -> the graph
    (z-norm, model, sentence score, de-norm) -> one label-scale score per array."""

    def __init__(self, session: Session):
        rec = session.record
        self.session, self.system = session, rec["system"]
        self.attribute, self.chunking, self.config = rec["attribute"], rec["chunking"], rec["config"]
        self.source = exported_from(session)
        self.runtime = session.runtime

    def predict(self, arrays: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        c, out = self.chunking, []
        for b in range(0, len(arrays), batch_size):
            chunks = raw_chunks(arrays[b: b + batch_size], c["m"], c["C"], c.get("n", 1))  # (B*nC, m, F)
            out.append(self.session.run(chunks=chunks)["score"])
        return np.concatenate(out) if out else np.zeros(0)

    def track(self, arrays):
        raise ValueError(NO_TRACKS.format(self.session.path))


class OnnxAudioText(AudioTextPredictor):
    """An audio-text graph: z-norm with the recorded NormTerms and model_inputs (numpy, as the torch
    Predictor), then the graph (model, de-norm) -> (N, 3) Act, Dom, Val. `extractors`, `truncation` and
    `recorded_model` are the torch Predictor's own, reading the same config."""

    def __init__(self, session: Session):
        rec = session.record
        self.session, self.system, self.runtime = session, rec["system"], session.runtime
        self.config, self.source = rec["config"], exported_from(session)
        self.nt_audio = NormTerm.from_json_all(self.config["normterm"]["audio"])
        self.nt_text = NormTerm.from_json_all(self.config["normterm"]["text"])
        self.strategy = self.config["chunking"]["strategy"]
        self.chunking = {"m": rec["chunking"]["m"]}
        self.dims = {"audio": self.config["model"]["audio_dim"] // 7, "text": self.config["model"]["text_dim"]}
        self.device = "cpu"

    def predict(self, inputs: list, batch_size: int = 16) -> np.ndarray:
        """As the torch Predictor's `predict`: [(audio (T, D) or None, text (N, Dt) or None, words)] raw."""
        frame_rate = self.config["features"]["audio"].get("frame_rate") or 50.0
        out = []
        for b in range(0, len(inputs), batch_size):
            chunk = inputs[b: b + batch_size]
            audios = [absent_stream("audio", self.dims["audio"]) if a is None else self.nt_audio.features(a)
                      for a, _, _ in chunk]
            texts = [absent_stream("text", self.dims["text"]) if t is None else self.nt_text.features(t)
                     for _, t, _ in chunk]
            with warnings.catch_warnings():  # each cut input is named by `truncation`, file by file
                warnings.filterwarnings("ignore", message="pad_batch: truncated", category=UserWarning)
                batch = model_inputs(audios, texts, [w for _, _, w in chunk], self.strategy, frame_rate=frame_rate)
            feed = {k: batch[k].numpy() for k in ("audio", "text", "mask_audio", "mask_text")}
            out.append(self.session.run(**feed)["scores"])
        return np.concatenate(out) if out else np.zeros((0, 3))

    def track(self, inputs):
        raise ValueError(NO_TRACKS.format(self.session.path))


def onnx_paths(paths: list[Path]) -> list[Path]:
    """The .onnx files named: a file as it is, a folder by the .onnx files it holds."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.onnx"))
            if not found:
                raise ValueError(f"{p}: a folder without .onnx files")
            out += found
        elif not p.is_file():
            raise FileNotFoundError(f"{p}: no such ONNX file")
        else:
            out.append(p)
    return out


def load_onnx(paths: list[Path], threads: int | None = None) -> tuple[str, list]:
    """(system, its ONNX predictors) as systems.predict.load_models gives the torch ones: one per attribute in
    Act, Dom, Val order, or the one audio-text model. `threads`: onnxruntime's intra-op threads (None: all
    cores). A file that is not one of our exports, an IEMOCAP classifier's, or a mixed set is a ValueError
    naming the file(s)."""
    sessions = [Session(p, threads) for p in onnx_paths(paths)]
    for s in sessions:
        system = s.record.get("system")
        if system in SCORED_BY_THEIR_SCRIPT:
            raise ValueError(f"{s.path}: a {system} export, an IEMOCAP emotion classifier scored on its corpus with "
                             f"{SCORED_BY_THEIR_SCRIPT[system]}; prediction from audio supports {', '.join(SYSTEMS)}")
        if system not in SYSTEMS:
            raise ValueError(f"{s.path}: a {system!r} export; prediction from audio supports {', '.join(SYSTEMS)}")
    systems = sorted({s.record["system"] for s in sessions})
    if len(systems) > 1:
        raise ValueError("--onnx: exports of several systems (" + "; ".join(
            f"{s.path.name}: {s.record['system']}" for s in sessions) + "); give one system's")
    (system,) = systems
    if system == "audio-text":
        if len(sessions) != 1:
            raise ValueError(f"--onnx: an audio-text model predicts all three attributes; give one (got "
                             f"{', '.join(str(s.path) for s in sessions)})")
        return system, [OnnxAudioText(sessions[0])]
    models = [OnnxChunkPredictor(s) for s in sessions]
    by_attr: dict[str, list[str]] = {}
    for p, s in zip(models, sessions):
        by_attr.setdefault(p.attribute, []).append(str(s.path))
    twice = {a: files for a, files in by_attr.items() if len(files) > 1}
    if twice:
        raise ValueError("--onnx: one model per attribute; " + "; ".join(
            f"{ATTRIBUTE_NAMES[a]} is predicted by {' and '.join(files)}" for a, files in twice.items()))
    feature_set = system_parts(system)[2]
    found = {(p.config.get("features") or {}).get("name", feature_set) for p in models}
    if found != {feature_set}:
        raise ValueError(f"the ONNX models use feature set(s) {sorted(found)}; this system extracts {feature_set}")
    return system, sorted(models, key=lambda p: list(COLUMNS).index(p.attribute))

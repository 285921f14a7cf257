"""ONNX export of the three MSP-Podcast systems' inference models (chunk LSTM, DeepEmoCluster, audio-text).

Each system's graph is a small wrapper module traced by engine.onnx_io.export:

    chunk-lstm        raw chunks (B*nC, m, F) float32 -> z-norm -> ChunkLSTM -> de-norm -> score (B,) float64
    deep-emo-cluster  raw chunks (B*C, 62, 128) float32 -> z-norm -> DeepEmoCluster -> mean of each sentence's C
                      chunk outputs -> de-norm -> score (B,) float64
    audio-text        the padded rows and masks `audio_text.model_inputs` makes from z-normalised frames and
                      tokens (audio (B, L, 7D), text (B, L, Dt), masks (B, L) bool, L <= 128) -> the model ->
                      de-norm -> scores (B, 3) float64 (Act, Dom, Val)

Chunking stays in numpy outside the graph (utils.dynamic_chunks / gather_chunks, audio_text_inputs), so the
graph starts at the chunk tensor. The z-norm in the graph is utils.znorm step for step in float64 ((x - mean) /
std, NaN -> 0, clip, cast to float32), so the normalised chunks equal NormTerm.features' to the bit; the label
de-normalisation is NormTerm.denorm's float64 p * std + mean. An utterance shorter than one chunk is padded with
NaN frames before chunking (`raw_chunks`): the z-norm turns them into zeros, exactly the zero padding in
normalised space the torch path gives. Audio-text keeps its z-norm outside the graph: its chunks are
temporal-pyramid means of *clipped* normalised frames, which cannot be computed after pooling; its NormTerms
travel in the record instead, so the ONNX file is still the only file the predictor needs.

Axes: the chunk axis (batch x chunks per utterance) is dynamic; the frames of a chunk (m) and the feature width
are fixed by the model's chunking and input layer. Audio-text: batch and rows (L, at most the positional table's
128) are dynamic; prediction always pads to 128.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.onnx_io import export
from features.normterm import NormTerm
from utils import dynamic_chunks, gather_chunks, znorm

CLIP = inspect.signature(znorm).parameters["clip"].default  # the one z-norm's clipping bound (3.0)
# what systems/predict.py calls each system (the ONNX record's "system") by its config.json name
SYSTEM_NAMES = {"chunk_lstm": "chunk-lstm", "deep_emo_cluster": "deep-emo-cluster", "audio_text": "audio-text"}


class ZNorm(nn.Module):
    """utils.znorm inside the graph: float64 (x - mean) / std, NaN -> 0, clipped to [-CLIP, CLIP], float32."""

    def __init__(self, *, normterm: NormTerm):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(normterm.feat_mean, np.float64)))
        self.register_buffer("std", torch.as_tensor(np.asarray(normterm.feat_std, np.float64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., F) raw -> (..., F) normalised
        z = (x.double() - self.mean) / self.std
        z = torch.where(torch.isnan(z), torch.zeros_like(z), z)
        return z.clamp(-CLIP, CLIP).float()


class LabelDenorm(nn.Module):
    """NormTerm.denorm inside the graph: float64 p * std + mean, per output column (label statistics)."""

    def __init__(self, *, stats: list[tuple[float, float]]):
        super().__init__()
        self.register_buffer("mean", torch.tensor([m for m, _ in stats], dtype=torch.float64))
        self.register_buffer("std", torch.tensor([s for _, s in stats], dtype=torch.float64))

    def forward(self, p: torch.Tensor) -> torch.Tensor:  # (B,) or (B, K) -> float64, same shape
        if p.dim() == 1:
            return p.double() * self.std[0] + self.mean[0]
        return p.double() * self.std + self.mean


class ChunkLSTMGraph(nn.Module):
    """(B*nC, m, F) raw chunks -> (B,) label-scale scores."""

    def __init__(self, *, predictor):
        super().__init__()
        self.znorm = ZNorm(normterm=predictor.normterm)
        self.model = predictor.model
        self.denorm = LabelDenorm(stats=[predictor.normterm.labels[predictor.attribute]])

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        return self.denorm(self.model(self.znorm(chunks)))                     # (B,)


class DeepEmoClusterGraph(nn.Module):
    """(B*C, 62, 128) raw chunks -> (B,) label-scale scores: the mean of each sentence's C chunk outputs."""

    def __init__(self, *, predictor):
        super().__init__()
        from models.deep_emo_cluster import sentence_mean
        self.znorm = ZNorm(normterm=predictor.normterm)
        self.model, self.sentence_mean = predictor.model, sentence_mean
        self.chunks = predictor.chunking["C"]
        self.denorm = LabelDenorm(stats=[predictor.normterm.labels[predictor.attribute]])

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        x = self.znorm(chunks).unsqueeze(1)                                    # (B*C, 1, 62, 128)
        attri = self.model(x)["attri"]                                         # (B*C, 1)
        return self.denorm(self.sentence_mean(attri, self.chunks))             # (B,)


class AudioTextGraph(nn.Module):
    """model_inputs' (audio, text, mask_audio, mask_text) -> (B, 3) Act, Dom, Val on the label scale (the audio
    NormTerm's label statistics, as the original)."""

    def __init__(self, *, predictor):
        super().__init__()
        from corpora.records import ATTRIBUTES
        self.model, self.attributes = predictor.model, ATTRIBUTES
        self.denorm = LabelDenorm(stats=[predictor.nt_audio.labels[a] for a in ATTRIBUTES])

    def forward(self, audio, text, mask_audio, mask_text) -> torch.Tensor:
        o = self.model(audio, text, mask_audio, mask_text)
        return self.denorm(torch.stack([o[a] for a in self.attributes], 1))   # (B, 3)


def raw_chunks(arrays: list[np.ndarray], m: int, C: int, n: int = 1) -> np.ndarray:
    """(B*n*C, m, F) float32 chunks of raw (T, F) arrays, cut by the systems' one chunker (utils.dynamic_chunks /
    gather_chunks). An array shorter than m frames is first padded with NaN frames to m: the graph's z-norm maps
    NaN to 0, so its chunks equal chunk_batch's (zero-padded after z-norm); its chunk starts are unchanged (0)."""
    padded = [x if len(x) >= m else np.concatenate([x, np.full((m - len(x), x.shape[1]), np.nan, x.dtype)])
              for x in (np.asarray(a) for a in arrays)]
    starts = dynamic_chunks([len(x) for x in padded], m=m, C=C, n=n)
    return gather_chunks(padded, starts, m)


def example_inputs(predictor, system: str) -> dict[str, torch.Tensor]:
    """Trace inputs of two utterances (the batch axis must not be 1, or the tracer may fold it)."""
    rng = np.random.default_rng(0)
    if system == "audio-text":
        from systems.audio_text import model_inputs
        dims = predictor.model.audio_dim // 7, predictor.model.text_dim
        batch = model_inputs([rng.normal(size=(120, dims[0])).astype(np.float32)] * 2,
                             [rng.normal(size=(9, dims[1])).astype(np.float32)] * 2, [3, 5], predictor.strategy)
        return {k: batch[k] for k in ("audio", "text", "mask_audio", "mask_text")}
    c = predictor.chunking
    width = len(predictor.normterm.feat_mean)
    arrays = [rng.normal(size=(t, width)).astype(np.float32) for t in (c["m"] + 40, c["m"] * 3)]
    return {"chunks": torch.from_numpy(raw_chunks(arrays, c["m"], c["C"], c.get("n", 1)))}


def graph_of(predictor, system: str) -> tuple[nn.Module, list[str], dict]:
    """(wrapper module, output names, dynamic axes) of a loaded torch predictor."""
    if system == "audio-text":
        rows = {0: "batch", 1: "rows"}
        return AudioTextGraph(predictor=predictor), ["scores"], {
            "audio": rows, "text": rows, "mask_audio": rows, "mask_text": rows, "scores": {0: "batch"}}
    wrapper = ChunkLSTMGraph if system == "chunk-lstm" else DeepEmoClusterGraph
    return wrapper(predictor=predictor), ["score"], {"chunks": {0: "chunks"}, "score": {0: "batch"}}


def features_of(config: dict, system: str) -> dict:
    """The features a checkpoint's config records; for an original .pth.tar of the chunk LSTM or DeepEmoCluster
    (none recorded, or only the name): the settings of the extractor prediction uses for them."""
    recorded = config.get("features") or {}
    if system == "audio-text" or "legacy_file" not in config or recorded.get("params"):
        return recorded
    from systems.predict import system_parts
    ext = system_parts(system)[1]()
    return {"name": ext.name, "extractor": type(ext).__name__, "params": ext.params, "dims": ext.dims,
            "frame_rate": ext.frame_rate}


def record_of(predictor, system: str) -> dict:
    """What the ONNX predictor needs besides the graph: the system, what it predicts, how to chunk, the features
    and their extractor settings, where the weights came from and the checkpoint's whole config."""
    config = dict(predictor.config)
    if system == "audio-text":
        # an original .pth.tar's config has no statistics: the NormTerms it was loaded with, as ours record them
        config["normterm"] = {"audio": predictor.nt_audio.to_json_all(), "text": predictor.nt_text.to_json_all()}
        what = {"attributes": list(predictor.attributes), "chunking": config["chunking"],
                "znorm": "outside the graph (NormTerms in config.normterm)"}
    else:
        what = {"attribute": predictor.attribute, "chunking": {"n": 1, **predictor.chunking},
                "znorm": "in the graph"}
    return {"system": system, **what, "features": features_of(config, system), "source": predictor.source,
            "label_denorm": "in the graph", "config": json.loads(json.dumps(config, default=str))}


def export_predictor(predictor, system: str, out: Path) -> dict:
    """Write a loaded torch predictor of `system` (chunk-lstm, deep-emo-cluster, audio-text) to `out` as ONNX;
    returns the record stored in the file."""
    module, outputs, dynamic = graph_of(predictor, system)
    return export(module, example_inputs(predictor, system), out, outputs=outputs, dynamic=dynamic,
                  record=record_of(predictor, system))


def export_checkpoint(checkpoint: Path, out: Path, *, normterm: Path | None = None,
                      allow_unfinished: bool = False) -> dict:
    """One of our checkpoint folders (chunk_lstm, deep_emo_cluster, audio_text) or an original .pth.tar (with its
    NormTerm folder `normterm`; a chunk-LSTM one defaults to the shipped v1.6 NormTerm/) as ONNX at `out`; returns the record stored in the file. The checkpoint is
    loaded by its system's torch Predictor, so what scores on PyTorch is what is exported."""
    from systems.predict import HERE, system_of, system_parts
    checkpoint = Path(checkpoint)
    system = system_of(checkpoint)
    if checkpoint.is_dir() and normterm is not None:
        raise ValueError(f"{checkpoint}: a checkpoint folder holds its own statistics; --normterm is for an "
                         "original .pth.tar")
    if not checkpoint.is_dir() and normterm is None and system == "chunk-lstm":
        normterm = HERE / "NormTerm"  # as systems.predict.load_models: the published models' shipped statistics
    predictor = system_parts(system)[0].load(checkpoint, normterm=normterm, allow_unfinished=allow_unfinished)
    return export_predictor(predictor, system, Path(out))

"""The chunk-level attention LSTM as a method for engine/loop.py, and its inference-time predictor.

Data: one FeatureStore of IS13 LLDs (or any frame-level features), the NormTerm of the Train split, one
attribute. A batch z-normalises each utterance's frames (utils.znorm via NormTerm), cuts n*C chunks of m
frames with the dynamic chunker (index ranges gathered from the memory-mapped store) and normalises the
labels; the loss is 1 - CCC as published (population covariance, unbiased variances: quirk Q5).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.checkpoint import load_legacy
from features.normterm import NormTerm
from features.store import FeatureStore
from models.chunk_lstm import ChunkLSTM
from systems.common import ATTRIBUTE_NAMES, add_data_args, chunk_batch, load_our_checkpoint
from utils import ccc, ccc_loss

SYSTEM = "chunk_lstm"
LEGACY_NAME = re.compile(r"LSTM_iter(\d+)_batch(\d+)_ChunkSeq2One_(\w+?)_(Act|Dom|Val)\.pth\.tar$")


def run_name(iterations: int, batch: int, atten: str, emo: str) -> str:
    """The original's output name, kept so published and new models sort side by side."""
    return f"LSTM_iter{iterations}_batch{batch}_ChunkSeq2One_{atten}_{emo}"


@dataclass
class ChunkLSTMMethod:
    store: FeatureStore
    normterm: NormTerm
    attribute: str  # act | dom | val
    atten: str
    m: int = 62
    C: int = 11
    n: int = 1
    unbiased_var_loss: bool = True
    corpus_version: str | None = None
    corpus: dict | None = None  # kind and name of a corpus other than MSP-Podcast (systems.common.run_corpus)

    def build_model(self) -> ChunkLSTM:
        return ChunkLSTM(atten=self.atten, input_dim=self.store.dims, hidden_dim=self.store.dims,
                         chunks_per_utt=self.n * self.C)

    def collate(self, items: list[tuple[str, float]]) -> dict:
        x = chunk_batch([self.store[u] for u, _ in items], self.normterm, self.m, self.C, self.n)
        y = torch.tensor(self.normterm.label([v for _, v in items], self.attribute), dtype=torch.float32)
        return {"x": x, "y": y}

    def loss(self, model, batch) -> torch.Tensor:
        return ccc_loss(model(batch["x"]), batch["y"], unbiased_var=self.unbiased_var_loss)

    def predict(self, model, batch) -> np.ndarray:
        return model(batch["x"]).float().cpu().numpy()

    def targets(self, items) -> np.ndarray:
        return self.normterm.label([v for _, v in items], self.attribute)

    def val_loss(self, pred, target) -> float:
        return 1.0 - ccc(pred, target)

    def config(self) -> dict:
        return {"system": SYSTEM, "model": {"atten": self.atten, "input_dim": self.store.dims,
                                            "hidden_dim": self.store.dims, "num_layers": 2, "dropout": 0.5,
                                            "chunks_per_utt": self.n * self.C},
                "attribute": self.attribute, "chunking": {"m": self.m, "C": self.C, "n": self.n},
                "features": self.store.describe(),
                "normterm": self.normterm.to_json(self.attribute),
                "loss": "1-CCC (unbiased variances)" if self.unbiased_var_loss else "1-CCC",
                "corpus_version": self.corpus_version, **({"corpus": self.corpus} if self.corpus else {})}


class Predictor:
    """A trained chunk LSTM ready to score raw feature arrays: z-norm, chunk, forward, de-normalise."""

    def __init__(self, model: ChunkLSTM, normterm: NormTerm, attribute: str, chunking: dict, config: dict,
                 device: str = "cpu"):
        self.model = model.to(device).eval()
        self.normterm, self.attribute, self.chunking, self.config = normterm, attribute, chunking, config
        self.device = device
        self.source = str(config.get("source", ""))

    @classmethod
    def load(cls, path: str | Path, normterm: str | Path | None = None, device: str = "cpu",
             allow_unfinished: bool = False) -> "Predictor":
        """Our checkpoint folder, or a published `.pth.tar` (its NormTerm folder given by `normterm`)."""
        path = Path(path)
        if path.is_dir():
            sd, cfg, nt = load_our_checkpoint(path, SYSTEM, allow_unfinished)
            model = ChunkLSTM(**cfg["model"])
            model.load_state_dict(sd, strict=True)
            return cls(model, nt, cfg["attribute"], cfg["chunking"], cfg, device)
        match = LEGACY_NAME.search(path.name)
        if not match:
            raise ValueError(f"{path}: expected a checkpoint folder or LSTM_iter*_batch*_ChunkSeq2One_<atten>_<emo>.pth.tar")
        if normterm is None:
            raise ValueError(f"{path}: a published .pth.tar needs its NormTerm folder (--normterm)")
        atten, emo = match[3], match[4]
        attribute = {v: k for k, v in ATTRIBUTE_NAMES.items()}[emo]
        model = ChunkLSTM(atten=atten)
        model.load_state_dict(load_legacy(path), strict=True)
        nt = NormTerm.load(normterm)
        cfg = {"system": SYSTEM, "model": {"atten": atten, "input_dim": 130, "hidden_dim": 130, "num_layers": 2,
                                           "dropout": 0.5, "chunks_per_utt": 11},
               "attribute": attribute, "chunking": {"m": 62, "C": 11, "n": 1}, "legacy_file": path.name,
               "source": str(path),
               "normterm": nt.to_json(attribute)}
        return cls(model, nt, attribute, cfg["chunking"], cfg, device)

    def predict(self, arrays: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """De-normalised scores, one per (T, F) raw feature array; eval-mode outputs do not depend on batching."""
        out = []
        with torch.inference_mode():
            for b in range(0, len(arrays), batch_size):
                x = chunk_batch(arrays[b: b + batch_size], self.normterm, **self.chunking).to(self.device)
                out.append(self.model(x).float().cpu().numpy())
        p = np.concatenate(out) if out else np.zeros(0)
        return self.normterm.denorm(p, self.attribute)

    def track(self, arrays: list[np.ndarray]) -> list[dict]:
        """Per (T, F) raw feature array: {"score": the utterance score as `predict` gives it, "chunks": (nC,)
        chunk outputs (models.chunk_lstm.ChunkLSTM.chunk_outputs) and "weights": (nC,) on the label scale,
        "frames": (nC, 2) each chunk's [start, end) frame (utils.dynamic_chunks, end clipped to T)}."""
        c = self.chunking
        with torch.inference_mode():
            x = chunk_batch(arrays, self.normterm, **c).to(self.device)
            utt, chunks, weights = (t.float().cpu().numpy() for t in self.model.chunk_outputs(x))
        denorm = lambda v: self.normterm.denorm(v, self.attribute)  # noqa: E731
        return [chunk_track(denorm(utt[i]), denorm(chunks[i]),
                            weights[i], len(a), c) for i, a in enumerate(arrays)]


def chunk_track(score, chunks: np.ndarray, weights: np.ndarray, n_frames: int, chunking: dict) -> dict:
    """One utterance's track record (see Predictor.track), its chunks placed by utils.dynamic_chunks."""
    from utils import dynamic_chunks
    starts = dynamic_chunks([n_frames], m=chunking["m"], C=chunking["C"], n=chunking.get("n", 1))[0]
    frames = np.stack([starts, np.minimum(starts + chunking["m"], max(n_frames, 1))], axis=1)  # (nC, 2)
    return {"score": float(score), "chunks": np.asarray(chunks, np.float64), "weights": np.asarray(weights, np.float64),
            "frames": frames}


def recorded_settings(cfg: dict) -> dict:
    """What a checkpoint's config says of each of the original's flags (None: not recorded): our runs record
    them all; a published file (or our conversion of one) its name (the original's pattern)."""
    loop = cfg.get("loop", {})
    rec = {"-iter": loop.get("iterations"), "-batch": loop.get("requested_batch_size", loop.get("batch_size")),
           "-emo": ATTRIBUTE_NAMES[cfg["attribute"]], "-atten": cfg["model"]["atten"],
           "--chunk-n": cfg["chunking"]["n"]}
    match = LEGACY_NAME.search(cfg.get("legacy_file", ""))
    if match:
        rec.update({"-iter": int(match[1]), "-batch": int(match[2])})
    return rec


# ---------------------------------------------------------------------------- command-line plumbing

def add_cli_args(ap) -> None:
    """The original's four flags (same spelling) plus where things are; shared by training.py and testing.py."""
    from engine.cli import int_at_least
    from models.chunk_lstm import ATTENTIONS
    ap.add_argument("-iter", "--iterations", type=int_at_least(1), required=True,
                    help="training iterations (names the run folder: LSTM_iter<ITER>_batch<B>_...)")
    ap.add_argument("-batch", "--batch_size", type=int_at_least(2, "the CCC loss of one item is undefined"),
                    required=True,
                    help="utterances per batch (at least 2: the CCC loss of one item is undefined)")
    ap.add_argument("-emo", "--emo_attr", choices=("Act", "Dom", "Val"), required=True,
                    help="attribute: arousal (Act), dominance (Dom) or valence (Val)")
    ap.add_argument("-atten", "--atten_type", choices=ATTENTIONS, required=True,
                    help="chunk-level attention: " + ", ".join(ATTENTIONS))
    ap.add_argument("--chunk-n", type=int, choices=(1, 2, 3), default=1,
                    help="chunk-count scale factor n: n*11 chunks per utterance")
    add_data_args(ap, "OpenSmile_lld_IS13ComParE",
                  "default: <root>/NormTerm, else the shipped v1.6 NormTerm/, the files the published .pth.tar "
                  "models were trained with")

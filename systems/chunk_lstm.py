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

from engine.checkpoint import load_checkpoint, load_legacy
from features.normterm import NormTerm
from features.store import FeatureStore, with_features
from models.chunk_lstm import ChunkLSTM
from utils import ccc, ccc_loss, dynamic_chunks, gather_chunks, resolve_device

SYSTEM = "chunk_lstm"
ATTRIBUTE_NAMES = {"act": "Act", "dom": "Dom", "val": "Val"}
LEGACY_NAME = re.compile(r"LSTM_iter(\d+)_batch(\d+)_ChunkSeq2One_(\w+?)_(Act|Dom|Val)\.pth\.tar$")


def run_name(iterations: int, batch: int, atten: str, emo: str) -> str:
    """The original's output name, kept so published and new models sort side by side."""
    return f"LSTM_iter{iterations}_batch{batch}_ChunkSeq2One_{atten}_{emo}"


def normterm_to_json(nt: NormTerm, attribute: str) -> dict:
    return {"feat_mean": nt.feat_mean.tolist(), "feat_std": nt.feat_std.tolist(),
            "label_mean": nt.labels[attribute][0], "label_std": nt.labels[attribute][1]}


def normterm_from_json(d: dict, attribute: str) -> NormTerm:
    return NormTerm(np.array(d["feat_mean"]), np.array(d["feat_std"]),
                    {attribute: (float(d["label_mean"]), float(d["label_std"]))})


def chunk_batch(arrays: list[np.ndarray], nt: NormTerm, m: int, C: int, n: int) -> torch.Tensor:
    """Raw (T, F) feature arrays -> (B * n*C, m, F) float32 chunks of the z-normalised frames."""
    normed = [nt.features(x) for x in arrays]
    starts = dynamic_chunks([len(x) for x in normed], m=m, C=C, n=n)
    return torch.from_numpy(gather_chunks(normed, starts, m))


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
                "features": {k: self.store.meta.get(k) for k in ("name", "extractor", "params", "dims", "frame_rate")},
                "normterm": normterm_to_json(self.normterm, self.attribute),
                "loss": "1-CCC (unbiased variances)" if self.unbiased_var_loss else "1-CCC",
                "corpus_version": self.corpus_version}


class Predictor:
    """A trained chunk LSTM ready to score raw feature arrays: z-norm, chunk, forward, de-normalise."""

    def __init__(self, model: ChunkLSTM, normterm: NormTerm, attribute: str, chunking: dict, config: dict,
                 device: str = "cpu"):
        self.model = model.to(device).eval()
        self.normterm, self.attribute, self.chunking, self.config = normterm, attribute, chunking, config
        self.device = device
        self.source = str(config.get("source", ""))

    @classmethod
    def load(cls, path: str | Path, normterm: str | Path | None = None, device: str = "cpu") -> "Predictor":
        """Our checkpoint folder, or a published `.pth.tar` (its NormTerm folder given by `normterm`)."""
        path = Path(path)
        if path.is_dir():
            sd, cfg = load_checkpoint(path)
            if cfg.get("system") != SYSTEM:
                raise ValueError(f"{path}: a {cfg.get('system')!r} checkpoint, not {SYSTEM}")
            model = ChunkLSTM(**cfg["model"])
            model.load_state_dict(sd, strict=True)
            nt = normterm_from_json(cfg["normterm"], cfg["attribute"])
            return cls(model, nt, cfg["attribute"], cfg["chunking"], {**cfg, "source": str(path)}, device)
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
               "normterm": normterm_to_json(nt, attribute)}
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


# ---------------------------------------------------------------------------- command-line plumbing

def add_cli_args(ap) -> None:
    """The original's four flags (same spelling) plus where things are; shared by training.py and testing.py."""
    from engine.cli import int_at_least
    from models.chunk_lstm import ATTENTIONS
    ap.add_argument("-iter", "--iterations", type=int_at_least(1), required=True,
                    help="training iterations (names the run folder: LSTM_iter<ITER>_batch<B>_...)")
    ap.add_argument("-batch", "--batch_size", type=int_at_least(2), required=True,
                    help="utterances per batch (at least 2: the CCC loss of one item is undefined)")
    ap.add_argument("-emo", "--emo_attr", choices=("Act", "Dom", "Val"), required=True,
                    help="attribute: arousal (Act), dominance (Dom) or valence (Val)")
    ap.add_argument("-atten", "--atten_type", choices=ATTENTIONS, required=True,
                    help="chunk-level attention: " + ", ".join(ATTENTIONS))
    ap.add_argument("--root", type=Path, default=None,
                    help="MSP-Podcast root, the folder holding Labels/ (default: $MSP_PODCAST_ROOT, else "
                         "demo_data/msp-podcast); audio is not needed once the features are in the store")
    ap.add_argument("--store", type=Path,
                    help="LLD feature store (default: <root>/Features/OpenSmile_lld_IS13ComParE)")
    ap.add_argument("--normterm", type=Path, help="NormTerm folder (training default: <root>/NormTerm if present, "
                    "else NormTerm/; a published .pth.tar defaults to NormTerm/, the v1.6 files it was trained with)")
    ap.add_argument("--chunk-n", type=int, choices=(1, 2, 3), default=1,
                    help="chunk-count scale factor n: n*11 chunks per utterance")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (a GPU when one is visible)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def resolve_paths(args) -> None:
    import os
    if args.root is None:
        args.root = Path(os.environ.get("MSP_PODCAST_ROOT", "demo_data/msp-podcast"))
    if args.store is None:
        args.store = args.root / "Features" / "OpenSmile_lld_IS13ComParE"
    args.normterm_given = args.normterm is not None
    if args.normterm is None:
        args.normterm = args.root / "NormTerm" if (args.root / "NormTerm").is_dir() else Path("NormTerm")
    args.device = resolve_device(args.device)
    args.attribute = {v: k for k, v in ATTRIBUTE_NAMES.items()}[args.emo_attr]
    args.name = run_name(args.iterations, args.batch_size, args.atten_type, args.emo_attr)


def labelled_items(root: Path, split: str, attribute: str, store: FeatureStore) -> list[tuple[str, float]]:
    """(utterance, raw label) of a split, listing (never silently dropping) utterances without features.

    Reads labels only: the audio folder need not exist, the features come from the store."""
    from corpora.msp_podcast import read_msp_podcast
    corpus = read_msp_podcast(root, split=split, require_audio=False)
    corpus.report()
    recs = with_features([r for r in corpus.records if attribute in r.labels], store, split)
    return [(r.utt_id, r.labels[attribute]) for r in recs]

"""NormTerm: feature and label normalisation statistics, stored as the originals' `.mat` files.

    <dir>/feat_norm_means.mat  feat_norm_stds.mat          (1, D)  variable `normal_para`
    <dir>/{act,dom,val}_norm_means.mat  ..._stds.mat         (1, 1)

`NormTerm.load` reads the published folders of all three MSP-Podcast systems unchanged, and `save` writes
files they read. The statistics are computed here in the two ways the originals do:
  frame-pooled   (chunk LSTM LLDs, DeepEmoCluster mel): mean / population std over every Train frame
  utterance-mean (audio-text wav2vec2 / text): each utterance reduced to its mean vector first, then mean /
                 population std across utterances, in the store's dtype; a zero std becomes 1e-10
Label statistics: mean / population std of the Train labels of each attribute.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from corpora.records import ATTRIBUTES
from utils import atomic_path, znorm


@dataclass
class NormTerm:
    feat_mean: np.ndarray | None  # (D,)
    feat_std: np.ndarray | None
    labels: dict[str, tuple[float, float]] = field(default_factory=dict)  # attribute -> (mean, std)

    # ---------------------------------------------------------------- use
    def features(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        if self.feat_mean is None:
            raise ValueError("this NormTerm has no feature statistics")
        return znorm(x, self.feat_mean, self.feat_std, dtype=dtype)

    def label(self, y, attr: str):
        m, s = self.labels[attr]
        return (np.asarray(y, dtype=np.float64) - m) / s

    def denorm(self, p, attr: str):
        m, s = self.labels[attr]
        return np.asarray(p, dtype=np.float64) * s + m

    # ---------------------------------------------------------------- in a checkpoint's config.json
    def to_json(self, attribute: str) -> dict:
        """The feature statistics and one attribute's label statistics, as a checkpoint records them."""
        return {"feat_mean": self.feat_mean.tolist(), "feat_std": self.feat_std.tolist(),
                "label_mean": self.labels[attribute][0], "label_std": self.labels[attribute][1]}

    def to_json_all(self) -> dict:
        """Feature statistics and every attribute's label statistics (a multi-output checkpoint's config)."""
        return {"feat_mean": self.feat_mean.tolist(), "feat_std": self.feat_std.tolist(),
                "labels": {a: list(ms) for a, ms in self.labels.items()}}

    @classmethod
    def from_json_all(cls, d: dict) -> "NormTerm":
        return cls(np.array(d["feat_mean"]), np.array(d["feat_std"]),
                   {a: (float(m), float(s)) for a, (m, s) in d["labels"].items()})

    @classmethod
    def from_json(cls, d: dict, attribute: str) -> "NormTerm":
        return cls(np.array(d["feat_mean"]), np.array(d["feat_std"]),
                   {attribute: (float(d["label_mean"]), float(d["label_std"]))})

    # ---------------------------------------------------------------- files
    @classmethod
    def load(cls, folder: str | Path) -> "NormTerm":
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: NormTerm folder not found")

        def read(name):
            p = folder / f"{name}.mat"
            if not p.is_file():
                return None
            try:
                return scipy.io.loadmat(str(p))["normal_para"]
            except (KeyError, ValueError, OSError) as e:
                raise ValueError(f"{p}: not a NormTerm file with variable normal_para ({e})") from None

        mean, std = read("feat_norm_means"), read("feat_norm_stds")
        labels = {}
        for a in ATTRIBUTES:
            m, s = read(f"{a}_norm_means"), read(f"{a}_norm_stds")
            if m is not None and s is not None:
                labels[a] = (float(m[0][0]), float(s[0][0]))
        if mean is None and not labels:
            raise FileNotFoundError(f"{folder}: no *_norm_means.mat files")
        return cls(None if mean is None else mean.reshape(-1), None if std is None else std.reshape(-1), labels)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        arrays = {}
        if self.feat_mean is not None:
            arrays["feat_norm_means"] = self.feat_mean.reshape(1, -1)
            arrays["feat_norm_stds"] = self.feat_std.reshape(1, -1)
        for a, (m, s) in self.labels.items():
            arrays[f"{a}_norm_means"] = np.array([[m]], dtype=np.float64)
            arrays[f"{a}_norm_stds"] = np.array([[s]], dtype=np.float64)
        for name, arr in arrays.items():
            with atomic_path(folder / f"{name}.mat") as tmp:
                scipy.io.savemat(str(tmp), {"normal_para": arr})


# -------------------------------------------------------------------- statistics

POOLINGS = ("frames", "utterance-mean")
# how each feature set is pooled, by our extractor class (stores written before meta.json recorded
# `norm_pooling`) and by the originals' feature-set names (for `mat_io.py import`)
POOLING_BY_EXTRACTOR = {"OpenSmileLLD": "frames", "MelSpectrogram": "frames", "Wav2Vec2Features": "utterance-mean",
                        "TokenFeatures": "utterance-mean", "WordFeatures": "utterance-mean"}
POOLING_BY_NAME = {"OpenSmile_lld_IS13ComParE": "frames", "Mel_Spec128": "frames", "Wav2Vec1024": "utterance-mean",
                   "RoBERTa768": "utterance-mean"}


def store_pooling(meta: dict) -> str | None:
    """How a store's features are pooled for NormTerm: recorded in its meta.json, else known from the extractor
    that wrote it; None when nobody knows (e.g. an import of an unknown feature set)."""
    return meta.get("norm_pooling") or POOLING_BY_EXTRACTOR.get(meta.get("extractor"))


def finite_only(named_arrays, bad: list):
    """Yield the arrays of (name, array) pairs that hold only finite values; append the others' names to `bad`."""
    for name, x in named_arrays:
        if np.isfinite(x).all():
            yield x
        else:
            bad.append(name)


def frame_pooled_stats(arrays, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over all frames of all arrays, float64, in one streaming pass.

    Per-array moments are merged with Chan et al.'s pairwise update, which stays accurate where the
    textbook sum-of-squares loses digits (LLD columns reach 1e6 over 1e8 frames).
    """
    n, mean, m2 = 0, None, None
    for x in tqdm(arrays, desc="frame statistics", disable=not progress, unit="utt"):
        x = np.asarray(x, dtype=np.float64)
        k = len(x)
        if k == 0:
            continue
        mx = x.mean(axis=0)
        m2x = ((x - mx) ** 2).sum(axis=0)
        if mean is None:
            n, mean, m2 = k, mx, m2x
            continue
        delta = mx - mean
        tot = n + k
        mean = mean + delta * (k / tot)
        m2 = m2 + m2x + delta ** 2 * (n * k / tot)
        n = tot
    if mean is None:
        raise ValueError("no frames to compute statistics from")
    return mean, np.sqrt(m2 / n)


def utterance_mean_stats(arrays, dtype=np.float32, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std across utterance-mean vectors (each averaged in `dtype`); std 0 -> 1e-10."""
    means = np.stack([np.asarray(x, dtype=dtype).mean(axis=0)
                      for x in tqdm(arrays, desc="utterance means", disable=not progress, unit="utt")])
    mean, std = means.mean(axis=0), means.std(axis=0)
    std[std == 0] = 1e-10
    return mean, std


def label_stats(records, attributes=ATTRIBUTES) -> dict[str, tuple[float, float]]:
    out = {}
    for a in attributes:
        v = np.array([r.labels[a] for r in records if a in r.labels], dtype=np.float64)
        if len(v):
            out[a] = (float(v.mean()), float(v.std()))
    return out

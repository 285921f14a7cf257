"""NormTerm: feature and label normalisation statistics, stored as the originals' `.mat` files.

    <dir>/feat_norm_means.mat  feat_norm_stds.mat          (1, D)  variable `normal_para`
    <dir>/{act,dom,val}_norm_means.mat  ..._stds.mat         (1, 1)

`NormTerm.load` reads the published folders of all three MSP-Podcast systems unchanged, and `save` writes
files they read. The statistics are computed here in the two ways the originals do:
  frame-pooled   (chunk LSTM LLDs, DeepEmoCluster mel): mean / population std over every Train frame
  utterance-mean (audio-text wav2vec2 / text): each utterance reduced to its mean vector first, then mean /
                 population std across utterances; a zero std becomes 1e-10
Both accumulate in float64 over finite values only (NaN/inf that an imported original feature file holds are
repaired at z-normalisation, utils.znorm, as the originals do) and are written in the dtype the original writes
(`written_dtype`: single for wav2vec2, double otherwise).
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


# The dtype the originals wrote their feature statistics in: single for wav2vec2 (its float32 features, averaged
# in float32), double for everything else (LLDs, mel, the RoBERTa text features, saved as float64). Statistics
# are always accumulated in float64 here and only the written result takes this dtype.
WRITTEN_DTYPE_BY_EXTRACTOR = {"Wav2Vec2Features": np.float32}
WRITTEN_DTYPE_BY_NAME = {"Wav2Vec1024": np.float32}


def written_dtype(meta: dict) -> np.dtype:
    """The dtype the original's NormTerm files have for a store's feature set (see WRITTEN_DTYPE_BY_EXTRACTOR)."""
    return np.dtype(WRITTEN_DTYPE_BY_EXTRACTOR.get(meta.get("extractor"))
                    or WRITTEN_DTYPE_BY_NAME.get(meta.get("name")) or np.float64)


def count_non_finite(x: np.ndarray) -> int:
    """NaN and +-inf values in `x` (the ones z-normalisation repairs: NaN -> 0, +-inf -> +-clip)."""
    return int(np.size(x) - np.count_nonzero(np.isfinite(x)))


def _finite_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sum of squared deviations) per column over the finite values of x (float64)."""
    finite = np.isfinite(x)
    if finite.all():  # the common case, without the masked copies
        mx = x.mean(axis=0)
        return np.full(x.shape[1], float(len(x))), mx, ((x - mx) ** 2).sum(axis=0)
    k = finite.sum(axis=0).astype(np.float64)
    safe = np.where(finite, x, 0.0)
    mx = np.divide(safe.sum(axis=0), k, out=np.zeros(x.shape[1]), where=k > 0)
    m2x = (np.where(finite, x - mx, 0.0) ** 2).sum(axis=0)
    return k, mx, m2x


def frame_pooled_stats(arrays, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over all frames of all arrays, float64, in one streaming pass.

    Only finite values count (NaN and +-inf are left out column by column, as features the originals kept and
    repaired at z-normalisation). Per-array moments are merged with Chan et al.'s pairwise update, which stays
    accurate where the textbook sum-of-squares loses digits (LLD columns reach 1e6 over 1e8 frames).
    ValueError when there is no frame, or a column has no finite value at all.
    """
    n = mean = m2 = None
    for x in tqdm(arrays, desc="frame statistics", disable=not progress, unit="utt"):
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            continue
        k, mx, m2x = _finite_moments(x)
        if mean is None:
            n, mean, m2 = k, mx, m2x
            continue
        tot = n + k
        delta = mx - mean
        share = np.divide(k, tot, out=np.zeros_like(tot), where=tot > 0)
        mean = mean + delta * share
        m2 = m2 + m2x + delta ** 2 * n * share
        n = tot
    if mean is None:
        raise ValueError("no frames to compute statistics from")
    _require_finite_columns(n)
    return mean, np.sqrt(m2 / n)


def _require_finite_columns(count: np.ndarray) -> None:
    empty = np.flatnonzero(count == 0)
    if len(empty):
        raise ValueError(f"feature column(s) {', '.join(map(str, empty[:10]))} hold no finite value in any "
                         "utterance: no statistics can be computed for them")


def utterance_mean_stats(arrays, dtype=np.float64, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std across utterance-mean vectors, accumulated in float64 and returned as `dtype`
    (the dtype the original writes, see `written_dtype`); std 0 -> 1e-10. Non-finite values are left out: an
    utterance's mean is over its finite values per column, and an utterance without any in a column does not
    count for that column."""
    means = []
    for x in tqdm(arrays, desc="utterance means", disable=not progress, unit="utt"):
        x = np.asarray(x, dtype=np.float64)
        k, mx, _ = _finite_moments(x)
        means.append(np.where(k > 0, mx, np.nan))
    if not means:
        raise ValueError("no utterances to compute statistics from")
    means = np.stack(means)
    count = np.isfinite(means).sum(axis=0)
    _require_finite_columns(count)
    mean = np.nanmean(means, axis=0)
    std = np.sqrt(np.nanmean((means - mean) ** 2, axis=0))
    std[std == 0] = 1e-10
    return mean.astype(dtype), std.astype(dtype)


def label_stats(records, attributes=ATTRIBUTES) -> dict[str, tuple[float, float]]:
    out = {}
    for a in attributes:
        v = np.array([r.labels[a] for r in records if a in r.labels], dtype=np.float64)
        if len(v):
            out[a] = (float(v.mean()), float(v.std()))
    return out

"""The one metrics module: CCC, WA, UA, macro-F1 and the confusion matrix, and the uncertainty on them.

Every CCC / WA / UA / macro-F1 the toolkit prints or reports is a `Scored`: the value on the whole test set and a 95 %
bootstrap interval over test utterances (seeded; 1,000 resamples by default).

How the intervals are made (the methods the result files name in their "interval" record):
- The unit resampled is the test utterance: B resamples of n utterances drawn with replacement. When a
  prediction is given as S simulation draws of the same utterances ((S, n): missing-data draws), one resample
  takes the same utterances in every draw, and the statistic is the mean over draws.
- "bca": the bias-corrected and accelerated percentile interval of Efron (1987, JASA 82:171-185): the bias
  correction z0 from the share of resamples below the full-sample value (ties count half, which matters for
  WA/UA, whose resamples take few distinct values), the acceleration a from the leave-one-utterance-out
  jackknife, and the percentiles Phi(z0 + (z0 + z) / (1 - a (z0 + z))) of the resamples. Where BCa is
  undefined (every resample equal, or the full-sample value below or above all of them, so z0 is infinite)
  the plain percentile interval is used instead, and `Scored.method` says so.
- "percentile": the alpha/2 and 1 - alpha/2 quantiles of the resampled values.

Speed: each metric is a function of a few sums over utterances (CCC: the first and second moments of labels
and predictions; WA: correct counts; UA: per-class correct and support counts; macro-F1: per-class correct,
support and predicted counts). A resample is a vector of
counts (how often each utterance was drawn), so B resamples are one (B, n) x (n, m) product of counts with
per-utterance columns, done in chunks; the jackknife subtracts each utterance's own row from the totals.
1,000 BCa resamples of 30,000 utterances take well under a second (bench/bench_bootstrap.py).

Comparisons (`paired_test`): a paired bootstrap over the same test utterances (the same resamples for both
systems/conditions): the difference, its percentile interval, a two-sided p-value from the bootstrap
distribution centred on the null (Hall & Wilson 1991: the share of resampled differences at least as far from
the observed difference as the observed difference is from 0, (count + 1) / (B + 1), so never 0) and the effect
size (difference / bootstrap sd of the difference). On simulated nulls (n = 80, two exchangeable predictors) it
rejected 4.3 % of 1,000 sets at alpha 0.05.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Callable

import numpy as np

METRIC_KEYS = ("CCC", "WA", "UA", "macro_F1")
INTERVAL = {"method": "bca", "resamples": 1000, "level": 0.95, "seed": 0, "unit": "test utterance"}
METHODS = ("bca", "percentile")
_NORMAL = NormalDist()
_CHUNK_CELLS = 2_000_000  # resample x utterance cells per chunk: ~16 MB of float64 counts at a time


# ------------------------------------------------------------------------------------------ plain metrics

def ccc(pred, true) -> float:
    """Lin's concordance correlation coefficient with population moments (ddof 0), as the originals score:
    2 cov / (var_p + var_t + (mean_p - mean_t)^2)."""
    p, t = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(true, dtype=np.float64).ravel()
    if len(p) != len(t) or len(p) == 0:
        raise ValueError(f"ccc needs two equal, non-empty lengths (got {len(p)} and {len(t)})")
    mp, mt = p.mean(), t.mean()
    cov = ((p - mp) * (t - mt)).mean()
    denom = p.var() + t.var() + (mp - mt) ** 2
    return float(2 * cov / denom) if denom > 0 else 0.0


# Class labels are integers 0..n_classes-1 (the 4-class schemes of corpora.iemocap give the order).

def _class_labels(true, pred, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both label vectors as int64, after checking: 1-D, equal lengths, integers, in [0, n_classes)."""
    out = []
    for name, x in (("true", true), ("pred", pred)):
        a = np.asarray(x)
        if a.ndim != 1:
            raise ValueError(f"{name} labels must be a 1-D sequence (got shape {a.shape})")
        if a.size and (a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(a == np.round(a)))):
            raise ValueError(f"{name} labels must be integer class indices (got dtype {a.dtype})")
        a = a.astype(np.int64)
        if a.size and a.min() < 0:
            raise ValueError(f"{name} labels must be >= 0 (got {a.min()})")
        if n_classes is not None and a.size and a.max() >= n_classes:
            raise ValueError(f"{name} label {a.max()} out of range for {n_classes} classes")
        out.append(a)
    if len(out[0]) != len(out[1]):
        raise ValueError(f"true and pred differ in length ({len(out[0])} and {len(out[1])})")
    return out[0], out[1]


def confusion_matrix(true, pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true class, column = predicted class."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1 (got {n_classes})")
    t, p = _class_labels(true, pred, n_classes)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def weighted_accuracy(true, pred) -> float:
    """Correct / total: the plain accuracy, what the IEMOCAP papers call weighted accuracy (WA)."""
    t, p = _class_labels(true, pred)
    if len(t) == 0:
        raise ValueError("weighted_accuracy of no items")
    return float(np.mean(t == p))


def unweighted_accuracy(true, pred, n_classes: int) -> float:
    """Mean of the per-class recalls (UA), over the classes PRESENT in `true`.

    A class with no true item has recall 0/0; it is left out of the mean rather than counted as 0 (which would
    punish a fold that lacks a class) or 1. Predictions of such a class still count against the recall of the
    true class they were made for. On data holding every class this is the usual UA.
    """
    cm = confusion_matrix(true, pred, n_classes)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        raise ValueError("unweighted_accuracy of no items")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(true, pred, n_classes: int) -> float:
    """The unweighted mean of the per-class F1 = 2 TP / (2 TP + FP + FN): the metric of the Interspeech 2025
    MSP-Podcast challenge (categorical track), equal to sklearn's f1_score(true, pred, average="macro").

    The mean runs over the classes present in `true` OR `pred` (sklearn's labels=None). A class absent from
    both has F1 0/0 and is left out (as UA leaves out a class with no true item: a test set that lacks a class
    is not punished for it); a class predicted but never true has F1 0 and counts (its predictions are all
    false positives). On data holding every class this is the usual macro-F1."""
    cm = confusion_matrix(true, pred, n_classes)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    denom = support + predicted  # 2 TP + FP + FN
    present = denom > 0
    if not present.any():
        raise ValueError("macro_f1 of no items")
    return float(np.mean(2 * tp[present] / denom[present]))


# ------------------------------------------------------------------------------------------------ Scored

@dataclass(frozen=True)
class Scored:
    """A metric on a test set: `value` on the whole set (the mean over simulation draws when there are several)
    and its bootstrap interval [lo, hi] (None when not computed: resamples 0 or fewer than 2 utterances).
    `method` is the interval's method as used ("bca", or "percentile", also when BCa was undefined)."""
    value: float
    lo: float | None
    hi: float | None
    method: str | None = None

    def text(self, digits: int = 4) -> str:
        """'0.7677 [0.70, 0.82]' (the interval to 2 decimals), '0.7677' without an interval."""
        if self.lo is None or self.hi is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.lo:.2f}, {self.hi:.2f}]"

    def ci_text(self) -> str:
        """'[0.70, 0.82]', '' without an interval: what a script appends to a value it prints its own way."""
        return "" if self.lo is None or self.hi is None else f"[{self.lo:.2f}, {self.hi:.2f}]"

    @property
    def ci(self) -> list[float] | None:
        return None if self.lo is None or self.hi is None else [self.lo, self.hi]


def interval_fields(key: str, s: Scored) -> dict:
    """{key: value, key_ci: [lo, hi] or None}: how result files and protocol rows store a Scored."""
    return {key: s.value, f"{key}_ci": s.ci}


def stored(fields: dict, key: str) -> Scored | None:
    """What interval_fields wrote, read back: `key`'s value with its interval `key_ci` (none when the file or
    row has no interval, e.g. one written before intervals); None when `key` is absent."""
    value = fields.get(key)
    if value is None:
        return None
    ci = fields.get(f"{key}_ci")
    lo, hi = (ci[0], ci[1]) if ci and None not in ci[:2] else (None, None)
    return Scored(float(value), None if lo is None else float(lo), None if hi is None else float(hi))


def interval_record(resamples: int = 1000, level: float = 0.95, seed: int = 0, method: str = "bca") -> dict:
    """What a result file stores as "interval": how its *_ci fields were made."""
    what = ("BCa (Efron 1987; percentile where BCa is undefined)" if method == "bca" else "percentile")
    return {"method": method, "resamples": int(resamples), "level": float(level), "seed": int(seed),
            "unit": "test utterance", "description": f"{what} bootstrap over test utterances"
                                                     if resamples else "no interval (resamples 0)"}


# ----------------------------------------------------------------------- statistics as functions of sums
# A statistic is (cols, fn, mult): per-utterance columns (n, m), and fn(sums (r, m), total weight) -> (r,)
# values. Bootstrap sums are counts @ cols; the jackknife's are cols.sum(0) - cols. `mult` utterance-rows per
# utterance (the pooled average over C conditions counts each utterance C times).

@dataclass
class _Stat:
    cols: np.ndarray
    fn: Callable[[np.ndarray, float], np.ndarray]
    mult: int = 1


def _ccc_fn(n_draws: int) -> Callable:
    def fn(s: np.ndarray, total: float) -> np.ndarray:
        mt = s[:, 0] / total
        vt = s[:, 1] / total - mt ** 2
        k = n_draws
        mp = s[:, 2: 2 + k] / total
        vp = s[:, 2 + k: 2 + 2 * k] / total - mp ** 2
        cov = s[:, 2 + 2 * k: 2 + 3 * k] / total - mp * mt[:, None]
        denom = vp + vt[:, None] + (mp - mt[:, None]) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(denom > 1e-300, 2 * cov / denom, 0.0)  # ccc(): 0 when nothing varies
        return c.mean(axis=1)
    return fn


def _wa_fn(s: np.ndarray, total: float) -> np.ndarray:
    return s.mean(axis=1) / total


def _ua_fn(n_classes: int) -> Callable:
    def fn(s: np.ndarray, total: float) -> np.ndarray:
        support = s[:, :n_classes]
        correct = s[:, n_classes:].reshape(len(s), -1, n_classes)  # (r, S, K)
        present = support > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(present[:, None, :], correct / support[:, None, :], 0.0)
        return (recall.sum(axis=2) / present.sum(axis=1)[:, None]).mean(axis=1)
    return fn


def _f1_fn(n_classes: int) -> Callable:
    def fn(s: np.ndarray, total: float) -> np.ndarray:
        k = n_classes
        support = s[:, :k]  # (r, K)
        predicted = s[:, k:].reshape(len(s), 2, -1, k)[:, 0]  # (r, S, K)
        correct = s[:, k:].reshape(len(s), 2, -1, k)[:, 1]  # (r, S, K)
        denom = support[:, None, :] + predicted  # 2 TP + FP + FN
        present = denom > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(present, 2 * correct / denom, 0.0)
        return (f1.sum(axis=2) / present.sum(axis=2)).mean(axis=1)
    return fn


def _draws(preds, n: int, what: str = "preds") -> np.ndarray:
    p = np.asarray(preds)
    p = p[None, :] if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[1] != n or p.shape[0] < 1:
        raise ValueError(f"{what} must be (n,) or (S, n) with n = {n} utterances (got shape {np.shape(preds)})")
    return p


def _stat(metric: str, labels, preds, n_classes: int | None) -> tuple[_Stat, float]:
    """(the statistic as a function of per-utterance sums, its value on the whole set via the plain metric)."""
    if metric not in METRIC_KEYS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRIC_KEYS)}")
    if metric == "CCC":
        t = np.asarray(labels, np.float64).ravel()
        p = _draws(np.asarray(preds, np.float64), len(t))
        value = float(np.mean([ccc(d, t) for d in p]))
        shift = t.mean() if len(t) else 0.0  # CCC is unchanged by one shift of both: keeps the moments small
        t, p = t - shift, (p - shift).T  # (n, S)
        cols = np.column_stack([t, t * t, p, p * p, p * t[:, None]])
        return _Stat(cols, _ccc_fn(p.shape[1])), value
    t = np.asarray(labels)
    p = _draws(preds, len(t))
    for d in p:
        _class_labels(t, d, n_classes)  # checks every draw
    t = t.astype(np.int64)
    correct = (p.astype(np.int64) == t[None, :]).T.astype(np.float64)  # (n, S)
    if metric == "WA":
        return _Stat(correct, _wa_fn), float(np.mean([weighted_accuracy(t, d) for d in p]))
    if n_classes is None:
        raise ValueError(f"{metric} needs n_classes")
    onehot = np.eye(n_classes)[t]  # (n, K)
    correct_by_class = (correct[:, :, None] * onehot[:, None, :]).reshape(len(t), -1)  # (n, S*K)
    if metric == "UA":
        cols = np.column_stack([onehot, correct_by_class])
        return _Stat(cols, _ua_fn(n_classes)), float(np.mean([unweighted_accuracy(t, d, n_classes) for d in p]))
    predicted = np.eye(n_classes)[p.astype(np.int64).T].reshape(len(t), -1)  # (n, S, K) -> (n, S*K)
    cols = np.column_stack([onehot, predicted, correct_by_class])
    return _Stat(cols, _f1_fn(n_classes)), float(np.mean([macro_f1(t, d, n_classes) for d in p]))


def _counts(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """(rows, n) float64: how often each utterance is drawn in each of `rows` resamples of n with replacement."""
    idx = rng.integers(0, n, size=(rows, n), dtype=np.int32)  # int32 draws: half the time of int64 ones
    if n < 2000:  # small test sets: one bincount over all rows (offset per row) beats a loop of tiny ones
        flat = idx.astype(np.int64) + (np.arange(rows, dtype=np.int64) * n)[:, None]
        return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
    counts = np.empty((rows, n))
    for r in range(rows):
        counts[r] = np.bincount(idx[r], minlength=n)
    return counts


def _replicates(stats: list[_Stat], n: int, resamples: int, seed: int) -> list[np.ndarray]:
    """Each statistic over the same `resamples` bootstrap resamples of the n utterances: a list of (B,)."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out: list[list[np.ndarray]] = [[] for _ in stats]
    for start in range(0, resamples, chunk):
        w = _counts(rng, min(chunk, resamples - start), n)
        for o, st in zip(out, stats):
            o.append(st.fn(w @ st.cols, n * st.mult))
    return [np.concatenate(o) for o in out]


def _jackknife(st: _Stat) -> np.ndarray:
    """The statistic with each utterance left out in turn: (n,)."""
    n = len(st.cols)
    return st.fn(st.cols.sum(axis=0)[None, :] - st.cols, (n - 1) * st.mult)


def _interval(theta: float, boot: np.ndarray, jack: np.ndarray | None, level: float,
              method: str) -> tuple[float, float, str]:
    """(lo, hi, method used): BCa (Efron 1987) or percentile; percentile where BCa is undefined."""
    alpha = 1 - level
    boot = boot[np.isfinite(boot)]
    qs = np.array([alpha / 2, 1 - alpha / 2])
    if method == "bca" and jack is not None and len(boot) and np.ptp(boot) > 0:
        below = (np.sum(boot < theta) + 0.5 * np.sum(boot == theta)) / len(boot)
        if 0 < below < 1:
            z0 = _NORMAL.inv_cdf(below)
            d = jack.mean() - jack
            ss = np.sum(d ** 2)
            a = float(np.sum(d ** 3) / (6 * ss ** 1.5)) if ss > 0 else 0.0
            z = np.array([_NORMAL.inv_cdf(q) for q in qs])
            adj = np.array([_NORMAL.cdf(z0 + (z0 + zi) / (1 - a * (z0 + zi))) for zi in z])
            if np.all(np.isfinite(adj)):
                lo, hi = np.quantile(boot, adj)
                return float(lo), float(hi), "bca"
    if not len(boot):
        return theta, theta, "percentile"
    lo, hi = np.quantile(boot, qs)
    return float(lo), float(hi), "percentile"


def _check_settings(resamples: int, level: float, method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; expected one of {', '.join(METHODS)}")
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1) (got {level})")
    if isinstance(resamples, bool) or int(resamples) != resamples or resamples < 0:
        raise ValueError(f"resamples must be a non-negative integer (got {resamples!r})")


def _scored(st: _Stat, value: float, n: int, resamples: int, level: float, seed: int,
            method: str) -> tuple[Scored, np.ndarray | None]:
    """(the Scored, its bootstrap replicates (None without an interval): kept for paired tests on them)."""
    if resamples == 0 or n < 2:
        return Scored(value, None, None), None
    boot = _replicates([st], n, resamples, seed)[0]
    jack = _jackknife(st) if method == "bca" else None
    lo, hi, used = _interval(value, boot, jack, level, method)
    return Scored(value, lo, hi, used), boot


def score(metric: str, labels, preds, *, n_classes: int | None = None, resamples: int = 1000,
          level: float = 0.95, seed: int = 0, method: str = "bca") -> Scored:
    """`metric` (CCC, WA, UA or macro_F1) of `preds` against `labels` with a bootstrap interval over utterances.

    labels (n,); preds (n,) or (S, n) = S simulation draws of the same utterances (the value is then the mean
    over draws, and each resample takes the same utterances in every draw). WA/UA/macro_F1 take integer class
    indices (UA and macro_F1 need n_classes). `method` "bca" (Efron 1987; percentile where undefined) or
    "percentile"; seeded."""
    _check_settings(resamples, level, method)
    st, value = _stat(metric, labels, preds, n_classes)
    return _scored(st, value, len(st.cols), int(resamples), level, seed, method)[0]


# -------------------------------------------------------------------------------------------- comparisons

def paired_test(metric: str, labels, preds_a, preds_b, *, n_classes: int | None = None, resamples: int = 1000,
                seed: int = 0) -> dict:
    """Paired bootstrap test of metric(b) - metric(a) on the same test utterances (each (n,) or (S, n)).

    Both systems/conditions are scored on the same resamples. Returns {"diff", "diff_ci" (95 % percentile),
    "p" (two-sided, null-centred: (#{|d* - diff| >= |diff|} + 1) / (B + 1)), "effect" (diff / bootstrap sd of
    the difference; None when that sd is 0), "resamples", "method"}."""
    _check_settings(resamples, 0.95, "percentile")
    st_a, va = _stat(metric, labels, preds_a, n_classes)
    st_b, vb = _stat(metric, labels, preds_b, n_classes)
    n, diff = len(st_a.cols), vb - va
    out = {"diff": diff, "diff_ci": None, "p": None, "effect": None, "resamples": int(resamples),
           "method": "paired bootstrap over test utterances"}
    if resamples == 0 or n < 2:
        return out
    ra, rb = _replicates([st_a, st_b], n, int(resamples), seed)
    return _paired(out, rb - ra)


def _paired(out: dict, d: np.ndarray) -> dict:
    """paired_test's numbers from the resampled differences `d` (same resamples for both) and out["diff"]."""
    diff = out["diff"]
    lo, hi = np.quantile(d, [0.025, 0.975])
    p = (np.sum(np.abs(d - diff) >= abs(diff) - 1e-12) + 1) / (len(d) + 1)  # 1e-12: a zero diff gives p = 1
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return {**out, "diff_ci": [float(lo), float(hi)], "p": float(min(1.0, p)),
            "effect": float(diff / sd) if sd > 0 else None}


def baselines(labels, n_classes: int) -> dict:
    """The reference levels of WA/UA on these test labels: chance (uniform guessing: 1/K), majority (always the
    most frequent test class: its share for WA, 1/(classes present) for UA) and each class's support."""
    t, _ = _class_labels(labels, labels, n_classes)
    support = np.bincount(t, minlength=n_classes)
    present = int((support > 0).sum())
    return {"chance_WA": 1 / n_classes, "majority_WA": float(support.max() / len(t)) if len(t) else None,
            "chance_UA": 1 / n_classes, "majority_UA": 1 / present if present else None,
            "support": support.tolist()}


def robustness_summary(rates, values) -> dict:
    """A degradation curve in two numbers. rates ascending with 0 first (the complete data), values the metric.

    auc_norm: trapezoid area under the values over [0, max rate] / (values[0] * max rate): 1 = no loss.
    rate_at_10pct_drop: the first rate (linear interpolation between measured rates) where the value falls to
    values[0] - 0.1 |values[0]| (0.9 values[0] for a positive score), None if it never does.
    auc_norm is None where it means nothing (a single rate, or values[0] <= 0)."""
    r, v = np.asarray(rates, np.float64), np.asarray(values, np.float64)
    if r.ndim != 1 or r.shape != v.shape or not len(r):
        raise ValueError(f"rates and values must be two equal, non-empty 1-D sequences (got {r.shape}, {v.shape})")
    if r[0] != 0 or np.any(np.diff(r) <= 0):
        raise ValueError(f"rates must ascend from 0 (the complete data), got {list(r)}")
    v0, top = v[0], r[-1]
    auc = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(r)) / (v0 * top)) if top > 0 and v0 > 0 else None
    threshold = v0 - 0.1 * abs(v0)
    drop = None
    for k in range(1, len(r)):
        if v[k] <= threshold:
            frac = (v[k - 1] - threshold) / (v[k - 1] - v[k]) if v[k - 1] != v[k] else 1.0
            drop = float(r[k - 1] + frac * (r[k] - r[k - 1]))
            break
    return {"auc_norm": auc, "rate_at_10pct_drop": drop}


def read_per_utterance(path: str | Path):
    """A per-utterance CSV as a pandas DataFrame: the long one of engine.robustness (series, condition,
    sim_seed, utterance, present, label/prediction or label_<A>/prediction_<A>) or a testing script's
    (utterance, prediction, label). Names stay strings ("" where empty), sim_seed an int."""
    import pandas as pd
    text_cols = ("series", "condition", "utterance", "present")
    df = pd.read_csv(path, dtype={c: str for c in text_cols}, keep_default_na=False,
                     na_values={c: [""] for c in ("sim_seed",)})
    for c in text_cols:
        if c in df:
            df[c] = df[c].fillna("")
    if "sim_seed" in df:
        df["sim_seed"] = df["sim_seed"].astype(int)
    return df

"""The numbers the report derives from result files (metrics.py does the statistics).

A metric with its 95 % interval (the one the file stores, else bootstrapped from its per-utterance CSV, else the
bare value), the chance and majority-class baselines and per-class support of a test set, paired comparisons of two
models on the same test utterances, and means ± sd over training seeds."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import metrics
from report.render import MeanSd

KEYS = {"CCC": "value", "WA": "WA", "UA": "UA", "macro_F1": "macro_F1"}  # metric -> the key a result file stores it under


@dataclass
class Scores:
    """A test set's per-utterance labels and predictions as one result file's CSV holds them."""
    utts: list[str]
    labels: np.ndarray  # floats (CCC) or class indices
    preds: np.ndarray
    classes: list[str] | None  # None: regression


_CACHE: dict = {}


def per_utterance(path: Path, doc: dict) -> Scores | None:
    """The per-utterance CSV a result file names (beside it): regression `utterance,prediction,label` or classes
    `utterance,label,prediction,logit_...` (class names, indexed by the file's `classes`). None when absent or
    unreadable."""
    name = (doc or {}).get("per_utterance_csv")
    if not name:
        return None
    csv_path = Path(path).parent / name
    try:
        st = csv_path.stat()
    except OSError:
        return None
    # keyed by size and time too: a file rewritten since (a retrained model) is read again
    key = (str(csv_path), st.st_size, st.st_mtime_ns, tuple(doc.get("classes") or ()))
    if key not in _CACHE:
        _CACHE[key] = _read_scores(csv_path, doc.get("classes"))
    return _CACHE[key]


def _read_scores(csv_path: Path, classes: list | None) -> Scores | None:
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    if not rows or not {"utterance", "label", "prediction"} <= set(rows[0]):
        return None  # another layout (e.g. a long protocol CSV): not a single test set's scores
    try:
        if classes:
            index = {c: k for k, c in enumerate(classes)}
            labels = np.array([index[r["label"]] for r in rows])
            preds = np.array([index[r["prediction"]] for r in rows])
        else:
            labels = np.array([float(r["label"]) for r in rows])
            preds = np.array([float(r["prediction"]) for r in rows])
    except (KeyError, ValueError):
        return None
    return Scores([r["utterance"] for r in rows], labels, preds, list(classes) if classes else None)


def scored(path: Path, doc: dict | None, metric: str):
    """The cell of `metric` (CCC, WA, UA or macro_F1) of a result file: a metrics.Scored with the file's interval
    (`<key>_ci`), or one bootstrapped from its per-utterance CSV when the file predates intervals, or the bare
    value when neither can be had; None when the file has no such number."""
    if not doc:
        return None
    key = KEYS[metric]
    value = doc.get(key)
    if value is None:
        return None
    kept = metrics.stored(doc, key)
    if kept.lo is not None:
        return kept
    s = per_utterance(path, doc)
    if s is None or len(s.utts) < 2:
        return float(value)
    key = (id(s), metric)  # one bootstrap per file and metric (the Scores object is cached per file version)
    if key not in _SCORED:
        fresh = metrics.score(metric, s.labels, s.preds, n_classes=len(s.classes) if s.classes else None)
        _SCORED[key] = (s, fresh)  # s kept alive so its id is not reused
    return metrics.Scored(float(value), _SCORED[key][1].lo, _SCORED[key][1].hi)


_SCORED: dict = {}


def row_scored(row: dict, key: str):
    """A protocol row's `key` with its interval `key_ci` (engine.robustness rows), or the bare value."""
    s = metrics.stored(row, key)
    return s if s is None or s.lo is not None else s.value


def class_baselines(path: Path, doc: dict | None) -> dict | None:
    """Chance and majority-class WA / UA and the per-class support of a result's test set: the file's
    `baselines` (metrics.baselines, written with the result) or computed from its per-utterance CSV."""
    if not doc:
        return None
    if doc.get("baselines"):
        return doc["baselines"]
    s = per_utterance(path, doc)
    if s is not None and s.classes:
        return metrics.baselines(s.labels, len(s.classes))
    if doc.get("confusion") and doc.get("classes"):  # an older file: the support is the confusion's row sums
        counts = np.asarray(doc["confusion"]).sum(axis=1)
        return metrics.baselines(np.repeat(np.arange(len(counts)), counts), len(counts))
    return None


def support_text(classes: list[str] | None, support: list[int] | None) -> str | None:
    if not support:
        return None
    names = classes or [str(k) for k in range(len(support))]
    return ", ".join(f"{c} {n}" for c, n in zip(names, support))


def present_text(present: dict | None) -> str | None:
    """{modality: share} as `audio 100 %, text 49 %` (the share of test utterances that really had it)."""
    if not present:
        return None
    names = {"none": "none of them (a constant guess)"}  # speech_text_mocap.py's share with no stream at all
    return ", ".join(f"{names.get(k, k)} {100 * float(v):.0f} %" for k, v in present.items() if v is not None)


def mean_sd(values: list) -> MeanSd | None:
    """Mean ± sample sd over training seeds of cells (Scored or float); None when no value."""
    nums = [float(getattr(v, "value", v)) for v in values if v is not None]
    nums = [v for v in nums if v == v]
    if not nums:
        return None
    return MeanSd(float(np.mean(nums)), float(np.std(nums, ddof=1)) if len(nums) > 1 else None, len(nums))


def paired(metric: str, a: Scores, b: Scores) -> dict | None:
    """metrics.paired_test of b against a on the utterances both scored (matched by id, in a's order) with the
    same labels; None when fewer than 2 are shared. Adds "utterances"."""
    where = {u: k for k, u in enumerate(b.utts)}
    shared = [(k, where[u]) for k, u in enumerate(a.utts) if u in where]
    if len(shared) < 2:
        return None
    ia, ib = (np.array(x) for x in zip(*shared))
    if not np.allclose(a.labels[ia], b.labels[ib]):
        return None  # the same ids with other labels: not the same test set
    out = metrics.paired_test(metric, a.labels[ia], a.preds[ia], b.preds[ib],
                        n_classes=len(a.classes) if a.classes else None)
    return {**out, "utterances": len(shared)}


def interval_text(docs: list[dict | None]) -> str:
    """How the intervals were computed, said once: from the result files' `interval` records, else the metrics
    module's defaults (what the report uses for older files)."""
    recs = [d["interval"] for d in docs if d and isinstance(d.get("interval"), dict)]
    rec = recs[0] if recs else dict(metrics.INTERVAL)
    method = {"bca": "BCa (bias-corrected and accelerated)", "percentile": "percentile"}.get(
        str(rec.get("method")), str(rec.get("method")))
    other = {r.get("method") for r in recs} - {rec.get("method")}
    return (f"Square brackets: the {100 * float(rec.get('level', 0.95)):.0f} % {method} bootstrap interval over the "
            f"test utterances ({int(rec.get('resamples', 1000)):,} resamples, seed {rec.get('seed', 0)}); a file that "
            "predates intervals gets its interval from its per-utterance CSV with the same settings; a bare value "
            "had no per-utterance CSV." + (f" Some files used {', '.join(map(str, other))}." if other else ""))

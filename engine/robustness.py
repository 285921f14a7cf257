"""Scores a trained model under missing-data conditions and simulation seeds, for every fusion system.

The one implementation behind every fusion system's protocols (fixed-condition, random-missing, rate sweeps, a
--missing list).

The system gives one function, predict(condition, sim_seed) -> Draw (its predictions on the test utterances
under that condition, and which modalities each utterance really had); `evaluate_conditions` calls it once per
condition whose outcome does not depend on the draw (complete data, absent streams, present: subsets) and
once per simulation seed otherwise, then writes
  <out>_per_utterance.csv  long format: series, condition, sim_seed, utterance, present, label(s), prediction(s)
  <out>.csv                the table: one row per condition, values with 95 % intervals, spread over seeds,
                           the paired test against the complete data, the share of utterances with each modality
  <out>.json               the same in the shared result format (engine.results.write_result)
  <out>.png                the metric against the missing rate (engine.plots.missing_curves)
and prints the table. Intervals and tests come from metrics.py (bootstrap over test utterances; with several
simulation seeds a resample takes the same utterances in every draw and the statistic is the mean over draws).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import metrics
from features.missing import MODALITY_NAMES, Condition, parse_condition

METRICS = ("CCC", "WA/UA")


@dataclass
class Draw:
    """One condition x one simulation seed, over the test utterances."""
    utts: list[str]
    labels: np.ndarray           # (n,) int class indices, or (n, A) floats (A attributes)
    preds: np.ndarray            # (n,) int class indices, or (n, A) floats
    present: list[str]           # per utterance, the modalities it really had, "+"-joined ("audio+text")
    extra: dict = field(default_factory=dict)   # e.g. {"realised_wer": 0.29}, averaged into the row


@dataclass
class _Scored:
    """The draws of one condition, aligned to the complete condition's utterance order."""
    cond: Condition
    seeds: list[int]
    preds: np.ndarray            # (S, n) or (S, n, A)
    present: list[list[str]]     # per seed, per utterance
    extra: dict


def _rated(cond: Condition) -> bool:
    """Whether the condition sits on a rate axis (frames:0.3, random-missing:0.2, ...), not a fixed level."""
    return cond.kind not in ("none", "present", "audio-absent", "text-absent", "mocap-absent")


def _check_args(conditions, sim_seeds, metric, attributes, classes, ci_method, resamples) -> list[Condition]:
    conds = [parse_condition(c) for c in conditions]
    if not conds or conds[0].kind != "none":
        raise ValueError("evaluate_conditions: the conditions must start with Condition('none') (the complete data)")
    if len({str(c) for c in conds}) != len(conds):
        raise ValueError(f"evaluate_conditions: a condition is listed twice in {[str(c) for c in conds]}")
    if metric not in METRICS:
        raise ValueError(f"evaluate_conditions: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if metric == "CCC" and not attributes:
        raise ValueError("evaluate_conditions: metric CCC needs the attribute names")
    if metric == "WA/UA" and not classes:
        raise ValueError("evaluate_conditions: metric WA/UA needs the class names")
    if isinstance(sim_seeds, bool) or int(sim_seeds) != sim_seeds or sim_seeds < 1:
        raise ValueError(f"evaluate_conditions: sim_seeds must be a positive integer, got {sim_seeds!r}")
    metrics._check_settings(resamples, 0.95, ci_method)
    return conds


def _collect(predict: Callable, cond: Condition, seeds: list[int], ref: Draw | None) -> tuple[_Scored, Draw]:
    """Call predict for every seed and align each draw to `ref`'s utterances (the first draw when ref is None)."""
    preds, present, extras = [], [], []
    for s in seeds:
        d = predict(cond, s)
        ref = ref or d
        if len(d.present) != len(d.utts) or len(d.labels) != len(d.utts) or len(d.preds) != len(d.utts):
            raise ValueError(f"condition {cond}, simulation seed {s}: the Draw's utts, labels, preds and present "
                             f"differ in length ({len(d.utts)}, {len(d.labels)}, {len(d.preds)}, {len(d.present)})")
        if len(d.utts) != len(ref.utts) or set(d.utts) != set(ref.utts):
            raise ValueError(f"condition {cond}, simulation seed {s}: predict returned other utterances than the "
                             f"complete data ({len(d.utts)} vs {len(ref.utts)})")
        where = {u: i for i, u in enumerate(d.utts)}
        order = np.array([where[u] for u in ref.utts])
        if not np.array_equal(np.asarray(d.labels)[order], np.asarray(ref.labels)):
            raise ValueError(f"condition {cond}, simulation seed {s}: predict returned other labels than the "
                             "complete data for the same utterances")
        preds.append(np.asarray(d.preds)[order])
        present.append([d.present[i] for i in order])
        extras.append(d.extra)
    keys = list(dict.fromkeys(k for e in extras for k, v in e.items() if isinstance(v, (int, float, np.number))))
    extra = {k: float(np.mean([e[k] for e in extras if k in e])) for k in keys}  # numbers only: means
    return _Scored(cond, seeds, np.stack(preds), present, extra), ref


def _check_shapes(labels: np.ndarray, scored: list[_Scored], keys: list[str], metric: str) -> None:
    want = (len(labels), len(keys)) if metric == "CCC" else (len(labels),)
    for d in scored:
        if labels.shape != want or d.preds.shape[1:] != want:
            raise ValueError(f"condition {d.cond}: labels {labels.shape} and predictions {d.preds.shape[1:]} per "
                             f"draw, expected {want} for metric {metric}" + (f" ({', '.join(keys)})"
                                                                              if metric == "CCC" else ""))


def _keys(metric: str, attributes, classes) -> list[str]:
    return list(attributes) if metric == "CCC" else ["WA", "UA"]


def _series_of(key: str, preds: np.ndarray, keys: list[str]) -> np.ndarray:
    """(S, n) predictions scored under `key`: one attribute's column for CCC, the class indices for WA/UA."""
    return preds[:, :, keys.index(key)] if preds.ndim == 3 else preds


def _labels_of(key: str, labels: np.ndarray, keys: list[str]) -> np.ndarray:
    return labels[:, keys.index(key)] if labels.ndim == 2 else labels


def _metric_of(key: str) -> str:
    return key if key in ("WA", "UA") else "CCC"


def _present_shares(draws: _Scored, modalities: list[str]) -> dict:
    had = [[set(p.split("+")) - {""} for p in seed] for seed in draws.present]
    return {m: float(np.mean([np.mean([m in h for h in seed]) for seed in had])) for m in modalities}


def _bootstrapped(draws: _Scored, labels, keys, n_classes, opts) -> dict:
    """{key: (Scored, its bootstrap replicates)}: every condition is resampled once, with the same seeded
    resamples for all, so its paired test against the complete data reuses both conditions' replicates."""
    out = {}
    for key in keys:
        y, p = _labels_of(key, labels, keys), _series_of(key, draws.preds, keys)
        st, value = metrics._stat(_metric_of(key), y, p, n_classes)
        out[key] = metrics._scored(st, value, len(y), opts["resamples"], opts["level"], opts["seed"],
                                   opts["method"])
    return out


def _row(draws: _Scored, boot: dict, complete_boot: dict, labels, keys, n_classes, series, modalities) -> dict:
    cond = draws.cond
    row = {"series": series, "condition": "complete" if cond.kind == "none" else str(cond), "kind": cond.kind,
           "rate": 0.0 if cond.kind == "none" else (cond.rate if _rated(cond) else None)}
    for key in keys:
        y, p = _labels_of(key, labels, keys), _series_of(key, draws.preds, keys)
        (s, reps), (s0, reps0) = boot[key], complete_boot[key]
        row.update(metrics.interval_fields(key, s))
        per_seed = [metrics.score(_metric_of(key), y, q, n_classes=n_classes, resamples=0).value for q in p]
        row[f"{key}_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
        test = {"diff": None, "diff_ci": None, "p": None, "effect": None}
        if cond.kind != "none":
            test = {**test, "diff": s.value - s0.value}
            if reps is not None:  # paired bootstrap test against the complete data (metrics.paired_test)
                test = metrics._paired(test, reps - reps0)
        row.update({f"{key}_{k}": test[k] for k in ("diff", "diff_ci", "p", "effect")})
    row["present"] = _present_shares(draws, modalities)
    row["utterances"] = int(draws.preds.shape[1])
    row["sim_seeds"] = len(draws.seeds)
    row.update(draws.extra)
    return row


def _pooled_stat(key, labels, parts: list[_Scored], keys, n_classes) -> tuple[metrics._Stat, float]:
    """The metric over all (condition, utterance) pairs together, as a function of per-utterance sums: each
    utterance's columns summed over the conditions, so a resample draws an utterance with all its conditions."""
    stats, seeds = [], max(len(d.seeds) for d in parts)
    y = _labels_of(key, labels, keys)
    for d in parts:
        p = _series_of(key, d.preds, keys)
        stats.append(metrics._stat(_metric_of(key), y, np.resize(p, (seeds, p.shape[1])), n_classes)[0])
    pooled_y = np.tile(y, len(parts))
    pooled_p = np.concatenate([np.resize(_series_of(key, d.preds, keys), (seeds, len(y))) for d in parts], axis=1)
    value = metrics._stat(_metric_of(key), pooled_y, pooled_p, n_classes)[1]
    return metrics._Stat(sum(st.cols for st in stats), stats[0].fn, mult=len(parts)), value


def fixed_summary(labels, parts: list[_Scored], keys: list[str], n_classes, opts: dict) -> dict:
    """{"mean": {K, K_ci}, "pooled": {K, K_ci}} over the complete data and the present: subsets: mean = the mean
    of the per-condition scores; pooled = the metric over every (condition, utterance) pair together (MMIN's
    "average"). Both intervals resample test utterances (each with all its conditions)."""
    n = len(labels)
    mean, pooled = {}, {}
    for key in keys:
        y = _labels_of(key, labels, keys)
        per = [metrics._stat(_metric_of(key), y, _series_of(key, d.preds, keys), n_classes) for d in parts]
        value = float(np.mean([v for _, v in per]))
        pst, pval = _pooled_stat(key, labels, parts, keys, n_classes)
        if opts["resamples"] and n >= 2:
            reps = metrics._replicates([st for st, _ in per] + [pst], n, opts["resamples"], opts["seed"])
            # the mean's jackknife: the mean of the conditions' leave-one-out values
            jack = np.mean([metrics._jackknife(st) for st, _ in per], axis=0)
            mlo, mhi, _ = metrics._interval(value, np.mean(reps[:-1], axis=0), jack, opts["level"], opts["method"])
            plo, phi, _ = metrics._interval(pval, reps[-1], metrics._jackknife(pst), opts["level"], opts["method"])
            mean.update({key: value, f"{key}_ci": [mlo, mhi]})
            pooled.update({key: pval, f"{key}_ci": [plo, phi]})
        else:
            mean.update({key: value, f"{key}_ci": None})
            pooled.update({key: pval, f"{key}_ci": None})
    # with the same utterances in every condition the two coincide for WA and UA (equal supports); CCC differs
    what = {"mean": "mean of the per-condition scores",
            "pooled": "all (condition, utterance) pairs scored together (MMIN's \"average\")"}
    return {"conditions": [("complete" if d.cond.kind == "none" else str(d.cond)) for d in parts],
            "mean": mean, "pooled": pooled, "what": what}


def _curve(cond: Condition) -> str:
    """The degradation curve a rated condition belongs to: its kind (bursts of another mean length: their own)."""
    from features.missing import DEFAULT_BURST
    return f"bursts:{cond.burst:g}" if cond.kind == "bursts" and cond.burst != DEFAULT_BURST else cond.kind


def curve_summary(conds: list[Condition], rows: list[dict], keys: list[str]) -> dict:
    """{curve: {K: robustness_summary over its rates, rate 0 = the complete row}} for every rated kind."""
    complete = rows[0]
    curves: dict[str, list[dict]] = {}
    for cond, row in zip(conds, rows):
        if cond.kind != "none" and _rated(cond) and row["rate"] > 0:
            curves.setdefault(_curve(cond), []).append(row)
    out = {}
    for name, mine in curves.items():
        mine = sorted(mine, key=lambda r: r["rate"])
        rates = [0.0] + [r["rate"] for r in mine]
        out[name] = {key: metrics.robustness_summary(rates, [complete[key]] + [r[key] for r in mine])
                     for key in keys}
    return out


# ------------------------------------------------------------------------------------------------ outputs

def _fmt(v, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _write_per_utterance(path: Path, every: list, keys: list[str], classes) -> None:
    from utils import atomic_path
    names = (lambda i: classes[int(i)]) if classes else None
    if names:
        head = ["label", "prediction"]
    else:
        head = [f"{w}_{k}" for k in keys for w in ("label", "prediction")]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series", "condition", "sim_seed", "utterance", "present", *head])
        for ser in every:
            labels = ser.labels
            for d in ser.scored:
                cond = "complete" if d.cond.kind == "none" else str(d.cond)
                for s, preds, present in zip(d.seeds, d.preds, d.present):
                    for i, u in enumerate(ser.utts):
                        if names:
                            vals = [names(labels[i]), names(preds[i])]
                        else:
                            vals = [f"{v:.6f}" for k in range(len(keys)) for v in (labels[i, k], preds[i, k])]
                        w.writerow([ser.name, cond, s, u, present[i], *vals])


def _table(rows: list[dict], summary: dict, keys: list[str], modalities: list[str]) -> list[dict]:
    """The flat table (<out>.csv and the printout): one line per condition, then the fixed protocol's averages."""
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in _ROW_KEYS and not
             any(k == key or k.startswith(f"{key}_") for key in keys)]
    table = []
    for r in rows:
        line = {"series": r["series"], "condition": r["condition"], "rate": _fmt(r["rate"], 2)}
        for key in keys:
            line[key] = metrics.stored(r, key).text()
            line[f"{key} sd"] = _fmt(r[f"{key}_sd"])
            line[f"{key} diff"] = _fmt(r[f"{key}_diff"])
            line[f"{key} p"] = _fmt(r[f"{key}_p"], 3)
        line.update({f"{m} present": f"{100 * r['present'][m]:.0f}%" for m in modalities})
        line["utterances"] = str(r["utterances"])
        line.update({k: _fmt(r.get(k)) for k in extra})
        table.append(line)
    for name in ("mean", "pooled"):
        if name in summary:
            line = {"series": rows[0]["series"], "condition": f"{name} ({summary['what'][name]})", "rate": ""}
            for key in keys:
                line[key] = metrics.stored(summary[name], key).text()
            table.append(line)
    return table


_ROW_KEYS = ("series", "condition", "kind", "rate", "present", "utterances", "sim_seeds")


def _write_table(path: Path, table: list[dict]) -> None:
    from utils import atomic_path
    cols = list(dict.fromkeys(k for line in table for k in line))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(table)


def _print_table(table: list[dict], title: str) -> None:
    cols = list(dict.fromkeys(k for line in table for k in line if k != "series"))
    width = {c: max(len(c), *(len(line.get(c, "")) for line in table)) for c in cols}
    if title:
        print(title)
    print("  ".join(c.ljust(width[c]) for c in cols))
    for line in table:
        print("  ".join(line.get(c, "").ljust(width[c]) for c in cols))


@dataclass
class _Series:
    """One series (one model, e.g. one fold's) under every condition: its draws aligned to its complete data."""
    name: str
    scored: list[_Scored]
    utts: list[str]
    labels: np.ndarray


def _collect_series(name: str, predict: Callable, conds: list[Condition], sim_seeds: int, metric: str,
                    keys: list[str]) -> _Series:
    scored, ref = [], None
    for cond in conds:
        d, ref = _collect(predict, cond, list(range(sim_seeds)) if cond.seeded else [0], ref)
        scored.append(d)
    labels = np.asarray(ref.labels)
    labels = labels.astype(np.int64) if metric == "WA/UA" else labels.astype(np.float64)
    if metric == "CCC" and labels.ndim == 1:  # one attribute given as (n,): the (n, 1) of the contract
        labels = labels[:, None]
        for d in scored:
            d.preds = d.preds.reshape(*d.preds.shape[:2], 1)
    _check_shapes(labels, scored, keys, metric)
    return _Series(name, scored, list(ref.utts), labels)


def _score_series(s: _Series, conds, keys, n_classes, modalities, protocol: str, opts: dict) -> tuple[list, dict]:
    """(rows, summary) of one series: intervals, paired tests against its complete data, the protocol's summary."""
    boots = [_bootstrapped(d, s.labels, keys, n_classes, opts) for d in s.scored]
    rows = [_row(d, b, boots[0], s.labels, keys, n_classes, s.name, modalities) for d, b in zip(s.scored, boots)]
    if protocol == "fixed":
        parts = [d for d in s.scored if d.cond.kind in ("none", "present")]
        return rows, fixed_summary(s.labels, parts, keys, n_classes, opts)
    return rows, curve_summary(conds, rows, keys)


def evaluate_conditions(predict: Callable[[Condition, int], Draw] | dict, conditions: list[Condition], *,
                        sim_seeds: int = 3, metric: str, attributes: list[str] | None = None,
                        classes: list[str] | None = None, protocol: str, out: Path, result: dict,
                        series: str | None = None, resamples: int = 1000, ci_method: str = "bca",
                        title: str = "") -> list[dict]:
    """Score `predict` under every condition (complete data first) and write <out>_per_utterance.csv, <out>.csv,
    <out>.json and <out>.png (see the module's docstring); returns the rows of the result file.

    `predict` may also be a dict {series name: predict} (e.g. one model per fold, each on its own test
    utterances): every series is scored on its own, against its own complete data, into the same files
    (`series` is then ignored; one series' name defaults to result["system"]).
    metric "CCC" (labels and predictions (n, A), one column per name in `attributes`) or "WA/UA" (class
    indices into `classes`). Conditions that do not depend on the draw are scored once (simulation seed 0),
    the others once per seed 0..sim_seeds-1 and averaged. Each row: the value with its interval (K, K_ci), the
    spread over seeds (K_sd), the paired bootstrap test against the complete data (K_diff, K_diff_ci, K_p,
    K_effect; None on the complete row), the share of utterances that had each modality, the utterance
    count and the means of Draw.extra. Summary: protocol "fixed" -> mean and pooled averages; otherwise the
    robustness summary (normalised AUC, rate at a 10 % drop) of each rated kind; with several series
    {"by_series": {name: that summary}}."""
    from engine.results import write_result
    from utils import output_file
    conds = _check_args(conditions, sim_seeds, metric, attributes, classes, ci_method, resamples)
    keys = _keys(metric, attributes, classes)
    if not isinstance(predict, dict):
        predict = {series if series is not None else str(result.get("system", "model")): predict}
    every = [_collect_series(str(name), fn, conds, sim_seeds, metric, keys) for name, fn in predict.items()]
    seen = {m for s in every for d in s.scored for seed in d.present for p in seed for m in p.split("+") if m}
    modalities = [m for m in MODALITY_NAMES if m in seen] + sorted(seen - set(MODALITY_NAMES))
    n_classes = len(classes) if classes else None
    opts = {"resamples": int(resamples), "level": 0.95, "seed": 0, "method": ci_method}
    rows, summaries, table = [], {}, []
    for s in every:
        mine, summaries[s.name] = _score_series(s, conds, keys, n_classes, modalities, protocol, opts)
        rows += mine
        table += _table(mine, summaries[s.name], keys, modalities)
    summary = summaries[every[0].name] if len(every) == 1 else {"by_series": summaries}

    per_utt = output_file(out, "_per_utterance.csv")
    _write_per_utterance(per_utt, every, keys, classes)
    _write_table(output_file(out, ".csv"), table)
    png = output_file(out, ".png")
    from engine.plots import missing_curves
    missing_curves(rows, keys, png, title=title or None)
    all_labels = np.concatenate([s.labels for s in every])
    fields = {"metric": metric, "protocol": protocol, "rows": rows, "summary": summary,
              "interval": metrics.interval_record(resamples, 0.95, 0, ci_method),
              "sim_seeds": list(range(sim_seeds)), "per_utterance_csv": per_utt.name,
              "table_csv": output_file(out, ".csv").name, "figure": png.name,
              "utterances": sum(len(s.utts) for s in every), "modalities": modalities,
              **({"attributes": list(attributes)} if metric == "CCC" else
                 {"classes": list(classes), "baselines": metrics.baselines(all_labels, len(classes))}), **result}
    write_result(output_file(out, ".json"), fields)
    _print_table(table, title or f"{', '.join(s.name for s in every)}: {protocol} protocol")
    return rows

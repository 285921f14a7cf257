"""The figures of every system and of the report: missing-rate curves and grouped bar charts.

Matplotlib's object API on an Agg canvas (no pyplot state), written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from utils import atomic_path


def _save(fig, path: Path) -> Path:
    if fig.get_layout_engine() is None:  # a constrained layout (legends outside the axes) arranges itself
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def missing_curves(rows: list[dict], metrics: list[str], path: str | Path, *, series_key: str = "series",
                   title: str | None = None, baselines: dict | None = None) -> Path:
    """One panel per metric; per (series, condition) a line of the metric against the missing rate. Rows:
    {series_key, "condition", "rate", metric: value}. A row with condition "complete" is every line's rate-0
    point of its series; a row without a rate (a whole modality absent) is drawn as a dotted level line named
    after its condition, so an absent stream can be read against the rate curves. One legend for all panels,
    below them (never over the data), with the series names as given (see distinct_names).

    Rows carrying `<metric>_ci` ([lo, hi], engine.robustness's rows) get a shaded 95 % interval band around their
    line (error bars on an absent level). The y axis spans a stated baseline to 1 (see y_range): `baselines`
    {metric: (value, label)}, e.g. chance for WA/UA, drawn as a dashed line with its label; without one the axis
    starts at 0. A difference of 0.01 therefore looks like 0.01, not like the whole panel."""
    return _save(missing_figure(rows, metrics, series_key=series_key, title=title, baselines=baselines), Path(path))


def _line(row: dict) -> str:
    """The curve a rated row belongs to: its condition ("frames"), or its kind where each row names its rate
    too (engine.robustness: "frames:0.3" of kind "frames")."""
    return row["kind"] if row.get("kind") and ":" in str(row["condition"]) else row["condition"]


def _ci(row: dict, metric: str):
    """(lo, hi) of a row's interval for `metric`, or None."""
    ci = row.get(f"{metric}_ci")
    return (float(ci[0]), float(ci[1])) if ci and None not in ci[:2] else None


def y_range(values: list[float], baseline: float = 0.0) -> tuple[float, float, bool]:
    """(bottom, top, below): the axis runs from the baseline to 1 (CCC, WA and UA all end at 1), extended down
    to the lowest value when one falls under the baseline (`below` says so: the axis label states it)."""
    finite = [v for v in values if v == v]
    low = min(finite, default=baseline)
    below = low < baseline
    bottom = (np.floor(low * 20) / 20 - 0.05) if below else baseline
    return float(bottom), max(1.0, max(finite, default=1.0) + 0.02), below


def missing_figure(rows: list[dict], metrics: list[str], *, series_key: str = "series", title: str | None = None,
                   baselines: dict | None = None):
    """The Figure of missing_curves (tests read its legend, lines, bands and axis limits)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(max(5.0, 4.6 * len(metrics)), 4.2), layout="constrained")
    axes = [fig.add_subplot(1, len(metrics), k + 1) for k in range(len(metrics))]
    series = list(dict.fromkeys(r[series_key] for r in rows))
    colours = {s: f"C{i % 10}" for i, s in enumerate(series)}
    styles = ["-", "--", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    for ax, metric in zip(axes, metrics):
        lows = []
        for s in series:
            mine = [r for r in rows if r[series_key] == s]
            rated = list(dict.fromkeys(_line(r) for r in mine if r["condition"] != "complete"
                                       and r.get("rate") not in ("", None)))
            start = next((r for r in mine if r["condition"] == "complete"), None)
            for k, cond in enumerate(rated):
                pts = [(float(r["rate"]), float(r[metric]), _ci(r, metric)) for r in mine
                       if r["condition"] != "complete" and r.get("rate") not in ("", None) and _line(r) == cond]
                if start is not None and all(p[0] != 0 for p in pts):
                    pts.append((0.0, float(start[metric]), _ci(start, metric)))
                pts.sort(key=lambda p: p[0])
                colour = colours[s] if len(series) > 1 else f"C{k % 10}"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle=styles[k % len(styles)],
                        color=colour, label=f"{s} {cond}" if len(series) > 1 else cond)
                if all(p[2] for p in pts):  # the 95 % interval of every point: a band
                    ax.fill_between([p[0] for p in pts], [p[2][0] for p in pts], [p[2][1] for p in pts],
                                    color=colour, alpha=0.15, linewidth=0)
                lows += [p[2][0] if p[2] else p[1] for p in pts]
            absent = [r for r in mine if r["condition"] != "complete" and r.get("rate") in ("", None)]
            for k, r in enumerate(absent):
                colour = f"C{(len(rated) + k) % 10}" if len(series) == 1 else colours[s]
                ax.axhline(float(r[metric]), color=colour, linestyle=[":", (0, (1, 4)), (0, (4, 2, 1, 2))][k % 3],
                           linewidth=1.5, label=f"{s} {r['condition']}" if len(series) > 1 else r["condition"])
                if _ci(r, metric):
                    ax.axhspan(*_ci(r, metric), color=colour, alpha=0.08, linewidth=0)
                lows.append(_ci(r, metric)[0] if _ci(r, metric) else float(r[metric]))
        ax.set_xlabel("missing rate")
        base, base_label = (baselines or {}).get(metric, (0.0, ""))
        bottom, top, below = y_range(lows, base)
        ax.set_ylim(bottom - 0.015 * (top - bottom), top)  # a hair below: a dashed baseline stays visible
        if base_label:
            ax.axhline(base, color="grey", linestyle="--", linewidth=1, label=base_label)
        start = f"{base_label + ' ' if base_label and not below else ''}{bottom:g}"
        ax.set_ylabel(f"{metric} (axis from {start}{': below ' + (base_label or 'zero') if below else ''})")
        ax.set_title(metric if not title else f"{title}: {metric}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # every panel draws the same lines in the same order
    entry = 0.055 * max(map(len, labels), default=0) + 0.7  # inches one legend entry takes at fontsize 7
    width = max(fig.get_figwidth(), entry + 0.3)  # wide enough for the longest name, whole
    ncol = max(1, min(len(labels), int(width // entry)))
    fig.set_size_inches(width, fig.get_figheight() + 0.2 * -(-len(labels) // ncol))  # room for the legend rows
    fig.legend(handles, labels, loc="outside lower center", fontsize=7, ncol=ncol)
    return fig


def distinct_names(paths: list) -> list[str]:
    """Short names that tell paths apart: each path's last part, with as many parent folders as it takes to
    make every name unique (a/run and b/run -> a/run, b/run), never cut."""
    parts = [Path(p).parts or (str(p),) for p in paths]
    depth = 1
    while True:
        names = ["/".join(q[-depth:]) for q in parts]
        if len(set(names)) == len(set(map(str, paths))) or depth >= max(map(len, parts), default=1):
            return names
        depth += 1


def bar_chart(labels: list[str], bars: dict[str, list[float]], path: str | Path, *, title: str = "",
              ylabel: str = "", errors: dict[str, list[float]] | None = None, reference: float | None = None,
              reference_label: str = "", intervals: dict[str, list] | None = None, baseline: float = 0.0) -> Path:
    """Grouped bars: one group per label, one bar per key of `bars` (its values aligned with `labels`), the value
    printed above each bar; optional error bars per key: symmetric `errors`, or `intervals` (per key a [lo, hi]
    or None per bar: the 95 % interval, drawn as an asymmetric error bar), and a dashed reference level (e.g.
    chance or the majority class) with its label. The y axis starts at `baseline` (0) and ends at 1 unless a
    value or interval falls outside (see y_range; the axis label then says so)."""
    from matplotlib.figure import Figure
    n, k = len(labels), max(1, len(bars))
    fig = Figure(figsize=(max(6.0, 0.9 * n * k + 2.0), 4.6))
    ax = fig.add_subplot()
    width = 0.8 / k
    x = np.arange(n)
    lows = [v for vs in bars.values() for v in vs]
    for j, (name, values) in enumerate(bars.items()):
        pos = x + (j - (k - 1) / 2) * width
        err = (errors or {}).get(name)
        cis = (intervals or {}).get(name)
        if cis is not None:  # [value - lo, hi - value] per bar; a bar without an interval gets none
            err = np.array([[v - c[0], c[1] - v] if c and v == v else [0.0, 0.0] for v, c in zip(values, cis)]).T
            lows += [c[0] for c in cis if c]
        rects = ax.bar(pos, values, width, label=name, yerr=err, capsize=3 if err is not None else 0)
        ax.bar_label(rects, labels=["" if v != v else f"{v:.2f}" for v in values], fontsize=7, padding=2)  # NaN: no bar
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label or None)
    ax.set_xticks(x, labels, rotation=30 if max(map(len, labels), default=0) > 6 else 0, ha="right")
    bottom, top, below = y_range(lows, baseline)
    ax.set_ylim(bottom, max(top, np.nanmax(lows + [0.0]) * 1.12))
    ax.set_ylabel(ylabel + (f" (axis from {bottom:g})" if below else ""))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def line_panels(series: dict[str, tuple[list[float], list[float]]], path: str | Path, *, title: str = "",
                xlabel: str = "", ylabel: str = "", best: str | None = None) -> Path:
    """One panel, one line per series {name: (x, y)}, e.g. every run's validation loss of one system. `best`
    "min" (or "max") marks each series' best point with a star (the first one, as the loop keeps the first best
    checkpoint)."""
    return _save(line_figure(series, title=title, xlabel=xlabel, ylabel=ylabel, best=best), Path(path))


def line_figure(series: dict[str, tuple[list[float], list[float]]], *, title: str = "", xlabel: str = "",
                ylabel: str = "", best: str | None = None):
    """The Figure of line_panels (tests read its best-point markers)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for k, (name, (x, y)) in enumerate(series.items()):
        colour = f"C{k % 10}"
        ax.plot(x, y, marker="o" if len(x) < 12 else None, markersize=3, color=colour,
                linestyle=["-", "--", "-.", ":"][k // 10 % 4], label=name)
        finite = [(a, b) for a, b in zip(x, y) if b == b]
        if best and finite:
            bx, by = (min if best == "min" else max)(finite, key=lambda p: p[1])
            ax.plot([bx], [by], marker="*", markersize=12, color=colour, markeredgecolor="black", linestyle="none",
                    label="best (kept)" if k == 0 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
    return fig


def training_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """The loop's loss.png: see training_figure."""
    return _save(training_figure(rows, title), Path(path))


# log.csv columns that are bookkeeping, not curves
_NOT_CURVES = ("steps", "best_val")


def curve_groups(rows: list[dict]) -> tuple[str, dict[str, list[str]]]:
    """(x column, {panel title: its columns}) of a training log: each training stage's loss, the validation loss,
    and every other logged number grouped by kind (labelled_kmeans_objective and unlabelled_kmeans_objective
    share the "kmeans objective" panel, NMI has its own), so no two kinds of number share an axis."""
    xkey = "epoch" if "epoch" in rows[0] else "step"
    groups: dict[str, list[str]] = {}
    stages = [k[: -len("_loss")] for k in rows[0] if k.endswith("_loss") and k != "val_loss"]
    for k in rows[0]:
        if k in (xkey, *_NOT_CURVES) or k.endswith("seconds") or k.endswith("empty_clusters"):
            continue
        if k == "val_loss":
            title = "validation loss"
        elif k.endswith("_loss"):
            title = f"{k[: -len('_loss')].replace('_', ' ')} loss (training)"
        else:
            stage = next((s for s in stages if k.startswith(s + "_")), None)
            title = (k[len(stage) + 1:] if stage else k).replace("_", " ")
            title = "NMI (cluster assignments vs previous epoch)" if title == "nmi" else title
        groups.setdefault(title, []).append(k)
    return xkey, groups


def best_round(rows: list[dict], xkey: str):
    """The x of the lowest validation loss (the first, as the loop keeps the first best checkpoint)."""
    vals = [float(r["val_loss"]) for r in rows]
    finite = [v for v in vals if v == v]
    return rows[vals.index(min(finite))][xkey] if finite else None


def training_figure(rows: list[dict], title: str = ""):
    """One panel per kind of curve (curve_groups), each with its own y axis and label, whole-number epoch or
    step ticks, and the best validation round marked on every panel (a dashed line; a star on the validation
    loss, with its value)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    xkey, groups = curve_groups(rows)
    ncols = min(3, len(groups))
    nrows = -(-len(groups) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=9)
    x = [r[xkey] for r in rows]
    best = best_round(rows, xkey)
    for k, (panel, keys) in enumerate(groups.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        for key in keys:
            ax.plot(x, [float(r[key]) for r in rows], marker="o" if len(x) < 30 else None, markersize=3,
                    label=key.replace("_", " "))
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1,
                       label=f"best validation ({xkey} {best})")
        if keys == ["val_loss"] and best is not None:
            value = float(next(r["val_loss"] for r in rows if r[xkey] == best))
            ax.plot([best], [value], marker="*", markersize=12, color="C3", linestyle="none",
                    label=f"best {value:.4f}")
        ax.set_title(panel, fontsize=9)
        ax.set_ylabel(panel.split(" (")[0])
        ax.set_xlabel("epoch" if xkey == "epoch" else "iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def track_plot(rows, attributes: list[str], envelope, path: str | Path, *, title: str = "") -> Path:
    """A file's emotion track (systems.tracks): the waveform's envelope (grey, right axis) under one segment per
    chunk and attribute at the chunk's output, from its start to its end second, and the chunk boundaries as
    faint vertical lines. `rows`: the track CSV's DataFrame; `envelope`: (seconds, peak) or None."""
    return _save(track_figure(rows, attributes, envelope, title=title), Path(path))


def track_figure(rows, attributes: list[str], envelope, *, title: str = ""):
    """The Figure of track_plot (tests read its segments)."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    if envelope is not None and len(envelope[0]):
        env = ax.twinx()
        env.fill_between(envelope[0], 0, envelope[1], color="0.8", step="post", linewidth=0)
        env.set_ylim(0, max(float(np.max(envelope[1])), 1e-6) * 1.05)
        env.set_ylabel("|waveform| (peak per 50 ms)", color="0.5")
        ax.set_zorder(env.get_zorder() + 1)  # the tracks above the envelope
        ax.patch.set_visible(False)
    starts, ends = rows["start_s"].to_numpy(float), rows["end_s"].to_numpy(float)
    ax.vlines(np.unique(np.concatenate([starts, ends])), 0, 1, transform=ax.get_xaxis_transform(), color="0.6",
              linewidth=0.4, alpha=0.5)  # one collection: a 10-minute file has thousands of boundaries
    for k, a in enumerate(attributes):
        v = rows[a].to_numpy(float)
        segs = np.stack([np.stack([starts, v], 1), np.stack([ends, v], 1)], 1)  # (chunks, 2 points, xy)
        ax.add_collection(LineCollection(segs, colors=f"C{k}", linewidths=2, label=a))
    if len(rows):
        values = rows[list(attributes)].to_numpy(float)
        lo, hi = float(np.min(values)), float(np.max(values))
        pad = max(hi - lo, 0.1) * 0.1
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(0, float(max(ends.max(), envelope[0][-1] if envelope is not None and len(envelope[0]) else 0)))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("chunk output (label scale)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig

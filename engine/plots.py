"""The figures every system's scripts (and the comparison report) draw: metric-against-missing-rate curves and
grouped bar charts. Matplotlib's object API on an Agg canvas (no pyplot state), written atomically."""
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
                   title: str | None = None) -> Path:
    """One panel per metric; per (series, condition) a line of the metric against the missing rate. Rows:
    {series_key, "condition", "rate", metric: value}. A row with condition "complete" is every line's rate-0
    point of its series; a row without a rate (a whole modality absent) is drawn as a dotted level line named
    after its condition, so an absent stream can be read against the rate curves. One legend for all panels,
    below them (never over the data), with the series names as given (see distinct_names)."""
    return _save(missing_figure(rows, metrics, series_key=series_key, title=title), Path(path))


def missing_figure(rows: list[dict], metrics: list[str], *, series_key: str = "series", title: str | None = None):
    """The Figure of missing_curves (tests read its legend and lines)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(max(5.0, 4.6 * len(metrics)), 4.2), layout="constrained")
    axes = [fig.add_subplot(1, len(metrics), k + 1) for k in range(len(metrics))]
    series = list(dict.fromkeys(r[series_key] for r in rows))
    colours = {s: f"C{i % 10}" for i, s in enumerate(series)}
    styles = ["-", "--", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    for ax, metric in zip(axes, metrics):
        for s in series:
            mine = [r for r in rows if r[series_key] == s]
            complete = [float(r[metric]) for r in mine if r["condition"] == "complete"]
            rated = list(dict.fromkeys(r["condition"] for r in mine if r["condition"] != "complete"
                                       and r.get("rate") not in ("", None)))
            for k, cond in enumerate(rated):
                pts = [(float(r["rate"]), float(r[metric])) for r in mine if r["condition"] == cond]
                pts = sorted(pts + [(0.0, complete[0])] if complete and all(p[0] != 0 for p in pts) else pts)
                ax.plot(*zip(*pts), marker="o", linestyle=styles[k % len(styles)],
                        color=colours[s] if len(series) > 1 else f"C{k % 10}",
                        label=f"{s} {cond}" if len(series) > 1 else cond)
            absent = [r for r in mine if r["condition"] != "complete" and r.get("rate") in ("", None)]
            for k, r in enumerate(absent):
                ax.axhline(float(r[metric]), color=f"C{(len(rated) + k) % 10}" if len(series) == 1 else colours[s],
                           linestyle=[":", (0, (1, 4)), (0, (4, 2, 1, 2))][k % 3], linewidth=1.5,
                           label=f"{s} {r['condition']}" if len(series) > 1 else r["condition"])
        ax.set_xlabel("missing rate")
        ax.set_ylabel(metric)
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
              reference_label: str = "") -> Path:
    """Grouped bars: one group per label, one bar per key of `bars` (its values aligned with `labels`), the value
    printed above each bar; optional error bars per key and a dashed reference level (e.g. the majority class)."""
    from matplotlib.figure import Figure
    n, k = len(labels), max(1, len(bars))
    fig = Figure(figsize=(max(6.0, 0.9 * n * k + 2.0), 4.6))
    ax = fig.add_subplot()
    width = 0.8 / k
    x = np.arange(n)
    for j, (name, values) in enumerate(bars.items()):
        pos = x + (j - (k - 1) / 2) * width
        err = (errors or {}).get(name)
        rects = ax.bar(pos, values, width, label=name, yerr=err, capsize=3 if err is not None else 0)
        ax.bar_label(rects, labels=["" if v != v else f"{v:.2f}" for v in values], fontsize=7, padding=2)  # NaN: no bar
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label or None)
    ax.set_xticks(x, labels, rotation=30 if max(map(len, labels), default=0) > 6 else 0, ha="right")
    ax.set_ylabel(ylabel)
    top = np.nanmax([v for vs in bars.values() for v in vs] or [1.0])
    ax.set_ylim(0, max(1.0, (top if top == top else 1.0) * 1.12))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def line_panels(series: dict[str, tuple[list[float], list[float]]], path: str | Path, *, title: str = "",
                xlabel: str = "", ylabel: str = "") -> Path:
    """One panel, one line per series {name: (x, y)}, e.g. every run's validation loss of one system."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for k, (name, (x, y)) in enumerate(series.items()):
        ax.plot(x, y, marker="o" if len(x) < 12 else None, markersize=3, color=f"C{k % 10}",
                linestyle=["-", "--", "-.", ":"][k // 10 % 4], label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(series) > 8 else 1)
    return _save(fig, Path(path))


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

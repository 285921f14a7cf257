"""The figures every system's scripts (and the comparison report) draw: metric-against-missing-rate curves and
grouped bar charts. Matplotlib's object API on an Agg canvas (no pyplot state), written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from utils import atomic_path


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def missing_curves(rows: list[dict], metrics: list[str], path: str | Path, *, series_key: str = "series",
                   title: str | None = None) -> Path:
    """One panel per metric; per (series, condition) a line of the metric against the missing rate. Rows:
    {series_key, "condition", "rate", metric: value}. A row with condition "complete" is every line's rate-0
    point of its series; a row without a rate (a whole modality absent) is drawn as a dotted level line named
    after its condition, so an absent stream can be read against the rate curves."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(max(5.0, 4.6 * len(metrics)), 4.2))
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
                           linestyle=":", linewidth=1.5,
                           label=f"{s} {r['condition']}" if len(series) > 1 else r["condition"])
        ax.set_xlabel("missing rate")
        ax.set_ylabel(metric)
        ax.set_title(metric if not title else f"{title}: {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, Path(path))


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

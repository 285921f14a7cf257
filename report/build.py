"""The comparison report from the result files alone: every number comes from a result JSON a test or evaluation
script wrote (with its command, code version, machine, date) or from the run folder its checkpoint names
(run.json, log.csv, resources.json, model.safetensors). Nothing here knows a system's internals."""
from __future__ import annotations

import csv
import datetime
import json
import os
from pathlib import Path

import numpy as np

from report.anchors import ANCHORS
from report.config import Config
from report.recipes import ATTRS, Job, Result
from report.render import Block, Figure, Link, Table, to_html, to_markdown

LABELS = {"chunk-lstm": "chunk LSTM", "deep-emo-cluster": "DeepEmoCluster", "audio-text": "audio-text",
          "mdre": "MDRE family", "speech-text-mocap": "speech + text + mocap"}


def _load(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class Sources:
    """The result files behind the report, each with a short reference [R<k>] shown beside its numbers."""

    def __init__(self, folder: Path):
        self.folder, self.refs, self.docs = folder, {}, {}

    def ref(self, path: Path) -> Link:
        path = Path(path)
        if path not in self.refs:
            self.refs[path] = f"R{len(self.refs) + 1}"
            self.docs[path] = _load(path) or {}
        return Link(self.refs[path], os.path.relpath(path, self.folder))

    def table(self) -> Table:
        rows = []
        for path, r in self.refs.items():
            d = self.docs[path]
            where = d.get("split") or d.get("protocol") or ""
            rows.append([r, Link(path.name, os.path.relpath(path, self.folder)), d.get("corpus"), where,
                         d.get("checkpoint") or ", ".join(d.get("checkpoints", [])) or None, d.get("seed"),
                         d.get("code_version"), d.get("machine"), d.get("date"), d.get("command")])
        return Table(["ref", "result file", "corpus", "split / protocol", "checkpoint", "seed", "code version",
                      "machine", "date", "command that re-creates it"], rows)


def corpus_rows(cfg: Config) -> list[list]:
    """Name, kind, root, version and size of every corpus the config names."""
    from corpora.synth.msp_podcast import SUMMARY
    rows = []
    for c in cfg.corpora.values():
        summary = _load(c.root / SUMMARY)
        if summary:
            version = (f"synthetic demo corpus (generator {str(summary.get('generator'))[:12]}, seed {summary.get('seed')}"
                       + (f", MSP-Podcast {summary['release']} layout" if summary.get("release") else "") + ")")
            size = summary.get("n")
        else:
            version, size = c.root.resolve().name, None
        rows.append([c.name, c.kind, str(c.root), version, size])
    return rows


def run_facts(run: Path) -> dict:
    """Parameters, training time, throughput and peak memory of a run folder (what the loop recorded)."""
    facts = {}
    try:
        from safetensors import safe_open
        with safe_open(str(run / "model.safetensors"), framework="pt") as f:
            facts["params"] = int(sum(np.prod(f.get_slice(k).get_shape()) for k in f.keys()))
    except Exception:  # no checkpoint there (a published .pth.tar, or a failed run): shown as n/a
        pass
    res = _load(run / "resources.json") or {}
    facts.update({k: res.get(k) for k in ("seconds", "items_per_second", "rss_peak_mb", "rss_start_mb", "gpu_peak_mb",
                                          "device", "threads", "resumed_at_step", "steps_run")})
    try:
        with open(run / "log.csv", newline="") as f:
            facts["log"] = list(csv.DictReader(f))
    except OSError:
        facts["log"] = []
    return facts


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _copy(path: Path, figs: Path) -> Path:
    """A figure a script drew (e.g. a confusion matrix) copied beside the report's own, so the Markdown report's
    folder holds everything it shows."""
    import shutil

    from utils import atomic_path
    dst = figs / path.name
    with atomic_path(dst) as tmp:
        shutil.copyfile(path, tmp)
    return dst


def _or_nan(v):
    return float("nan") if v is None else v


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def changed_runs(docs: dict) -> dict[Path, str]:
    """Result files whose scored run is no longer the one they record (systems.common.run_identity: its settings'
    hash and its weights): a model retrained or replaced since, e.g. by another config sharing the data folder.
    Their numbers would sit beside the new run's (a fold table from one model, missing-data rows from another),
    so they are left out."""
    from systems.common import run_identity
    problems = {}
    for path, d in docs.items():
        if not d:
            continue
        recorded = dict(d.get("runs") or {})
        if d.get("run") and d.get("checkpoint"):
            recorded[d["checkpoint"]] = d["run"]
        changed = [run for run, ident in recorded.items() if run_identity(run) != ident]
        if changed:
            problems[path] = (f"{Path(path).name} scored {', '.join(changed)} as it was then; that run has been "
                              "retrained or replaced since, so its numbers are left out (run the benchmark again)")
    return problems


def build(cfg: Config, jobs: list[Job], failures: list[tuple[str, str]]) -> tuple[Path, Path]:
    """Write <report>/report.md, report.html and figures/*.png; return the two report paths."""
    from engine.checkpoint import git_commit
    from engine.plots import bar_chart, line_panels, missing_curves
    from systems.common import machine
    folder = cfg.report
    figs = folder / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    src = Sources(folder)
    results = [r for j in jobs for r in j.results]
    docs = {r.path: _load(r.path) for r in results}
    from report.runner import result_problems
    refused = {**result_problems(cfg, jobs), **changed_runs(docs)}  # never another step's or another run's numbers
    for path in refused:
        docs[path] = None
    missing = [r for r in results if docs[r.path] is None]
    blocks = [Block("h1", f"Benchmark report: {cfg.name}"),
              Block("p", f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by "
                         f"`python benchmark.py --config {_shown(cfg.path)}` from the result files the systems' own scripts "
                         f"wrote; code version {git_commit()}; machine: {machine()}. Every number carries a "
                         "reference [R<k>] to its result file, listed with the command that re-creates it, the "
                         "corpus, split, checkpoint, seed, code version and machine at the end. Rows in italics on a "
                         "yellow background are published figures (reported by the original authors on the real "
                         "corpora, not re-measured here).")]
    if failures or missing:
        rows = [[j, why] for j, why in failures] + [
            [f"{LABELS[r.system]} {r.variant}", f"{r.path}: {refused[r.path]}" if r.path in refused
             else f"no result file {r.path}"] for r in missing]
        blocks += [Block("h2", "Incomplete"), Block("table", table=Table(["job", "what went wrong"], rows))]
    blocks += [Block("h2", "Corpora"),
               Block("table", table=Table(["name", "kind", "root", "version", "utterances"], corpus_rows(cfg)))]

    # ---------------------------------------------------------------- MSP-Podcast-style systems: CCC
    ccc = [r for r in results if r.section == "ccc"]
    if ccc:
        rows, reported, bars, labels = [], set(), {a: [] for a in ATTRS}, []
        for system in dict.fromkeys(r.system for r in ccc):
            for variant in dict.fromkeys(r.variant for r in ccc if r.system == system):
                mine = {r.info["attribute"]: r for r in ccc if r.system == system and r.variant == variant}
                vals = {a: (docs[mine[a].path] or {}).get("value") if a in mine else None for a in ATTRS}
                any_doc = next((docs[r.path] for r in mine.values() if docs[r.path]), {})
                rows.append([LABELS[system], variant, *[vals[a] for a in ATTRS], any_doc.get("utterances"),
                             any_doc.get("split"), [src.ref(r.path) for r in mine.values() if docs[r.path]] or "missing"])
                labels.append(f"{LABELS[system]}\n{variant}")
                for a in ATTRS:
                    bars[a].append(vals[a] if vals[a] is not None else float("nan"))  # not configured: no bar
            for a in ANCHORS.get(system, []):
                if a["metric"] == "CCC":
                    reported.add(len(rows))
                    rows.append([LABELS[system], a["label"], *[a["values"].get(x) for x in ATTRS], None, a["corpus"],
                                 f"reported: {a['source']}"])
        bar_chart(labels, bars, figs / "ccc.png", title="Test CCC per system and variant", ylabel="CCC")
        blocks += [Block("h2", "MSP-Podcast-style systems: CCC"),
                   Block("table", table=Table(["system", "variant", "Act", "Dom", "Val", "utterances", "split", "refs"],
                                              rows, reported)),
                   Block("figures", figures=[Figure(figs / "ccc.png", "Test CCC of every system and variant (ours)")])]

    # ---------------------------------------------------------------- IEMOCAP-style systems: WA / UA
    cls = [r for r in results if r.section == "class"]
    if cls:
        rows, reported, confusions, means = [], set(), [], {}
        for system in dict.fromkeys(r.system for r in cls):
            for r in (x for x in cls if x.system == system):
                d = docs[r.path] or {}
                name = r.info.get("configuration") or r.variant
                rows.append([LABELS[system], name, f"fold {r.info['fold']}" if system == "mdre" else
                             f"Session {r.info['fold']}", d.get("WA"), d.get("UA"), d.get("utterances"),
                             d.get("protocol"), src.ref(r.path) if d else "missing"])
                means.setdefault((system, name), []).append((d.get("WA"), d.get("UA")))
                if d.get("confusion_png") and (r.path.parent / d["confusion_png"]).is_file():
                    confusions.append(Figure(_copy(r.path.parent / d["confusion_png"], figs),
                                             f"{LABELS[system]} {name}, {rows[-1][2]} (test)"))
            for (s, name), v in means.items():
                if s == system and len(v) > 1:
                    rows.append([LABELS[s], name, f"mean of {len(v)}", _mean(x[0] for x in v), _mean(x[1] for x in v),
                                 None, None, None])
            for a in ANCHORS.get(system, []):
                if a["metric"] in ("WA", "WA/UA"):
                    reported.add(len(rows))
                    rows.append([LABELS[system], a["label"], None, a["values"].get("WA"), a["values"].get("UA"), None,
                                 f"{a.get('protocol', '')}, {a['corpus']}", f"reported: {a['source']}"])
        labels = [f"{LABELS[s]}\n{n}" for s, n in means]
        bar_chart(labels, {m: [_or_nan(_mean(x[k] for x in v)) for v in means.values()] for k, m in enumerate(("WA", "UA"))},
                  figs / "wa_ua.png", title="IEMOCAP four classes: WA and UA (mean over the tested folds)",
                  ylabel="accuracy")
        blocks += [Block("h2", "IEMOCAP-style systems: WA and UA"),
                   Block("table", table=Table(["system", "model / configuration", "fold", "WA", "UA", "test utterances",
                                               "protocol", "ref"], rows, reported,
                                              note="WA: accuracy over the test utterances; UA: mean of the per-class "
                                                   "recalls (the classes in the confusion matrices' order).")),
                   Block("figures", figures=[Figure(figs / "wa_ua.png", "WA and UA per system and configuration")]),
                   Block("h3", "Confusion matrices"), Block("figures", figures=confusions, small=True)]

    # ---------------------------------------------------------------- missing data
    blocks += missing_section(results, docs, src, figs, missing_curves)

    # ---------------------------------------------------------------- cross-corpus
    blocks += cross_section(results, docs, src, figs)

    # ---------------------------------------------------------------- cost and training curves
    blocks += cost_section(results, docs, src, figs, line_panels)
    blocks += [Block("h2", "Provenance of every number"), Block("table", table=src.table()),
               Block("details", text=f"The config ({cfg.path})", body=cfg.path.read_text(encoding="utf-8"))]
    md, page = folder / "report.md", folder / "report.html"
    from utils import atomic_write_text
    atomic_write_text(md, to_markdown(blocks, folder))
    atomic_write_text(page, to_html(blocks, f"Benchmark report: {cfg.name}"))
    return md, page


def _rate(v) -> float | None:
    return None if v in ("", None) else float(v)


def missing_section(results: list[Result], docs: dict, src: Sources, figs: Path, missing_curves) -> list[Block]:
    """Per condition one figure, one line per fusion system: CCC (MSP-Podcast) or UA (IEMOCAP) against the rate.
    A whole modality absent has no rate: those go in a table."""
    ccc_rows, ua_rows, absent = [], [], []
    for r in (x for x in results if x.section in ("missing-ccc", "missing-class")):
        d = docs[r.path]
        if not d:
            continue
        ref = src.ref(r.path)
        if r.section == "missing-ccc":  # evaluate_missing.py: one row per checkpoint, condition, rate
            for row in d["rows"]:
                series = f"audio-text {r.info['variants'].get(row['checkpoint'], Path(row['checkpoint']).name)}"
                item = {"series": series, "condition": row["condition"], "rate": _rate(row["rate"]),
                        **{a: row[a] for a in ATTRS}, "mean CCC": float(np.mean([row[a] for a in ATTRS]))}
                (absent if row["condition"].endswith("absent") else ccc_rows).append({**item, "ref": ref})
        else:  # mdre.py (fold, "frames:0.5") or speech_text_mocap.py (session, kind, rate): mean over folds
            by = {}
            for row in d["rows"]:
                kind, rate = (row["condition"].split(":") + [""])[:2] if "rate" not in row else (row["condition"], row["rate"])
                by.setdefault((kind, rate), []).append(row)
            series = f"MDRE {r.variant}" if r.system == "mdre" else f"speech+text+mocap ({r.variant})"
            if r.system == "mdre":  # the complete-data point: the fold table's mean
                folds = next((docs[x.path] for x in results if x.section == "class-folds" and x.system == r.system
                              and x.variant == r.variant
                              and docs[x.path]), None)
                if folds:
                    by[("complete", "0")] = [folds["mean"]]
            for (kind, rate), sel in by.items():
                item = {"series": series, "condition": kind, "rate": _rate(rate) if kind != "complete" else 0.0,
                        "WA": _mean(x["WA"] for x in sel), "UA": _mean(x["UA"] for x in sel), "ref": ref}
                (absent if kind.endswith("absent") else ua_rows).append(item)
    if not (ccc_rows or ua_rows or absent):
        return []
    blocks = [Block("h2", "Missing data"),
              Block("p", "Each fusion system scored on its test split with data removed by the shared simulators "
                         "(features/missing.py): frames (audio frames blanked at random), bursts (Markov packet loss), "
                         "words (words dropped from the text; words+audio also blanks their audio), a whole modality "
                         "absent. Rate 0 is the complete-data score.")]
    figures = []
    for rows, metrics, tag in ((ccc_rows, ["Act", "Dom", "Val"], "ccc"), (ua_rows, ["UA", "WA"], "ua")):
        for cond in dict.fromkeys(r["condition"] for r in rows if r["condition"] != "complete"):
            sel = [dict(r, rate=r["rate"]) for r in rows if r["condition"] in ("complete", cond)]
            series = {r["series"] for r in sel if r["condition"] == cond}
            sel = [r for r in sel if r["series"] in series]
            path = figs / f"missing_{cond.replace('+', '_')}_{tag}.png"
            missing_curves(sel, metrics, path, title=cond)
            figures.append(Figure(path, f"{cond}: {' / '.join(metrics)} against the missing rate, one line per system"))
    blocks.append(Block("figures", figures=figures))
    if absent:
        rows = [[r["series"], r["condition"], r.get("mean CCC"), r.get("UA"), r.get("WA"), r["ref"]] for r in absent]
        blocks += [Block("h3", "A whole modality absent"),
                   Block("table", table=Table(["system", "condition", "mean CCC (Act, Dom, Val)", "UA", "WA", "ref"],
                                              rows))]
    return blocks


def cross_section(results: list[Result], docs: dict, src: Sources, figs: Path) -> list[Block]:
    """Models of one corpus scored on another: MSP-Podcast's dimensional models on IEMOCAP's ratings (CCC), and
    IEMOCAP's four-class models on MSP-Podcast's categories (WA / UA, with confusion matrices); beside each, the
    same model on its own corpus."""
    blocks = []
    cross = [r for r in results if r.section == "cross"]
    if cross:
        rows = []
        ccc = [r for r in results if r.section == "ccc"]
        for key in dict.fromkeys((r.system, r.variant, r.info["tested_on"], r.info["split"]) for r in cross):
            mine = {r.info["attribute"]: r for r in cross if (r.system, r.variant, r.info["tested_on"], r.info["split"]) == key}
            first = next(iter(mine.values()))
            vals = [(docs[mine[a].path] or {}).get("value") if a in mine else None for a in ATTRS]
            home = {r.info["attribute"]: (docs[r.path] or {}).get("value") for r in ccc
                    if r.system == key[0] and r.variant == key[1]}
            rows.append([LABELS[key[0]], key[1], first.info["trained_on"], f"{key[2]} ({key[3]})", *vals,
                         *[home.get(a) for a in ATTRS],
                         [src.ref(r.path) for r in mine.values() if docs[r.path]] or "missing"])
        blocks += [Block("h3", "MSP-Podcast's dimensional models on IEMOCAP: CCC"),
                   Block("table", table=Table(["system", "variant", "trained on", "scored on", "Act", "Dom", "Val",
                                               "Act in-corpus", "Dom in-corpus", "Val in-corpus", "refs"], rows,
                                              note="IEMOCAP's arousal / dominance / valence ratings (1-5) are rescaled "
                                                   "linearly to MSP-Podcast's 1-7 (y7 = 1 + 1.5 (y5 - 1)) before the "
                                                   "CCC; in-corpus: the same model on its own corpus's test split."))]
    cats = [r for r in results if r.section == "cross-class"]
    if cats:
        rows, confusions = [], []
        home = {(r.system, r.variant, r.info.get("configuration"), r.info.get("fold")): docs[r.path] or {}
                for r in results if r.section == "class"}
        for r in cats:
            d = docs[r.path] or {}
            conf = r.info["configuration"] if r.system == "speech-text-mocap" else None
            own = home.get((r.system, r.variant, conf, r.info["fold"]), {})
            fold = f"fold {r.info['fold']}" if r.system == "mdre" else f"Session {r.info['fold']}"
            left = ", ".join(f"{k} {n}" for k, n in (d.get("left_out") or {}).items())
            absent = ", ".join(d.get("absent") or [])
            rows.append([LABELS[r.system], r.info["configuration"], fold, r.info["trained_on"],
                         f"{r.info['tested_on']} ({r.info['split']})", d.get("WA"), d.get("UA"), own.get("WA"),
                         own.get("UA"), d.get("utterances"), left or None, absent or None,
                         src.ref(r.path) if d else "missing"])
            if d.get("confusion_png") and (r.path.parent / d["confusion_png"]).is_file():
                confusions.append(Figure(_copy(r.path.parent / d["confusion_png"], figs),
                                         f"{LABELS[r.system]} {r.info['configuration']}, {fold}, on {r.info['tested_on']}"))
        blocks += [Block("h3", "IEMOCAP's four-class models on MSP-Podcast's categories: WA and UA"),
                   Block("table", table=Table(
                       ["system", "model / configuration", "fold", "trained on", "scored on", "WA", "UA",
                        "WA in-corpus", "UA in-corpus", "utterances", "left out (EmoClass)", "absent modality", "ref"],
                       rows, note="MSP-Podcast's EmoClass A, H, N, S scored as the model's four classes (MDRE: angry, "
                                  "happy, sad, neutral; speech + text + mocap: ang, exc, neu, sad, with H as IEMOCAP's "
                                  "excited); the other classes are left out and counted. MSP-Podcast has no motion capture: a "
                                  "model with mocap has it absent. In-corpus: the same model on its IEMOCAP test fold.")),
                   Block("figures", figures=confusions, small=True)]
    if blocks:
        blocks.insert(0, Block("h2", "Cross-corpus"))
    return blocks


def cost_section(results: list[Result], docs: dict, src: Sources, figs: Path, line_panels) -> list[Block]:
    """Per trained checkpoint: parameters, training time and throughput, peak memory, inference real-time factor;
    and the validation curves, one panel per system."""
    rows, curves, seen = [], {}, set()
    for r in results:
        d = docs[r.path]
        if r.section not in ("ccc", "class", "cross", "cross-class") or not d or not d.get("checkpoint"):
            continue
        run = Path(d["checkpoint"])
        if (run, r.section) in seen:  # one model scored for several attributes (audio-text): one row
            continue
        seen.add((run, r.section))
        several = sum(1 for x in results if x.section == r.section and docs[x.path]
                      and docs[x.path].get("checkpoint") == d["checkpoint"]) > 1 and r.system == "audio-text"
        fold = f"{'Session' if r.system == 'speech-text-mocap' else 'fold'} {r.info.get('fold')}"
        name = (f"{r.variant} {'' if several else r.info.get('attribute', '')}" if r.section not in ("class", "cross-class") else
                f"{r.info.get('configuration') or r.variant} {fold}").strip()
        f = run_facts(run) if run.is_dir() else {}
        if r.section.startswith("cross"):  # its training is in the in-corpus row
            f = {"params": f.get("params")}
        inf = d.get("inference") or {}
        scored = "cross-corpus " + r.info.get("tested_on", "") if r.section.startswith("cross") else "test"
        grew = (f"{f['rss_peak_mb']:,.0f} (+{f['rss_peak_mb'] - f['rss_start_mb']:,.0f})"
                if f.get("rss_peak_mb") is not None and f.get("rss_start_mb") is not None else None)
        rows.append([LABELS[r.system], name, scored, f.get("params"), f.get("seconds"), f.get("items_per_second"),
                     grew, f.get("gpu_peak_mb"), inf.get("ms_per_utterance"), inf.get("rtf"),
                     f.get("device"), src.ref(r.path)])
        if f.get("log") and not r.section.startswith("cross"):
            x = "epoch" if "epoch" in f["log"][0] else "step"
            curves.setdefault(LABELS[r.system], {})[name] = ([float(e[x]) for e in f["log"]],
                                                             [float(e["val_loss"]) for e in f["log"]], x)
    if not rows:
        return []
    figures = []
    for system, series in curves.items():
        path = figs / f"training_{system.replace(' ', '_').replace('+', '')}.png"
        xlabel = next(iter(series.values()))[2]
        line_panels({k: v[:2] for k, v in series.items()}, path, title=f"{system}: validation loss",
                    xlabel="epoch" if xlabel == "epoch" else "iteration", ylabel="validation loss")
        figures.append(Figure(path, f"{system}: validation loss during training (the best one is kept)"))

    def num(v, digits):
        return None if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}")
    table = [[a, b, c, num(p, 0), num(s, 1), num(t, 1), m, num(g, 0), num(ms, 2),
              None if rtf is None else f"{rtf:.2e}", dev, ref]
             for a, b, c, p, s, t, m, g, ms, rtf, dev, ref in rows]
    return [Block("h2", "Training and inference cost"),
            Block("table", table=Table(["system", "run", "scored on", "parameters", "training s", "training utt/s",
                                        "peak RSS MB (+ growth)", "GPU peak MB", "inference ms/utt", "inference RTF", "device",
                                        "ref"], table,
                                       note="Training: wall time, utterances per second and the process's peak resident "
                                            "memory during the training call, with its growth over the call's start "
                                            "(the loop's resources.json; a resumed run counts its last call only; "
                                            "the benchmark runs every step in one process, so the peak includes what "
                                            "earlier steps left allocated and the growth is this training's own). Inference: the model on the stored features "
                                            "of the scored split (feature extraction excluded; see the README's "
                                            "extraction benches), RTF = inference time / audio duration.")),
            Block("h3", "Training curves"), Block("figures", figures=figures)]

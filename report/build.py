"""Builds the comparison report from the result files alone.

Every number comes from a result JSON a test or evaluation
script wrote (with its command, code version, machine, date) or from the run folder its checkpoint names
(run.json, log.csv, resources.json, model.safetensors). Nothing here knows a system's internals."""
from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import numpy as np

import metrics
from report import stats
from report.anchors import ANCHORS
from report.config import Config
from report.recipes import ATTRS, Job, Result
from report.render import Block, Entry, Figure, Link, Table, cell_text, to_html, to_markdown

LABELS = {"chunk-lstm": "chunk LSTM", "deep-emo-cluster": "DeepEmoCluster", "audio-text": "audio-text",
          "mdre": "MDRE family", "speech-text-mocap": "speech + text + mocap"}
CLASS_METRICS = ("WA", "UA", "macro_F1")  # a categorical result's numbers (metrics.score's keys) ...
CLASS_HEADS = ("WA", "UA", "macro-F1")  # ... and their column heads


def _load(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class Sources:
    """The result files behind the report, each with a short reference [R<k>] shown beside its numbers: a link
    to the page's own provenance entry (which holds the file's key numbers, its command, corpus, split,
    checkpoint, seed, code version and machine), so the page stays whole wherever report.html is copied."""

    def __init__(self, folder: Path):
        self.folder, self.refs, self.docs = folder, {}, {}

    def ref(self, path: Path) -> Link:
        path = Path(path)
        if path not in self.refs:
            self.refs[path] = f"R{len(self.refs) + 1}"
            self.docs[path] = _load(path) or {}
        return Link(self.refs[path], f"#{self.refs[path]}")

    def entries(self) -> list[Entry]:
        out = []
        for path, r in self.refs.items():
            d = self.docs[path]
            where = d.get("split") or d.get("protocol") or ""
            out.append(Entry(r, f"{path.name} ({', '.join(x for x in (_corpus_name(d), str(where)) if x)})", [
                ("key numbers", key_numbers(path, d)), ("result file", _shown(path)),
                ("per-utterance CSV", d.get("per_utterance_csv")), ("corpus", d.get("corpus")),
                ("split / protocol", where), ("checkpoint", d.get("checkpoint") or ", ".join(d.get("checkpoints", []))),
                ("seed", d.get("seed")), ("code version", d.get("code_version")), ("machine", d.get("machine")),
                ("date", d.get("date")), ("command that re-creates it", d.get("command"))]))
        return out


def _corpus_name(d: dict) -> str:
    """A result's corpus in a few words: its folder's name, or for a manifest or EmoBox corpus (a file, or a
    folder named after the corpus only) the name its reader gave it."""
    if d.get("corpus_kind") in ("manifest", "emobox") and d.get("corpus_name"):
        return str(d["corpus_name"])
    return Path(d["corpus"]).name if d.get("corpus") else ""


def key_numbers(path: Path, d: dict) -> str | None:
    """The numbers a result file holds, in one line (with intervals), so the page needs no link to the file."""
    if not d:
        return None
    n = f" over {d['utterances']} utterances" if d.get("utterances") else ""
    if d.get("metric") == "CCC" and d.get("value") is not None:
        return f"CCC {_text(stats.scored(path, d, 'CCC'))}{n}"
    if d.get("WA") is not None:
        f1 = f", macro-F1 {_text(stats.scored(path, d, 'macro_F1'))}" if d.get("macro_F1") is not None else ""
        return f"WA {_text(stats.scored(path, d, 'WA'))}, UA {_text(stats.scored(path, d, 'UA'))}{f1}{n}"
    if isinstance(d.get("mean"), dict):
        return f"mean of {len(d.get('folds') or [])} folds: WA {_text(d['mean'].get('WA'))}, UA {_text(d['mean'].get('UA'))}"
    if d.get("rows"):
        return f"{len(d['rows'])} rows ({d.get('protocol') or 'conditions'}; {d.get('metric', '')})"
    return None


def _text(v) -> str:
    return cell_text(v) or "n/a"


def corpus_rows(cfg: Config) -> list[list]:
    """Name, kind, root, version and size of every corpus the config names, from its reader (corpora.read_corpus:
    the corpus's own name, release or splits and the utterances it reads), a demo corpus's marked as such with its
    generator's summary."""
    from corpora.synth.msp_podcast import SUMMARY
    rows = []
    for c in cfg.corpora.values():
        version, size = corpus_version(c.kind, c.root, c.fold)
        summary = _load(c.home / SUMMARY)
        if summary:
            version = (f"synthetic demo corpus (generator {str(summary.get('generator'))[:12]}, seed {summary.get('seed')}"
                       + (f", MSP-Podcast {summary['release']} layout" if summary.get("release") else "") + "); "
                       + version)
            size = size if size is not None else summary.get("n")
        rows.append([c.name, c.kind, str(c.root), version, size])
    return rows


def corpus_version(kind: str, root: Path, fold: int | None = None) -> tuple[str, int | None]:
    """(version, utterances) of a corpus, from its reader (labels only: no audio needed): the corpus's name, and
    MSP-Podcast's release from its layout (labels file spelling and Split_Set names), IEMOCAP's sessions, a
    manifest's or an EmoBox fold's utterances per split; every kind its classes where it declares them."""
    from corpora import read_corpus
    from corpora.records import CorpusError
    root = Path(root)
    folder = (root.parent if kind == "manifest" else root).resolve().name
    try:
        corpus = read_corpus(kind, root, fold=fold, labels_only=True)
    except (CorpusError, OSError) as e:
        return f"{folder} (not readable: {e})", None
    if kind == "msp-podcast":
        from corpora.msp_podcast import find_layout
        _, labels = find_layout(root, require_audio=False)
        with open(labels, newline="", encoding="utf-8") as f:
            splits = {row.get("Split_Set", "").strip().lower() for row in csv.DictReader(f)}
        release = ("v1.6 layout (Test, Validation)" if "test" in splits else
                   "v1.7-v1.8 layout (Validation, Test1/Test2)" if "validation" in splits else
                   "v1.10 or later layout (Development, Test1/Test2" + ("/Test3)" if "test3" in splits else ")"))
        details = [release, f"labels {labels.name}"]
    elif kind == "iemocap":
        details = [f"sessions {', '.join(map(str, sorted({r.session for r in corpus.records})))}"]
    else:
        per_split = {}
        for r in corpus.records:
            per_split[r.split or "no split"] = per_split.get(r.split or "no split", 0) + 1
        details = ([f"manifest {root.name}"] if kind == "manifest" else [])  # EmoBox's name says corpus and fold
        details.append("splits " + ", ".join(f"{k} {n}" for k, n in per_split.items()))
    if corpus.classes and kind != "msp-podcast":  # MSP-Podcast's are always its eight primary emotions
        details.append(f"classes {', '.join(corpus.classes)}")
    return f"{corpus.name}, {'; '.join(details)}; folder {folder}", len(corpus.records)


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
                         "corpora, not re-measured here), each with what it is comparable with; rows in grey italics "
                         "are reference levels (chance, majority class) of the test set above them. "
                         + stats.interval_text(list(docs.values())))]
    if failures or missing:
        rows = [[j, why] for j, why in failures] + [
            [f"{LABELS[r.system]} {r.variant}", f"{r.path}: {refused[r.path]}" if r.path in refused
             else f"no result file {r.path}"] for r in missing]
        blocks += [Block("h2", "Incomplete"), Block("table", table=Table(["job", "what went wrong"], rows))]
    blocks += [Block("h2", "Corpora"),
               Block("table", table=Table(["name", "kind", "root", "version", "utterances"], corpus_rows(cfg)))]

    blocks += ccc_section(results, docs, src, figs, bar_chart)
    blocks += class_section(results, docs, src, figs, bar_chart, cfg)
    blocks += protocol_section(results, docs, src, figs, missing_curves)
    blocks += comparisons_section(results, docs, src)

    # ---------------------------------------------------------------- missing data

    # ---------------------------------------------------------------- cross-corpus
    blocks += cross_section(results, docs, src, figs)

    # ---------------------------------------------------------------- cost and training curves
    blocks += cost_section(results, docs, src, figs, line_panels)
    blocks += [Block("h2", "Provenance of every number"),
               Block("p", "Each reference [R<k>] in the tables: its result file's key numbers (so this page needs no "
                          "file beside it), the file's path where the benchmark wrote it, and the command that "
                          "re-creates it. Click a reference to open it."),
               Block("refs", entries=src.entries()),
               Block("details", text=f"The config ({cfg.path})", body=cfg.path.read_text(encoding="utf-8"))]
    md, page = folder / "report.md", folder / "report.html"
    from utils import atomic_write_text
    atomic_write_text(md, to_markdown(blocks, folder))
    atomic_write_text(page, to_html(blocks, f"Benchmark report: {cfg.name}"))
    return md, page


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
            vals = [stats.scored(mine[a].path, docs[mine[a].path], "CCC") if a in mine else None for a in ATTRS]
            home = {r.info["attribute"]: stats.scored(r.path, docs[r.path], "CCC") for r in ccc
                    if r.system == key[0] and r.variant == key[1]}
            rows.append([LABELS[key[0]], key[1], first.info["trained_on"], f"{key[2]} ({key[3]})", *vals,
                         *[home.get(a) for a in ATTRS],
                         [src.ref(r.path) for r in mine.values() if docs[r.path]] or "missing"])
        blocks += [Block("h3", "Dimensional models on IEMOCAP's ratings: CCC"),
                   Block("table", table=Table(["system", "variant", "trained on", "scored on", "Act", "Dom", "Val",
                                               "Act in-corpus", "Dom in-corpus", "Val in-corpus", "refs"], rows,
                                              note="IEMOCAP's arousal / dominance / valence ratings (1-5) are rescaled "
                                                   "linearly to MSP-Podcast's 1-7 (y7 = 1 + 1.5 (y5 - 1)) before the "
                                                   "CCC; in-corpus: the same model on its own corpus's test split."))]
    cats = [r for r in results if r.section == "cross-class"]
    if cats:
        rows, confusions = [], []
        home = {(r.system, r.variant, r.info.get("configuration"), r.info.get("fold")): (r.path, docs[r.path] or {})
                for r in results if r.section == "class"}
        for r in cats:
            d = docs[r.path] or {}
            conf = r.info["configuration"] if r.system == "speech-text-mocap" else None
            own_path, own = home.get((r.system, r.variant, conf, r.info["fold"]), (r.path, {}))
            fold = _fold_label(r.system, r.info["fold"])
            left = ", ".join(f"{k} {n}" for k, n in (d.get("left_out") or {}).items())
            absent = ", ".join(d.get("absent") or [])
            rows.append([LABELS[r.system], r.info["configuration"], fold, r.info["trained_on"],
                         f"{r.info['tested_on']} ({r.info['split']})",
                         *[stats.scored(r.path, d, m) for m in CLASS_METRICS],
                         *[stats.scored(own_path, own, m) for m in CLASS_METRICS], d.get("utterances"),
                         stats.support_text(d.get("classes"), (stats.class_baselines(r.path, d) or {}).get("support")),
                         left or None, absent or None,
                         src.ref(r.path) if d else "missing"])
            if d.get("confusion_png") and (r.path.parent / d["confusion_png"]).is_file():
                confusions.append(Figure(_copy(r.path.parent / d["confusion_png"], figs),
                                         f"{LABELS[r.system]} {r.info['configuration']}, {fold}, on {r.info['tested_on']}"))
        blocks += [Block("h3", "IEMOCAP's four-class models on MSP-Podcast's categories: WA, UA and macro-F1"),
                   Block("table", table=Table(
                       ["system", "model / configuration", "fold", "trained on", "scored on", *CLASS_HEADS,
                        *[f"{m} in-corpus" for m in CLASS_HEADS], "utterances", "support per class",
                        "left out (EmoClass)",
                        "absent modality", "ref"],
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
        fold = _fold_label(r.system, r.info.get("fold"))
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
                    xlabel="epoch" if xlabel == "epoch" else "iteration", ylabel="validation loss", best="min")
        figures.append(Figure(path, f"{system}: validation loss during training (star: the best one, which is kept)"))

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
                                            "of the scored split (feature extraction excluded; see docs/speed.md's "
                                            "extraction benches), RTF = inference time / audio duration.")),
            Block("h3", "Training curves"), Block("figures", figures=figures)]


def _synthetic(d: dict) -> bool:
    """Whether a result's corpus is a generated demo corpus (its generator's summary is in the root, or beside a
    manifest file)."""
    from corpora.synth.msp_podcast import SUMMARY
    if not d.get("corpus"):
        return False
    root = Path(d["corpus"])
    return (root / SUMMARY).is_file() or (root.parent / SUMMARY).is_file() and d.get("corpus_kind") == "manifest"


def anchor_fits(a: dict, mine: list[dict]) -> bool:
    """Whether a published anchor may stand beside our rows `mine` (their result files): never for another
    architecture's numbers, never beside a synthetic corpus or a corpus of another kind (every anchor was measured
    on MSP-Podcast or IEMOCAP; a file without `corpus_kind` predates other kinds), and only beside the same
    protocol it was measured with (the MDRE abstract's 5 random folds are not a leave-one-session-out fold)."""
    kind = "msp-podcast" if a["corpus"].startswith("MSP-Podcast") else "iemocap"
    if (a.get("never_comparable") or not mine or any(_synthetic(d) for d in mine)
            or any(d.get("corpus_kind", kind) != kind for d in mine)):
        return False
    return not a.get("needs_protocol") or all(d.get("protocol") == a["needs_protocol"] for d in mine)


def published_table(items: list[tuple[str, dict]], keys: list[str]) -> list[Block]:
    """The anchors that no row of ours is comparable with: their own table, saying why, never beside our rows."""
    if not items:
        return []
    rows = [[LABELS[system], a["label"], *[a["values"].get(m) for m in keys],
             ", ".join(x for x in (a.get("protocol"), a["corpus"]) if x), a["source"], a.get("comparable")]
            for system, a in items]
    return [Block("h3", "Published figures (not comparable with the rows above)"),
            Block("table", table=Table(["system", "what", *keys, "protocol, corpus", "source", "comparable with"],
                                       rows, set(range(len(rows))),
                                       note="Reported by the original authors, not re-measured here. They are kept "
                                            "apart because no row above was measured like them (see the last "
                                            "column); a full-scale run that matches that column may be read "
                                            "against them."))]


def _seed_label(variant: str, seed, several: bool) -> str:
    return f"{variant}, seed {seed}" if several else variant


def ccc_section(results: list[Result], docs: dict, src: Sources, figs: Path, bar_chart) -> list[Block]:
    """The dimensional systems' test CCC per attribute with its interval; a variant run over several training
    seeds has one row per seed and a mean ± sd row; published anchors beside only what they fit."""
    ccc = [r for r in results if r.section == "ccc"]
    if not ccc:
        return []
    rows, reported, bars, cis, labels, published = [], set(), {a: [] for a in ATTRS}, {a: [] for a in ATTRS}, [], []
    for system in dict.fromkeys(r.system for r in ccc):
        ours = [docs[r.path] for r in ccc if r.system == system and docs[r.path]]
        for variant in dict.fromkeys(r.variant for r in ccc if r.system == system):
            mine = [r for r in ccc if r.system == system and r.variant == variant]
            seeds = list(dict.fromkeys(r.info.get("seed") for r in mine))
            per_seed = []
            for seed in seeds:
                by = {r.info["attribute"]: r for r in mine if r.info.get("seed") == seed}
                cells = {a: stats.scored(by[a].path, docs[by[a].path], "CCC") if a in by else None for a in ATTRS}
                per_seed.append(cells)
                any_doc = next((docs[r.path] for r in by.values() if docs[r.path]), {})
                rows.append([LABELS[system], _seed_label(variant, seed, len(seeds) > 1), *[cells[a] for a in ATTRS],
                             any_doc.get("utterances"), next((r.info.get("corpus") for r in by.values()), None),
                             any_doc.get("split"), [src.ref(r.path) for r in by.values() if docs[r.path]] or "missing"])
            if len(seeds) > 1:
                rows.append([LABELS[system], f"{variant}: mean ± sd over {len(seeds)} training seeds",
                             *[stats.mean_sd([c[a] for c in per_seed]) for a in ATTRS], None, None, None, None])
            labels.append(f"{LABELS[system]}\n{variant}" + (f"\n(mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
            for a in ATTRS:
                vals = [c[a] for c in per_seed if c[a] is not None]
                bars[a].append(float(np.mean([getattr(v, "value", v) for v in vals])) if vals else float("nan"))
                one = vals[0] if len(vals) == 1 else None
                cis[a].append((one.lo, one.hi) if getattr(one, "lo", None) is not None else None)
        for a in ANCHORS.get(system, []):
            if a["metric"] != "CCC":
                continue
            if not anchor_fits(a, ours):
                published.append((system, a))
                continue
            reported.add(len(rows))
            rows.append([LABELS[system], f"{a['label']} ({a['comparable']})", *[a["values"].get(x) for x in ATTRS],
                         None, a["corpus"], None, f"reported: {a['source']}"])
    bar_chart(labels, bars, figs / "ccc.png", title="Test CCC per system and variant (whiskers: 95 % interval; 0 = a constant prediction)",
              ylabel="CCC", intervals=cis)
    return [Block("h2", "Dimensional systems: CCC"),
            Block("table", table=Table(["system", "variant", "Act", "Dom", "Val", "test utterances", "corpus", "split",
                                        "refs"],
                                       rows, reported,
                                       note="Baseline: a constant prediction (e.g. the training mean) scores CCC 0; "
                                            "every row of one corpus and split is scored on the same test "
                                            "utterances (count beside it). Mean ± sd: across training seeds, each "
                                            "seed's own interval in its row.")),
            Block("figures", figures=[Figure(figs / "ccc.png", "Test CCC of every system and variant (ours), with "
                                                               "the 95 % interval of each bar")]),
            *published_table(published, list(ATTRS))]


def _fold_label(system: str, fold) -> str:
    """IEMOCAP's fold (MDRE) or held-out session (speech + text + mocap); a corpus with named splits has one
    fold, which the recipes name after its test split (a string)."""
    if isinstance(fold, str):
        return fold
    return f"fold {fold}" if system == "mdre" else f"Session {fold}"


def _baseline_row(system: str, fold, path: Path, d: dict) -> list | None:
    """The chance / majority-class levels and per-class support of a test set, as a grey row."""
    b = stats.class_baselines(path, d)
    if not b:
        return None
    wa = f"chance {b['chance_WA']:.4f}, majority {b['majority_WA']:.4f}"
    ua = f"chance {b['chance_UA']:.4f}, majority {b['majority_UA']:.4f}"
    return [LABELS[system], "baselines: chance, majority class", _fold_label(system, fold), wa, ua, None,
            sum(b.get("support") or []) or d.get("utterances"), stats.support_text(d.get("classes"), b.get("support")),
            None, None, None, None]


CLASS_NOTE = ("WA: accuracy over the test utterances; UA: mean of the per-class recalls (the classes in the confusion "
              "matrices' order); macro-F1: mean of the per-class F1 scores (each class counts equally, so a rare class "
              "weighs as much as a frequent one). Grey rows: the test set's chance level (1 / classes) and "
              "majority-class level (always the most frequent class: WA = its share, UA = 1 / classes present), with "
              "its support per class. Modalities present: where the result file records which test utterances really "
              "had each modality (a configuration whose modality is missing for some utterances is scored partly on a "
              "constant guess).")


def class_section(results: list[Result], docs: dict, src: Sources, figs: Path, bar_chart, cfg: Config) -> list[Block]:
    """The categorical systems' WA, UA and macro-F1 per fold (or test split) with intervals; training seeds' rows
    and their mean ± sd; a mean over folds only within one model; per test set the chance and majority baselines
    and class support; per configuration the share of test utterances that had each modality where the result
    file records it."""
    cls = [r for r in results if r.section == "class"]
    if not cls:
        return []
    rows, reported, baseline, confusions, means, published = [], set(), set(), [], {}, []
    corpus_names = {str(c.root): c.name for c in cfg.corpora.values()}
    for system in dict.fromkeys(r.system for r in cls):
        ours = [docs[r.path] for r in cls if r.system == system and docs[r.path]]
        mine = [r for r in cls if r.system == system]
        names = list(dict.fromkeys(r.info.get("configuration") or r.variant for r in mine))
        tests = {}
        for name in names:
            sel = [r for r in mine if (r.info.get("configuration") or r.variant) == name]
            seeds = list(dict.fromkeys(r.info.get("seed") for r in sel))
            fold_means = []
            for fold in dict.fromkeys(r.info["fold"] for r in sel):
                per_seed = []
                for r in (x for x in sel if x.info["fold"] == fold):
                    d = docs[r.path] or {}
                    cells = tuple(stats.scored(r.path, d, m) for m in CLASS_METRICS)
                    per_seed.append(cells)
                    rows.append([LABELS[system], _seed_label(name, r.info.get("seed"), len(seeds) > 1),
                                 _fold_label(system, fold), *cells, d.get("utterances"), None,
                                 stats.present_text(d.get("present")), d.get("protocol"), r.info.get("corpus"),
                                 src.ref(r.path) if d else "missing"])
                    if d:
                        tests.setdefault((fold, d.get("utterances")), (r.path, d))
                    if d.get("confusion_png") and (r.path.parent / d["confusion_png"]).is_file():
                        confusions.append(Figure(_copy(r.path.parent / d["confusion_png"], figs),
                                                 f"{LABELS[system]} {name}, {rows[-1][2]} (test)"))
                if len(seeds) > 1:
                    rows.append([LABELS[system], f"{name}: mean ± sd over {len(per_seed)} training seeds",
                                 _fold_label(system, fold), *[stats.mean_sd([x[k] for x in per_seed])
                                                              for k in range(len(CLASS_METRICS))],
                                 None, None, None, None, None, None])
                fold_means.append(tuple(_mean(getattr(x[k], "value", x[k]) for x in per_seed)
                                        for k in range(len(CLASS_METRICS))))
            corpus = sel[0].info.get("corpus") or corpus_names.get(str((docs[sel[0].path] or {}).get("corpus")), "")
            means[(system, name, corpus)] = fold_means
            if len(fold_means) > 1:  # within this one model's folds only
                rows.append([LABELS[system], name, f"mean of its {len(fold_means)} folds",
                             *[_mean(x[k] for x in fold_means) for k in range(len(CLASS_METRICS))],
                             None, None, None, None, None, None])
        for fold, (path, d) in tests.items():
            row = _baseline_row(system, fold[0], path, d)
            if row:
                baseline.add(len(rows))
                rows.append(row)
        for a in ANCHORS.get(system, []):
            if a["metric"] not in ("WA", "WA/UA"):
                continue
            if not anchor_fits(a, ours):
                published.append((system, a))
                continue
            reported.add(len(rows))
            rows.append([LABELS[system], f"{a['label']} ({a['comparable']})", None,
                         *[a["values"].get(m) for m in CLASS_METRICS], None, None, None,
                         f"{a.get('protocol', '')}, {a['corpus']}", None, f"reported: {a['source']}"])
    _wa_ua_chart(cls, docs, means, figs, bar_chart)
    header = ["system", "model / configuration", "fold", *CLASS_HEADS, "test utterances", "support per class",
              "modalities present (share of test utterances)", "protocol", "corpus", "ref"]
    present = header.index("modalities present (share of test utterances)")
    if not any(row[present] for row in rows):  # no result file records it: no empty column
        header, rows = header[:present] + header[present + 1:], [row[:present] + row[present + 1:] for row in rows]
    return [Block("h2", "Categorical systems: WA, UA and macro-F1"),
            Block("table", table=Table(header, rows, reported,
                                       note=CLASS_NOTE, baseline=baseline)),
            Block("figures", figures=[Figure(figs / "wa_ua.png", "WA, UA and macro-F1 per system and configuration, "
                                                                 "labelled by corpus")]),
            *published_table(published, ["WA", "UA"]),
            Block("h3", "Confusion matrices"), Block("figures", figures=confusions, small=True)]


def _p_text(p) -> str | None:
    if p is None or p != p:
        return None
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _diff_text(t: dict) -> str:
    ci = t.get("diff_ci") or [None, None]
    inner = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if None not in ci[:2] else ""
    return f"{t['diff']:+.4f}{inner}"


def _test_row(what: str, where: str, metric: str, a, b, t: dict, refs) -> list:
    effect = t.get("effect")
    return [what, where, metric, a, b, _diff_text(t), _p_text(t.get("p")),
            None if effect is None or effect != effect else f"{effect:+.2f}", t.get("utterances"), refs]


def _model_pairs(results: list[Result], docs: dict, src: Sources) -> list[list]:
    """System vs system and variant vs variant, each pair scored on the same test set (the same corpus and split
    or fold: matched on the utterance ids of their per-utterance CSVs), one paired test per metric."""
    groups: dict = {}
    for r in results:
        d = docs[r.path]
        if r.section not in ("ccc", "class") or not d:
            continue
        s = stats.per_utterance(r.path, d)
        if s is None:
            continue
        name = f"{r.info.get('configuration') or r.variant}"
        name += f" (seed {r.info['seed']})" if r.info.get("seed") is not None else ""
        if r.section == "ccc":
            key = ("ccc", d.get("corpus"), d.get("split"), r.info.get("attribute"))
        else:
            key = ("class", d.get("corpus"), r.info.get("fold"), tuple(d.get("classes") or ()))
        groups.setdefault(key, []).append((name, (r.system, r.variant, r.info.get("configuration")), r, s))
    rows = []
    for key, items in groups.items():
        name = _corpus_name(docs[items[0][2].path])
        where = (f"{name} {key[2]}, {key[3]}" if key[0] == "ccc" else f"{name} {_fold_label(items[0][2].system, key[2])}")
        for i, (na, ida, ra, sa) in enumerate(items):
            for nb, idb, rb, sb in items[i + 1:]:
                if ida == idb:  # the same variant under another training seed: the seeds' spread, not a comparison
                    continue
                for metric in (("CCC",) if key[0] == "ccc" else CLASS_METRICS):
                    t = stats.paired(metric, sa, sb)
                    what = (f"{LABELS[ra.system]}: {na} vs {nb}" if ra.system == rb.system else
                            f"{LABELS[ra.system]} {na} vs {LABELS[rb.system]} {nb}")
                    if t:
                        rows.append(_test_row(what, where, metric, stats.scored(ra.path, docs[ra.path], metric),
                                              stats.scored(rb.path, docs[rb.path], metric), t,
                                              [src.ref(ra.path), src.ref(rb.path)]))
    return rows


def _condition_pairs(results: list[Result], docs: dict, src: Sources) -> list[list]:
    """Complete data vs each missing-data condition of a protocol result (engine.robustness rows): the row's own
    paired test (K_diff, K_diff_ci, K_p, K_effect), else one recomputed from the long per-utterance CSV
    (simulation draws averaged as metrics.paired_test does)."""
    rows = []
    for r in (x for x in results if x.section == "protocol" and docs[x.path]):
        d = docs[r.path]
        keys = _protocol_keys(d)
        long = _long_scores(r.path, d, keys)
        for row in d.get("rows") or []:
            if row.get("condition") == "complete":
                continue
            complete = next((x for x in d["rows"] if x.get("series") == row.get("series")
                             and x.get("condition") == "complete"), None)
            for k in keys:
                t = None
                if row.get(f"{k}_p") is not None:  # engine.robustness ran metrics.paired_test already
                    t = {"diff": row[f"{k}_diff"], "diff_ci": row.get(f"{k}_diff_ci"), "p": row[f"{k}_p"],
                         "effect": row.get(f"{k}_effect"), "utterances": row.get("utterances")}
                elif long:  # an older file: the test from its long per-utterance CSV
                    t = _paired_conditions(long, row, k, d)
                if t is None and row.get(f"{k}_diff") is not None:
                    t = {"diff": row[f"{k}_diff"], "p": row.get(f"{k}_p"), "utterances": row.get("utterances")}
                if t is not None:
                    rows.append(_test_row(f"{row.get('series') or LABELS.get(r.system, r.system)}: complete vs "
                                          f"{row['condition']}", f"{d.get('protocol', '')} protocol", k,
                                          stats.row_scored(complete or {}, k), stats.row_scored(row, k), t,
                                          src.ref(r.path)))
    return rows


def _protocol_keys(d: dict) -> list[str]:
    """The metric keys of a protocol result's rows: WA, UA for classes; the attributes for CCC."""
    if d.get("metric") == "WA/UA":
        return ["WA", "UA"]
    first = (d.get("rows") or [{}])[0]
    return [a for a in (d.get("attributes") or ATTRS) if a in first]


def _long_scores(path: Path, d: dict, keys: list[str]) -> dict | None:
    """{(series, condition): {sim_seed: {utt: (label per key, prediction per key)}}} of a long per-utterance CSV
    (engine.robustness: series, condition, sim_seed, utterance, present, label/prediction or label_<A>/...)."""
    name = d.get("per_utterance_csv")
    if not name:
        return None
    try:
        with open(Path(path).parent / name, newline="") as f:
            reader = csv.DictReader(f)
            classes = {c: k for k, c in enumerate(d.get("classes") or [])}
            out: dict = {}
            for row in reader:
                cols = (["label"], ["prediction"]) if d.get("metric") == "WA/UA" else (
                    [f"label_{k}" for k in keys], [f"prediction_{k}" for k in keys])
                conv = (lambda v: classes[v]) if classes else float
                labels, preds = [conv(row[c]) for c in cols[0]], [conv(row[c]) for c in cols[1]]
                cell = out.setdefault((row.get("series", ""), row["condition"]), {})
                cell.setdefault(row.get("sim_seed", "0"), {})[row["utterance"]] = (labels, preds)
            return out
    except (OSError, KeyError, ValueError):
        return None


def _paired_conditions(long: dict, row: dict, key: str, d: dict) -> dict | None:
    """metrics.paired_test of a condition (its simulation draws as (S, n)) against the complete condition."""
    series = row.get("series", "") or ""
    base, cond = long.get((series, "complete")), long.get((series, row["condition"]))
    if not base or not cond:
        return None
    first = next(iter(base.values()))
    utts = [u for u in first if all(u in draw for draw in cond.values())]
    if len(utts) < 2:
        return None
    col = 0 if d.get("metric") == "WA/UA" else _protocol_keys(d).index(key)
    labels = np.array([first[u][0][col] for u in utts])
    a = np.array([first[u][1][col] for u in utts])
    b = np.array([[draw[u][1][col] for u in utts] for draw in cond.values()])
    metric = key if key in ("WA", "UA") else "CCC"
    t = metrics.paired_test(metric, labels, a, b if len(b) > 1 else b[0],
                      n_classes=len(d.get("classes") or []) or None)
    return {**t, "utterances": len(utts)}


def comparisons_section(results: list[Result], docs: dict, src: Sources) -> list[Block]:
    """One compact table of paired comparisons on the same test utterances: system vs system, variant vs
    variant, and complete data vs each missing-data condition, with the difference, its interval, the p-value
    and the effect size (metrics.paired_test)."""
    rows = _model_pairs(results, docs, src) + _condition_pairs(results, docs, src)
    if not rows:
        return []
    return [Block("h2", "Comparisons"),
            Block("table", table=Table(["comparison (A vs B)", "test set", "metric", "A", "B", "B − A [95 % CI]", "p",
                                        "effect size", "shared utterances", "refs"], rows,
                                       note="Paired bootstrap over the test utterances both scored (matched by "
                                            "utterance id; 1,000 resamples): p is two-sided, the effect size is "
                                            "the difference divided by its bootstrap standard deviation. Only "
                                            "models scored on the same corpus and split (or fold) are compared; "
                                            "the missing-data conditions against the same model's complete data. "
                                            "Many comparisons: read a single p under 0.05 with care."))]


PROTOCOL_TITLES = {"fixed": "Fixed-condition protocol (every subset of modalities present)",
                   "random": "Random-missing protocol (each modality missing with probability p, one kept)",
                   "sweep": "Rate sweeps", "conditions": "Missing-data conditions"}


def _with_sd(cell, sd) -> object:
    """A protocol cell with its spread over simulation seeds appended (text) when there is one."""
    if sd is None or cell is None:
        return cell
    return f"{cell_text(cell)} (sd {float(sd):.4f} over draws)"


def _summaries(d: dict) -> list[tuple[str | None, dict]]:
    """(series, summary) pairs of a protocol file: engine.robustness writes one flat summary for one series and
    {"by_series": {series: summary}} for several (e.g. one model per fold)."""
    summary = d.get("summary") or {}
    if isinstance(summary.get("by_series"), dict):
        return [(name, v) for name, v in summary["by_series"].items() if isinstance(v, dict)]
    return [(None, summary)]


def _protocol_table(d: dict, keys: list[str], ref) -> Table:
    rows, baseline = [], set()
    extras = [k for k in ("realised_wer", "dropped") if any(k in r for r in d.get("rows") or [])]
    for row in d.get("rows") or []:
        rate = row.get("rate")
        rows.append([row.get("series"), row.get("condition"), f"{float(rate):g}" if rate not in (None, "") else None,
                     *[_with_sd(stats.row_scored(row, k), row.get(f"{k}_sd")) for k in keys],
                     stats.present_text(row.get("present")), row.get("utterances"),
                     *[row.get(k) for k in extras], ref])
    for series, summary in _summaries(d):
        for label, key in (("mean of the per-condition scores", "mean"),
                           ("pooled over all (condition, utterance) pairs: MMIN's \"average\"", "pooled")):
            if isinstance(summary.get(key), dict):
                baseline.add(len(rows))
                rows.append([series, label, None, *[stats.row_scored(summary[key], k) for k in keys], None, None,
                             *[None] * len(extras), ref])
    return Table(["series", "condition", "rate", *keys, "modalities present (share of test utterances)", "utterances",
                  *[e.replace("_", " ") for e in extras], "ref"], rows, baseline=baseline,
                 note="Each cell: the score over the test utterances with its 95 % interval; where a condition is "
                      "drawn at random, the mean over the simulation seeds and their spread (sd over draws). "
                      "Modalities present: the share of test utterances that really had each modality under "
                      "the condition.")


def _summary_table(d: dict, keys: list[str]) -> Table | None:
    """random / sweep: per kind (and metric) the normalised area under the degradation curve and the rate at
    which the score falls by 10 % (metrics.robustness_summary)."""
    rows = []
    for series, summary in _summaries(d):
        for kind, v in summary.items():
            if not isinstance(v, dict):
                continue
            per = {None: v} if "auc_norm" in v else {k: v[k] for k in keys if isinstance(v.get(k), dict)}
            for k, sm in per.items():
                rows.append([series, kind, k or d.get("metric"), sm.get("auc_norm"), sm.get("rate_at_10pct_drop")
                             if sm.get("rate_at_10pct_drop") is not None else "never (within the rates)"])
    if not rows:
        return None
    head = ["kind", "metric", "normalised AUC", "rate at a 10 % drop"]
    if any(r[0] is not None for r in rows):
        head = ["series", *head]  # one model per fold: each its own curve
    else:
        rows = [r[1:] for r in rows]
    return Table(head, rows,
                 note="Normalised AUC: the area under the score-against-rate curve over [0, highest rate] divided by "
                      "the complete score times the highest rate (1 = no loss at any rate); rate at a 10 % drop: "
                      "where the curve first falls to 0.9 x the complete score (linear interpolation).")


def _curve_rows(d: dict) -> list[dict]:
    """A protocol's rows as missing_curves reads them: one line per kind against the rate, complete at 0."""
    out = []
    for row in d.get("rows") or []:
        kind = "complete" if row.get("condition") == "complete" else (row.get("kind") or row["condition"].split(":")[0])
        out.append({**row, "series": row.get("series") or "", "condition": kind})
    return out


def protocol_section(results: list[Result], docs: dict, src: Sources, figs: Path, missing_curves) -> list[Block]:
    """Per system and protocol (engine.robustness's result files): the table with intervals, the mean and pooled
    rows labelled (fixed), the degradation curves with interval bands and the robustness summary (random,
    sweep)."""
    blocks = []
    for r in (x for x in results if x.section == "protocol" and docs[x.path]):
        d, ref = docs[r.path], src.ref(r.path)
        protocol = r.info.get("protocol") or d.get("protocol") or "conditions"
        keys = _protocol_keys(d)
        who = " ".join(str(x) for x in (LABELS.get(r.system, r.system), r.variant, r.info.get("configuration"),
                                        r.info.get("fold") and _fold_label(r.system, r.info["fold"]),
                                        r.info.get("seed") is not None and f"seed {r.info['seed']}") if x)
        blocks += [Block("h3", f"{who}: {PROTOCOL_TITLES.get(protocol, protocol)}"),
                   Block("table", table=_protocol_table(d, keys, ref))]
        summary = _summary_table(d, keys) if protocol in ("random", "sweep") else None
        if summary:
            blocks.append(Block("table", table=summary))
        rated = [row for row in d.get("rows") or [] if row.get("rate") not in (None, "")]
        if protocol in ("random", "sweep", "conditions") and rated:
            chance = 1 / len(d["classes"]) if d.get("classes") else None
            base = ({k: (chance, "chance") for k in keys} if chance and keys == ["WA", "UA"] else
                    {k: (0.0, "zero (constant prediction)") for k in keys})
            path = figs / f"protocol_{r.path.stem}.png"
            missing_curves(_curve_rows(d), keys, path, title=protocol, baselines=base)
            blocks.append(Block("figures", figures=[Figure(path, f"{who}, {protocol}: score against the rate, shaded "
                                                                 "95 % intervals; the axis starts at the dashed "
                                                                 "baseline")]))
    if blocks:
        blocks.insert(0, Block("h2", "Missing-data protocols"))
    return blocks


def _wa_ua_chart(cls: list[Result], docs: dict, means: dict, figs: Path, bar_chart) -> None:
    """Bars of WA, UA and macro-F1 per model (the mean over its tested folds), labelled with its corpus, the
    chance level dashed where every model has the same number of classes, and where one fold of one seed was
    tested its 95 % interval as the whisker."""
    labels = [f"{LABELS[s]}\n{n}" + (f"\n({c})" if c else "") for s, n, c in means]
    cis = {head: [None] * len(means) for head in CLASS_HEADS}
    for k, key in enumerate(means):  # one tested fold, one seed: its interval as the whisker
        sel = [r for r in cls if (r.system, r.info.get("configuration") or r.variant) == key[:2] and docs[r.path]]
        if len(sel) == 1:
            for m, head in zip(CLASS_METRICS, CLASS_HEADS):
                v = stats.scored(sel[0].path, docs[sel[0].path], m)
                cis[head][k] = (v.lo, v.hi) if getattr(v, "lo", None) is not None else None
    counts = {len(docs[r.path]["classes"]) for r in cls if docs[r.path] and docs[r.path].get("classes")}
    k = counts.pop() if len(counts) == 1 else None  # models of different class sets: no one chance level
    bar_chart(labels, {head: [_or_nan(_mean(x[j] for x in v)) for v in means.values()]
                       for j, head in enumerate(CLASS_HEADS)},
              figs / "wa_ua.png", title=f"{f'{k} classes' if k else 'Classes'}: WA, UA and macro-F1 of each model on its "
                                        "corpus's test fold(s)\n(bar: mean over the tested folds; whisker: 95 % "
                                        "interval of a single fold)",
              ylabel="score", intervals=cis, reference=1 / k if k else None,
              reference_label=f"chance ({k} classes)" if k else "")

#!/usr/bin/env python
"""`make demo`: the benchmark of configs/demo.yaml (all five systems on the synthetic demo corpora, each step a
real CLI call; see benchmark.py), two demo-only steps, a check of the documented demo tables (docs/results.md),
and the report.

    demo corpora -> feat_opensmile.py -> norm_para.py -> training.py (Act, Dom, Val) -> testing.py   (System 1)
    -> feat_mel.py -> norm_para.py -> main.py (DeepEmoCluster, Act) -> online_testing.py            (System 2)
    -> feat_wav2vec2.py (tiny local model) + feat_roberta.py (MiniLM) -> norm_para.py
    -> main.py (audio-text, multiscale and fixed chunks) -> evaluate_missing.py                     (System 3)
    -> mdre.py ARE, TRE, MDREA on the demo IEMOCAP corpus, Session 5 held out                       (System 4)
    -> speech_text_mocap.py speech, text, mocap, all three on a 600-utterance demo IEMOCAP           (System 5)
       (Systems 3-5: the fixed-condition and random-missing protocols, rates 0.3 and 0.6, two simulation draws)
    -> testing.py / online_testing.py on the demo IEMOCAP corpus (cross-corpus)
    -> cross_corpus.py: MDREA and the three-way model on the demo MSP-Podcast's Test1 categories (the reverse)
    -> prediction_process.py on a folder of demo WAVs: published v1.6 models, then the audio-text model
    -> prediction_process.py --track: a 31 s excerpt's per-second track (demo_data/track/tracks/excerpt.png)
    -> export_onnx.py on the shipped v1.6 models, prediction_process.py --onnx: the same scores on onnxruntime
    -> demo_data/report/report.md + report.html

The systems run two at once (--jobs 2: one process each, one core each; the stores they share are made first,
each system's output goes to demo_data/report/logs/<system>.log). Every step skips what is already done (done-markers, the stores, finished training runs), so a second
`make demo` only re-checks and re-writes the report. Settings are the published ones except for the short
trainings (configs/demo.yaml): the chunk LSTM 100 iterations of batch 16 at lr 1e-3, DeepEmoCluster 3 epochs of
batch 8 with K = 5 and a 40-sentence unlabelled pool, the audio-text system 40 iterations of batch 16 at lr 5e-4
per chunking strategy on wav2vec2 frames of a tiny randomly initialised local model (no model hub here; it
still hears pitch and timing, not loudness, as its input is standardised) and token features of the offline
pretrained MiniLM; the MDRE family 100 iterations of batch 32; the speech + text + mocap ablation 300
iterations of batch 16 per configuration with d_model 32 on the tiny wav2vec2 and a tiny random BERT built
locally (minutes on 2 CPU cores instead of hours on a GPU).
"""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from corpora.synth.msp_podcast import SUMMARY
from engine.cli import entry, int_at_least, parser
from systems.speech_text_mocap import THREE_WAY

ATTRS = ("Act", "Dom", "Val")


ROOT = Path(__file__).parent


def figure_page(section: str, readme: Path | None = None) -> Path | None:
    """The page whose paragraph starting with **<section>** holds that demo table: `readme` when given, else
    README.md or the first of docs/*.md that has it (docs/results.md today), so the check follows a table to
    wherever it moves; None when no page has it."""
    pages = [readme] if readme else [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return next((p for p in pages if f"**{section}**" in p.read_text(encoding="utf-8")), None)


def _page_name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def readme_mismatches(section: str, table: dict[str, str], readme: Path | None = None):
    """'name: documented value -> this value' for every row of the `| name ... | value |` table that follows the
    paragraph starting with **<section>** in its page (figure_page) and differs from `table` (a stale figure is a
    bug). A row's name is its first cells joined with ' | ' and its value the rest so joined, split where the name
    is one of `table`'s keys (the last cell alone, for a two-part key and a one-column value)."""
    page = figure_page(section, readme)
    if page is None:
        return [f"no **{section}** table in {readme.name if readme else 'README.md or docs/*.md'}"]
    text = page.read_text(encoding="utf-8")
    start = text.find(f"**{section}**")
    shown = {}
    for line in text[start:].splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        split = next((i for i in range(len(cells) - 1, 0, -1) if " | ".join(cells[:i]) in table), None)
        if line.startswith("|") and split is not None:
            shown[" | ".join(cells[:split])] = " | ".join(cells[split:])
        elif shown and not line.startswith("|"):
            break
    return [f"{k}: {shown.get(k, 'missing')} -> {v}" for k, v in table.items() if shown.get(k) != v]


def readme_check(tables: dict[str, dict[str, str]], *, allow_stale: bool = False, readme: Path | None = None) -> int:
    """Compare this run's demo tables with the documented ones (docs/results.md; figure_page): 0 when they match;
    otherwise list every differing figure on stderr and return 3 (a stale figure is a bug, so `make demo` fails
    and it cannot be missed before landing), or 0 with `allow_stale` (--no-readme-check: e.g. a CPU whose float
    kernels give other last digits)."""
    stale = [m for section, table in tables.items() for m in readme_mismatches(section, table, readme)]
    pages = ", ".join(sorted({_page_name(p) for p in (figure_page(s, readme) for s in tables) if p})) or "README.md"
    if not stale:
        print(f"{pages}: the demo figures match this run")
        return 0
    print(f"\nERROR: the demo figures of {pages} differ from this run (documented -> now):\n  " + "\n  ".join(stale) +
          "\nThey are measured with the default config on the machine README.md names, where a re-run is "
          f"byte-identical: either the code changed the numbers (re-measure and update {pages}) or this CPU's float "
          "kernels differ (docs/speed.md 'Determinism'; `python demo.py --no-readme-check` accepts that).",
          file=sys.stderr)
    return 0 if allow_stale else 3


def shown(d: dict, key: str) -> str:
    """A figure of a result file or table row as the demo tables show it: '0.7677 [0.70, 0.82]' (metrics.Scored's
    text) when the file carries its interval (`<key>_ci`), else '0.7677'."""
    from metrics import stored
    return stored(d, key).text()


PROTOCOL_LABELS = {"complete": "both (fusion)", "present:audio": "audio only (text absent)",
                   "present:text": "text only (audio absent)"}


def protocol_rows(results: list, keys, label=str) -> dict[str, str]:
    """{'<series> | <condition>': '<K> | <K> ...'} of protocol result files (contract rows: series, condition,
    K, K_ci), with intervals; a series named after a checkpoint (the file's "series": {name: checkpoint}) is
    shown as the variant that trained it (the Result's info "variants": {checkpoint: variant}). The complete row
    once, from the fixed protocol; `label` renames a condition."""
    out = {}
    for r in results:
        doc = json.loads(r.path.read_text())
        for row in doc["rows"]:
            series = _series(r, doc, row)
            if r.info["protocol"] != "fixed" and row["condition"] == "complete":
                continue
            name = " | ".join(str(x) for x in (series, label(row["condition"])) if x not in (None, ""))
            out[name] = " | ".join(shown(row, k) for k in keys)
    return out


def _series(r, doc: dict, row: dict):
    """A row's series, a checkpoint's name shown as the variant that trained it."""
    checkpoints = doc.get("series") if isinstance(doc.get("series"), dict) else {}
    return r.info.get("variants", {}).get(str(checkpoints.get(row.get("series"))), row.get("series"))


def resolved(results: list, keys) -> list[str]:
    """'<series> <condition> <K> -0.12 (p 0.003)' for every protocol row whose paired bootstrap test against the
    complete data (K_diff, K_p) rejects at 5 %: the differences this demo's test set can resolve; the others
    it cannot tell from noise."""
    out = []
    for r in results:
        doc = json.loads(r.path.read_text())
        for row in doc["rows"]:
            out += [f"{_series(r, doc, row)} {row['condition']} {k} {row[f'{k}_diff']:+.2f} (p {row[f'{k}_p']:.3f})"
                    for k in keys if row.get(f"{k}_p") is not None and row[f"{k}_p"] < 0.05]
    return out


def _say_resolved(results: list, keys) -> None:
    lines = resolved(results, keys)
    print("   resolved against the complete data (paired bootstrap over test utterances, p < 0.05): "
          + ("; ".join(lines) if lines else "none; every other difference is within this test set's noise"))


def _ci_cell(text) -> list | None:
    """An interval as a table CSV writes it ('[0.5, 0.7]' or '0.5;0.7'), or None."""
    import re
    nums = re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text or "")
    return [float(nums[0]), float(nums[1])] if len(nums) == 2 else None


def _at_label(condition: str) -> str:
    if condition.startswith("random-missing:"):
        return f"random-missing {float(condition.split(':')[1]):.0%}"
    return PROTOCOL_LABELS.get(condition, condition)


def audio_text_missing(jobs) -> dict[str, str]:
    """The documented audio-text missing-data table from evaluate_missing.py's protocol files (fixed: fusion, audio
    only, text only; random-missing per rate; the conditions list's rows), test1 CCC with intervals."""
    results = [r for j in jobs for r in j.results if r.system == "audio-text" and r.section == "protocol"]
    table = protocol_rows(results, ATTRS, label=_at_label)
    print("\nAudio-text under missing data (test1 CCC [95 % bootstrap interval]; one model per chunking strategy):\n"
          "| chunking | data | Act | Dom | Val |\n|---|---|---|---|---|")
    for name, cells in table.items():
        print(f"| {name} | {cells} |")
    _say_resolved(results, ATTRS)
    return table


def iemocap_tables(jobs, res: dict) -> tuple[dict, dict]:
    """The documented MDRE and speech + text + mocap tables (Session 5 held out), WA and UA with intervals: each
    model, then each protocol's conditions (MDREA, the three-way model)."""
    import csv
    print("\nMDRE family on the demo IEMOCAP corpus, Session 5 held out:\n| model | WA | UA |\n|---|---|---|")
    iemocap_table = {}
    for (system, variant, section, _, fold), path in res.items():
        if system == "mdre" and section == "class" and fold == 5:
            d = json.loads(path.read_text())
            iemocap_table[variant] = f"{shown(d, 'WA')} | {shown(d, 'UA')}"
            print(f"| {variant} | {iemocap_table[variant]} |")
    mdre_protocols = [r for j in jobs for r in j.results if r.system == "mdre" and r.section == "protocol"]
    for r in mdre_protocols:  # one series per fold: named by its fold only when the file holds several
        rows = protocol_rows([r], ("WA", "UA"))
        folds = {name.split(" | ")[0] for name in rows if " | " in name}
        for name, cells in rows.items():
            *series, cond = name.split(" | ")
            if cond != "complete":  # the complete data is the model's own row above
                key = ", ".join([r.variant, *(series if len(folds) > 1 else []), cond])
                iemocap_table[key] = cells
                print(f"| {key} | {cells} |")
    _say_resolved(mdre_protocols, ("WA", "UA"))
    print("\nSpeech + text + mocap on the 600-utterance demo IEMOCAP corpus, Session 5 held out:\n"
          "| configuration | WA | UA |\n|---|---|---|")
    stm_table = {}
    (abl,) = [p for (s, _, sec, _, _), p in res.items() if sec == "ablation"]
    with open(abl.with_suffix(".csv"), newline="") as f:
        for r in csv.DictReader(f):
            stm_table[r["configuration"]] = " | ".join(
                shown({k: float(r[f"session5_{k}"]), f"{k}_ci": _ci_cell(r.get(f"session5_{k}_ci"))}, k)
                for k in ("WA", "UA"))
            print(f"| {r['configuration']} | {stm_table[r['configuration']]} |")
    stm_protocols = [r for j in jobs for r in j.results if r.system == "speech-text-mocap" and r.section == "protocol"
                     and r.info.get("configuration") == THREE_WAY and r.info.get("fold") == 5]
    for name, cells in protocol_rows(stm_protocols, ("WA", "UA")).items():
        if not name.endswith("complete"):
            stm_table[f"{THREE_WAY}, {name.split(' | ')[-1]}"] = cells
            print(f"| {THREE_WAY}, {name.split(' | ')[-1]} | {cells} |")
    _say_resolved(stm_protocols, ("WA", "UA"))
    return iemocap_table, stm_table


def readme_tables(cfg, jobs) -> dict[str, dict[str, str]]:
    """The documented demo tables (docs/results.md), from this run's result files:
    {section: {row name: 'value | ...'}}."""
    import json

    from utils import ccc
    res = {(r.system, r.variant, r.section, r.info.get("attribute"), r.info.get("fold")): r.path
           for j in jobs for r in j.results}
    table = {}
    print("\nDemo test split (test1) CCC:\n| system | attribute | test CCC |\n|---|---|---|")
    for (system, variant, section, attr, _), path in res.items():
        if section == "ccc" and system in ("chunk-lstm", "deep-emo-cluster"):
            rows = np.genfromtxt(path.with_suffix(".csv"), delimiter=",", skip_header=1, usecols=(1, 2), ndmin=2)
            name = f"{'chunk LSTM' if system == 'chunk-lstm' else 'DeepEmoCluster'} | {attr}"
            doc = {**json.loads(path.read_text()), "value": ccc(rows[:, 0], rows[:, 1])}
            table[name] = shown(doc, "value")
            print(f"| {name} | {table[name]} |")
    for (system, variant, section, attr, _), path in res.items():
        if section == "ccc" and system == "audio-text":
            table[f"audio-text {variant} | {attr}"] = shown(json.loads(path.read_text()), "value")
            print(f"| audio-text {variant} | {attr} | {table[f'audio-text {variant} | {attr}']} |")
    miss_table = audio_text_missing(jobs)
    iemocap_table, stm_table = iemocap_tables(jobs, res)
    print("\nCross-corpus: the MSP-Podcast models scored on the 200-utterance demo IEMOCAP corpus (all sessions, "
          "labels 1-5 rescaled to 1-7):\n| model | attribute | CCC |\n|---|---|---|")
    cross_table = {}
    for (system, variant, section, attr, _), path in res.items():
        if section == "cross":
            name = f"{'chunk LSTM' if system == 'chunk-lstm' else 'DeepEmoCluster'} {variant} | {attr}"
            cross_table[name] = shown(json.loads(path.read_text()), "value")
            print(f"| {name} | {cross_table[name]} |")
    print("\nCross-corpus, the reverse: the IEMOCAP models scored on the demo MSP-Podcast corpus's Test1 categories "
          "(A, H, N, S; mocap absent):\n| model | WA | UA |\n|---|---|---|")
    reverse_table = {}
    for j in jobs:
        for r in j.results:
            if r.section == "cross-class":
                d = json.loads(r.path.read_text())
                name = f"{'MDRE' if r.system == 'mdre' else 'speech + text + mocap'} {r.info['configuration']}"
                reverse_table[name] = f"{shown(d, 'WA')} | {shown(d, 'UA')}"
                print(f"| {name} | {reverse_table[name]} |")
    return {"Demo results": table, "Demo missing data": miss_table, "Demo IEMOCAP": iemocap_table,
            "Demo speech text mocap": stm_table, "Demo cross-corpus": cross_table,
            "Demo reverse cross-corpus": reverse_table}


def track_and_onnx(cfg, jobs, wav_dir: Path, quiet: list[str]) -> bool:
    """Two demo-only steps: the per-second track of a 31 s excerpt (four demo test WAVs end to end: three windows
    of 11 s, one after the other) with the demo's chunk LSTMs, and an ONNX round trip: the shipped v1.6 models exported, the WAV folder
    scored on onnxruntime and compared with the PyTorch scores of pred_result.csv."""
    import pandas as pd

    import export_onnx
    import prediction_process
    from features.audio import load_audio, write_wav
    from systems.predict import shipped_models
    msp, out = cfg.corpora["msp-podcast"].root, cfg.data / "track"
    excerpt = out / "wavs" / "excerpt.wav"
    if not excerpt.is_file():
        parts = sorted((msp / "Audios").glob("MSP-PODCAST_001[0-6]_0001.wav"))[:4]
        write_wav(excerpt, np.concatenate([load_audio(p) for p in parts]))
    lstm = [str(r) for j in jobs for s in j.steps if s.key.startswith("chunk-lstm/") and s.script == "training"
            for r in s.runs]
    print(f"\n== per-second track of {excerpt} with {', '.join(lstm)}")
    ok = prediction_process.main(["--wav-dir", str(excerpt.parent), "--models", *lstm, "--track",
                                  "--hop", "11", "--out", str(out / "pred_result.csv"), *quiet]) == 0
    print("\n== ONNX round trip: the shipped v1.6 models exported, the same WAVs scored on onnxruntime")
    onnx_files = []
    for folder in shipped_models():
        onnx_files.append(str(cfg.data / "onnx" / f"{folder.name}.onnx"))
        if not Path(onnx_files[-1]).is_file():
            ok &= export_onnx.main(["--checkpoint", str(folder), "--out", onnx_files[-1]]) == 0
    onnx_csv = cfg.data / "pred_result_onnx.csv"
    ok &= prediction_process.main(["--wav-dir", str(wav_dir), "--onnx", *onnx_files, "--out", str(onnx_csv),
                                   *quiet]) == 0
    if ok:
        scores = ["Aro-Score", "Dom-Score", "Val-Score"]
        by_torch, by_onnx = (pd.read_csv(p, keep_default_na=False) for p in (cfg.data / "pred_result.csv", onnx_csv))
        gap = float(np.abs(by_onnx[scores].to_numpy() - by_torch[scores].to_numpy()).max())
        same = by_onnx["File_Name"].tolist() == by_torch["File_Name"].tolist() and gap <= 1.5e-4
        print(f"onnxruntime vs PyTorch on {len(by_onnx)} files: largest difference {gap:.1e} (scores written to 4 "
              f"decimals){'' if same else ' - MORE THAN ROUNDING'}")
        ok &= same
    return ok


@entry
def main(argv=None) -> int:
    import benchmark
    import prediction_process
    from corpora.synth import generator_version
    ap = parser(__doc__)
    ap.add_argument("--config", type=Path, default=benchmark.DEFAULT_CONFIG,
                    help="benchmark config (the documented demo figures are measured with the default one)")
    ap.add_argument("--jobs", type=int_at_least(1), default=min(2, os.cpu_count() or 1),
                    help="systems run at once, one process each (default: 2, or 1 on a one-core machine)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    ap.add_argument("--no-readme-check", action="store_true",
                    help="exit 0 even when the demo figures of docs/results.md differ from this run (default: exit 3)")
    args = ap.parse_args(argv)
    t_all = time.time()
    cfg, jobs = benchmark.load(args.config, None)
    progress = not args.no_progress and sys.stderr.isatty() and args.jobs == 1
    # a demo corpus from other generator code is written anew by its step: what was made from the old one goes
    old = [c.root for c in cfg.corpora.values() if c.synthetic and (c.root / SUMMARY).is_file()
           and json.loads((c.root / SUMMARY).read_text()).get("generator") != generator_version()]
    if old:
        print(f"demo corpora from other generator code ({', '.join(map(str, old))}): models, results and report go")
        for path in (cfg.models, cfg.results, cfg.report, cfg.data / "wavs_to_predict"):
            shutil.rmtree(path, ignore_errors=True)
    from report.runner import Runner
    runner = Runner(cfg, progress=progress)
    ok = runner.run(jobs, args.jobs)

    # demo-only steps: a user's folder of WAVs (a few test-split ones) through prediction_process.py, with the
    # published v1.6 models, then with the audio-text model (transcripts beside half of them)
    msp = cfg.corpora["msp-podcast"].root
    wav_dir = cfg.data / "wavs_to_predict"
    quiet = [] if progress else ["--no-progress"]
    if not wav_dir.is_dir():
        wav_dir.mkdir(parents=True)
        for p in sorted((msp / "Audios").glob("MSP-PODCAST_001[0-6]_000[1-2].wav")):
            shutil.copy(p, wav_dir / p.name)
    print(f"\n== predict {wav_dir} with the published v1.6 models")
    ok &= prediction_process.main(["--wav-dir", str(wav_dir), "--out", str(cfg.data / "pred_result.csv"), *quiet]) == 0
    for p in sorted(wav_dir.glob("*.wav"))[::2]:
        shutil.copy(msp / "Transcripts" / f"{p.stem}.txt", p.with_suffix(".txt"))
    at_run = next(str(run) for j in jobs for s in j.steps if s.key.startswith("audio-text/") and s.script == "main"
                  for run in s.runs)
    print(f"\n== predict {wav_dir} with the audio-text model {at_run}")
    ok &= prediction_process.main(["--system", "audio-text", "--models", at_run, "--wav-dir", str(wav_dir),
                                   "--out", str(cfg.data / "pred_result_audio_text.csv"), *quiet]) == 0
    ok &= track_and_onnx(cfg, jobs, wav_dir, quiet)
    if not ok:
        benchmark.run(cfg, jobs, report_only=True)
        raise SystemExit("demo failed: " + "; ".join(f"{j}: {w}" for j, w in runner.failures))

    tables = readme_tables(cfg, jobs)
    _, page = benchmark.run(cfg, jobs, report_only=True)
    print(f"\npredictions for {wav_dir}: {cfg.data / 'pred_result.csv'}")
    print(f"demo finished in {time.time() - t_all:.0f} s; open {page} in a browser")
    if args.config.resolve() != benchmark.DEFAULT_CONFIG.resolve():
        return 0  # the documented figures are measured with the default config only
    return readme_check(tables, allow_stale=args.no_readme_check)


if __name__ == "__main__":
    sys.exit(main())

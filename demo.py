#!/usr/bin/env python
"""`make demo`: the benchmark of configs/demo.yaml (all five systems on the synthetic demo corpora, each step a
real CLI call; see benchmark.py), two demo-only steps, a check of the README's demo tables, and the report.

    demo corpora -> feat_opensmile.py -> norm_para.py -> training.py (Act, Dom, Val) -> testing.py   (System 1)
    -> feat_mel.py -> norm_para.py -> main.py (DeepEmoCluster, Act) -> online_testing.py            (System 2)
    -> feat_wav2vec2.py (tiny local model) + feat_roberta.py (MiniLM) -> norm_para.py
    -> main.py (audio-text, multiscale and fixed chunks) -> evaluate_missing.py                     (System 3)
    -> mdre.py ARE, TRE, MDREA on the demo IEMOCAP corpus, Session 5 held out                       (System 4)
    -> speech_text_mocap.py speech, text, mocap, all three on a 600-utterance demo IEMOCAP           (System 5)
    -> testing.py / online_testing.py on the demo IEMOCAP corpus (cross-corpus)
    -> cross_corpus.py: MDREA and the three-way model on the demo MSP-Podcast's Test1 categories (the reverse)
    -> prediction_process.py on a folder of demo WAVs: published v1.6 models, then the audio-text model
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


def readme_mismatches(section: str, table: dict[str, str], readme: Path = Path(__file__).with_name("README.md")):
    """'name: README value -> this value' for every row of the `| name ... | value |` table that follows the
    paragraph starting with **<section>** in README.md and differs from `table` (a stale figure is a bug). A
    row's name is its first cells joined with ' | ' and its value the rest so joined, split where the name is
    one of `table`'s keys (the last cell alone, for a two-part key and a one-column value)."""
    text = readme.read_text(encoding="utf-8")
    start = text.find(f"**{section}**")
    if start < 0:
        return [f"no **{section}** table in {readme.name}"]
    shown = {}
    for line in text[start:].splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        split = next((i for i in range(len(cells) - 1, 0, -1) if " | ".join(cells[:i]) in table), None)
        if line.startswith("|") and split is not None:
            shown[" | ".join(cells[:split])] = " | ".join(cells[split:])
        elif shown and not line.startswith("|"):
            break
    return [f"{k}: {shown.get(k, 'missing')} -> {v}" for k, v in table.items() if shown.get(k) != v]


def readme_check(tables: dict[str, dict[str, str]], *, allow_stale: bool = False,
                 readme: Path = Path(__file__).with_name("README.md")) -> int:
    """Compare this run's demo tables with README.md's: 0 when they match; otherwise list every differing figure
    on stderr and return 3 (a stale figure is a bug, so `make demo` fails and it cannot be missed before landing),
    or 0 with `allow_stale` (--no-readme-check: e.g. a CPU whose float kernels give other last digits)."""
    stale = [m for section, table in tables.items() for m in readme_mismatches(section, table, readme)]
    if not stale:
        print("README.md's demo figures match this run")
        return 0
    print("\nERROR: README.md's demo figures differ from this run (README -> now):\n  " + "\n  ".join(stale) +
          "\nThey are measured with the default config on the machine README.md names, where a re-run is "
          "byte-identical: either the code changed the numbers (re-measure and update README.md) or this CPU's float "
          "kernels differ (README 'Determinism'; `python demo.py --no-readme-check` accepts that).", file=sys.stderr)
    return 0 if allow_stale else 3


def missing_data_summary(rows: list[dict], runs: dict) -> dict[str, str]:
    """Print the audio-text missing-data table of the demo (fusion against each modality alone, and how each
    chunking strategy degrades at the highest rate) and return it as {'chunking | data': 'Act | Dom | Val'}."""
    top = max(float(r["rate"]) for r in rows if r["rate"])
    labels = {("complete", "0.0"): "both (fusion)", ("text-absent", ""): "audio only (text absent)",
              ("audio-absent", ""): "text only (audio absent)"}
    labels.update({(c, str(top)): f"{c} {top:.0%} missing" for c in ("frames", "bursts", "words", "words+audio")})
    print("\nAudio-text under missing data (test1 CCC; one model per chunking strategy, the other stream blanked "
          "to its Train mean for the single-modality rows):")
    print("| chunking | data | Act | Dom | Val |\n|---|---|---|---|---|")
    out = {}
    for chunking, run in runs.items():
        by = {(r["condition"], r["rate"]): r for r in rows if r["checkpoint"] == str(run)}
        for key, label in labels.items():
            if key in by:
                out[f"{chunking} | {label}"] = " | ".join(by[key][a] for a in ATTRS)
                print(f"| {chunking} | {label} | {out[f'{chunking} | {label}']} |")
        full = {a: float(by[("complete", "0.0")][a]) for a in ATTRS}
        alone = {a: max(float(by[(k, "")][a]) for k in ("text-absent", "audio-absent")) for a in ATTRS}
        beats = [a for a in ATTRS if full[a] > alone[a]]
        drops = {c: np.mean([full[a] - float(by[(c, str(top))][a]) for a in ATTRS])
                 for c in ("frames", "bursts", "words", "words+audio") if (c, str(top)) in by}
        print(f"   {chunking}: fusion beats the better single modality for {', '.join(beats) or 'no attribute'}; "
              f"mean CCC drop at {top:.0%} missing: " + ", ".join(f"{c} {d:+.3f}" for c, d in drops.items()))
    return out


def readme_tables(cfg, jobs) -> dict[str, dict[str, str]]:
    """The README's demo tables, from this run's result files: {section: {row name: 'value | ...'}}."""
    import csv
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
            table[name] = f"{ccc(rows[:, 0], rows[:, 1]):.4f}"
            print(f"| {name} | {table[name]} |")
    (miss,) = [p for (s, _, sec, _, _), p in res.items() if sec == "missing-ccc"]
    miss_doc = json.loads(miss.read_text())
    miss_rows = [{**r, "rate": "" if r["rate"] == "" else str(float(r["rate"])),
                  **{a: f"{r[a]:.4f}" for a in ATTRS}} for r in miss_doc["rows"]]
    names = {ck: name for j in jobs for r in j.results if r.section == "missing-ccc"
             for ck, name in r.info["variants"].items()}
    at_runs = {names[ck]: ck for ck in miss_doc["checkpoints"]}
    for chunking, run in at_runs.items():
        (r,) = [r for r in miss_rows if r["checkpoint"] == run and r["condition"] == "complete"]
        for emo in ATTRS:
            table[f"audio-text {chunking} | {emo}"] = r[emo]
            print(f"| audio-text {chunking} | {emo} | {r[emo]} |")
    miss_table = missing_data_summary(miss_rows, at_runs)
    print("\nMDRE family on the demo IEMOCAP corpus, Session 5 held out:\n| model | WA | UA |\n|---|---|---|")
    iemocap_table = {}
    for (system, variant, section, _, fold), path in res.items():
        if system == "mdre" and section == "class" and fold == 5:
            d = json.loads(path.read_text())
            iemocap_table[variant] = f"{d['WA']:.4f} | {d['UA']:.4f}"
            print(f"| {variant} | {iemocap_table[variant]} |")
    print("\nSpeech + text + mocap on the 600-utterance demo IEMOCAP corpus, Session 5 held out:\n"
          "| configuration | WA | UA |\n|---|---|---|")
    stm_table = {}
    (abl,) = [p for (s, _, sec, _, _), p in res.items() if sec == "ablation"]
    with open(abl.with_suffix(".csv"), newline="") as f:
        for r in csv.DictReader(f):
            stm_table[r["configuration"]] = f"{float(r['session5_WA']):.4f} | {float(r['session5_UA']):.4f}"
            print(f"| {r['configuration']} | {stm_table[r['configuration']]} |")
    (stm_miss,) = [p for (s, _, sec, _, _), p in res.items() if sec == "missing-class" and s == "speech-text-mocap"]
    with open(stm_miss.with_suffix(".csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r["condition"] != "complete":
                key = f"{THREE_WAY}, {r['condition']}{':' + r['rate'] if r['rate'] else ''}"
                stm_table[key] = f"{float(r['WA']):.4f} | {float(r['UA']):.4f}"
                print(f"| {key} | {stm_table[key]} |")
    print("\nCross-corpus: the MSP-Podcast models scored on the 200-utterance demo IEMOCAP corpus (all sessions, "
          "labels 1-5 rescaled to 1-7):\n| model | attribute | CCC |\n|---|---|---|")
    cross_table = {}
    for (system, variant, section, attr, _), path in res.items():
        if section == "cross":
            name = f"{'chunk LSTM' if system == 'chunk-lstm' else 'DeepEmoCluster'} {variant} | {attr}"
            cross_table[name] = f"{json.loads(path.read_text())['value']:.4f}"
            print(f"| {name} | {cross_table[name]} |")
    print("\nCross-corpus, the reverse: the IEMOCAP models scored on the demo MSP-Podcast corpus's Test1 categories "
          "(A, H, N, S; mocap absent):\n| model | WA | UA |\n|---|---|---|")
    reverse_table = {}
    for j in jobs:
        for r in j.results:
            if r.section == "cross-class":
                d = json.loads(r.path.read_text())
                name = f"{'MDRE' if r.system == 'mdre' else 'speech + text + mocap'} {r.info['configuration']}"
                reverse_table[name] = f"{d['WA']:.4f} | {d['UA']:.4f}"
                print(f"| {name} | {reverse_table[name]} |")
    return {"Demo results": table, "Demo missing data": miss_table, "Demo IEMOCAP": iemocap_table,
            "Demo speech text mocap": stm_table, "Demo cross-corpus": cross_table,
            "Demo reverse cross-corpus": reverse_table}


@entry
def main(argv=None) -> int:
    import benchmark
    import prediction_process
    from corpora.synth import generator_version
    ap = parser(__doc__)
    ap.add_argument("--config", type=Path, default=benchmark.DEFAULT_CONFIG,
                    help="benchmark config (the README's demo figures are measured with the default one)")
    ap.add_argument("--jobs", type=int_at_least(1), default=min(2, os.cpu_count() or 1),
                    help="systems run at once, one process each (default: 2, or 1 on a one-core machine)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    ap.add_argument("--no-readme-check", action="store_true",
                    help="exit 0 even when README.md's demo figures differ from this run (default: exit 3)")
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
    at_run = next(ck for j in jobs for r in j.results if r.section == "missing-ccc" for ck in r.info["variants"])
    print(f"\n== predict {wav_dir} with the audio-text model {at_run}")
    ok &= prediction_process.main(["--system", "audio-text", "--models", at_run, "--wav-dir", str(wav_dir),
                                   "--out", str(cfg.data / "pred_result_audio_text.csv"), *quiet]) == 0
    if not ok:
        benchmark.run(cfg, jobs, report_only=True)
        raise SystemExit("demo failed: " + "; ".join(f"{j}: {w}" for j, w in runner.failures))

    tables = readme_tables(cfg, jobs)
    _, page = benchmark.run(cfg, jobs, report_only=True)
    print(f"\npredictions for {wav_dir}: {cfg.data / 'pred_result.csv'}")
    print(f"demo finished in {time.time() - t_all:.0f} s; open {page} in a browser")
    if args.config.resolve() != benchmark.DEFAULT_CONFIG.resolve():
        return 0  # the README's figures are measured with the default config only
    return readme_check(tables, allow_stale=args.no_readme_check)


if __name__ == "__main__":
    sys.exit(main())

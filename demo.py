#!/usr/bin/env python
"""`make demo`: every system built so far on the synthetic MSP-Podcast corpus, each step a real CLI call.

    demo corpus -> feat_opensmile.py -> norm_para.py -> training.py (Act, Dom, Val) -> testing.py
    -> prediction_process.py on a folder of demo WAVs                                     (System 1)
    -> feat_mel.py -> norm_para.py -> main.py (DeepEmoCluster, Act) -> online_testing.py   (System 2)
    -> feat_wav2vec2.py (tiny local model) + feat_roberta.py (MiniLM) -> norm_para.py
    -> main.py (audio-text, multiscale and fixed chunks) -> evaluate_missing.py
    -> prediction_process.py --system audio-text                                          (System 3)
    -> mdre.py ARE, TRE, MDREA on the demo IEMOCAP corpus, Session 5 held out              (System 4)
    -> speech_text_mocap.py speech, text, mocap, all three on a 600-utterance demo IEMOCAP  (System 5)

Every step skips what is already done (the corpus, the stores, finished training runs), so a second
`make demo` only re-scores. Settings are the published ones except for the demo's short training: the chunk
LSTM 100 iterations of batch 16 at lr 1e-3, DeepEmoCluster 3 epochs of batch 8 with K = 5 and a 40-sentence
unlabelled pool, the audio-text system 40 iterations of batch 16 at lr 5e-4 per chunking strategy, on
wav2vec2 frames of a tiny randomly initialised local model (no model hub here; it still hears pitch and
timing, not loudness, as its input is standardised) and token features of the offline pretrained MiniLM;
the speech + text + mocap ablation 300 iterations of batch 16 per configuration with d_model 32 on the tiny
wav2vec2 and a tiny random BERT built locally (minutes on 2 CPU cores instead of hours on a GPU).
"""
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import evaluate_missing
import feat_mel
import feat_opensmile
import feat_roberta
import feat_wav2vec2
import main as main_script
import make_demo_corpus
import mdre as mdre_script
import norm_para
import online_testing
import prediction_process
import speech_text_mocap as stm_script
import testing
import training
from corpora.synth.msp_podcast import SUMMARY
from engine.cli import entry, int_at_least, parser, positive_float
from systems.speech_text_mocap import THREE_WAY

STM_CONFIGS = "speech,text,mocap,speech+text+mocap"

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


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--data", type=Path, default=Path("demo_data"), help="where corpora, features and models go")
    ap.add_argument("--n", type=int_at_least(20), default=500, help="utterances of the demo MSP-Podcast corpus")
    ap.add_argument("--iterations", type=int_at_least(1), default=100, help="chunk-LSTM training iterations")
    ap.add_argument("--batch", type=int_at_least(2), default=16, help="chunk-LSTM batch size")
    ap.add_argument("--lr", type=positive_float, default=1e-3, help="chunk-LSTM learning rate")
    ap.add_argument("--atten", default="RnnAttenVec", help="chunk-LSTM attention variant")
    ap.add_argument("--dec-epochs", type=int_at_least(1), default=3, help="DeepEmoCluster training epochs")
    ap.add_argument("--at-iterations", type=int_at_least(1), default=40, help="audio-text training iterations")
    ap.add_argument("--mdre-iterations", type=int_at_least(1), default=100, help="MDRE family training iterations")
    ap.add_argument("--stm-iterations", type=int_at_least(1), default=300,
                    help="speech + text + mocap training iterations (per configuration)")
    args = ap.parse_args(argv)
    t_all = time.time()
    root = args.data / "msp-podcast"
    store = root / "Features" / "OpenSmile_lld_IS13ComParE"
    normterm = root / "NormTerm"
    models = args.data / "Models"
    quiet = ["--no-progress"] if not sys.stderr.isatty() else []

    def step(title, fn, argv, or_else=None):
        print(f"\n== {title}: python {fn.__module__}.py {' '.join(map(str, argv))}", flush=True)
        t0 = time.time()
        rc = fn([str(a) for a in argv])
        if rc and or_else:  # e.g. a demo run folder trained with other settings: the demo's own, so start over
            print(f"   (retrying: python {fn.__module__}.py {' '.join(map(str, or_else))})", flush=True)
            rc = fn([str(a) for a in or_else])
        print(f"   ({time.time() - t0:.1f} s)", flush=True)
        if rc:
            raise SystemExit(f"demo step failed: {title}")

    summary = root / SUMMARY
    before = summary.read_bytes() if summary.is_file() else None
    step("demo corpus", make_demo_corpus.main, ["--kind", "msp-podcast", "--out", root, "--n", args.n, "--seed", 0,
                                                "--if-missing"])
    if before is not None and summary.read_bytes() != before:  # a new corpus: what was made from the old goes
        for old in (models, args.data / "results", args.data / "wavs_to_predict"):
            shutil.rmtree(old, ignore_errors=True)
    step("IS13 LLDs", feat_opensmile.main, ["--corpus", "msp-podcast", "--root", root, "--store", store, *quiet])
    step("NormTerm (Train split)", norm_para.main, ["--store", store, "--root", root, "--out", normterm, *quiet])
    common = ["-iter", args.iterations, "-batch", args.batch, "-atten", args.atten, "--root", root,
              "--store", store, "--normterm", normterm, *quiet]
    results = {}
    for emo in ATTRS:
        train_args = [*common, "-emo", emo, "--out", models, "--lr", args.lr, "--val-every", 20, "--deterministic"]
        step(f"train {emo}", training.main, train_args, or_else=[*train_args, "--no-resume"])
        csv_path = args.data / "results" / f"{emo}.csv"
        step(f"test {emo}", testing.main, [*common, "-emo", emo, "--models-dir", models, "--csv", csv_path])
        results[emo] = csv_path
    wav_dir = args.data / "wavs_to_predict"
    if not wav_dir.is_dir():  # a user's folder: a few test-split WAVs
        wav_dir.mkdir(parents=True)
        for p in sorted((root / "Audios").glob("MSP-PODCAST_001[0-6]_000[1-2].wav")):
            shutil.copy(p, wav_dir / p.name)
    step("predict a WAV folder with the published v1.6 models", prediction_process.main,
         ["--wav-dir", wav_dir, "--out", args.data / "pred_result.csv", *quiet])

    # System 2: DeepEmoCluster on 128-mel, one variant, few clusters and epochs, a small unlabelled pool
    mel, mel_nt = root / "Features" / "Mel_Spec128", root / "NormTerm_Mel128"
    step("128-mel", feat_mel.main, ["--corpus", "msp-podcast", "--root", root, "--store", mel, *quiet])
    step("NormTerm of the mel features", norm_para.main, ["--store", mel, "--root", root, "--out", mel_nt, *quiet])
    dec = ["-ep", args.dec_epochs, "-batch", 8, "-emo", "Act", "-nc", 5, "-mt", "Temp-Trans", "-unlabel", 40,
           "--root", root, "--store", mel, "--normterm", mel_nt, *quiet]
    dec_train = [*dec, "--unlabelled-split", "test2", "--out", models]
    step("train DeepEmoCluster Act (unlabelled pool: 40 Test2 sentences, labels ignored)", main_script.main,
         dec_train, or_else=[*dec_train, "--no-resume"])
    dec_csv = args.data / "results" / "DeepEmoCluster_Act.csv"
    step("test DeepEmoCluster Act", online_testing.main, [*dec, "--models-dir", models, "--csv", dec_csv])

    # System 3: audio-text fusion on a tiny random local wav2vec2 + the offline MiniLM, two chunking strategies
    from features.wav2vec2 import save_tiny_random
    w2v = save_tiny_random(args.data / "tiny_wav2vec2")
    a_store, t_store = root / "Features" / "Wav2Vec32", root / "Features" / "MiniLM384"
    a_nt, t_nt = root / "NormTerm_Speech32", root / "NormTerm_Text384"
    step("wav2vec2 frames (tiny local model)", feat_wav2vec2.main,
         ["--corpus", "msp-podcast", "--root", root, "--model", w2v, "--store", a_store, *quiet])
    step("MiniLM token features", feat_roberta.main,
         ["--corpus", "msp-podcast", "--root", root, "--model", "minilm", "--store", t_store, *quiet])
    for store, nt in ((a_store, a_nt), (t_store, t_nt)):
        step(f"NormTerm of {store.name}", norm_para.main, ["--store", store, "--root", root, "--out", nt, *quiet])
    feats = ["--root", root, "--audio-store", a_store, "--text-store", t_store]
    at_runs = {}
    for chunking in ("multiscale", "fixed"):
        at_train = [*feats, "--normterm-audio", a_nt, "--normterm-text", t_nt, "-iter", args.at_iterations,
                    "-batch", 16, "--lr", 5e-4, "--val-every", 20, "--chunking", chunking, "--out", models,
                    "--results", args.data / "results", "--deterministic", *quiet]
        step(f"train + test audio-text, {chunking} chunks", main_script.main, at_train,
             or_else=[*at_train, "--no-resume"])
        from systems.audio_text import run_name
        at_runs[chunking] = models / run_name(args.at_iterations, 16, chunking, None)
    miss = args.data / "results" / "audio_text_missing_data"
    step("missing-data table", evaluate_missing.main, ["--checkpoints", *at_runs.values(), *feats,
                                                       "--rates", "0,0.25,0.5", "--out", miss])
    for p in sorted(wav_dir.glob("*.wav"))[::2]:  # transcripts beside half the WAVs; the rest: text absent
        shutil.copy(root / "Transcripts" / f"{p.stem}.txt", p.with_suffix(".txt"))
    step("predict the WAV folder with the audio-text model", prediction_process.main,
         ["--system", "audio-text", "--models", at_runs["multiscale"], "--wav-dir", wav_dir,
          "--out", args.data / "pred_result_audio_text.csv", *quiet])

    # System 4: the MDRE family on the demo IEMOCAP corpus, leave-one-session-out fold 5 (Session 5 tested)
    iem = args.data / "iemocap"
    step("demo IEMOCAP corpus", make_demo_corpus.main, ["--kind", "iemocap", "--out", iem, "--n", 200, "--seed", 0,
                                                        "--if-missing"])
    mdre_results = {}
    for model in ("ARE", "TRE", "MDREA"):
        mdre_args = ["--root", iem, "--model", model, "--protocol", "loso", "--folds", 5, "-iter",
                     args.mdre_iterations, "-batch", 32, "--patience", 0, "--val-every", 25, "--out", models,
                     "--results", args.data / "results", "--deterministic", *quiet]
        step(f"{model} (MFCC + prosody, words), Session 5 held out", mdre_script.main, mdre_args,
             or_else=[*mdre_args, "--no-resume"])
        mdre_results[model] = args.data / "results" / f"{model}_loso_fold5.json"

    # System 5: speech + text + mocap fusion on a larger demo IEMOCAP corpus (Session 5 held out): the tiny local
    # wav2vec2, a tiny random BERT built locally, and the synthetic mocap whose motion follows arousal
    iem5 = args.data / "iemocap600"
    step("demo IEMOCAP corpus for speech + text + mocap", make_demo_corpus.main,
         ["--kind", "iemocap", "--out", iem5, "--n", 600, "--seed", 0, "--if-missing"])
    from corpora.iemocap import read_iemocap
    from features.text import save_tiny_random_bert
    # its WordPiece vocabulary from the training sessions' words only: no test transcript in any vocabulary
    bert = save_tiny_random_bert(args.data / "tiny_bert", texts=[r.transcript or "" for r in read_iemocap(iem5).records
                                                                 if r.session != 5])
    stm_args = ["--root", iem5, "--speech-model", w2v, "--text-model", bert, "--configs", STM_CONFIGS,
                "-iter", args.stm_iterations, "-batch", 16, "--val-every", 50, "--dev-share", 0.2, "--patience", 0,
                "--d-model", 32, "--heads", 2, "--layers", 1, "--ff", 64, "--fusion-hidden", 32, "--lr", 1e-3,
                "--missing", "audio-absent,text-absent,mocap-absent,frames:0.5,words:0.5",
                "--out", models, "--results", args.data / "results", "--deterministic", *quiet]
    step("speech + text + mocap ablation, Session 5 held out", stm_script.main, stm_args,
         or_else=[*stm_args, "--no-resume"])

    from utils import ccc
    print(f"\nDemo test split (test1) CCC; chunk LSTM {args.atten}: {args.iterations} iterations of batch "
          f"{args.batch}; DeepEmoCluster Temp-Trans: {args.dec_epochs} epochs of batch 8, K = 5, U = 40; "
          f"audio-text: {args.at_iterations} iterations of batch 16:")
    print("| system | attribute | test CCC |\n|---|---|---|")
    table = {}
    for name, path in [*((f"chunk LSTM | {emo}", p) for emo, p in results.items()),
                       ("DeepEmoCluster | Act", dec_csv)]:
        rows = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(1, 2))
        table[name] = f"{ccc(rows[:, 0], rows[:, 1]):.4f}"
        print(f"| {name} | {table[name]} |")
    import csv
    with open(miss.with_suffix(".csv"), newline="") as f:
        miss_rows = list(csv.DictReader(f))
    for chunking, run in at_runs.items():
        (r,) = [r for r in miss_rows if r["checkpoint"] == str(run) and r["condition"] == "complete"]
        for emo in ATTRS:
            table[f"audio-text {chunking} | {emo}"] = r[emo]
            print(f"| audio-text {chunking} | {emo} | {r[emo]} |")
    miss_table = missing_data_summary(miss_rows, at_runs)
    import json
    print(f"\nMDRE family on the demo IEMOCAP corpus, Session 5 held out ({args.mdre_iterations} iterations of batch "
          "32, raw features as the original):\n| model | WA | UA |\n|---|---|---|")
    iemocap_table = {}
    for model, path in mdre_results.items():
        res = json.loads(path.read_text())
        iemocap_table[model] = f"{res['WA']:.4f} | {res['UA']:.4f}"
        print(f"| {model} | {iemocap_table[model]} |")
    import csv as _csv
    print(f"\nSpeech + text + mocap on the 600-utterance demo IEMOCAP corpus, Session 5 held out "
          f"({args.stm_iterations} iterations of batch 16):\n| configuration | WA | UA |\n|---|---|---|")
    stm_table = {}
    with open(args.data / "results" / "stm_ablation.csv", newline="") as f:
        for r in _csv.DictReader(f):
            stm_table[r["configuration"]] = f"{float(r['session5_WA']):.4f} | {float(r['session5_UA']):.4f}"
            print(f"| {r['configuration']} | {stm_table[r['configuration']]} |")
    with open(args.data / "results" / "stm_missing.csv", newline="") as f:
        for r in _csv.DictReader(f):
            if r["condition"] != "complete":
                key = f"{THREE_WAY}, {r['condition']}{':' + r['rate'] if r['rate'] else ''}"
                stm_table[key] = f"{float(r['WA']):.4f} | {float(r['UA']):.4f}"
                print(f"| {key} | {stm_table[key]} |")
    stale = []
    defaults = vars(ap.parse_args([]))
    if {k: v for k, v in vars(args).items() if k != "data"} == {k: v for k, v in defaults.items() if k != "data"}:
        stale = (readme_mismatches("Demo results", table) + readme_mismatches("Demo missing data", miss_table)
                 + readme_mismatches("Demo IEMOCAP", iemocap_table)
                 + readme_mismatches("Demo speech text mocap", stm_table))
        print("README.md's demo figures match this run" if not stale else
              "note: README.md's demo figures differ from this run (README -> now: " + ", ".join(stale) +
              "); they are measured with these default settings, so README.md needs updating")
    print(f"\npredictions for {wav_dir}: {args.data / 'pred_result.csv'}")
    print(f"demo finished in {time.time() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

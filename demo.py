#!/usr/bin/env python
"""`make demo`: the whole chunk-LSTM pipeline on the synthetic MSP-Podcast corpus, each step a real CLI call.

    demo corpus -> feat_opensmile.py -> norm_para.py -> training.py (Act, Dom, Val) -> testing.py
    -> prediction_process.py on a folder of demo WAVs

Every step skips what is already done (the corpus, the store, finished training runs), so a second
`make demo` only re-scores. Settings are the published ones except for the demo's short training
(100 iterations of batch 16, lr 1e-3: a few minutes on 2 CPU cores instead of hours on a GPU).
"""
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import feat_opensmile
import make_demo_corpus
import norm_para
import prediction_process
import testing
import training
from engine.cli import entry, int_at_least, parser, positive_float

ATTRS = ("Act", "Dom", "Val")


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--data", type=Path, default=Path("demo_data"), help="where corpora, features and models go")
    ap.add_argument("--n", type=int_at_least(20), default=500, help="utterances of the demo MSP-Podcast corpus")
    ap.add_argument("--iterations", type=int_at_least(1), default=100, help="chunk-LSTM training iterations")
    ap.add_argument("--batch", type=int_at_least(2), default=16, help="chunk-LSTM batch size")
    ap.add_argument("--lr", type=positive_float, default=1e-3, help="chunk-LSTM learning rate")
    ap.add_argument("--atten", default="RnnAttenVec", help="chunk-LSTM attention variant")
    args = ap.parse_args(argv)
    t_all = time.time()
    root = args.data / "msp-podcast"
    store = root / "Features" / "OpenSmile_lld_IS13ComParE"
    normterm = root / "NormTerm"
    models = args.data / "Models"
    quiet = ["--no-progress"] if not sys.stderr.isatty() else []

    def step(title, fn, argv):
        print(f"\n== {title}: python {fn.__module__}.py {' '.join(map(str, argv))}", flush=True)
        t0 = time.time()
        rc = fn([str(a) for a in argv])
        print(f"   ({time.time() - t0:.1f} s)", flush=True)
        if rc:
            raise SystemExit(f"demo step failed: {title}")

    step("demo corpus", make_demo_corpus.main, ["--kind", "msp-podcast", "--out", root, "--n", args.n, "--seed", 0,
                                                "--if-missing"])
    step("IS13 LLDs", feat_opensmile.main, ["--corpus", "msp-podcast", "--root", root, "--store", store, *quiet])
    step("NormTerm (Train split)", norm_para.main, ["--store", store, "--root", root, "--out", normterm, *quiet])
    common = ["-iter", args.iterations, "-batch", args.batch, "-atten", args.atten, "--root", root,
              "--store", store, "--normterm", normterm, *quiet]
    results = {}
    for emo in ATTRS:
        step(f"train {emo}", training.main, [*common, "-emo", emo, "--out", models, "--lr", args.lr,
                                             "--val-every", 20])
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

    from utils import ccc
    print(f"\nDemo test split (test1) CCC, chunk LSTM {args.atten}, {args.iterations} iterations of batch {args.batch}:")
    print("| attribute | CCC |\n|---|---|")
    for emo, path in results.items():
        rows = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(1, 2))
        print(f"| {emo} | {ccc(rows[:, 0], rows[:, 1]):.4f} |")
    print(f"\npredictions for {wav_dir}: {args.data / 'pred_result.csv'}")
    print(f"demo finished in {time.time() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

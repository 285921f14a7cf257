#!/usr/bin/env python
"""CCC of audio-text checkpoints under simulated missing data, side by side (the paper's resilience claim).

    python evaluate_missing.py --checkpoints Models/RUN_multiscale Models/RUN_fixed --root R \\
        --audio-store R/Features/Wav2Vec1024 --text-store R/Features/RoBERTa768 [--split test1]

For every checkpoint, every condition in --conditions at every rate in --rates (0 = complete data), and each
modality absent: the test split is scored with the missing data applied after z-normalisation (a blank is
the Train mean), seeded per utterance and condition (--seed), so every checkpoint sees the same blanks.
Conditions: frames (audio frames dropped at random), bursts (audio lost in two-state Markov bursts of
--burst frames), words (the words' text tokens), words+audio (and their audio spans from the TextGrid).
Writes <out>.csv (checkpoint, condition, rate, Act, Dom, Val), <out>.json (the same rows in the shared result
format) and <out>.png (CCC against rate, one panel per attribute) and prints the table.
"""
import csv
import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError, add_allow_unfinished_arg, entry, parser
from utils import atomic_path, ccc, output_file, writable_dir

RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@entry
def main(argv=None) -> int:
    from engine.loop import evaluate
    from engine.plots import distinct_names
    from features.missing import Condition
    from features.store import FeatureStore
    from systems.audio_text import audio_text_items, load_trained
    from systems.common import require_store
    ap = parser(__doc__)
    ap.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="audio-text checkpoint folders")
    ap.add_argument("--root", type=Path, required=True, help="MSP-Podcast root (labels, TextGrids, transcripts)")
    ap.add_argument("--audio-store", type=Path, required=True, help="the checkpoints' audio feature store")
    ap.add_argument("--text-store", type=Path, required=True, help="the checkpoints' text feature store")
    ap.add_argument("--split", default="test1", help="split to score")
    ap.add_argument("--conditions", default="frames,bursts,words,words+audio",
                    help="comma-separated missing-data kinds, each at every rate")
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="comma-separated missing rates")
    ap.add_argument("--burst", type=float, default=5.0, help="mean burst length in frames for bursts")
    ap.add_argument("--no-absent", action="store_true", help="leave out the audio-absent and text-absent rows")
    ap.add_argument("--seed", type=int, default=0, help="seed of the simulated missing data")
    ap.add_argument("--out", type=Path, default=Path("results/missing_data"),
                    help="name of the outputs <out>.csv, <out>.json and <out>.png (taken as given: a name ending "
                         "in one of those suffixes has it replaced, any other gets them appended)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    add_allow_unfinished_arg(ap)
    args = ap.parse_args(argv)
    writable_dir(args.out.parent)
    from engine.checkpoint import require_finished
    for ck in args.checkpoints:  # every checkpoint's training finished (or --allow-unfinished), before any work
        if ck.is_dir():
            require_finished(ck, args.allow_unfinished)
    names = dict(zip(args.checkpoints, distinct_names(args.checkpoints)))  # shown in full, told apart
    width = max(map(len, names.values()))
    try:
        rates = [float(r) for r in args.rates.split(",")]
        conds = [Condition("none", 0.0)] + [Condition(k, r, burst=args.burst) if k == "bursts" else Condition(k, r)
                                            for k in args.conditions.split(",") for r in rates if r > 0]
    except ValueError as e:
        raise UserError(f"--conditions/--rates: {e}") from None
    if not args.no_absent:
        conds += [Condition("audio-absent"), Condition("text-absent")]
    audio, text = FeatureStore(args.audio_store), FeatureStore(args.text_store)
    require_store(audio, "--audio-store", "wav2vec2")  # the kinds of features, before any work (issue 19.14)
    require_store(text, "--text-store", "tokens")
    items, words, transcripts = audio_text_items(args.root, args.split, audio, text)
    if not items:
        raise UserError(f"no {args.split} utterance with labels, both feature sets and a TextGrid")
    rows = []
    for ck in args.checkpoints:
        try:
            method, model = load_trained(ck, audio, text, words, transcripts, args.allow_unfinished)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
        method.eval_seed = args.seed
        bad = method.without_word_alignment(items) if any(c.kind.startswith("words") for c in conds) else []
        if bad:
            raise UserError(f"--conditions {args.conditions}: {len(bad)} {args.split} utterance(s) have no transcript "
                            f"matching their text features, needed by the word conditions: {', '.join(bad[:10])}"
                            f"{' ...' if len(bad) > 10 else ''} (leave out words and words+audio to score the rest)")
        truth = np.array([y for _, y in items])
        for cond in conds:
            method.condition = cond
            pred = evaluate(method, model.to(args.device), items, 64, args.device)
            scores = [ccc(method.nt_audio.denorm(pred[:, k], a), truth[:, k]) for k, a in enumerate(("act", "dom", "val"))]
            kind = cond.kind if cond.kind != "none" else "complete"
            rows.append({"checkpoint": str(ck), "condition": kind, "rate": "" if "absent" in kind else cond.rate,
                         **{a: f"{v:.4f}" for a, v in zip(("Act", "Dom", "Val"), scores)}})
            print(f"{names[ck]:>{width}} {kind:>13} {rows[-1]['rate']!s:>4}  Act {rows[-1]['Act']}  "
                  f"Dom {rows[-1]['Dom']}  Val {rows[-1]['Val']}", flush=True)
    csv_path, png_path = output_file(args.out, ".csv"), output_file(args.out, ".png")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from systems.common import write_result
    write_result(output_file(args.out, ".json"), {
        "metric": "CCC", "system": "audio-text", "corpus": str(args.root), "split": args.split,
        "checkpoints": [str(c) for c in args.checkpoints], "seed": args.seed, "utterances": len(items),
        "rows": [{**r, **{a: float(r[a]) for a in ("Act", "Dom", "Val")}} for r in rows]})
    from engine.plots import missing_curves  # the complete-data row is each curve's rate-0 point
    missing_curves([dict(r, series=names[Path(r["checkpoint"])]) for r in rows], ["Act", "Dom", "Val"],
                   png_path, title="CCC")
    print(f"{len(rows)} rows for {len(items)} {args.split} utterances -> {csv_path}, {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Write a synthetic speech-emotion corpus in the exact MSP-Podcast or IEMOCAP layout, or described by a
manifest (espeak-ng speech).

    python make_demo_corpus.py --kind msp-podcast --out demo_data/msp-podcast --n 500 --seed 0
    python make_demo_corpus.py --kind iemocap --out demo_data/iemocap --n 200 --seed 0
    python make_demo_corpus.py --kind manifest --out demo_data/manifest --n 200 --seed 0   # OUT/corpus.csv

A manifest corpus is the synthetic MSP-Podcast corpus under OUT/msp described by OUT/corpus.csv (splits train,
dev, test, test2; arousal / dominance / valence on a declared 1-5 scale; classes angry, sad, happy, neutral) and
its sidecar OUT/corpus.json: read it with --corpus manifest --root OUT/corpus.csv.

The label rules (what makes the corpus learnable) are in corpora/synth/rules.py and docs/corpora.md.
"""
import json
import shutil
import sys
import time
from pathlib import Path

from corpora.synth import generator_version
from corpora.synth.msp_podcast import RELEASES, SUMMARY
from engine.cli import entry, int_at_least, parser
from utils import writable_dir


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--kind", choices=("msp-podcast", "iemocap", "manifest"), required=True,
                    help="which corpus layout (manifest: a CSV manifest OUT/corpus.csv over MSP-Podcast-like audio)")
    ap.add_argument("--out", type=Path, required=True, help="corpus root to create")
    ap.add_argument("--n", type=int_at_least(1), default=500, help="number of utterances")
    ap.add_argument("--seed", type=int, default=0, help="seed: the same seed gives a byte-identical corpus")
    ap.add_argument("--release", default="1.10", choices=sorted(RELEASES),
                    help="MSP-Podcast release layout to imitate (folder, labels file and split names; default "
                         "1.10; msp-podcast only)")
    ap.add_argument("--if-missing", action="store_true",
                    help="do nothing when OUT already holds a finished corpus made with the same settings")
    args = ap.parse_args(argv)

    wanted = {"kind": args.kind, "n": args.n, "seed": args.seed, "generator": generator_version()}
    if args.kind == "msp-podcast":
        wanted["release"] = args.release
    writable_dir(args.out)
    done = args.out / SUMMARY
    if done.is_file():
        old = json.loads(done.read_text())
        if all(old.get(k) == v for k, v in wanted.items()):
            if args.if_missing:
                print(f"{args.out}: demo corpus already there ({args.n} utterances, seed {args.seed})")
                return 0
        else:  # our own corpus, made with other settings or by other generator code: nothing of it may survive,
            # neither its audio nor what was derived from it inside the folder (features, NormTerm)
            changed = ", ".join(k for k, v in wanted.items() if old.get(k) != v)
            print(f"{args.out}: demo corpus made with other {changed}; writing it anew")
            shutil.rmtree(args.out)
    t0 = time.time()
    if args.kind == "msp-podcast":
        from corpora.synth.msp_podcast import write_msp_podcast
        summary = write_msp_podcast(args.out, n=args.n, seed=args.seed, release=args.release)
    elif args.kind == "manifest":  # its own summary at OUT (the one under OUT/msp describes the audio's layout)
        from corpora.synth.manifest import write_manifest_corpus
        from utils import atomic_write_text
        summary = {**wanted, **write_manifest_corpus(args.out, n=args.n, seed=args.seed)}
        atomic_write_text(done, json.dumps(summary, indent=1))
    else:
        from corpora.synth.iemocap import write_iemocap
        summary = write_iemocap(args.out, n=args.n, seed=args.seed)
    brief = {k: v for k, v in summary.items() if k not in ("controls", "utterances")}
    print(f"{args.out}: wrote {args.kind} corpus in {time.time() - t0:.1f} s: {json.dumps(brief)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

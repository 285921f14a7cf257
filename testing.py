#!/usr/bin/env python
"""Score a chunk-level attention LSTM on a test split (the seed's command works as written):

    python testing.py -iter 5000 -batch 128 -emo Dom -atten SelfAttenVec
    python testing.py -iter 5000 -batch 128 -emo Act -atten RnnAttenVec --checkpoint X.pth.tar --normterm NormTerm

The checkpoint is --checkpoint (our folder, or a published .pth.tar with --normterm), else Models/<run name>,
else trained_models/<run name> (the published v1.6 models). Predictions are de-normalised and scored against
the raw labels with CCC; a per-utterance CSV (utterance, prediction, label) is written.
"""
import sys
import time
from pathlib import Path

import numpy as np

from engine.cli import UserError, entry, int_at_least, parser
from features.store import FeatureStore
from systems.chunk_lstm import Predictor, add_cli_args, resolve_paths
from systems.common import labelled_items
from utils import atomic_path, ccc, writable_dir


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_cli_args(ap)
    ap.add_argument("--checkpoint", type=Path,
                    help="our checkpoint folder or a published .pth.tar (default: <models-dir>/<run name>, "
                         "else trained_models/<run name>)")
    ap.add_argument("--models-dir", type=Path, default=Path("Models"), help="where training.py put its run folders")
    ap.add_argument("--split", default="test1", help="split or alias to score (test, test1, test2, dev, ...)")
    ap.add_argument("--csv", type=Path, help="per-utterance output (default: results/<run name>_<split>.csv)")
    ap.add_argument("--batch-eval", type=int_at_least(1), default=64, help="utterances per forward pass")
    args = ap.parse_args(argv)
    resolve_paths(args)
    out = args.csv or Path("results") / f"{args.name}_{args.split}.csv"
    writable_dir(out.parent)
    ckpt = args.checkpoint
    if ckpt is None:
        for cand in (args.models_dir / args.name, Path("trained_models") / args.name):
            if cand.is_dir():
                ckpt = cand
                break
        else:
            raise UserError(f"no checkpoint {args.name} in {args.models_dir}/ or trained_models/; give --checkpoint")
    store = FeatureStore(args.store)
    items = labelled_items(args.root, args.split, args.attribute, store)
    if not items:
        raise UserError(f"no {args.split} utterance with {args.emo_attr} labels and features in {args.store}")
    try:
        legacy_nt = args.normterm if args.normterm_given else Path(__file__).resolve().parent / "NormTerm"
        pred = Predictor.load(ckpt, normterm=legacy_nt if ckpt.suffix == ".tar" else None, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    want = pred.config.get("features", {}).get("name")
    if want and want != store.meta.get("name") or pred.config["model"]["input_dim"] != store.dims:
        raise UserError(f"{ckpt} was trained on {want or pred.config['model']['input_dim']} features, but "
                        f"{args.store} holds {store.meta.get('name')} ({store.dims}-d)")
    if pred.attribute != args.attribute:
        raise UserError(f"{ckpt} predicts {pred.attribute}, not {args.attribute}")
    t0 = time.perf_counter()
    scores = pred.predict([store[u] for u, _ in items], batch_size=args.batch_eval)
    ms = 1000 * (time.perf_counter() - t0) / len(items)
    labels = np.array([v for _, v in items])
    print("ChunkSeq2One")
    print(f"Iterations: {args.iterations}")
    print(f"Batch_Size: {args.batch_size}")
    print("Model_Type: LSTM")
    print(f"Attention_Type: {args.atten_type}")
    print(f"{args.emo_attr}-CCC: {ccc(scores, labels):.4f}")
    print(f"Avg. Time Cost(ms/uttr): {ms:.2f}")
    with atomic_path(out) as tmp:
        with open(tmp, "w") as f:
            f.write("utterance,prediction,label\n")
            f.writelines(f"{u},{p:.6f},{y:.6f}\n" for (u, y), p in zip(items, scores))
    print(f"checkpoint {ckpt}; {len(items)} utterances of {args.split}; per-utterance results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train the chunk-level attention LSTM on IS13 LLDs of MSP-Podcast (the seed's command works as written):

    python training.py -iter 5000 -batch 128 -emo Dom -atten SelfAttenVec
    python training.py -iter 5000 -batch 128 -emo Act -atten RnnAttenVec --root /data/MSP-PODCAST-Publish-1.10
    torchrun --nproc_per_node=2 training.py -iter 5000 -batch 128 -emo Val -atten GatedVec

Needs the LLD store (feat_opensmile.py) and a NormTerm folder (norm_para.py). Writes <out>/<run name>/:
model.safetensors + config.json (best validation CCC), state.pt (resume), log.csv, loss.png. Validation
every 50 iterations on the dev split; stops after exactly -iter iterations; re-running resumes.
"""
import argparse
import sys
from pathlib import Path

from engine.loop import LoopConfig, ddp_env, train
from features.normterm import NormTerm
from features.store import FeatureStore, StoreError
from systems.chunk_lstm import ChunkLSTMMethod, add_cli_args, labelled_items, resolve_paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    add_cli_args(ap)
    ap.add_argument("--out", type=Path, default=Path("Models"), help="parent folder of the run folder")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-split", default="train")
    ap.add_argument("--val-split", default="dev")
    ap.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a state")
    ap.add_argument("--population-ccc-loss", action="store_true",
                    help="textbook 1-CCC loss (the original mixes a population covariance with unbiased variances)")
    args = ap.parse_args(argv)
    resolve_paths(args)
    try:
        store, nt = FeatureStore(args.store), NormTerm.load(args.normterm)
    except (StoreError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.attribute not in nt.labels or nt.feat_mean is None or len(nt.feat_mean) != store.dims:
        print(f"error: {args.normterm} lacks {args.attribute} label or {store.dims}-d feature statistics", file=sys.stderr)
        return 1
    train_items = labelled_items(args.root, args.train_split, args.attribute, store)
    val_items = labelled_items(args.root, args.val_split, args.attribute, store)
    method = ChunkLSTMMethod(store, nt, args.attribute, args.atten_type, n=args.chunk_n,
                             unbiased_var_loss=not args.population_ccc_loss, corpus_version=args.root.name)
    cfg = LoopConfig(out_dir=args.out / args.name, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                     val_every=args.val_every, seed=args.seed, device=args.device, resume=not args.no_resume,
                     progress=not args.no_progress)
    res = train(method, train_items, val_items, cfg)
    if ddp_env()[0] == 0:
        print(f"{args.name}: {res.steps} iterations in {res.seconds:.1f} s "
              f"({res.steps * args.batch_size / max(res.seconds, 1e-9):.1f} utt/s, "
              f"{100 * res.data_seconds / max(res.seconds, 1e-9):.1f}% of the time waiting for data); "
              f"best validation CCC {1 - res.best_val:.4f} at iteration {res.best_step}; saved in {cfg.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

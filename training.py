#!/usr/bin/env python
"""Train the chunk-level attention LSTM on IS13 LLDs of MSP-Podcast (the seed's command works as written):

    python training.py -iter 5000 -batch 128 -emo Dom -atten SelfAttenVec
    python training.py -iter 5000 -batch 128 -emo Act -atten RnnAttenVec --root /data/MSP-PODCAST-Publish-1.10
    torchrun --nproc_per_node=2 training.py -iter 5000 -batch 128 -emo Val -atten GatedVec

Needs the LLD store (feat_opensmile.py) and a NormTerm folder (norm_para.py). Writes <out>/<run name>/:
model.safetensors + config.json (best validation CCC), state.pt (resume), log.csv, loss.png. Validation
every 50 iterations on the dev split; stops after exactly -iter iterations; re-running resumes.
"""
import sys
from pathlib import Path

from engine.cli import UserError, entry, int_at_least, parser, positive_float
from engine.loop import LoopConfig, ddp_env, train
from features.normterm import NormTerm
from features.store import FeatureStore
from systems.chunk_lstm import ChunkLSTMMethod, add_cli_args, resolve_paths
from systems.common import labelled_items
from utils import writable_dir


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_cli_args(ap)
    ap.add_argument("--out", type=Path, default=Path("Models"), help="parent folder of the run folder")
    ap.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1), default=50, help="validate every N iterations")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initialisation, sampling and dropout")
    ap.add_argument("--train-split", default="train", help="split to train on (a name or alias)")
    ap.add_argument("--val-split", default="dev", help="split that picks the best checkpoint")
    ap.add_argument("--no-resume", action="store_true",
                    help="start over, discarding what the run folder holds (without it, a re-run resumes, and "
                         "refuses a run folder started with other settings)")
    ap.add_argument("--deterministic", action="store_true",
                    help="one CPU thread and deterministic kernels: a seeded run gives identical weights under any "
                         "load and on any number of cores (1.8x slower per step on 2 cores; see README)")
    ap.add_argument("--population-ccc-loss", action="store_true",
                    help="textbook 1-CCC loss (the original mixes a population covariance with unbiased variances)")
    args = ap.parse_args(argv)
    resolve_paths(args)
    try:
        store, nt = FeatureStore(args.store), NormTerm.load(args.normterm)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    if args.attribute not in nt.labels or nt.feat_mean is None or len(nt.feat_mean) != store.dims:
        raise UserError(f"{args.normterm} lacks {args.attribute} label or {store.dims}-d feature statistics")
    train_items = labelled_items(args.root, args.train_split, args.attribute, store)
    val_items = labelled_items(args.root, args.val_split, args.attribute, store)
    out_dir = writable_dir(args.out / args.name)
    method = ChunkLSTMMethod(store, nt, args.attribute, args.atten_type, n=args.chunk_n,
                             unbiased_var_loss=not args.population_ccc_loss, corpus_version=args.root.name)
    cfg = LoopConfig(out_dir=out_dir, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                     val_every=args.val_every, seed=args.seed, device=args.device, resume=not args.no_resume,
                     progress=not args.no_progress, deterministic=args.deterministic, train_name=f"{args.train_split} split (with {args.emo_attr} "
                     f"labels and features)", val_name=f"{args.val_split} split (with {args.emo_attr} labels and features)")
    res = train(method, train_items, val_items, cfg)
    if ddp_env()[0] == 0:
        speed = (f"{res.steps_run} iterations in {res.seconds:.1f} s ({res.steps_run * res.batch_size / res.seconds:.1f} "
                 f"utt/s at batch {res.batch_size}, {100 * res.data_seconds / res.seconds:.1f}% of the time waiting "
                 f"for data)" if res.steps_run else "nothing to do (already finished)")
        print(f"{args.name}: {speed}; best validation CCC {1 - res.best_val:.4f} at iteration {res.best_step} "
              f"of {res.steps}; saved in {cfg.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from engine.cli import entry, int_at_least, parser, positive_float
from engine.loop import LoopConfig, ddp_env, train
from systems.chunk_lstm import ChunkLSTMMethod, add_cli_args, resolve_paths
from systems.common import require_store
from systems.common import add_training_args, load_training_data, split_names


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_cli_args(ap)
    ap.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1), default=50, help="validate every N iterations")
    add_training_args(ap, "seed of the initialisation, sampling and dropout", "chunk-lstm")
    ap.add_argument("--population-ccc-loss", action="store_true",
                    help="textbook 1-CCC loss (the original mixes a population covariance with unbiased variances)")
    args = ap.parse_args(argv)
    resolve_paths(args)
    require_store(args.store, "--store", "chunk-lstm")  # the kind of features, before any work (issue 19.14)
    store, nt, train_items, val_items, out_dir = load_training_data(args)
    method = ChunkLSTMMethod(store, nt, args.attribute, args.atten_type, n=args.chunk_n,
                             unbiased_var_loss=not args.population_ccc_loss, corpus_version=args.root.name)
    cfg = LoopConfig(out_dir=out_dir, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                     val_every=args.val_every, seed=args.seed, device=args.device, resume=not args.no_resume,
                     progress=not args.no_progress, deterministic=args.deterministic, **split_names(args))
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

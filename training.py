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

from engine.cli import entry, int_at_least, parser, positive_float, precision_tag
from engine.experiment import Experiment, run
from systems.chunk_lstm import add_cli_args, run_name
from systems.common import add_training_args
from systems.msp_experiment import chunk_lstm_trained, training_experiment


def build_parser():
    ap = parser(__doc__)
    add_cli_args(ap)
    ap.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1), default=50, help="validate every N iterations")
    add_training_args(ap, "seed of the initialisation, sampling and dropout", "chunk-lstm")
    ap.add_argument("--population-ccc-loss", action="store_true",
                    help="textbook 1-CCC loss (the original mixes a population covariance with unbiased variances)")
    return ap


def describe(argv) -> Experiment:
    """The training run these flags ask for: <out>/<run name> (outputs "name", "run")."""
    args = build_parser().parse_args(argv)
    args.name = run_name(args.iterations, args.batch_size, args.atten_type, args.emo_attr) + precision_tag(args.precision)
    return training_experiment("chunk-lstm", "training.py", argv, args, "systems.msp_experiment:CHUNK_LSTM",
                               iterations=args.iterations, lr=args.lr, val_every=args.val_every)


@entry
def main(argv=None) -> int:
    from engine.loop import ddp_env
    argv = sys.argv[1:] if argv is None else list(argv)
    exp = describe(argv)
    (outcome,) = run(exp)
    if ddp_env()[0] == 0:
        print(chunk_lstm_trained(exp, outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())

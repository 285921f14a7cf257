#!/usr/bin/env python
"""Score a chunk-level attention LSTM on a test split (the seed's command works as written):

    python testing.py -iter 5000 -batch 128 -emo Dom -atten SelfAttenVec
    python testing.py -iter 5000 -batch 128 -emo Act -atten RnnAttenVec --checkpoint X.pth.tar --normterm NormTerm

The checkpoint is --checkpoint (our folder, or a published .pth.tar with --normterm), else Models/<run name>,
else trained_models/<run name> (the published v1.6 models). Predictions are de-normalised and scored against
the raw labels with CCC; a per-utterance CSV (utterance, prediction, label) is written.
"""
import sys

from engine.cli import entry, parser, precision_tag
from engine.experiment import Experiment, run
from systems.chunk_lstm import add_cli_args, run_name
from systems.common import add_testing_args
from systems.msp_experiment import testing_experiment


def build_parser():
    ap = parser(__doc__)
    add_cli_args(ap)
    add_testing_args(ap, "training.py", "<models-dir>/<run name>, else trained_models/<run name>", 64)
    return ap


def describe(argv) -> Experiment:
    """The scoring these flags ask for: outputs "csvs" and "results" ({emo: path}), "name" (the run looked up)."""
    args = build_parser().parse_args(argv)
    args.name = run_name(args.iterations, args.batch_size, args.atten_type, args.emo_attr) + precision_tag(args.precision)
    return testing_experiment("chunk-lstm", "testing.py", argv, args, "systems.msp_experiment:CHUNK_LSTM_TEST")


@entry
def main(argv=None) -> int:
    run(describe(sys.argv[1:] if argv is None else list(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

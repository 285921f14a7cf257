#!/usr/bin/env python
"""Score a temporal-enhanced DeepEmoCluster on a test split (the seed's command works as written):

    python online_testing.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-Triplet
    python online_testing.py -ep 30 -batch 64 -emo Act -nc 30 -mt Temp-Trans -unlabel 100000 \\
        --checkpoint TempDeepEmoCluster_epoch30_batch64_30clusters_Act_Temp-Trans_unlabel100000.pth.tar \\
        --normterm NormTerm_v1.8

The checkpoint is --checkpoint (our folder, or an original .pth.tar of any name with --normterm), else
<models-dir>/<run name>. The banner and the result names describe the checkpoint scored: flags that contradict
it are refused, and a setting it does not record is marked as the command line's. Each sentence's prediction is
the mean of its 11 chunk outputs, de-normalised with the Train label statistics, scored with CCC against the
raw labels; prints the original's summary lines and writes a per-utterance CSV (utterance, prediction, label).
"""
import sys

from engine.cli import entry, parser
from engine.experiment import Experiment, run
from systems.common import add_testing_args
from systems.deep_emo_cluster import add_cli_args
from systems.deep_emo_cluster_experiment import describe_testing


def build_parser():
    ap = parser(__doc__)
    add_cli_args(ap)
    add_testing_args(ap, "main.py", "<models-dir>/<run name>", 32)
    return ap


def describe(argv) -> Experiment:
    """The scoring these flags ask for: outputs "csvs" and "results" ({emo: path}), "name" (the run looked up)."""
    return describe_testing(argv, build_parser())


@entry
def main(argv=None) -> int:
    run(describe(sys.argv[1:] if argv is None else list(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

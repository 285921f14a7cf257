#!/usr/bin/env python
"""128-mel power spectrograms (DeepEmoCluster's parameters) for a corpus or a WAV folder -> feature store.

    python feat_mel.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.8
    python feat_mel.py --wav-dir my_wavs --store Features/Mel_Spec128 [--shard 0/4]

Resumable (finished utterances are kept), shardable (--shard i/N or torchrun), bad inputs listed in
<store>/errors-*.csv.
"""
import sys

from engine.cli import entry, parser
from features.extract import add_io_args, run_cli
from features.mel import MelSpectrogram


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_io_args(ap)
    return run_cli(MelSpectrogram(), ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

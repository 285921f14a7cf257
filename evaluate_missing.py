#!/usr/bin/env python
"""CCC of audio-text checkpoints under simulated missing data, side by side (the paper's resilience claim), in
the robustness literature's protocols, with 95 % bootstrap intervals:

    python evaluate_missing.py --checkpoints Models/RUN_multiscale Models/RUN_fixed --root R \\
        --audio-store R/Features/Wav2Vec1024 --text-store R/Features/RoBERTa768 [--split test1] \\
        [--protocols fixed,random,sweep] [--rates 0,0.1,...,0.7] [--sweep-kinds frames,bursts,words,wer]

Protocols (--protocols, default sweep): fixed = the complete data, audio only (present:audio) and text only
(present:text) (MMIN's fixed conditions); random = each modality of each utterance missing with probability p
at every --rates p > 0, at least one kept (GCNet's random-missing protocol); sweep = every --sweep-kinds kind at
every rate: frames (audio frames dropped at random), bursts (audio lost in two-state Markov bursts of --burst
frames), words (that share of the transcript's words REMOVED and the transcript encoded again by the text store's
encoder; cached under <text store>/degraded/), wer (simulated recogniser errors to that word error rate:
substitutes and insertions drawn from the --train-split transcripts' words, re-encoded; the realised WER of each
draw is recorded), word-rows (the original authors' helper: the words' rows of the encoded features blanked; it
leaks the sentence through the context) and words+audio (words plus the words' audio spans from the TextGrid).
An absent stream is the system's one definition (systems.audio_text.absent_stream: a fixed number of rows at the
Train mean, the same as prediction_process.py uses for a WAV without transcript).

Each seeded condition is drawn --sim-seeds times (simulation seeds --seed, --seed+1, ...; per utterance and
condition, so every checkpoint sees the same draws) and averaged, with its spread. Every protocol goes through
engine.robustness and writes <out>_<protocol>.csv (the table), .json (the shared result format, with intervals,
paired tests against the complete data and the robustness summary), .png (curves with interval bands) and
<out>_<protocol>_per_utterance.csv, and prints the table.

Deprecated: --conditions KINDS (each kind at every rate, plus audio-absent and text-absent unless --no-absent)
still works; it is scored as the protocol "conditions" (<out>_conditions.*) instead of the default sweep, or
beside the protocols named with --protocols.
"""
import argparse
import sys
from pathlib import Path

from engine.cli import add_allow_unfinished_arg, add_precision_arg, add_protocol_args, entry, parser
from engine.experiment import Experiment, run


def build_parser() -> argparse.ArgumentParser:
    """evaluate_missing.py's flags."""
    ap = parser(__doc__)
    ap.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="audio-text checkpoint folders")
    from features.extract import add_corpus_args
    from systems.common import DIMENSIONAL_KINDS
    add_corpus_args(ap, DIMENSIONAL_KINDS, "msp-podcast", "corpus the scored split comes from")
    ap.add_argument("--root", type=Path, required=True,
                    help="MSP-Podcast root (labels, TextGrids, transcripts), or the manifest file (default: none)")
    ap.add_argument("--audio-store", type=Path, required=True, help="the checkpoints' audio feature store")
    ap.add_argument("--text-store", type=Path, required=True,
                    help="the checkpoints' text feature store (word conditions cache re-encoded text below it)")
    ap.add_argument("--split", default="test1",
                    help="split to score (default test1; a manifest without test1 scores its test split)")
    ap.add_argument("--train-split", default="train",
                    help="split whose transcripts' words are wer's substitutes and insertions (default train)")
    add_protocol_args(ap, "sweep")
    ap.set_defaults(protocols=None)  # sweep, unless the deprecated --conditions is given alone
    ap.add_argument("--conditions", default=None,
                    help="deprecated: comma-separated kinds, each at every rate, scored as the protocol "
                         "'conditions' (with audio-absent and text-absent unless --no-absent); by default none")
    ap.add_argument("--no-absent", action="store_true", help="--conditions without the absent rows")
    ap.add_argument("--burst", type=float, default=5.0, help="mean burst length in frames for bursts")
    ap.add_argument("--seed", type=int, default=0, help="first simulation seed (the draws use seed .. seed+N-1)")
    ap.add_argument("--out", type=Path, default=Path("results/missing_data"),
                    help="name of the outputs: <out>_<protocol>.csv, .json, .png and _per_utterance.csv (a name "
                         "ending in .csv, .json or .png has that suffix dropped first)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    add_precision_arg(ap)
    add_allow_unfinished_arg(ap)
    return ap


def describe(argv=None) -> Experiment:
    """The experiment of these flags (systems.audio_text_missing), checked before any work; outputs["protocols"]
    names each protocol's result file."""
    from systems.audio_text_missing import describe as describe_missing
    return describe_missing(build_parser().parse_args(argv), argv)


@entry
def main(argv=None) -> int:
    run(describe(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

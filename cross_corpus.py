#!/usr/bin/env python
"""Score IEMOCAP-trained four-class models (mdre.py, speech_text_mocap.py) on MSP-Podcast's categories: the reverse
direction of cross-corpus testing. (The forward one, MSP-Podcast's dimensional models on IEMOCAP's ratings, is
`testing.py` / `online_testing.py --corpus iemocap`.)

    python cross_corpus.py --checkpoint Models/MDREA_loso_fold5 --root /data/MSP-Podcast --split test1
    python cross_corpus.py --checkpoint Models/MDREA_random5_fold1 Models/MDREA_random5_fold2 --root R
    python cross_corpus.py --checkpoint "Models/stm_speech+text+mocap_s5" --root R --speech-store R/Features/W2V

Classes: MSP-Podcast's EmoClass A, H, N, S as the model's four (MDRE: angry, happy, sad, neutral; the
speech+text+mocap system: ang, exc, neu, sad, where MSP's Happy is scored as IEMOCAP's excited, the nearest of its
classes); every other class (U, C, D, F, O, X) and rows without EmoClass are left out and counted in the result.
Inputs are the checkpoint's own: the features it was trained on, extracted from MSP-Podcast's audio and
transcripts into <root>/Features on first use (same extractor and settings, checked against the checkpoint), its
vocabulary and its z-norm statistics. MSP-Podcast has no motion capture: a model with mocap among its modalities
has it absent for every utterance (as for an IEMOCAP speaker without markers); a mocap-only model is refused. An
utterance without a transcript gets no words (MDRE) or has its text absent (speech+text+mocap); listed.

Writes per checkpoint <results>/<run>_on_msp-podcast_<split>.csv (per utterance) + _confusion.csv/.png + .json
(WA, UA, the class mapping, what was left out, the inference time) and prints the table.
"""
import argparse
import sys
from pathlib import Path

from engine.cli import add_allow_unfinished_arg, add_precision_arg, entry, int_at_least, parser
from engine.experiment import Experiment, run


def build_parser() -> argparse.ArgumentParser:
    """cross_corpus.py's flags."""
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                    help="run folder(s) written by mdre.py or speech_text_mocap.py")
    from features.extract import add_corpus_args
    from systems.cross_corpus import SCORED_KINDS
    add_corpus_args(ap, SCORED_KINDS, "msp-podcast", "the corpus scored on")
    ap.add_argument("--root", type=Path, required=True,
                    help="MSP-Podcast release folder (Audios/, Labels/, ...), the manifest file, or EmoBox's "
                         "data/<corpus> folder (default: none)")
    ap.add_argument("--split", default=None, help="the split scored (default: test1 for msp-podcast, test otherwise; "
                                                  "e.g. test2, development, train)")
    ap.add_argument("--class-map", help="corpus class=model class,... or a .json file {corpus class: model class} "
                                        "(default: IEMOCAP's four-class models on MSP-Podcast use EmoClass A, H, N, "
                                        "S; otherwise classes are matched by name, case-insensitive)")
    f = ap.add_argument_group("features (speech+text+mocap models)")
    f.add_argument("--speech-model", help="wav2vec2 hub id or local folder (default: the one the checkpoint records)")
    f.add_argument("--text-model", help="BERT-style hub id or local folder (default: the one the checkpoint records)")
    f.add_argument("--speech-store", type=Path, help="wav2vec2 store of the corpus (default <root>/Features/"
                                                     "Wav2Vec_<model's folder name>)")
    f.add_argument("--text-store", type=Path, help="token store (default <root>/Features/Tokens_<model's folder name>)")
    ap.add_argument("--results", type=Path, default=Path("results"), help="folder of the result files")
    ap.add_argument("--batch-size", type=int_at_least(1), default=64, help="utterances per forward pass")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    add_precision_arg(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_allow_unfinished_arg(ap)
    return ap


def describe(argv=None) -> Experiment:
    """The experiment of these flags (systems.cross_corpus); outputs["results"] names each checkpoint's result
    file."""
    from systems.cross_corpus import describe as describe_cross
    return describe_cross(build_parser().parse_args(argv), argv)


@entry
def main(argv=None) -> int:
    run(describe(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

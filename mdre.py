#!/usr/bin/env python
"""Train and test the MDRE family (ARE, TRE, MDRE, MDREA) on IEMOCAP over every fold of a protocol, or on any
corpus with categorical labels (--corpus msp-podcast, manifest, emobox: one fold of its named splits, its declared
classes); print the fold table and the mean WA / UA (and macro-F1 off IEMOCAP).

    python mdre.py --root /data/IEMOCAP_full_release --model MDREA                 # the original's 5 random folds
    python mdre.py --root R --model MDRE --protocol loso --glove glove.840B.300d.txt  # leave one session out
    python mdre.py --root R --model MDREA --folds 1 --missing frames:0.3,words:0.3,audio-absent,text-absent
    python mdre.py --root R --model MDREA --unmasked-attention    # the 2018 paper's attention (padding unmasked)
    torchrun --nproc_per_node=2 mdre.py --root R --model TRE
    python mdre.py --corpus manifest --root corpus.csv --model TRE       # train / dev / test splits of a manifest
    python mdre.py --corpus emobox --root EmoBox/data/iemocap --fold 1   # no valid file: dev drawn from train
    python mdre.py --corpus msp-podcast --root MSP --test-split test1    # the eight primary emotions (O, X left out)

Features: the MFCC-E-D-A and prosody stores (feat_mdre.py; extracted here on first use when the audio is
there). Text: NLTK-style tokens, a vocabulary from the training part of each fold (`--faithful-vocab`: from
every utterance, as the original, which lets test words in), 300-d GloVe rows from `--glove` when given, else
random 100-d vectors. Protocols: `random5` (the original's utterance-level folds, seeds 337 / 3372, dev and
test drawn from the held-out fold) and `loso` (speaker-independent: each session tested once, fold k holding
out Session k, also when another session is absent; the dev part is 10 % of the training sessions' utterances,
seeded). Training as the original: Adam 1e-3, batch 128, gradients clipped to +-10, sigmoid cross-entropy on
one-hot targets (`--loss softmax`), validation every 0.3 epoch of draws, best model by dev loss, early stop after
8 validations without improvement, at most -iter steps. A missing-data condition must touch a stream the model
reads (ARE has no words, TRE no audio): one that cannot is refused before anything runs.

Writes per fold <out>/<MODEL>_<protocol>_fold<k>/ (model.safetensors + config.json, run.json, state.pt,
log.csv, loss.png) and <results>/<MODEL>_<protocol>_fold<k>.csv (per utterance) + _confusion.csv/.png + .json;
then <results>/<MODEL>_<protocol>_folds.csv/.json (the fold table: each fold's WA / UA with a 95 % bootstrap
interval over its test utterances, then the mean and standard deviation over folds). Missing data (issue 20):
`--protocols fixed,random,sweep` (fixed: audio only and text only beside the complete data, MMIN's protocol;
random: each modality of each utterance missing with probability p at every --rates rate, one always kept;
sweep: each --sweep-kinds kind (frames, bursts, words, wer; those the model reads) at every rate) and the
--missing list (protocol "conditions") score every fold's model (one series per fold) through
engine.robustness, averaged over --sim-seeds simulation seeds, with --bootstrap / --ci-method intervals:
<results>/<MODEL>_<protocol>_<p>.json/.csv/.png + _per_utterance.csv. ARE and TRE read one modality: fixed and
random are refused for them. Re-running resumes.

    python mdre.py --root R --model MDREA --protocol loso --protocols fixed,random,sweep --rates 0,0.3,0.6
Names carry every setting that differs from its default (MDREA_loso_norm_lr0.0005_fold5: run_tag), so runs with
other settings never share a run folder or a result file.
"""
import sys
from pathlib import Path

from engine.cli import (add_protocol_args, add_run_output_args, comma_ints, condition, entry, float_at_least,
                        fraction, int_at_least, parser, positive_float)
from engine.experiment import Experiment, run
from systems import mdre_experiment
# the naming and checking functions, read from this script by the tests
from systems.mdre_experiment import add_corpus_args, checked_conditions, output_names, run_tag  # noqa: F401


def build_parser():
    """mdre.py's flags."""
    from systems.mdre import KINDS
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, required=True,
                    help="IEMOCAP release folder (holding Session1..5); with --corpus, that corpus's root (see --corpus)")
    add_corpus_args(ap, "mdre.py")
    ap.add_argument("--model", choices=KINDS, default="MDREA", help="which model of the family")
    ap.add_argument("--protocol", choices=("random5", "loso"),
                    help="IEMOCAP: random5, the original's 5 random utterance folds (default), or loso, leave one "
                         "session out; a split corpus is one fold of its splits")
    ap.add_argument("--dev-share", type=fraction(0, 0.5, high_open=False, why="the rest must stay for training"),
                    default=0.1, help="loso, and a split corpus without a dev split: the share of the training "
                                      "part held out as the dev part (seeded; in (0, 0.5])")
    ap.add_argument("--folds", type=comma_ints(1),
                    help="comma-separated fold numbers to run, each once: 1-5 (random5), or the held-out session's "
                         "number (loso) (default: all)")
    ap.add_argument("--glove", type=Path, help="GloVe-format text file of 300-d word vectors (default: random 100-d)")
    ap.add_argument("--faithful-vocab", action="store_true",
                    help="build the vocabulary from every utterance, test ones included, as the original")
    ap.add_argument("--loss", choices=("sigmoid", "softmax"), default="sigmoid",
                    help="sigmoid cross-entropy on one-hot targets (the original) or softmax cross-entropy")
    ap.add_argument("--normalise", action="store_true",
                    help="z-normalise MFCC and prosody with the training part's statistics (the original feeds raw "
                         "values: Hz, dB and log-energy scales)")
    ap.add_argument("-iter", "--iterations", type=int_at_least(1), default=10000, help="most training steps")
    ap.add_argument("-batch", "--batch-size", type=int_at_least(2), default=128, help="utterances per batch")
    ap.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1),
                    help="validate every N steps (default: int(0.3 * train size / batch) + 1, the original's)")
    ap.add_argument("--patience", type=int_at_least(0, "0 is off"), default=7,
                    help="validations without improvement tolerated (0: off)")
    ap.add_argument("--clip", type=float_at_least(0, "0 is off"), default=10.0,
                    help="clip gradients by value to +-clip (0: off)")
    ap.add_argument("--unmasked-attention", action="store_true",
                    help="MDREA: the 2018 paper's attention, a softmax over all 128 text positions with the padding "
                         "(the original's masking fix came in 2020; default: masked)")
    ap.add_argument("--train-missing", type=condition,
                    help="missing data as training augmentation, e.g. frames:0.2, words:0.2 (default: none)")
    ap.add_argument("--missing", help="test every fold also under these comma-separated conditions, e.g. "
                                      "frames:0.3,words:0.3,wer:0.2,audio-absent,text-absent,present:audio "
                                      "(default: none); written as the protocol 'conditions'")
    ap.add_argument("--seed", type=int_at_least(0), default=0,
                    help="seed of initialisation, sampling, dropout, missing data")
    add_protocol_args(ap)
    add_run_output_args(ap, "mdre")
    return ap


def describe(argv=None) -> Experiment:
    """The Experiment of these flags (systems.mdre_experiment.describe): names, folds and conditions, every
    setting that cannot apply refused before any work."""
    ap = build_parser()
    return mdre_experiment.describe(ap.parse_args(argv), ap, argv)


@entry
def main(argv=None) -> int:
    run(describe(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

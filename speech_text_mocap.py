#!/usr/bin/env python
"""Speech + text + motion-capture fusion on IEMOCAP (four classes ang, exc, neu, sad; or speech and text on any
corpus with categorical labels: --corpus msp-podcast, manifest, emobox, one fold of its named splits): train and test every
configuration of the ablation in one command, print the table, write it as CSV + bar chart, and test the
models with modalities, frames or words missing (the literature's protocols: --protocols).

    python speech_text_mocap.py --root /data/IEMOCAP_full_release                 # all ten configurations
    python speech_text_mocap.py --root R --configs speech+text+mocap,text --loso  # + leave-one-session-out mean
    python speech_text_mocap.py --root R --configs speech+text+mocap --modality-dropout 0.3
    python speech_text_mocap.py --root R --configs speech+text+mocap,text --protocols fixed,random,sweep
    torchrun --nproc_per_node=2 speech_text_mocap.py --root R
    python speech_text_mocap.py --corpus manifest --root corpus.csv --configs speech,text,speech+text

Configurations: speech, text, mocap (face + head + hand), face, head, hand, speech+text, speech+mocap,
text+mocap, speech+text+mocap. Each is one transformer encoder per modality with padding masks, concatenation
fusion and a classifier (models/multimodal_transformer.py; systems/speech_text_mocap.py for the data).
Split: Session 5 is the test set, the dev part (best model, early stopping) a seeded --dev-share of Sessions 1-4;
--loso also runs the other four held-out sessions and reports the mean. Every configuration sees the same
utterances; one whose stream is missing (no mocap when the speaker wore no markers, an empty transcript) has
that modality absent (--only-with-mocap keeps the utterances with motion capture only).

Features (extracted into the stores on first use, resumable; failures listed in the stores' errors-*.csv):
wav2vec2 frames from --speech-model, BERT token features from --text-model (hub ids or local folders),
motion capture from the dialog MOCAP files (features/mocap.py).

Writes per configuration and held-out session <out>/stm_<config>_s<k>/ (model.safetensors + config.json,
run.json, state.pt, log.csv, loss.png) and <results>/stm_<config>_s<k>.csv (per utterance) + _confusion.csv/.png
+ .json; then <results>/stm_ablation.csv/.json/.png (WA / UA with 95 % bootstrap intervals, and the share of test
utterances that had each stream: a configuration whose stream an utterance lacks predicts it from the learned
absent vector, for mocap alone a constant guess) and, when the three-way model is trained,
<results>/stm_missing.csv/.json/.png (WA / UA under each --missing condition, over simulation seeds).
Missing-data protocols (engine.robustness; each condition's draws averaged over --sim-seeds, intervals over test
utterances, paired tests against the complete data, the share of utterances that really had each stream), per
configuration and held-out session <results>/stm_<config>_s<k>_<protocol>.json/.csv/.png + _per_utterance.csv:
fixed (every non-empty proper subset of the configuration's streams present, audio / text / mocap, face, head and
hand counting as mocap; with the mean and the pooled average), random (each stream of each utterance missing with
probability p at every --rates rate, one kept), sweep (each --sweep-kinds kind the configuration's streams allow,
at every rate: frames, bursts, words = words removed and the transcript re-encoded, wer = simulated recogniser
errors, word-rows = the original's blanked token rows), and the --missing list as "conditions" (three-way model).
Fixed and random apply to configurations of two or more streams. Re-running resumes. Names carry every setting
that differs from its default (stm_text_s5_lr0.001: describe), so runs with other settings never share a run
folder or a result file; the protocol flags are in no run name (adding one retrains nothing).
"""
import sys
from pathlib import Path

from engine.cli import (add_protocol_args, add_run_output_args, condition, entry, fraction, int_at_least, parser,
                        positive_float)
from engine.experiment import Experiment, run

DEFAULT_MISSING = ("audio-absent,text-absent,mocap-absent,frames:0.1,frames:0.3,frames:0.5,"
                   "words:0.1,words:0.3,words:0.5")


def build_parser():
    """The command line: the corpus and split, then the features, model, training, protocol and output flags."""
    from systems.speech_text_mocap import CONFIGURATIONS
    ap = parser(__doc__)
    from systems.mdre_experiment import add_corpus_args
    ap.add_argument("--root", type=Path, required=True,
                    help="IEMOCAP release folder (holding Session1..5); with --corpus, that corpus's root (see --corpus)")
    add_corpus_args(ap, "speech_text_mocap.py")
    ap.add_argument("--configs", default=",".join(CONFIGURATIONS),
                    help="comma-separated configurations to train and test, in table order")
    ap.add_argument("--loso", action="store_true",
                    help="also hold out Sessions 1-4 in turn and report the leave-one-session-out mean")
    ap.add_argument("--only-with-mocap", action="store_true",
                    help="keep only utterances whose speaker wore the markers (every configuration)")
    ap.add_argument("--dev-share", type=fraction(0, 0.5, high_open=False, why="the rest of the training sessions "
                                                                               "must stay for training"),
                    default=0.1, help="share of the training sessions' utterances (a split corpus without a dev "
                                      "split: of its training split) held out as the dev part (seeded; in (0, 0.5])")
    add_feature_args(ap.add_argument_group("features"))
    add_model_args(ap.add_argument_group("model"))
    add_training_args(ap.add_argument_group("training"))
    add_protocol_args(ap)  # --protocols ... --ci-method: on every configuration each applies to (protocols_of)
    add_run_output_args(ap.add_argument_group("output"), "speech-text-mocap")
    return ap


def add_feature_args(f) -> None:
    """The models whose features each stream reads, their stores, and how the streams are pooled."""
    f.add_argument("--speech-model", default="facebook/wav2vec2-large-robust",
                   help="wav2vec2 hub id, local folder, or tiny-random-wav2vec2 (the demo's tiny local model, offline)")
    f.add_argument("--text-model", default="bert-base-uncased",
                   help="BERT-style hub id, local folder, or tiny-random-bert (the demo's tiny local BERT, its "
                        "vocabulary from the transcripts of Sessions 1-4; offline)")
    f.add_argument("--speech-store", type=Path, help="wav2vec2 store (default <root>/Features/Wav2Vec_<model's folder name>)")
    f.add_argument("--text-store", type=Path, help="token feature store (default <root>/Features/Tokens_<model's folder name>)")
    f.add_argument("--mocap-store", type=Path, help="mocap store (default <root>/Features/Mocap189x200)")
    f.add_argument("--speech-pool", type=int_at_least(1), default=5,
                   help="wav2vec2 frames averaged into one encoder step (5: 10 steps/s)")
    f.add_argument("--text-pooling", choices=("cls", "mean"), default="cls",
                   help="text vector: the encoder's [CLS] row, or the mean over tokens")
    f.add_argument("--mocap-velocity", action="store_true",
                   help="append every mocap column's frame-to-frame difference (motion energy; not in the original)")


def add_model_args(m) -> None:
    """The sizes of the encoders and the classifier."""
    m.add_argument("--d-model", type=int_at_least(4), default=128, help="width of every encoder")
    m.add_argument("--heads", type=int_at_least(1), default=4, help="attention heads per layer")
    m.add_argument("--layers", type=int_at_least(1), default=2, help="transformer layers per encoder")
    m.add_argument("--ff", type=int_at_least(1), default=256, help="feed-forward width")
    m.add_argument("--dropout", type=fraction(0, 1, low_open=False), default=0.1,
                   help="dropout inside the encoders (in [0, 1))")
    m.add_argument("--fusion-hidden", type=int_at_least(1), default=128, help="hidden units of the classifier")


def add_training_args(t) -> None:
    """Steps, batches, early stopping, modality dropout and missing data in training, the --missing list."""
    from systems.speech_text_mocap import THREE_WAY
    t.add_argument("-iter", "--iterations", type=int_at_least(1), default=3000, help="most training steps")
    t.add_argument("-batch", "--batch-size", type=int_at_least(2), default=32, help="utterances per batch")
    t.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    t.add_argument("--val-every", type=int_at_least(1), default=100, help="validate every N steps")
    t.add_argument("--patience", type=int_at_least(0, "0 is off"), default=10,
                   help="validations without improvement tolerated (0: off)")
    t.add_argument("--modality-dropout", type=fraction(0, 1, low_open=False), default=0.0,
                   help="training: mark each present modality of an utterance absent with this probability "
                        "(at least one kept), so fused models degrade gracefully")
    t.add_argument("--train-missing", type=condition,
                   help="missing data as training augmentation, e.g. frames:0.2, word-rows:0.2 or random-missing:0.3 "
                        "(words and wer, which re-encode transcripts, are not; default: none)")
    t.add_argument("--missing", default=DEFAULT_MISSING,
                   help=f"conditions the {THREE_WAY} model is tested under ('none' to skip); written as "
                        "<name>_conditions.* per session and stm_missing.* over sessions")
    t.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seed of initialisation, sampling, dropout, missing data")


def describe(argv=None) -> Experiment:
    """The experiment these flags describe (systems.speech_text_mocap_experiment.describe): every flag that cannot
    apply refused, every run folder and result file named; no file is read."""
    from systems.speech_text_mocap_experiment import describe as describe_flags
    ap = build_parser()
    return describe_flags(ap.parse_args(argv), ap, sys.argv[1:] if argv is None else argv)


@entry
def main(argv=None) -> int:
    run(describe(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

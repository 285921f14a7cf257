"""The audio-text system's experiment hooks (System 3: main.py without DeepEmoCluster's flags).

Seed 000's flow: train the co-attention model on Act, Dom and Val at once, then score the test split and
print the original's banner.

`describe` reads the flags alone: --train-missing refused where it cannot apply, the run name
TransformerCoAtten_iter<I>_batch<B>_AudioText_<chunking>[_miss-<condition>]_MTL and its three result files.
`AUDIO_TEXT.folds` resolves the default root, stores and NormTerms (said on stderr), checks them and reads the
train, validation and test splits (features, labels, TextGrids); `test` writes one per-utterance CSV and result
JSON per attribute and prints the banner and the CCCs.
"""
from __future__ import annotations

from pathlib import Path

from corpora.records import ATTRIBUTES
from engine.cli import UserError
from engine.experiment import Experiment, Fold, Training
from systems.msp_experiment import resolved_settings


def audio_text_parser(doc: str | None):
    """System 3's parser (main.py without -ep/-nc/-mt/-unlabel)."""
    from engine.cli import int_at_least, parser, positive_float
    from features.missing import parse_condition
    from systems.audio_text import STRATEGIES
    from systems.common import DEFAULT_STORES, ROOT_HELP, add_training_args
    ap = parser(doc)
    ap.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    ap.add_argument("--audio-store", type=Path, help="wav2vec2 store (default: the first of <root>/Features/" +
                    " or ".join(DEFAULT_STORES["audio-text audio"]) + " that exists: the original's, then the demo's)")
    ap.add_argument("--text-store", type=Path, help="text token store (default: the first of <root>/Features/" +
                    " or ".join(DEFAULT_STORES["audio-text text"]) + " that exists)")
    ap.add_argument("--normterm-audio", type=Path,
                    help="audio NormTerm, its label statistics are the ones used, as the original (default: the "
                         "first of <root>/NormTerm_<audio store name>, <root>/NormTerm_Speech, ./NormTerm_Speech "
                         "whose statistics fit the store)")
    ap.add_argument("--normterm-text", type=Path, help="text NormTerm (default: as --normterm-audio, with "
                                                       "NormTerm_Text)")
    ap.add_argument("-iter", "--iterations", type=int_at_least(1), default=5000, help="training iterations")
    ap.add_argument("-batch", "--batch-size", type=int_at_least(2), default=128, help="utterances per batch")
    ap.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1), default=100, help="validate every N iterations")
    ap.add_argument("--chunking", choices=STRATEGIES, default="multiscale",
                    help="multiscale (random 0.2-1 s crops in training), fixed (the same windows, no crop), lexical "
                         "(chunks cut at the TextGrid word boundaries)")
    ap.add_argument("--train-missing", type=parse_condition,
                    help="missing data as regularisation in training, e.g. bursts:0.2, frames:0.3, word-rows:0.2, "
                         "text-absent, random-missing:0.3 (default: none; words, wer and words+audio re-encode "
                         "the transcript and are evaluation-only)")
    ap.add_argument("--test-split", default="test1", help="split scored after training (default: test1; a manifest "
                                                          "without test1 scores its test split)")
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="folder for the per-utterance test CSVs and their result JSON files")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    from engine.cli import add_precision_arg
    add_precision_arg(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_training_args(ap, "seed of the initialisation, sampling, crops, missing data and dropout", "audio-text")
    return ap


def describe(argv, doc: str | None) -> Experiment:
    """main.py (audio-text): train <out>/<run name>, then score --test-split into <results>/<run name>_<split>_<a>
    .csv/.json per attribute (outputs "name", "run", "csvs" and "results": {"Act"|"Dom"|"Val": path})."""
    from engine.cli import check_conditions, precision_tag
    from systems.audio_text import MODALITIES, TRAIN_KINDS, TRAIN_WHY, run_name
    from utils import output_file, resolve_device
    args = audio_text_parser(doc).parse_args(argv)
    check_conditions([args.train_missing], "--train-missing", "the audio-text model", MODALITIES, TRAIN_KINDS,
                     TRAIN_WHY, training=True)
    args.train_condition = str(args.train_missing) if args.train_missing else None
    args.name = name = (run_name(args.iterations, args.batch_size, args.chunking, args.train_condition)
                        + precision_tag(args.precision))
    csvs = {a.capitalize(): args.results / f"{name}_{args.test_split}_{a}.csv" for a in ATTRIBUTES}
    return Experiment(
        system="audio-text", script="main.py", argv=tuple(argv), settings=args, corpus=args.root, protocol="splits",
        folds=(args.test_split,), hooks="systems.audio_text_experiment:AUDIO_TEXT",
        training=Training(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                          val_every=args.val_every, seed=args.seed, device=resolve_device(args.device),
                          resume=not args.no_resume, progress=not args.no_progress, deterministic=args.deterministic,
                          precision=args.precision),
        outputs={"name": name, "run": args.out / name, "csvs": csvs,
                 "results": {a: output_file(p, ".json") for a, p in csvs.items()}})


def resolved_inputs(args) -> dict:
    """{"audio" | "text": (store path, NormTerm path)}: the flags', else the defaults (said on stderr); the root
    fills in args.root."""
    from systems.common import check_corpus_args, default_normterm, default_root, default_store, print_defaults
    check_corpus_args(args)
    notes: list[str] = []
    args.root = default_root(args.root, notes)
    paths = {}
    for kind, flag in (("audio", "--audio-store"), ("text", "--text-store")):
        store = default_store(flag, getattr(args, f"{kind}_store"), args.root, f"audio-text {kind}", notes,
                              args.corpus)
        nt = default_normterm(f"--normterm-{kind}", getattr(args, f"normterm_{kind}"), args.root,
                              f"audio-text {kind}", store, notes, args.corpus)
        paths[kind] = (store, nt)
    print_defaults(notes)
    return paths


def checked_inputs(args, paths: dict) -> tuple:
    """(audio store, text store, audio NormTerm, text NormTerm), each of the kind and width this system needs."""
    from features.normterm import NormTerm
    from features.store import FeatureStore
    from systems.common import normterm_lacks, require_store
    (a_path, args.normterm_audio), (t_path, args.normterm_text) = paths["audio"], paths["text"]
    try:
        audio, text = FeatureStore(a_path), FeatureStore(t_path)
        nt_a, nt_t = NormTerm.load(args.normterm_audio), NormTerm.load(args.normterm_text)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    require_store(audio, "--audio-store", "wav2vec2")  # the kinds of features, before any work (issue 19.14)
    require_store(text, "--text-store", "tokens")
    for nt, store, flag in ((nt_a, audio, "--normterm-audio"), (nt_t, text, "--normterm-text")):
        lacks = normterm_lacks(nt, ATTRIBUTES if flag == "--normterm-audio" else (), store.dims)
        if lacks:
            raise UserError(f"{flag} {getattr(args, flag[2:].replace('-', '_'))}: {lacks}")
    return audio, text, nt_a, nt_t


class AudioText:
    """main.py's hooks (audio-text): one model on the train split, validated on --val-split, scored on
    --test-split."""
    name, metric, attributes = "audio-text", "CCC", ATTRIBUTES

    def folds(self, exp: Experiment) -> list[Fold]:
        from systems.audio_text import audio_text_items
        from systems.common import read_split
        from utils import writable_dir
        args = resolved_settings(exp)
        paths = resolved_inputs(args)
        audio, text, nt_a, nt_t = checked_inputs(args, paths)
        splits = {s: audio_text_items(args.root, s, audio, text, kind=args.corpus, fold=args.fold)
                  for s in (args.train_split, args.val_split, args.test_split)}
        args.corpus_name = read_split(args.corpus, args.root, args.train_split, fold=args.fold).name
        run_dir = writable_dir(exp.outputs["run"])
        writable_dir(args.results)
        exp.corpus = args.root
        exp.inputs = {"audio_store": audio.root, "text_store": text.root, "normterm_audio": args.normterm_audio,
                      "normterm_text": args.normterm_text}
        what = "split (with labels, features and TextGrids)"
        return [Fold(args.test_split, args.test_split, splits[args.train_split][0], splits[args.val_split][0],
                     splits[args.test_split][0], run_dir=run_dir, train_name=f"{args.train_split} {what}",
                     val_name=f"{args.val_split} {what}",
                     extra={"args": args, "streams": (audio, text, nt_a, nt_t), "splits": splits})]

    def method(self, exp: Experiment, fold: Fold):
        from features.missing import parse_condition
        from systems.audio_text import AudioTextMethod
        from systems.common import run_corpus
        args, splits = fold.extra["args"], fold.extra["splits"]
        audio, text, nt_a, nt_t = fold.extra["streams"]
        cond = args.train_condition
        words = {u: w for _, ws, _ in splits.values() for u, w in ws.items()}
        transcripts = {u: p for _, _, ts in splits.values() for u, p in ts.items()}
        method = AudioTextMethod(audio, text, nt_a, nt_t, words, strategy=args.chunking, train_condition=cond,
                                 seed=args.seed, corpus_version=args.root.name, corpus=run_corpus(args),
                                 transcripts=transcripts)
        if cond and parse_condition(cond).kind == "word-rows":
            bad = method.without_word_alignment(fold.train)
            if bad:
                raise UserError(f"--train-missing {cond}: {len(bad)} {args.train_split} utterance(s) have no "
                                f"transcript matching their text features: {', '.join(bad[:10])}"
                                f"{' ...' if len(bad) > 10 else ''}")
        return method

    def test(self, exp: Experiment, fold: Fold, method, model) -> dict:
        from engine.loop import evaluate
        from engine.resources import ResourceMonitor, inference_record
        from systems.common import corpus_fields, with_interval, write_scores
        args, test, device = fold.extra["args"], fold.test, exp.training.device
        audio, _, nt_a, _ = fold.extra["streams"]
        with ResourceMonitor() as mon:
            pred = evaluate(method, model, test, 64, device)
        inference = inference_record(mon.seconds, len(test), audio.seconds([u for u, _ in test]), mon)
        other = args.corpus_name if args.corpus != "msp-podcast" else None
        for line in summary_banner(args.root, args.test_split, args.iterations, args.batch_size, args.chunking, other):
            print(line)
        row = {}
        for k, a in enumerate(ATTRIBUTES):
            scored = write_scores(exp.outputs["csvs"][a.capitalize()], [(u, y[k]) for u, y in test],
                                  nt_a.denorm(pred[:, k], a),
                                  result={"system": "audio_text", "attribute": a, **corpus_fields(args),
                                          "split": args.test_split, "checkpoint": str(fold.run_dir),
                                          "chunking": args.chunking, "train_missing": args.train_condition,
                                          "seed": args.seed, **inference})
            print(f"{a.capitalize()}-CCC: {with_interval(scored)}")
            row[a.capitalize()] = scored.value
        res = fold.extra["loop_result"]
        print("=" * 51)
        print(f"{res.steps_run} iterations this run; best validation loss {res.best_val:.4f} at iteration "
              f"{res.best_step}; model in {fold.run_dir}")
        return row


AUDIO_TEXT = AudioText()


def summary_banner(root: Path, split: str, iterations: int, batch: int, chunking: str,
                   corpus_name: str | None = None) -> list[str]:
    """The original's test banner: its text for its own setting (MSP-PODCAST v1.10, Test1, MultiRslChunk),
    the corpus release, split and chunking of this run otherwise; `corpus_name` names a corpus other than
    MSP-Podcast (a manifest's)."""
    import re
    release = re.fullmatch(r"MSP-PODCAST-Publish-(\d+\.\d+)", root.resolve().name)
    corpus = (f"{corpus_name} ({root})" if corpus_name else f"MSP-PODCAST v{release.group(1)}" if release
              else f"MSP-PODCAST ({root})")
    title = f"## Summary Performance on {corpus} {split[:1].upper()}{split[1:]} Set ##"
    tag = {"multiscale": "MultiRslChunk", "fixed": "FixedChunk", "lexical": "LexicalChunk"}[chunking]
    rule = "#" * max(57, len(title) + 1)  # the original's rule is one longer than its title
    return [rule, title, rule, f"Iterations: {iterations}", f"Batch_Size: {batch}",
            f"Model_Type: TransformerCoAtten-AudioText-ParymidPool-{tag}"]

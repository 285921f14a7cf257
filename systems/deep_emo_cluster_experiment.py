"""DeepEmoCluster's experiment hooks (main.py -ep ..., online_testing.py).

System 2 on the experiment layer (engine.experiment), beside the chunk LSTM's parts it shares
(systems.msp_experiment).

`describe` reads the flags alone: -batch against the torchrun processes, the one unlabelled pool -unlabel needs,
the run name TempDeepEmoCluster_epoch<EP>_batch<B>_<K>clusters_<emo>_<mt>_unlabel<U>. `DEEP_EMO_CLUSTER.folds`
resolves the defaults, reads the splits, checks -nc against the chunks clustered and draws the unlabelled pool
(extracting what it lacks; refused when it holds evaluation utterances unless --allow-test-in-pool); the testing
hooks (`DEEP_EMO_CLUSTER_TEST`) load our folder or an original .pth.tar of any name and print the original's lines.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError
from engine.experiment import Experiment, Fold
from systems.msp_experiment import (resolved_settings, testing_experiment, testing_fold, trained_line,
                                    training_experiment, training_fold)


def deep_emo_cluster_parser(doc: str | None):
    """System 2's parser (main.py with -ep/-nc/-mt/-unlabel); `doc` None: its flags alone, for main.py --help."""
    from engine.cli import parser
    from systems.common import add_training_args
    from systems.deep_emo_cluster import add_cli_args
    other = ("Without -ep, -nc, -mt and -unlabel, main.py is the audio-text system (System 3): `python main.py "
             "--help` lists its flags.")
    ap = parser(doc, epilog=other if doc else None)
    add_cli_args(ap)
    pool = ap.add_argument_group("unlabelled pool (with -unlabel U > 0; one of)")
    pool.add_argument("--unlabelled-store", type=Path, help="a mel feature store: all its utterances (default: none)")
    pool.add_argument("--unlabelled-wav-dir", type=Path,
                      help="a folder of WAVs; mel features go to <dir>/Features/Mel_Spec128 (default: none)")
    pool.add_argument("--unlabelled-split", help="a split of --root, labels ignored, e.g. test3 (default: none)")
    pool.add_argument("--unlabel-seed", type=int, default=99, help="seed of the draw of U pool sentences")
    pool.add_argument("--test-split", default="test1",
                      help="the split the model will be scored on (online_testing.py's default): the pool may not "
                           "hold its utterances, nor --val-split's")
    pool.add_argument("--allow-test-in-pool", action="store_true",
                      help="train on a pool that holds --test-split or --val-split utterances anyway (warned "
                           "about, and recorded in config.json and in online_testing.py's result files)")
    add_training_args(ap, "seed of the initialisation, k-means, sampling, triplets and dropout", "deep-emo-cluster")
    ap.add_argument("--kmeans", choices=("auto", "faiss", "torch"), default="auto",
                    help="k-means backend: auto = faiss-cpu when importable, else the torch implementation")
    return ap


def run_name_of(args) -> str:
    """The original's run name, plus the precision when not fp32 (a bf16 run never stands in fp32's folder)."""
    from engine.cli import precision_tag
    from systems.deep_emo_cluster import run_name
    return (run_name(args.epoch, args.batch_size, args.num_clusters, args.emo_attr, args.model_type, args.unlabel_size)
            + precision_tag(args.precision))


def describe(argv, doc: str | None) -> Experiment:
    """main.py -ep ...: the training run these flags ask for, <out>/<run name> (outputs "name", "run"); a -batch
    too small for the torchrun processes and an -unlabel without exactly one pool are refused here."""
    from engine.loop import ddp_env
    args = deep_emo_cluster_parser(doc).parse_args(argv)
    world = ddp_env()[1]
    if args.batch_size < 2 * world:  # each process trains on its share of a batch
        raise UserError(f"-batch {args.batch_size}: under torchrun each of the {world} processes needs at least 2 "
                        f"sentences of a batch (a one-sentence share has one label: 1 - CCC is constant); give "
                        f"-batch {2 * world} or more")
    given = [x for x in (args.unlabelled_store, args.unlabelled_wav_dir, args.unlabelled_split) if x is not None]
    if args.unlabel_size and len(given) != 1:
        raise UserError("-unlabel needs exactly one pool: --unlabelled-store, --unlabelled-wav-dir or "
                        "--unlabelled-split")
    args.name = run_name_of(args)
    return training_experiment("deep-emo-cluster", "main.py", argv, args,
                               "systems.deep_emo_cluster_experiment:DEEP_EMO_CLUSTER", iterations=0, epochs=args.epoch)


def describe_testing(argv, ap) -> Experiment:
    """online_testing.py: the scoring these flags ask for (outputs "csvs", "results": {emo: path}, "name")."""
    args = ap.parse_args(argv)
    args.name = run_name_of(args)
    return testing_experiment("deep-emo-cluster", "online_testing.py", argv, args,
                              "systems.deep_emo_cluster_experiment:DEEP_EMO_CLUSTER_TEST")


# ------------------------------------------------------------------------------------------ the unlabelled pool
def pool_overlap(args, drawn: list[str]) -> dict[str, int]:
    """split -> how many drawn pool utterances are also in the validation or test split, matched by utterance
    id (a WAV folder's sub/name.wav counts as name). Refused unless --allow-test-in-pool; then warned about and
    recorded (the run's config, and the result files of online_testing.py)."""
    from systems.common import corpus_args, read_split
    names = {u.rsplit("/", 1)[-1] for u in drawn}
    overlap = {}
    kind, fold = corpus_args(args)
    for split in dict.fromkeys((args.val_split, args.test_split)):
        ids = {r.utt_id for r in read_split(kind, args.root, split, fold=fold).records}
        if names & ids:
            overlap[split] = len(names & ids)
    if overlap:
        what = ", ".join(f"{n} of {split}" for split, n in overlap.items())
        source = args.unlabelled_split or args.unlabelled_wav_dir or args.unlabelled_store
        if not args.allow_test_in_pool:
            raise UserError(f"the unlabelled pool ({source}) holds evaluation utterances ({what}): training on "
                            "them makes the scores of those splits untrue; choose another pool, or add "
                            "--allow-test-in-pool to do it anyway (it is recorded)")
        print(f"warning: the unlabelled pool holds evaluation utterances ({what}), allowed by --allow-test-in-pool "
              "and recorded in the run's config.json", file=sys.stderr)
    return overlap


def pool_items(args, store) -> tuple[list, object, str]:
    """(the pool's features.extract Items, its store, a description of the source) of the one pool flag given."""
    from corpora import read_corpus
    from features.extract import Item, wav_folder
    from features.mel import MelSpectrogram
    from features.store import FeatureStore
    if args.unlabelled_split is not None:  # a corpus split, labels ignored; features in the corpus' store
        records = read_corpus(args.corpus, args.root, args.unlabelled_split, fold=args.fold).records
        return [Item.from_record(r) for r in records], store, f"split {args.unlabelled_split}"
    if args.unlabelled_wav_dir is not None:
        items, clashes = wav_folder(args.unlabelled_wav_dir)
        for f, why in clashes:
            print(f"warning: {f} left out of the pool: {why}", file=sys.stderr)
        mel = MelSpectrogram()
        pool_store = FeatureStore.create(args.unlabelled_wav_dir / "Features" / mel.name, name=mel.name,
                                         extractor=type(mel).__name__, params=mel.params, dims=mel.dims,
                                         frame_rate=mel.frame_rate, extra={"norm_pooling": mel.norm_pooling})
        return items, pool_store, f"WAV folder {args.unlabelled_wav_dir}"
    pool_store = FeatureStore(args.unlabelled_store)
    return [Item(u) for u in pool_store.keys()], pool_store, f"store {args.unlabelled_store}"


def unlabelled_pool(args, store) -> tuple[list[str], object, str]:
    """(the U utterances drawn, their store, a description of the source); features are extracted on first use."""
    from features.extract import extract_to_store
    from features.mel import MelSpectrogram
    items, pool_store, source = pool_items(args, store)
    if pool_store.dims != store.dims or pool_store.meta.get("params") != store.meta.get("params"):
        raise UserError(f"{pool_store.root}: the pool's features ({pool_store.meta.get('name')}) differ from "
                        f"{store.root}'s")
    missing = [it for it in items if it.utt_id not in pool_store]
    if missing and all(it.audio_path is not None for it in missing):
        extract_to_store(MelSpectrogram(), missing, pool_store, progress=not args.no_progress)
        pool_store.refresh()
    names = sorted(it.utt_id for it in items if it.utt_id in pool_store)
    if len(names) < len(items):
        print(f"warning: {len(items) - len(names)} pool utterance(s) have no features (see "
              f"{pool_store.root}/errors-*.csv) and are left out", file=sys.stderr)
    drawn = [names[i] for i in np.random.RandomState(args.unlabel_seed).permutation(len(names))[: args.unlabel_size]]
    if len(drawn) < args.unlabel_size:
        print(f"warning: the pool holds {len(names)} utterances, fewer than -unlabel {args.unlabel_size}: "
              "all are used", file=sys.stderr)
    return drawn, pool_store, source


# ------------------------------------------------------------------------------------------ the hooks
class DeepEmoCluster:
    """main.py -ep ...'s hooks: DeepEmoCluster on one attribute of the train split (+ an unlabelled pool)."""
    name, metric, attributes = "deep-emo-cluster", "CCC", ("act", "dom", "val")

    def folds(self, exp: Experiment) -> list[Fold]:
        from systems.deep_emo_cluster import check_cluster_count
        fold = training_fold(exp, resolved_settings(exp), "mel", "deep-emo-cluster")
        args = fold.extra["args"]
        check_cluster_count(args.num_clusters, {f"{args.train_split} split": len(fold.train)})
        drawn, pool_store, source = unlabelled_pool(args, fold.extra["store"]) if args.unlabel_size else ([], None, "")
        check_cluster_count(args.num_clusters, {"unlabelled pool": len(drawn)})
        overlap = pool_overlap(args, drawn) if drawn else {}
        fold.extra.update(pool=drawn, pool_store=pool_store, pool_source=source, pool_overlap=overlap)
        return [fold]

    def method(self, exp: Experiment, fold: Fold):
        from systems.common import run_corpus
        from systems.deep_emo_cluster import DeepEmoClusterMethod
        args, drawn = fold.extra["args"], fold.extra["pool"]
        fold.extra["method"] = DeepEmoClusterMethod(
            fold.extra["store"], fold.extra["normterm"], args.attribute, args.model_type, args.num_clusters,
            args.batch_size, seed=args.seed, pool_store=fold.extra["pool_store"], pool=drawn,
            pool_source=fold.extra["pool_source"], pool_seed=args.unlabel_seed if drawn else None,
            pool_requested=args.unlabel_size if drawn else None, pool_overlap=fold.extra["pool_overlap"],
            kmeans_backend=args.kmeans, corpus_version=args.root.name, corpus=run_corpus(args))
        return fold.extra["method"]


def deep_emo_cluster_trained(exp: Experiment, outcome) -> str:
    """main.py -ep ...'s last line (rank 0): speed, the best validation CCC with its interval, run folder."""
    res = outcome.loop
    speed = (f"{res.steps_run} steps in {res.seconds:.1f} s, {100 * res.data_seconds / res.seconds:.1f}% of the "
             "time waiting for data" if res.steps_run else "")
    best = validation_ccc(exp, outcome.fold, 1 - res.best_val)
    return trained_line(exp, outcome, speed, best, f"epoch {res.best_step} of {res.epochs}")


def validation_ccc(exp: Experiment, fold: Fold, value: float) -> str:
    """The best validation CCC with its 95 % bootstrap interval over the validation sentences: the best model
    scores them once more (CCC is the same on the z-normalised scale the loop validates on)."""
    from engine.loop import evaluate, load_best
    from metrics import score
    method, device = fold.extra["method"], exp.training.device
    model = load_best(method, fold.run_dir, device)
    s = score("CCC", method.targets(fold.dev), evaluate(method, model, fold.dev, exp.training.batch_size, device))
    return f"{value:.4f} {s.ci_text()}".rstrip()


class DeepEmoClusterTest:
    """online_testing.py's hooks: our checkpoint folder or an original .pth.tar scored on one split."""
    name, metric, attributes = "deep-emo-cluster", "CCC", ("act", "dom", "val")

    def folds(self, exp: Experiment) -> list[Fold]:
        return [testing_fold(exp, resolved_settings(exp), "mel", "deep-emo-cluster")]

    def method(self, exp: Experiment, fold: Fold):
        return None  # the Predictor carries its own model and NormTerm

    def load(self, exp: Experiment, fold: Fold, method):
        from systems.deep_emo_cluster import Predictor
        args, ckpt = fold.extra["args"], fold.extra["checkpoint"]
        print(f"=> loading checkpoint '{ckpt}'")
        try:
            pred = Predictor.load(ckpt, normterm=fold.extra["normterm"], device=exp.training.device,
                                  flags={"variant": args.model_type, "num_clusters": args.num_clusters,
                                         "attribute": args.attribute}, allow_unfinished=exp.training.allow_unfinished)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
        print("Loaded")
        return pred

    def test(self, exp: Experiment, fold: Fold, method, pred) -> dict:
        from systems.common import settings_from_checkpoint, with_interval
        from systems.deep_emo_cluster import recorded_settings
        from systems.msp_experiment import score_checkpoint
        args, store, ckpt = fold.extra["args"], fold.extra["store"], fold.extra["checkpoint"]
        if "identified_by" in pred.config:  # an original file: say what it was taken for, and why
            print(f"=> {ckpt.name}: {pred.config['model']['variant']} with {pred.config['model']['num_clusters']} "
                  f"clusters, {args.emo_attr} ({pred.config['identified_by']})")
        settings = settings_from_checkpoint(ckpt, recorded_settings(pred.config), {
            "-ep": args.epoch, "-batch": args.batch_size, "-nc": args.num_clusters, "-emo": args.emo_attr,
            "-mt": args.model_type, "-unlabel": args.unlabel_size})
        want = pred.config.get("features", {}).get("name")
        if want != store.meta.get("name") or store.dims != 128:
            raise UserError(f"{ckpt} was trained on {want} features, but {args.store} holds "
                            f"{store.meta.get('name')} ({store.dims}-d)")
        overlap = pool_overlap_warning(pred, args.split)
        print("Start Online Testing Process")
        scored, ms = score_checkpoint(fold, pred, "deep_emo_cluster", settings,
                                      **({"training_pool_overlap": overlap} if overlap else {}))
        print(f"Epochs: {settings['-ep']}")
        print(f"Batch Size: {settings['-batch']}")
        print(f"Unlabeled Size: {settings['-unlabel']}")
        print(f"EmoClusters (#): {settings['-nc']}")
        print("Model: Vgg16_DeepEmoCluster")
        print(f"Temporal-Modeling: {settings['-mt']}")
        print(f"Test {args.emo_attr}-CCC: {with_interval(scored)}")  # str(), as the original; interval
        print(f"checkpoint {ckpt}; {len(fold.test)} utterances of {args.split} ({ms:.2f} ms/utterance); "
              f"per-utterance results in {fold.extra['out']}")
        return {"CCC": scored.value}


def pool_overlap_warning(pred, split: str) -> dict:
    """The training pool's overlap with evaluation splits (recorded when it was allowed), warned about when the
    split scored now is one of them; {} when there was none."""
    overlap = pred.config.get("unlabelled", {}).get("overlap", {})
    hit = {s: n for s, n in overlap.items() if s.lower() == split.lower()}
    for s, n in hit.items():
        print(f"warning: {n} utterance(s) of {s} were in this model's unlabelled training pool "
              "(allowed by --allow-test-in-pool): this score is not a clean test result", file=sys.stderr)
    return overlap


DEEP_EMO_CLUSTER, DEEP_EMO_CLUSTER_TEST = DeepEmoCluster(), DeepEmoClusterTest()

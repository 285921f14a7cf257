#!/usr/bin/env python
"""Train the temporal-enhanced DeepEmoCluster on 128-mel spectrograms (the seed's command works as written):

    python main.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-Triplet
    python main.py -ep 30 -batch 64 -emo Act -nc 30 -mt Temp-Trans -unlabel 100000 --unlabelled-split test3
    python main.py -ep 30 -batch 64 -emo Dom -nc 30 -mt Temp-GRU -unlabel 5000 --unlabelled-wav-dir my_podcasts
    torchrun --nproc_per_node=2 main.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-CNN

Needs the mel store (feat_mel.py) and its NormTerm (norm_para.py). Each epoch: embeddings of every chunk,
k-means (faiss-cpu, or a torch fallback), a fresh cluster head, cluster-balanced whole-sentence sampling,
then the joint step; with -unlabel U the same clustering + classification pass on U unlabelled sentences
runs first. Writes <out>/TempDeepEmoCluster_epoch<EP>_batch<B>_<K>clusters_<emo>_<mt>_unlabel<U>/:
model.safetensors + config.json (best validation CCC), run.json, state.pt (resume), log.csv (losses, NMI,
k-means objective), loss.png. Re-running resumes.

`python main.py` with none of the flags above is the audio-text system of the seed 000 (System 3): wav2vec2 +
text token stores, multi-scale chunks, co-attention transformer, Act/Dom/Val at once, then the test banner:

    python main.py --root R --normterm-audio R/NormTerm_Speech --normterm-text R/NormTerm_Text
    python main.py --root R --chunking fixed --train-missing bursts:0.2 -iter 2000 -batch 64
"""
import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError, entry, parser
from systems.deep_emo_cluster import FLAGS


def pool_overlap(args, drawn: list[str]) -> dict[str, int]:
    """split -> how many drawn pool utterances are also in the validation or test split, matched by utterance
    id (a WAV folder's sub/name.wav counts as name). Refused unless --allow-test-in-pool; then warned about and
    recorded (the run's config, and the result files of online_testing.py)."""
    from corpora.msp_podcast import read_msp_podcast
    names = {u.rsplit("/", 1)[-1] for u in drawn}
    overlap = {}
    for split in dict.fromkeys((args.val_split, args.test_split)):
        ids = {r.utt_id for r in read_msp_podcast(args.root, split=split, require_audio=False).records}
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


def unlabelled_pool(args, store) -> tuple[list[str], object, str]:
    """(the U utterances drawn, their store, a description of the source); features are extracted on first use."""
    from corpora.msp_podcast import read_msp_podcast
    from features.extract import Item, extract_to_store, wav_folder
    from features.mel import MelSpectrogram
    from features.store import FeatureStore
    given = [x for x in (args.unlabelled_store, args.unlabelled_wav_dir, args.unlabelled_split) if x is not None]
    if len(given) != 1:
        raise UserError("-unlabel needs exactly one pool: --unlabelled-store, --unlabelled-wav-dir or "
                        "--unlabelled-split")
    if args.unlabelled_split is not None:  # a corpus split, labels ignored; features in the corpus' store
        records = read_msp_podcast(args.root, split=args.unlabelled_split).records
        pool_store, items, source = store, [Item.from_record(r) for r in records], f"split {args.unlabelled_split}"
    elif args.unlabelled_wav_dir is not None:
        items, clashes = wav_folder(args.unlabelled_wav_dir)
        for f, why in clashes:
            print(f"warning: {f} left out of the pool: {why}", file=sys.stderr)
        mel = MelSpectrogram()
        pool_store = FeatureStore.create(args.unlabelled_wav_dir / "Features" / mel.name, name=mel.name,
                                         extractor=type(mel).__name__, params=mel.params, dims=mel.dims,
                                         frame_rate=mel.frame_rate, extra={"norm_pooling": mel.norm_pooling})
        source = f"WAV folder {args.unlabelled_wav_dir}"
    else:
        pool_store = FeatureStore(args.unlabelled_store)
        items, source = [Item(u) for u in pool_store.keys()], f"store {args.unlabelled_store}"
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


def deep_emo_cluster_parser(doc: str | None = __doc__):
    """System 2's parser (main.py with -ep/-nc/-mt/-unlabel); `doc` None: its flags alone, for main.py --help."""
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


def deep_emo_cluster(argv) -> int:
    from engine.loop import LoopConfig, ddp_env, train
    from systems.common import load_training_data, split_names
    from systems.common import require_store
    from systems.deep_emo_cluster import DeepEmoClusterMethod, check_cluster_count, resolve_paths
    args = deep_emo_cluster_parser().parse_args(argv)
    world = ddp_env()[1]
    if args.batch_size < 2 * world:  # each process trains on its share of a batch
        raise UserError(f"-batch {args.batch_size}: under torchrun each of the {world} processes needs at least 2 "
                        f"sentences of a batch (a one-sentence share has one label: 1 - CCC is constant); give "
                        f"-batch {2 * world} or more")
    resolve_paths(args)
    require_store(args.store, "--store", "mel")  # the kind of features, before any work (issue 19.14)
    store, nt, train_items, val_items, out_dir = load_training_data(args)
    check_cluster_count(args.num_clusters, {f"{args.train_split} split": len(train_items)})
    drawn, pool_store, source = unlabelled_pool(args, store) if args.unlabel_size else ([], None, "")
    check_cluster_count(args.num_clusters, {"unlabelled pool": len(drawn)})
    overlap = pool_overlap(args, drawn) if drawn else {}
    method = DeepEmoClusterMethod(store, nt, args.attribute, args.model_type, args.num_clusters, args.batch_size,
                                  seed=args.seed, pool_store=pool_store, pool=drawn, pool_source=source,
                                  pool_seed=args.unlabel_seed if drawn else None,
                                  pool_requested=args.unlabel_size if drawn else None, pool_overlap=overlap,
                                  kmeans_backend=args.kmeans, corpus_version=args.root.name)
    cfg = LoopConfig(out_dir=out_dir, iterations=0, epochs=args.epoch, batch_size=args.batch_size,
                     seed=args.seed, device=args.device, resume=not args.no_resume, progress=not args.no_progress,
                     deterministic=args.deterministic, **split_names(args))
    res = train(method, train_items, val_items, cfg)
    if ddp_env()[0] == 0:
        speed = (f"{res.steps_run} steps in {res.seconds:.1f} s, {100 * res.data_seconds / res.seconds:.1f}% of the "
                 "time waiting for data" if res.steps_run else "nothing to do (already finished)")
        print(f"{args.name}: {speed}; best validation CCC {validation_ccc(method, val_items, cfg, 1 - res.best_val)} "
              f"at epoch {res.best_step} of {res.epochs}; saved in {cfg.out_dir}")
    return 0


def validation_ccc(method, val_items: list, cfg, value: float) -> str:
    """The best validation CCC with its 95 % bootstrap interval over the validation sentences: the best model
    scores them once more (CCC is the same on the z-normalised scale the loop validates on)."""
    from engine.loop import evaluate, load_best
    from metrics import score
    model = load_best(method, cfg.out_dir, cfg.device)
    s = score("CCC", method.targets(val_items), evaluate(method, model, val_items, cfg.batch_size, cfg.device))
    return f"{value:.4f} {s.ci_text()}".rstrip()


def audio_text(argv) -> int:
    """System 3 (seed 000): train the audio-text co-attention model, then print the test CCC banner."""
    from corpora.records import ATTRIBUTES
    from engine.cli import int_at_least, positive_float
    from engine.loop import LoopConfig, ddp_env, evaluate, train
    from engine.resources import ResourceMonitor, inference_record
    from features.missing import parse_condition
    from features.normterm import NormTerm
    from features.store import FeatureStore
    from engine.cli import check_conditions
    from systems.audio_text import (MODALITIES, STRATEGIES, TRAIN_KINDS, TRAIN_WHY, AudioTextMethod,
                                    audio_text_items, run_name)
    from systems.common import (DEFAULT_STORES, DEMO_ROOT, add_training_args, default_normterm, default_root,
                                default_store, normterm_lacks, print_defaults, with_interval, write_scores)
    from systems.common import require_store
    from utils import resolve_device, writable_dir
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, default=None,
                    help=f"MSP-Podcast root (default: $MSP_PODCAST_ROOT, else {DEMO_ROOT} when it exists)")
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
    ap.add_argument("--test-split", default="test1", help="split scored after training")
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="folder for the per-utterance test CSVs and their result JSON files")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_training_args(ap, "seed of the initialisation, sampling, crops, missing data and dropout", "audio-text")
    args = ap.parse_args(argv)
    notes: list[str] = []
    root = default_root(args.root, notes)
    paths = {}
    for kind, flag in (("audio", "--audio-store"), ("text", "--text-store")):
        store = default_store(flag, getattr(args, f"{kind}_store"), root, f"audio-text {kind}", notes)
        nt = default_normterm(f"--normterm-{kind}", getattr(args, f"normterm_{kind}"), root, f"audio-text {kind}",
                              store, notes)
        paths[kind] = (store, nt)
    print_defaults(notes)
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
    cond = str(args.train_missing) if args.train_missing else None
    check_conditions([args.train_missing], "--train-missing", "the audio-text model", MODALITIES, TRAIN_KINDS,
                     TRAIN_WHY, training=True)
    name = run_name(args.iterations, args.batch_size, args.chunking, cond)
    splits = {s: audio_text_items(root, s, audio, text) for s in (args.train_split, args.val_split, args.test_split)}
    out_dir = writable_dir(args.out / name)
    writable_dir(args.results)
    words = {u: w for _, ws, _ in splits.values() for u, w in ws.items()}
    transcripts = {u: p for _, _, ts in splits.values() for u, p in ts.items()}
    method = AudioTextMethod(audio, text, nt_a, nt_t, words, strategy=args.chunking, train_condition=cond,
                             seed=args.seed, corpus_version=root.name, transcripts=transcripts)
    if cond and parse_condition(cond).kind == "word-rows":
        bad = method.without_word_alignment(splits[args.train_split][0])
        if bad:
            raise UserError(f"--train-missing {cond}: {len(bad)} {args.train_split} utterance(s) have no transcript "
                            f"matching their text features: {', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''}")
    cfg = LoopConfig(out_dir=out_dir, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                     val_every=args.val_every, seed=args.seed, device=resolve_device(args.device),
                     resume=not args.no_resume, progress=not args.no_progress, deterministic=args.deterministic,
                     train_name=f"{args.train_split} split (with labels, features and TextGrids)",
                     val_name=f"{args.val_split} split (with labels, features and TextGrids)")
    res = train(method, splits[args.train_split][0], splits[args.val_split][0], cfg)
    if ddp_env()[0] != 0:
        return 0
    from engine.loop import load_best
    model = load_best(method, out_dir, cfg.device)
    test = splits[args.test_split][0]
    with ResourceMonitor() as mon:
        pred = evaluate(method, model, test, 64, cfg.device)
    inference = inference_record(mon.seconds, len(test), audio.seconds([u for u, _ in test]), mon)
    for line in summary_banner(root, args.test_split, args.iterations, args.batch_size, args.chunking):
        print(line)
    for k, a in enumerate(("act", "dom", "val")):
        scores = nt_a.denorm(pred[:, k], a)
        scored = write_scores(args.results / f"{name}_{args.test_split}_{a}.csv", [(u, y[k]) for u, y in test],
                             scores, result={"system": "audio_text", "attribute": a, "corpus": str(root),
                                             "split": args.test_split, "checkpoint": str(out_dir),
                                             "chunking": args.chunking, "train_missing": cond, "seed": args.seed,
                                             **inference})
        print(f"{a.capitalize()}-CCC: {with_interval(scored)}")
    print("=" * 51)
    print(f"{res.steps_run} iterations this run; best validation loss {res.best_val:.4f} at iteration "
          f"{res.best_step}; model in {out_dir}")
    return 0


def summary_banner(root: Path, split: str, iterations: int, batch: int, chunking: str) -> list[str]:
    """The original's test banner: its text for its own setting (MSP-PODCAST v1.10, Test1, MultiRslChunk),
    the corpus release, split and chunking of this run otherwise."""
    import re
    release = re.fullmatch(r"MSP-PODCAST-Publish-(\d+\.\d+)", root.resolve().name)
    corpus = f"MSP-PODCAST v{release.group(1)}" if release else f"MSP-PODCAST ({root})"
    title = f"## Summary Performance on {corpus} {split[:1].upper()}{split[1:]} Set ##"
    tag = {"multiscale": "MultiRslChunk", "fixed": "FixedChunk", "lexical": "LexicalChunk"}[chunking]
    rule = "#" * max(57, len(title) + 1)  # the original's rule is one longer than its title
    return [rule, title, rule, f"Iterations: {iterations}", f"Batch_Size: {batch}",
            f"Model_Type: TransformerCoAtten-AudioText-ParymidPool-{tag}"]


@entry
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a.split("=")[0] in FLAGS for a in argv):
        return deep_emo_cluster(argv)
    if not {"-h", "--help"} & set(argv):
        return audio_text(argv)
    try:  # --help alone: the audio-text flags (argparse prints them and exits), then DeepEmoCluster's
        return audio_text(argv)
    finally:
        print("\n" + "=" * 20 + " DeepEmoCluster (System 2): main.py with -ep, -batch, -emo, -nc, -mt " + "=" * 20)
        print(deep_emo_cluster_parser(None).format_help())


if __name__ == "__main__":
    sys.exit(main())

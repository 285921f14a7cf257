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


def deep_emo_cluster(argv) -> int:
    from engine.loop import LoopConfig, ddp_env, train
    from systems.common import add_training_args, load_training_data, split_names
    from systems.deep_emo_cluster import DeepEmoClusterMethod, add_cli_args, resolve_paths
    ap = parser(__doc__)
    add_cli_args(ap)
    pool = ap.add_argument_group("unlabelled pool (with -unlabel U > 0; one of)")
    pool.add_argument("--unlabelled-store", type=Path, help="a mel feature store: all its utterances (default: none)")
    pool.add_argument("--unlabelled-wav-dir", type=Path,
                      help="a folder of WAVs; mel features go to <dir>/Features/Mel_Spec128 (default: none)")
    pool.add_argument("--unlabelled-split", help="a split of --root, labels ignored, e.g. test3 (default: none)")
    pool.add_argument("--unlabel-seed", type=int, default=99, help="seed of the draw of U pool sentences")
    add_training_args(ap, "seed of the initialisation, k-means, sampling, triplets and dropout")
    ap.add_argument("--kmeans", choices=("auto", "faiss", "torch"), default="auto",
                    help="k-means backend: auto = faiss-cpu when importable, else the torch implementation")
    args = ap.parse_args(argv)
    resolve_paths(args)
    store, nt, train_items, val_items, out_dir = load_training_data(args)
    drawn, pool_store, source = unlabelled_pool(args, store) if args.unlabel_size else ([], None, "")
    method = DeepEmoClusterMethod(store, nt, args.attribute, args.model_type, args.num_clusters, args.batch_size,
                                  seed=args.seed, pool_store=pool_store, pool=drawn, pool_source=source,
                                  pool_seed=args.unlabel_seed if drawn else None,
                                  kmeans_backend=args.kmeans, corpus_version=args.root.name)
    cfg = LoopConfig(out_dir=out_dir, iterations=0, epochs=args.epoch, batch_size=args.batch_size,
                     seed=args.seed, device=args.device, resume=not args.no_resume, progress=not args.no_progress,
                     deterministic=args.deterministic, **split_names(args))
    res = train(method, train_items, val_items, cfg)
    if ddp_env()[0] == 0:
        speed = (f"{res.steps_run} steps in {res.seconds:.1f} s, {100 * res.data_seconds / res.seconds:.1f}% of the "
                 "time waiting for data" if res.steps_run else "nothing to do (already finished)")
        print(f"{args.name}: {speed}; best validation CCC {1 - res.best_val:.4f} at epoch {res.best_step} of "
              f"{res.epochs}; saved in {cfg.out_dir}")
    return 0


def audio_text(argv) -> int:
    """System 3 (seed 000): train the audio-text co-attention model, then print the test CCC banner."""
    from engine.cli import int_at_least, positive_float
    from engine.loop import LoopConfig, ddp_env, evaluate, train
    from engine.resources import ResourceMonitor, inference_record
    from features.missing import parse_condition
    from features.normterm import NormTerm
    from features.store import FeatureStore
    from systems.audio_text import STRATEGIES, AudioTextMethod, audio_text_items, run_name
    from systems.common import add_training_args, write_scores
    from utils import resolve_device, writable_dir
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, default=None,
                    help="MSP-Podcast root (default: $MSP_PODCAST_ROOT, else MSP-PODCAST-Publish-1.10 as the original)")
    ap.add_argument("--audio-store", type=Path, help="wav2vec2 store (default: <root>/Features/Wav2Vec1024)")
    ap.add_argument("--text-store", type=Path, help="text token store (default: <root>/Features/RoBERTa768)")
    ap.add_argument("--normterm-audio", type=Path, default=Path("NormTerm_Speech"),
                    help="audio NormTerm (its label statistics are the ones used, as the original)")
    ap.add_argument("--normterm-text", type=Path, default=Path("NormTerm_Text"), help="text NormTerm")
    ap.add_argument("-iter", "--iterations", type=int_at_least(1), default=5000, help="training iterations")
    ap.add_argument("-batch", "--batch-size", type=int_at_least(2), default=128, help="utterances per batch")
    ap.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1), default=100, help="validate every N iterations")
    ap.add_argument("--chunking", choices=STRATEGIES, default="multiscale",
                    help="multiscale (random 0.2-1 s crops in training), fixed (the same windows, no crop), lexical "
                         "(chunks cut at the TextGrid word boundaries)")
    ap.add_argument("--train-missing", type=parse_condition,
                    help="missing data as regularisation in training, e.g. bursts:0.2, frames:0.3, words:0.2, "
                         "text-absent (default: none)")
    ap.add_argument("--test-split", default="test1", help="split scored after training")
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="folder for the per-utterance test CSVs and their result JSON files")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_training_args(ap, "seed of the initialisation, sampling, crops, missing data and dropout")
    args = ap.parse_args(argv)
    import os
    root = args.root or Path(os.environ.get("MSP_PODCAST_ROOT", "MSP-PODCAST-Publish-1.10"))
    try:
        audio = FeatureStore(args.audio_store or root / "Features" / "Wav2Vec1024")
        text = FeatureStore(args.text_store or root / "Features" / "RoBERTa768")
        nt_a, nt_t = NormTerm.load(args.normterm_audio), NormTerm.load(args.normterm_text)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    for nt, store, flag in ((nt_a, audio, "--normterm-audio"), (nt_t, text, "--normterm-text")):
        if nt.feat_mean is None or len(nt.feat_mean) != store.dims:
            raise UserError(f"{flag}: no {store.dims}-d feature statistics for {store.root}")
    if set(nt_a.labels) != {"act", "dom", "val"}:
        raise UserError(f"--normterm-audio {args.normterm_audio}: needs act, dom and val label statistics")
    cond = str(args.train_missing) if args.train_missing else None
    name = run_name(args.iterations, args.batch_size, args.chunking, cond)
    splits = {s: audio_text_items(root, s, audio, text) for s in (args.train_split, args.val_split, args.test_split)}
    out_dir = writable_dir(args.out / name)
    writable_dir(args.results)
    words = {u: w for _, ws, _ in splits.values() for u, w in ws.items()}
    transcripts = {u: p for _, _, ts in splits.values() for u, p in ts.items()}
    method = AudioTextMethod(audio, text, nt_a, nt_t, words, strategy=args.chunking, train_condition=cond,
                             seed=args.seed, corpus_version=root.name, transcripts=transcripts)
    if cond and parse_condition(cond).kind.startswith("words"):
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
    print("#" * 60 + f"\n# Summary Performance on {root.name} {args.test_split} Set\n" + "#" * 60)
    print(f"Iterations: {args.iterations}")
    print(f"Batch_Size: {args.batch_size}")
    print(f"Model_Type: TransformerCoAtten-AudioText-ParymidPool-{args.chunking}")
    for k, a in enumerate(("act", "dom", "val")):
        scores = nt_a.denorm(pred[:, k], a)
        value = write_scores(args.results / f"{name}_{args.test_split}_{a}.csv", [(u, y[k]) for u, y in test],
                             scores, result={"system": "audio_text", "attribute": a, "corpus": str(root),
                                             "split": args.test_split, "checkpoint": str(out_dir),
                                             "chunking": args.chunking, "train_missing": cond, "seed": args.seed,
                                             **inference})
        print(f"{a.capitalize()}-CCC: {value}")
    print("=" * 60)
    print(f"{res.steps_run} iterations this run; best validation loss {res.best_val:.4f} at iteration "
          f"{res.best_step}; model in {out_dir}")
    return 0


@entry
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a.split("=")[0] in FLAGS for a in argv):
        return deep_emo_cluster(argv)
    return audio_text(argv)


if __name__ == "__main__":
    sys.exit(main())

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

`python main.py` with none of the flags above is the audio-text system of the seed 000 (System 3).
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


@entry
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a.split("=")[0] in FLAGS for a in argv):
        return deep_emo_cluster(argv)
    ap = parser(__doc__)
    ap.parse_args(argv)
    raise UserError("the audio-text system of the seed 000 (`python main.py` without flags) is not built yet; "
                    "for DeepEmoCluster give -ep -batch -emo -nc -mt (see --help)")


if __name__ == "__main__":
    sys.exit(main())

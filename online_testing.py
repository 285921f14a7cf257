#!/usr/bin/env python
"""Score a temporal-enhanced DeepEmoCluster on a test split (the seed's command works as written):

    python online_testing.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-Triplet
    python online_testing.py -ep 30 -batch 64 -emo Act -nc 30 -mt Temp-Trans -unlabel 100000 \\
        --checkpoint TempDeepEmoCluster_epoch30_batch64_30clusters_Act_Temp-Trans_unlabel100000.pth.tar \\
        --normterm NormTerm_v1.8

The checkpoint is --checkpoint (our folder, or an original .pth.tar with --normterm), else
<models-dir>/<run name>. Each sentence's prediction is the mean of its 11 chunk outputs, de-normalised with
the Train label statistics, scored with CCC against the raw labels; prints the original's summary lines and
writes a per-utterance CSV (utterance, prediction, label).
"""
import sys

from engine.cli import UserError, entry, parser
from engine.resources import ResourceMonitor, inference_record
from systems.common import add_testing_args, corpus_fields, testing_inputs, write_scores
from systems.deep_emo_cluster import Predictor, add_cli_args, resolve_paths


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_cli_args(ap)
    add_testing_args(ap, "main.py", "<models-dir>/<run name>", 32)
    args = ap.parse_args(argv)
    resolve_paths(args)
    out, ckpt, store, items = testing_inputs(args)
    print(f"=> loading checkpoint '{ckpt}'")
    try:
        pred = Predictor.load(ckpt, normterm=args.normterm if ckpt.suffix == ".tar" else None, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print("Loaded")
    want = pred.config.get("features", {}).get("name")
    if want != store.meta.get("name") or store.dims != 128:
        raise UserError(f"{ckpt} was trained on {want} features, but {args.store} holds "
                        f"{store.meta.get('name')} ({store.dims}-d)")
    if pred.attribute != args.attribute or pred.config["model"]["variant"] != args.model_type:
        raise UserError(f"{ckpt} is a {pred.config['model']['variant']} model of {pred.attribute}, not "
                        f"{args.model_type} of {args.attribute}")
    print("Start Online Testing Process")
    with ResourceMonitor() as mon:
        scores = pred.predict([store[u] for u, _ in items], batch_size=args.batch_eval)
    ms = 1000 * mon.seconds / len(items)
    value = write_scores(out, items, scores, result={
        **inference_record(mon.seconds, len(items), store.seconds([u for u, _ in items]), mon),
        "system": "deep_emo_cluster", "attribute": args.attribute, **corpus_fields(args),
        "checkpoint": str(ckpt), "model": pred.config["model"], "seed": pred.config.get("loop", {}).get("seed")})
    print(f"Epochs: {args.epoch}")
    print(f"Batch Size: {args.batch_size}")
    print(f"Unlabeled Size: {args.unlabel_size}")
    print(f"EmoClusters (#): {args.num_clusters}")
    print("Model: Vgg16_DeepEmoCluster")
    print(f"Temporal-Modeling: {args.model_type}")
    print(f"Test {args.emo_attr}-CCC: {value:.4f}")
    print(f"checkpoint {ckpt}; {len(items)} utterances of {args.split} ({ms:.2f} ms/utterance); "
          f"per-utterance results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Score a temporal-enhanced DeepEmoCluster on a test split (the seed's command works as written):

    python online_testing.py -ep 30 -batch 64 -emo Val -nc 10 -mt Temp-Triplet
    python online_testing.py -ep 30 -batch 64 -emo Act -nc 30 -mt Temp-Trans -unlabel 100000 \\
        --checkpoint TempDeepEmoCluster_epoch30_batch64_30clusters_Act_Temp-Trans_unlabel100000.pth.tar \\
        --normterm NormTerm_v1.8

The checkpoint is --checkpoint (our folder, or an original .pth.tar of any name with --normterm), else
<models-dir>/<run name>. The banner and the result names describe the checkpoint scored: flags that contradict
it are refused, and a setting it does not record is marked as the command line's. Each sentence's prediction is
the mean of its 11 chunk outputs, de-normalised with the Train label statistics, scored with CCC against the
raw labels; prints the original's summary lines and writes a per-utterance CSV (utterance, prediction, label).
"""
import sys

from engine.cli import UserError, entry, parser
from engine.resources import ResourceMonitor, inference_record
from systems.common import (add_testing_args, corpus_fields, normterm_for_checkpoint, settings_from_checkpoint,
                            testing_inputs, with_interval, write_scores)
from systems.common import require_store
from systems.deep_emo_cluster import Predictor, add_cli_args, recorded_settings, resolve_paths


def given_settings(args) -> dict:
    """The original's flags as the command line gives them (the keys of recorded_settings)."""
    return {"-ep": args.epoch, "-batch": args.batch_size, "-nc": args.num_clusters, "-emo": args.emo_attr,
            "-mt": args.model_type, "-unlabel": args.unlabel_size}


def pool_overlap_warning(pred, split: str) -> dict:
    """The training pool's overlap with evaluation splits (recorded when it was allowed), warned about when the
    split scored now is one of them; {} when there was none."""
    overlap = pred.config.get("unlabelled", {}).get("overlap", {})
    hit = {s: n for s, n in overlap.items() if s.lower() == split.lower()}
    for s, n in hit.items():
        print(f"warning: {n} utterance(s) of {s} were in this model's unlabelled training pool "
              "(allowed by --allow-test-in-pool): this score is not a clean test result", file=sys.stderr)
    return overlap


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_cli_args(ap)
    add_testing_args(ap, "main.py", "<models-dir>/<run name>", 32)
    args = ap.parse_args(argv)
    resolve_paths(args)
    require_store(args.store, "--store", "mel")  # the kind of features, before any work (issue 19.14)
    out, ckpt, store, items = testing_inputs(args)
    normterm = normterm_for_checkpoint(args, ckpt)
    print(f"=> loading checkpoint '{ckpt}'")
    try:
        pred = Predictor.load(ckpt, normterm=normterm, device=args.device,
                              flags={"variant": args.model_type, "num_clusters": args.num_clusters,
                                     "attribute": args.attribute}, allow_unfinished=args.allow_unfinished)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print("Loaded")
    if "identified_by" in pred.config:  # an original file: say what it was taken for, and why
        print(f"=> {ckpt.name}: {pred.config['model']['variant']} with {pred.config['model']['num_clusters']} "
              f"clusters, {args.emo_attr} ({pred.config['identified_by']})")
    settings = settings_from_checkpoint(ckpt, recorded_settings(pred.config), given_settings(args))
    want = pred.config.get("features", {}).get("name")
    if want != store.meta.get("name") or store.dims != 128:
        raise UserError(f"{ckpt} was trained on {want} features, but {args.store} holds "
                        f"{store.meta.get('name')} ({store.dims}-d)")
    overlap = pool_overlap_warning(pred, args.split)
    print("Start Online Testing Process")
    with ResourceMonitor() as mon:
        scores = pred.predict([store[u] for u, _ in items], batch_size=args.batch_eval)
    ms = 1000 * mon.seconds / len(items)
    scored = write_scores(out, items, scores, result={
        **inference_record(mon.seconds, len(items), store.seconds([u for u, _ in items]), mon),
        "system": "deep_emo_cluster", "attribute": args.attribute, **corpus_fields(args),
        "checkpoint": str(ckpt), "model": pred.config["model"], "seed": pred.config.get("loop", {}).get("seed"),
        "run_settings": settings, **({"training_pool_overlap": overlap} if overlap else {})})
    print(f"Epochs: {settings['-ep']}")
    print(f"Batch Size: {settings['-batch']}")
    print(f"Unlabeled Size: {settings['-unlabel']}")
    print(f"EmoClusters (#): {settings['-nc']}")
    print("Model: Vgg16_DeepEmoCluster")
    print(f"Temporal-Modeling: {settings['-mt']}")
    print(f"Test {args.emo_attr}-CCC: {with_interval(scored)}")  # str(), as the original; interval
    print(f"checkpoint {ckpt}; {len(items)} utterances of {args.split} ({ms:.2f} ms/utterance); "
          f"per-utterance results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Score a chunk-level attention LSTM on a test split (the seed's command works as written):

    python testing.py -iter 5000 -batch 128 -emo Dom -atten SelfAttenVec
    python testing.py -iter 5000 -batch 128 -emo Act -atten RnnAttenVec --checkpoint X.pth.tar --normterm NormTerm

The checkpoint is --checkpoint (our folder, or a published .pth.tar with --normterm), else Models/<run name>,
else trained_models/<run name> (the published v1.6 models). Predictions are de-normalised and scored against
the raw labels with CCC; a per-utterance CSV (utterance, prediction, label) is written.
"""
import sys
from pathlib import Path

from engine.cli import UserError, entry, parser
from engine.resources import ResourceMonitor, inference_record
from systems.chunk_lstm import Predictor, add_cli_args, recorded_settings, resolve_paths
from systems.common import (add_testing_args, corpus_fields, normterm_for_checkpoint, settings_from_checkpoint,
                            testing_inputs, with_interval, write_scores)
from systems.common import require_store
from utils import output_file


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    add_cli_args(ap)
    add_testing_args(ap, "training.py", "<models-dir>/<run name>, else trained_models/<run name>", 64)
    args = ap.parse_args(argv)
    resolve_paths(args)
    require_store(args.store, "--store", "chunk-lstm")  # the kind of features, before any work (issue 19.14)
    out, ckpt, store, items = testing_inputs(args, also_in=(Path("trained_models"),))
    legacy_nt = normterm_for_checkpoint(args, ckpt, legacy_default=Path(__file__).resolve().parent / "NormTerm")
    try:
        pred = Predictor.load(ckpt, normterm=legacy_nt, device=args.device,
                              allow_unfinished=args.allow_unfinished)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    want = pred.config.get("features", {}).get("name")
    if want and want != store.meta.get("name") or pred.config["model"]["input_dim"] != store.dims:
        raise UserError(f"{ckpt} was trained on {want or pred.config['model']['input_dim']} features, but "
                        f"{args.store} holds {store.meta.get('name')} ({store.dims}-d)")
    settings = settings_from_checkpoint(ckpt, recorded_settings(pred.config), {
        "-iter": args.iterations, "-batch": args.batch_size, "-emo": args.emo_attr, "-atten": args.atten_type,
        "--chunk-n": args.chunk_n})
    with ResourceMonitor() as mon:
        scores = pred.predict([store[u] for u, _ in items], batch_size=args.batch_eval)
    ms = 1000 * mon.seconds / len(items)
    scored = write_scores(out, items, scores, result={
        **inference_record(mon.seconds, len(items), store.seconds([u for u, _ in items]), mon),
        "system": "chunk_lstm", "attribute": args.attribute, **corpus_fields(args),
        "checkpoint": str(ckpt), "model": pred.config["model"], "seed": pred.config.get("loop", {}).get("seed"),
        "run_settings": settings})
    print("ChunkSeq2One")
    print(f"Iterations: {settings['-iter']}")
    print(f"Batch_Size: {settings['-batch']}")
    print("Model_Type: LSTM")
    print(f"Attention_Type: {settings['-atten']}")
    # str() of the value, full precision, as the original, then its 95 % interval (the one the result file holds)
    print(f"{args.emo_attr}-CCC: {with_interval(scored)}")
    print(f"Avg. Time Cost(ms/uttr): {ms:.2f}")
    print(f"checkpoint {ckpt}; {len(items)} utterances of {args.split}; per-utterance results in {out}, result in {output_file(out, '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

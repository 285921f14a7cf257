"""The chunk LSTM's experiment hooks (training.py, testing.py) and what DeepEmoCluster's share.

System 1 on the experiment layer (engine.experiment); DeepEmoCluster's training and testing (main.py -ep ...,
online_testing.py) share these steps.

`describe` reads the flags alone: the run name, the device, the training settings and every output name. The
hooks resolve what lies on disk when the experiment runs: `folds` fills in the default --root / --store /
--normterm (and says which it chose), checks the store and reads the labelled splits (training), or finds the
checkpoint and the test items (testing); `method` is the system's engine.loop method; a testing experiment's
`load` loads our checkpoint folder or a published .pth.tar (with its NormTerm) as a Predictor, and `test`
scores it, writes the per-utterance CSV and result JSON (write_scores) and prints the original's lines.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.experiment import Experiment, Fold, Training


def resolved_settings(exp: Experiment) -> argparse.Namespace:
    """A copy of the experiment's flags for the hooks to fill in (defaults found on disk, the attribute code):
    exp.settings stays what the user gave, so running the experiment again resolves the same way."""
    return argparse.Namespace(**vars(exp.settings))


def training_experiment(system: str, script: str, argv, args, hooks: str, **training) -> Experiment:
    """The Experiment of a one-run training script (training.py, main.py -ep ...): trains <out>/<run name>.
    `training`: the loop settings of the system's own flags (iterations or epochs, lr, val_every)."""
    from utils import resolve_device
    return Experiment(system=system, script=script, argv=tuple(argv), settings=args, corpus=args.root,
                      protocol="splits", folds=(args.name,),
                      training=Training(batch_size=args.batch_size, seed=args.seed, device=resolve_device(args.device),
                                        resume=not args.no_resume, progress=not args.no_progress,
                                        deterministic=args.deterministic, precision=args.precision, **training),
                      outputs={"name": args.name, "run": args.out / args.name}, stages=("train",), hooks=hooks)


def training_fold(exp: Experiment, args, store_kind: str, system: str) -> Fold:
    """The one fold of a training script: defaults resolved (said on stderr), the store's kind checked before any
    work, the labelled train and validation items read, the run folder proved writable."""
    from systems.common import load_training_data, require_store, resolve_data_paths, split_names
    resolve_data_paths(args, system)
    require_store(args.store, "--store", store_kind)  # the kind of features, before any work (issue 19.14)
    store, nt, train_items, val_items, run_dir = load_training_data(args)
    exp.corpus, exp.inputs = args.root, {"store": args.store, "normterm": args.normterm}
    return Fold(args.name, args.name, train_items, val_items, run_dir=run_dir, **split_names(args),
                extra={"args": args, "store": store, "normterm": nt})


def testing_experiment(system: str, script: str, argv, args, hooks: str) -> Experiment:
    """The Experiment of a testing script (testing.py, online_testing.py): scores one checkpoint on one split;
    its outputs are the per-utterance CSV and result JSON (systems.common.testing_outputs)."""
    from systems.common import testing_outputs
    from utils import resolve_device
    return Experiment(system=system, script=script, argv=tuple(argv), settings=args, corpus=args.root,
                      protocol="splits", folds=(args.split,),
                      training=Training(device=resolve_device(args.device), allow_unfinished=args.allow_unfinished,
                                        precision=args.precision),
                      outputs=testing_outputs(args), stages=("test",), hooks=hooks)


def testing_fold(exp: Experiment, args, store_kind: str, system: str, also_in: tuple = (),
                 legacy_normterm: Path | None = None) -> Fold:
    """The one fold of a testing script: defaults resolved, the output folder, checkpoint, store and test items
    checked (systems.common.testing_inputs), the NormTerm an original .pth.tar is loaded with (--normterm, else
    `legacy_normterm`)."""
    from systems.common import normterm_for_checkpoint, require_store, resolve_data_paths, testing_inputs
    resolve_data_paths(args, system)
    require_store(args.store, "--store", store_kind)  # the kind of features, before any work (issue 19.14)
    out, ckpt, store, items = testing_inputs(args, exp.outputs["csvs"][args.emo_attr], also_in)
    legacy_nt = normterm_for_checkpoint(args, ckpt, legacy_normterm)
    exp.corpus, exp.inputs = args.root, {"store": args.store, "checkpoint": ckpt, "normterm": legacy_nt}
    return Fold(args.split, args.split, test=items,
                extra={"args": args, "store": store, "out": out, "checkpoint": ckpt, "normterm": legacy_nt})


def score_checkpoint(fold: Fold, pred, system: str, settings: dict, **fields):
    """Score the fold's test items with a Predictor, write the per-utterance CSV and the result JSON
    (inference cost, system, attribute, corpus, checkpoint, model, seed, the run's settings, `fields`); returns
    (metrics.Scored, milliseconds per utterance)."""
    from engine.resources import ResourceMonitor, inference_record
    from systems.common import corpus_fields, write_scores
    args, store, items = fold.extra["args"], fold.extra["store"], fold.test
    with ResourceMonitor() as mon:
        scores = pred.predict([store[u] for u, _ in items], batch_size=args.batch_eval)
    scored = write_scores(fold.extra["out"], items, scores, result={
        **inference_record(mon.seconds, len(items), store.seconds([u for u, _ in items]), mon),
        "system": system, "attribute": args.attribute, **corpus_fields(args),
        "checkpoint": str(fold.extra["checkpoint"]), "model": pred.config["model"],
        "seed": pred.config.get("loop", {}).get("seed"), "run_settings": settings, **fields})
    return scored, 1000 * mon.seconds / len(items)


def trained_line(exp: Experiment, outcome, speed: str, best: str, at: str) -> str:
    """A training script's last line: how fast it ran (`speed`, when it trained), the best validation CCC
    (`best`, as printed) and when it was reached (`at`: "iteration 40 of 50"), the run folder."""
    done = speed if outcome.loop.steps_run else "nothing to do (already finished)"
    return f"{exp.outputs['name']}: {done}; best validation CCC {best} at {at}; saved in {outcome.fold.run_dir}"


# ------------------------------------------------------------------------------------------ the chunk LSTM
class ChunkLSTM:
    """training.py's hooks: the chunk LSTM on one attribute of MSP-Podcast's train split, validated on dev."""
    name, metric, attributes = "chunk-lstm", "CCC", ("act", "dom", "val")

    def folds(self, exp: Experiment) -> list[Fold]:
        return [training_fold(exp, resolved_settings(exp), "chunk-lstm", "chunk-lstm")]

    def method(self, exp: Experiment, fold: Fold):
        from systems.chunk_lstm import ChunkLSTMMethod
        from systems.common import run_corpus
        args = fold.extra["args"]
        return ChunkLSTMMethod(fold.extra["store"], fold.extra["normterm"], args.attribute, args.atten_type,
                               n=args.chunk_n, unbiased_var_loss=not args.population_ccc_loss,
                               corpus_version=args.root.name, corpus=run_corpus(args))


class ChunkLSTMTest:
    """testing.py's hooks: our checkpoint folder or a published .pth.tar scored on one split."""
    name, metric, attributes = "chunk-lstm", "CCC", ("act", "dom", "val")

    def folds(self, exp: Experiment) -> list[Fold]:
        from systems.common import REPO
        # the published v1.6 models: trained_models/<run name>, loaded with the shipped v1.6 NormTerm
        return [testing_fold(exp, resolved_settings(exp), "chunk-lstm", "chunk-lstm", also_in=(Path("trained_models"),),
                             legacy_normterm=REPO / "NormTerm")]

    def method(self, exp: Experiment, fold: Fold):
        return None  # the Predictor carries its own model, NormTerm and chunking

    def load(self, exp: Experiment, fold: Fold, method):
        from engine.cli import UserError
        from systems.chunk_lstm import Predictor
        try:
            return Predictor.load(fold.extra["checkpoint"], normterm=fold.extra["normterm"], device=exp.training.device,
                                  allow_unfinished=exp.training.allow_unfinished)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None

    def test(self, exp: Experiment, fold: Fold, method, pred) -> dict:
        from engine.cli import UserError
        from systems.chunk_lstm import recorded_settings
        from systems.common import settings_from_checkpoint, with_interval
        from utils import output_file
        args, store, ckpt = fold.extra["args"], fold.extra["store"], fold.extra["checkpoint"]
        want = pred.config.get("features", {}).get("name")
        if want and want != store.meta.get("name") or pred.config["model"]["input_dim"] != store.dims:
            raise UserError(f"{ckpt} was trained on {want or pred.config['model']['input_dim']} features, but "
                            f"{args.store} holds {store.meta.get('name')} ({store.dims}-d)")
        settings = settings_from_checkpoint(ckpt, recorded_settings(pred.config), {
            "-iter": args.iterations, "-batch": args.batch_size, "-emo": args.emo_attr, "-atten": args.atten_type,
            "--chunk-n": args.chunk_n})
        scored, ms = score_checkpoint(fold, pred, "chunk_lstm", settings)
        print("ChunkSeq2One")
        print(f"Iterations: {settings['-iter']}")
        print(f"Batch_Size: {settings['-batch']}")
        print("Model_Type: LSTM")
        print(f"Attention_Type: {settings['-atten']}")
        # str() of the value, full precision, as the original, then its 95 % interval (the one the result file holds)
        print(f"{args.emo_attr}-CCC: {with_interval(scored)}")
        print(f"Avg. Time Cost(ms/uttr): {ms:.2f}")
        out = fold.extra["out"]
        print(f"checkpoint {ckpt}; {len(fold.test)} utterances of {args.split}; per-utterance results in {out}, "
              f"result in {output_file(out, '.json')}")
        return {"CCC": scored.value}


CHUNK_LSTM, CHUNK_LSTM_TEST = ChunkLSTM(), ChunkLSTMTest()


def chunk_lstm_trained(exp: Experiment, outcome) -> str:
    """training.py's last line (rank 0): speed, best validation CCC, run folder."""
    res = outcome.loop
    speed = (f"{res.steps_run} iterations in {res.seconds:.1f} s ({res.steps_run * res.batch_size / res.seconds:.1f} "
             f"utt/s at batch {res.batch_size}, {100 * res.data_seconds / res.seconds:.1f}% of the time waiting "
             f"for data)" if res.steps_run else "")  # (no division by the seconds of a run with nothing to do)
    return trained_line(exp, outcome, speed, f"{1 - res.best_val:.4f}", f"iteration {res.best_step} of {res.steps}")

"""The one experiment layer: what a run of any system is (`Experiment`) and the one flow that runs it (`run`).

Every script is an argparse front-end plus one call: `run(system.describe(args, ap, argv))`. The flow, the same
for all five systems:
    folds (inputs resolved, stores ensured)  ->  per fold: method -> engine.loop.train -> best checkpoint ->
    test (per-utterance CSV + result JSON with provenance, written by the task: CCC or WA / UA) -> missing-data
    conditions (engine.robustness) ->  the system's table (+ figure)
A system contributes only what is its own, through a small object (see `System` below): its folds, its method,
how a test prediction becomes result files, how it draws predictions under a missing-data condition, its table.
The names of every run folder and result file are computed once, by `describe`, from the flags alone, and held in
`Experiment.outputs`: the script, the Python API (ser.py) and benchmark.py read them from there, so two variants
can never share a file.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class Training:
    """The training settings an experiment chooses; engine.loop.LoopConfig gets the rest (run folder, names)
    per fold. One set of defaults for every system (the loop's); each system's flags override them. Not a
    LoopConfig itself: an experiment has no run folder until its folds exist, and scoring-only experiments
    (testing.py, evaluate_missing.py, cross_corpus.py) carry allow_unfinished instead of a schedule."""
    iterations: int = 0  # steps (0 with epochs > 0)
    epochs: int = 0  # > 0: epoch mode (DeepEmoCluster)
    batch_size: int = 128
    lr: float = 1e-4
    val_every: int = 50
    seed: int = 0
    device: str = "cpu"
    resume: bool = True
    progress: bool = True
    deterministic: bool = False
    patience: int = 0
    clip_value: float = 0.0
    eval_batch_size: int = 64
    allow_unfinished: bool = False  # scoring the best checkpoint of a run whose training has not finished
    precision: str = "fp32"  # fp32 | bf16 | fp16 (engine.loop.autocast) of training, validation and testing

    def __post_init__(self):
        from engine.cli import check_precision
        check_precision(self.precision, self.device)  # fp16 off CUDA refused when the experiment is described

    def loop_config(self, out_dir: Path, train_name: str = "training", val_name: str = "validation", **override):
        """engine.loop.LoopConfig of these settings for one run folder."""
        from engine.loop import LoopConfig
        names = {f.name for f in fields(LoopConfig)}
        mine = {k: v for k, v in self.__dict__.items() if k in names}
        return LoopConfig(out_dir=Path(out_dir), train_name=train_name, val_name=val_name, **{**mine, **override})


@dataclass
class Fold:
    """One train -> best checkpoint -> test unit of an experiment (a random fold, a held-out session, a
    configuration on a held-out session, or MSP-Podcast's train / development / test splits)."""
    key: object  # 3, ("speech+text", 5), "test1": the key of outputs["runs"] and outputs["results"]
    name: str  # "fold 3": the series name in tables and figures
    train: list = field(default_factory=list)  # (utterance, label) items
    dev: list = field(default_factory=list)
    test: list = field(default_factory=list)
    run_dir: Path | None = None
    train_name: str = "training"
    val_name: str = "validation"
    protocols: dict = field(default_factory=dict)  # {protocol: ([Condition], result JSON)} scored on this fold
    extra: dict = field(default_factory=dict)  # what the system's hooks pass between themselves


@dataclass
class Outcome:
    """What one fold gave: the loop's result (None when not trained here), and the system's row for its table."""
    fold: Fold
    loop: object = None  # engine.loop.LoopResult
    row: dict = field(default_factory=dict)
    draws: Callable | None = None  # predict(condition, sim_seed) -> Draw of the fold's model (memoized)
    protocol_rows: dict = field(default_factory=dict)  # {protocol: rows of engine.robustness} scored on this fold


@dataclass
class Experiment:
    """A small, typed description of one experiment: enough to run it, name its files and repeat it."""
    system: str  # "chunk-lstm" | "deep-emo-cluster" | "audio-text" | "mdre" | "speech-text-mocap" | ...
    script: str  # the top-level script whose flags these are ("mdre.py")
    argv: tuple  # those flags, as a user would type them: `command` is the provenance
    settings: argparse.Namespace  # every flag parsed by the script's own parser (the system's own settings)
    corpus: Path | None = None
    inputs: dict = field(default_factory=dict)  # {role: Path}: stores and NormTerms, resolved
    protocol: str = ""  # how the corpus is split: "splits" (MSP-Podcast), "random5", "loso", "session5"
    folds: tuple = ()  # the fold keys this experiment runs
    training: Training = field(default_factory=Training)
    conditions: dict = field(default_factory=dict)  # {protocol: [Condition], complete data first}
    outputs: dict = field(default_factory=dict)  # every name it writes: runs, results, tables, protocols
    stages: tuple = ("train", "test")  # training.py trains only, testing.py tests only
    hooks: str = ""  # "systems.mdre:MDRE": the System object whose hooks run() calls

    @property
    def command(self) -> str:
        """The command line that re-creates this experiment (what benchmark.py runs and result files record)."""
        return shlex.join(["python", self.script, *map(str, self.argv)])


class System(Protocol):
    """What one system contributes to `run`; everything else is shared.

    name: str                                        (Experiment.system)
    folds(exp) -> [Fold]                             inputs resolved, stores ensured, items of every part
    method(exp, fold) -> engine.loop Method          the system's model, collate and loss for this fold
    test(exp, fold, method, model) -> dict           score the fold's test items, write the per-utterance CSV
                                                     and result JSON (Task.write), print its line; the row of
                                                     the table
optional:
    load(exp, fold, method) -> model                 the model to test (default: engine.loop.load_best of the
                                                     fold's run folder), e.g. a published .pth.tar
    draws(exp, fold, method, model) -> predict(condition, sim_seed) -> engine.robustness.Draw
    table(exp, [Outcome]) -> None                    the system's table + figure over every fold
    pooled_protocols: bool                           True: Experiment.conditions are scored after the last fold
                                                     with one series per fold (MDRE); False: per fold
                                                     (Fold.protocols)
    pooled_result(exp, [Outcome]) -> dict            the fields of the pooled protocols' result files
    table_first: bool                                True: the table comes before the pooled conditions (MDRE prints
                                                     its fold table first); False: after them
Titles of the conditions' tables and figures: Fold.extra["titles"][protocol] (per fold),
Experiment.outputs["titles"][protocol] (pooled); the result fields of a fold's protocols: Fold.extra["result"].
    metric: "CCC" | "WA/UA", attributes / classes    for engine.robustness
    """
    name: str


# the script of every system (and of its scoring-only front-ends): what the Python API (ser.py) and benchmark.py
# describe an experiment with. Each script module has build_parser() -> ArgumentParser, describe(argv) ->
# Experiment (flags only: it reads no file, so benchmark.py can name a step's outputs before anything exists;
# every flag that cannot apply is refused here, before any work) and main(argv).
SCRIPTS = {"chunk-lstm": "training.py", "chunk-lstm-test": "testing.py", "deep-emo-cluster": "main.py",
           "deep-emo-cluster-test": "online_testing.py", "audio-text": "main.py",
           "audio-text-missing": "evaluate_missing.py", "mdre": "mdre.py", "speech-text-mocap": "speech_text_mocap.py",
           "cross-corpus": "cross_corpus.py"}


def script_module(name: str):
    """The top-level script module of a system name (SCRIPTS) or a script file name ("mdre.py", "mdre")."""
    import importlib
    script = SCRIPTS.get(name, name)
    module = script[:-3] if script.endswith(".py") else script
    if f"{module}.py" not in SCRIPTS.values():
        raise ValueError(f"unknown system or script {name!r}; choose from {', '.join(SCRIPTS)}")
    return importlib.import_module(module)


def describe(name: str, argv=(), **settings) -> Experiment:
    """The Experiment of a system (or script) with these flags (`argv`) and keyword settings (the scripts' flags
    by their long names, - or _: iterations=50, model="MDREA", no_progress=True), checked as the script checks
    them. The same object the script would run."""
    module = script_module(name)
    # main.py holds two systems, one parser each (build_parser(system)); the other scripts one
    ap = module.build_parser(name) if SCRIPTS.get(name) == "main.py" else module.build_parser()
    argv = [*map(str, argv), *kwargs_to_argv(ap, settings)]
    if name == "deep-emo-cluster" and not any(a.split("=")[0] in module.FLAGS for a in argv):
        raise TypeError("deep-emo-cluster: give its flags (epoch=..., num_clusters=..., model_type=...)")
    return module.describe(argv)


def from_command(script: str, argv) -> Experiment:
    """The Experiment of `python <script> <argv>` without running it; a rejected flag raises engine.cli.UserError
    with argparse's message (benchmark.py plans every step this way before anything runs)."""
    import contextlib
    import io

    from engine.cli import UserError
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return script_module(script).describe([str(a) for a in argv])
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        raise UserError(lines[-1].split(" error: ", 1)[-1] if lines else "arguments rejected") from None


def hooks_of(exp: Experiment):
    import importlib
    module, _, name = exp.hooks.partition(":")
    return getattr(importlib.import_module(module), name)


def kwargs_to_argv(ap: argparse.ArgumentParser, settings: dict) -> list[str]:
    """The command-line flags of `settings` ({dest: value}) for the parser `ap`: a switch is its flag when true,
    a list is comma-joined (one word per value for a flag taking several), None is left out; an unknown name is a
    TypeError naming the accepted ones. This is how the Python API takes the scripts' arguments as keywords."""
    by_dest = {a.dest: a for a in ap._actions if a.option_strings and a.dest != "help"}
    argv = []
    for key, value in settings.items():
        dest = key.replace("-", "_")
        action = by_dest.get(dest)
        if action is None:
            raise TypeError(f"unknown setting {key!r}; this script takes: {', '.join(sorted(by_dest))}")
        flag = max(action.option_strings, key=len)  # the long form: --iterations, not -iter
        if value is None or value is False:
            continue
        if value is True and action.nargs == 0:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):  # one value per word for a flag of several (--checkpoints a b)
            argv += [flag, *map(str, value)] if action.nargs in ("+", "*") else [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def run(exp: Experiment, system=None) -> list[Outcome]:
    """Run an experiment: per fold train through the loop (unless exp.stages lacks "train"), load the best
    checkpoint, test it (the system's `test` writes the per-utterance CSV and result JSON), score its
    missing-data conditions; then the pooled conditions and the system's table. Only rank 0 of a torchrun job
    tests and writes. Returns every fold's Outcome (rank 0; other ranks get the folds they trained)."""
    from engine.loop import ddp_env, train
    system = system or hooks_of(exp)
    rank = ddp_env()[0]
    outcomes = []
    for fold in system.folds(exp):
        method = system.method(exp, fold)
        res = None
        if "train" in exp.stages:
            res = train(method, fold.train, fold.dev,
                        exp.training.loop_config(fold.run_dir, fold.train_name, fold.val_name,
                                                 **fold.extra.get("loop", {})), made_by=made_by(exp))
        outcome = Outcome(fold, res)
        outcomes.append(outcome)
        if rank != 0 or "test" not in exp.stages:
            continue
        fold.extra["loop_result"] = res
        with testing_precision(exp):
            test_fold(exp, system, fold, method, outcome)
    if rank != 0 or "test" not in exp.stages:
        return outcomes
    with testing_precision(exp):
        score_pooled(exp, system, outcomes)
    return outcomes


def testing_precision(exp: Experiment):
    """The test stage's forward passes in the experiment's precision (engine.loop.autocast): every system's test,
    its missing-data conditions and its Predictor run inside it, and its result files record it."""
    from engine.loop import autocast
    from utils import resolve_device
    return autocast(resolve_device(exp.training.device), exp.training.precision)


def test_fold(exp: Experiment, system, fold: Fold, method, outcome: Outcome) -> None:
    """Load a fold's model, test it and score its own missing-data conditions (rank 0)."""
    from engine.loop import load_best
    model = (system.load(exp, fold, method) if hasattr(system, "load") else
             load_best(method, fold.run_dir, exp.training.device, allow_unfinished=exp.training.allow_unfinished))
    outcome.row = system.test(exp, fold, method, model) or {}
    if fold.protocols or (getattr(system, "pooled_protocols", False) and exp.conditions):
        outcome.draws = memoized(system.draws(exp, fold, method, model))
    for protocol, (conds, path) in fold.protocols.items():
        outcome.protocol_rows[protocol] = score_conditions(
            exp, system, protocol, conds, {fold.name: outcome.draws}, path, fold.extra.get("result", {}),
            title=fold.extra.get("titles", {}).get(protocol, f"{fold.name}: {protocol}"))


def score_pooled(exp: Experiment, system, outcomes: list) -> None:
    """After the last fold: the system's table and the conditions pooled over the folds (rank 0)."""
    table_first = getattr(system, "table_first", False)
    if table_first and hasattr(system, "table") and outcomes:
        system.table(exp, outcomes)
    if getattr(system, "pooled_protocols", False):
        tested = [o for o in outcomes if o.draws is not None]
        result = system.pooled_result(exp, tested) if tested and hasattr(system, "pooled_result") else {}
        for protocol, conds in exp.conditions.items():
            if tested:
                score_conditions(exp, system, protocol, conds, {o.fold.name: o.draws for o in tested},
                                 exp.outputs["protocols"][protocol], result,
                                 title=exp.outputs.get("titles", {}).get(protocol, f"{exp.system}: {protocol}"))
    if not table_first and hasattr(system, "table") and outcomes:
        system.table(exp, outcomes)


def made_by(exp: Experiment) -> dict:
    """What a trained run records of its experiment for its model card (engine.model_card): the command that
    re-creates it and the corpus it trained on (the resolved root; synthetic or not)."""
    from engine.model_card import corpus_record
    return {"command": exp.command, "corpus": corpus_record(getattr(exp.settings, "root", None) or exp.corpus)}


def memoized(predict: Callable) -> Callable:
    """predict(condition, sim_seed) computed once per (condition, seed): the complete data and the conditions
    several protocols share are not evaluated again."""
    memo = {}

    def once(cond, sim_seed: int):
        key = (str(cond), sim_seed)
        if key not in memo:
            memo[key] = predict(cond, sim_seed)
        return memo[key]
    return once


def score_conditions(exp: Experiment, system, protocol: str, conds: list, series: dict, path: Path, result: dict,
                     title: str = "") -> list[dict]:
    """One protocol's conditions on one or more models (`series`: {name: predict}) through
    engine.robustness.evaluate_conditions, written as <path> (JSON) with its .csv, .png and _per_utterance.csv."""
    from engine.robustness import evaluate_conditions
    s = exp.settings
    path = Path(path)
    stem = path.with_name(path.name[:-len(".json")]) if path.name.endswith(".json") else path
    extra = ({"attributes": list(system.attributes)} if system.metric == "CCC" else {"classes": list(system.classes)})
    return evaluate_conditions(series, conds, sim_seeds=s.sim_seeds, metric=system.metric, protocol=protocol,
                               out=stem, result=dict(result), resamples=s.bootstrap, ci_method=s.ci_method,
                               title=title, **extra)

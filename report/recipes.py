"""From the config to steps (existing command lines) and to the result files they leave.

The steps are extraction, NormTerm, training, testing and missing-data evaluation; the report reads only the result
files they leave. Steps shared by several systems (a corpus, a store, a NormTerm) have one key and run once."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from report.config import STM_CONFIGS, Config, System, protocol_options, training_seeds

ATTRS = ("Act", "Dom", "Val")
CROSS_LANE = "cross-corpus"  # after every system's lane: it scores their models
THREE_WAY = "speech+text+mocap"


@dataclass
class Step:
    key: str  # unique over the whole benchmark; its done-marker is named after it
    title: str
    script: str  # the top-level script (module) whose main(argv) runs it
    argv: list
    corpus: str  # the config's corpus the step reads (its fingerprint is part of the step's identity)
    retry_fresh: bool = False  # on failure, run again with --no-resume (config: fresh_on_conflict)
    inputs: tuple = ()  # checkpoint folders it reads (their weights' size and time are part of its identity)
    runs: tuple = ()  # run folders it trains: no other step of the benchmark may name one of them

    def command(self) -> str:
        return " ".join(["python", f"{self.script}.py", *map(str, self.argv)])


@dataclass
class Result:
    """One result file the report expects: what it is (section) and where it comes from."""
    section: str  # ccc | class | class-folds | ablation | protocol | cross | cross-class
    system: str
    variant: str
    path: Path  # the result JSON
    info: dict = field(default_factory=dict)  # attribute, configuration, fold, corpus, ...
    step: str = ""  # the key of the step that writes it: the file must be among those that step wrote


@dataclass
class Job:
    """The steps of one system (or cross-corpus pair) in order; a failed step skips the rest of its job."""
    name: str
    steps: list[Step]
    results: list[Result]
    lane: str = ""  # jobs of one lane run in order in one process (they share run folders or stores they make)


def corpus_steps(cfg: Config, name: str) -> list[Step]:
    c = cfg.corpora[name]
    if not c.synthetic:
        return []
    s = c.synthetic
    return [Step(f"corpus/{name}", f"demo corpus {name}", "make_demo_corpus",  # a manifest's: <home>/corpus.csv
                 ["--kind", c.kind, "--out", c.home, "--n", s.get("n", 500), "--seed", s.get("seed", 0),
                  "--if-missing"], name)]


def _features(cfg: Config, corpus: str, script: str, store: Path, extra: list,
              normterm: Path | None = None) -> list[Step]:
    c = cfg.corpora[corpus]
    steps = [Step(f"features/{corpus}/{store.name}", f"{store.name} features of {corpus}", script,
                  [*c.flags(), *extra, "--store", store], corpus)]
    if normterm is not None:
        steps.append(Step(f"normterm/{corpus}/{normterm.name}", f"NormTerm of {store.name} (training split)",
                          "norm_para", ["--store", store, *c.flags("msp-podcast"), *c.split_flags(train="--split"),
                                        "--out", normterm], corpus))
    return steps


@dataclass(frozen=True)
class Model:
    """A pretrained model argument: a hub id or local folder, or `tiny-random-wav2vec2` / `tiny-random-bert`, a
    tiny randomly initialised model built locally when the step runs (no model hub needed; the demo's). Made at
    run time because the tiny BERT's vocabulary needs the corpus."""
    which: str
    corpus: str | None = None

    def __str__(self) -> str:
        return self.which


TINY_MODELS = {"tiny-random-wav2vec2": "tiny_wav2vec2", "tiny-random-bert": "tiny_bert"}  # -> folder under data
_USER_MODEL_CACHE = os.environ.get("SER_MODEL_CACHE")  # a user's own cache wins over the config's data folder


def model_path(cfg: Config, m) -> str:
    """The argument a step passes for a model: the keyword of a tiny model (every script accepts it and builds
    the model the same way, so the step's command re-creates its number from a fresh clone), else as given."""
    return str(m)


def resolve_model(cfg: Config, m: Model) -> str:
    """model_path, making a tiny model first when the step runs (features.text.resolve_model, the scripts' own
    resolver; the tiny BERT's vocabulary from the IEMOCAP training sessions, as speech_text_mocap.py builds it).
    A tiny BERT for a corpus with named splits (no `corpus` here) is left to the script, which builds it from the
    transcripts of its training split."""
    if m.which in TINY_MODELS:
        from features.text import iemocap_training_texts, resolve_model as build
        if _USER_MODEL_CACHE is None:  # the config's data folder holds its tiny models (demo_data/ for the demo)
            os.environ["SER_MODEL_CACHE"] = str(Path(cfg.data).resolve())
        if m.which == "tiny-random-bert" and not m.corpus:
            return model_path(cfg, m)
        build(m.which, texts=iemocap_training_texts(cfg.corpora[m.corpus].root) if m.corpus else None)
    return model_path(cfg, m)


def script_outputs(cfg: Config, where: str, script: str, argv: list) -> dict:
    """Where a step's command trains and writes: the outputs of the script's own Experiment description
    (engine.experiment.from_command) of the step's full argv, extra flags included: never re-derived here.
    A flag the script rejects is an error now, before anything runs."""
    from engine.cli import UserError
    from engine.experiment import from_command
    from report.config import ConfigError
    argv = [model_path(cfg, a) for a in argv]
    try:
        return from_command(f"{script}.py", argv).outputs
    except UserError as e:
        raise ConfigError(f"{cfg.path}: {where}: {script}.py refuses its settings and extra flags ({e}); the "
                          f"command: python {script}.py {' '.join(argv)}") from None


def fold_info(cfg: Config, s: System, k):
    """A result's fold as the report shows it: IEMOCAP's fold number or held-out session, else (a corpus with
    named splits is one fold) the test split's name."""
    c = cfg.corpora[s.corpus]
    return k if c.kind == "iemocap" else f"{c.splits.get('test') or 'test'} split"


def _run_flags(cfg: Config, system: System, seed: int) -> list:
    deterministic = system.settings.get("deterministic", cfg.deterministic)
    return ["--seed", seed, *(["--deterministic"] if deterministic else [])]


@dataclass(frozen=True)
class Seeded:
    """One training seed of a variant: the seed, the suffix of its step keys and job name, what its Results say."""
    seed: int
    key: str  # "/seed1" when the config lists `seeds` (each its own steps), else ""
    info: dict  # {"seed": 1} when the config lists `seeds`, else {}

    def folder(self, base: Path) -> Path:
        """Where a script whose names do not carry the seed (training.py, main.py, ...) trains or writes for this
        seed: `base` for seed 0 (today's names), else base/seed<N>, so two seeds never share a run or a file."""
        return base if self.seed == 0 else base / f"seed{self.seed}"

    @property
    def tag(self) -> str:
        return "" if self.seed == 0 else f"_seed{self.seed}"


def seeded(s: System, v: dict) -> list[Seeded]:
    """The training seeds of a variant (config `seeds: [0, 1, 2]`, else its one `seed`)."""
    listed = "seeds" in v or "seeds" in s.settings
    return [Seeded(k, f"/seed{k}" if listed else "", {"seed": k} if listed else {})
            for k in training_seeds(s.settings, v)]


def protocol_flags(opts: dict, missing: bool = False) -> list:
    """The evaluation scripts' protocol flags (contract: --protocols, --rates, --sweep-kinds, --sim-seeds,
    --bootstrap, --ci-method) for a variant's protocol keys; rates always spelled out (the command says what was
    run), the others only when the config sets them (the scripts' defaults otherwise). `missing`: the variant has
    a --missing list, which the simulation seeds and intervals apply to as well."""
    from features.missing import RATES
    protocols = opts.get("protocols") or []
    flags = ["--protocols", ",".join(protocols)] if protocols else []
    if {"random", "sweep"} & set(protocols):
        flags += ["--rates", ",".join(f"{float(r):g}" for r in sorted(opts.get("rates", RATES)))]
    if "sweep" in protocols and opts.get("sweep_kinds"):
        flags += ["--sweep-kinds", ",".join(opts["sweep_kinds"])]
    if protocols or missing:
        for key, flag in (("sim_seeds", "--sim-seeds"), ("bootstrap", "--bootstrap"), ("ci_method", "--ci-method")):
            if key in opts:
                flags += [flag, opts[key]]
    return flags


def protocol_results(s: System, variant: str, paths: dict, metric: str, key: str, info: dict) -> list[Result]:
    """The protocol result files a step writes ({protocol: path}) as Results of section "protocol"."""
    return [Result("protocol", s.system, variant, Path(path), {**info, "protocol": protocol, "metric": metric}, key)
            for protocol, path in paths.items()]


def _lstm_flags(v: dict) -> list:
    return ["-iter", v.get("iterations", 5000), "-batch", v.get("batch", 128), "-atten", v.get("atten", "RnnAttenVec")]


def _dec_flags(v: dict) -> list:
    return ["-ep", v.get("epochs", 30), "-batch", v.get("batch", 64), "-nc", v.get("clusters", 10),
            "-mt", v.get("mt", "Temp-Trans"), "-unlabel", v.get("unlabelled", 40000)]


@dataclass(frozen=True)
class Dimensional:
    """What training, testing and cross-corpus scoring of a dimensional system read: one set of facts."""
    label: str
    store: str  # feature store folder under <corpus>/Features
    normterm: str  # NormTerm folder under the corpus
    extractor: str  # scripts
    trainer: str
    tester: str
    run_flags: Callable  # variant -> the flags that name its run folder
    train_flags: Callable  # variant -> the trainer's own flags
    train_splits: dict  # the trainer's split flags: {role (train / dev / test): flag}


DIMENSIONAL = {
    "chunk-lstm": Dimensional("chunk LSTM", "OpenSmile_lld_IS13ComParE", "NormTerm", "feat_opensmile", "training",
                              "testing", _lstm_flags,
                              lambda v: ["--lr", v.get("lr", 1e-4), "--val-every", v.get("val_every", 50)],
                              {"train": "--train-split", "dev": "--val-split"}),
    "deep-emo-cluster": Dimensional("DeepEmoCluster", "Mel_Spec128", "NormTerm_Mel128", "feat_mel", "main",
                                    "online_testing", _dec_flags,
                                    lambda v: ["--unlabelled-split", v.get("unlabelled_split", "test2")],
                                    # the test split too: the unlabelled pool may not hold its utterances
                                    {"train": "--train-split", "dev": "--val-split", "test": "--test-split"}),
}


def dimensional(cfg: Config, s: System) -> list[Job]:
    """The chunk LSTM or DeepEmoCluster: features + NormTerm, then per variant and attribute train and test."""
    d = DIMENSIONAL[s.system]
    c = cfg.corpora[s.corpus]
    store, nt = c.features / d.store, c.home / d.normterm
    prep = [*corpus_steps(cfg, s.corpus), *_features(cfg, s.corpus, d.extractor, store, [], nt)]
    jobs = []
    for v, sd in ((v, sd) for v in s.variants for sd in seeded(s, v)):
        common = [*d.run_flags(v), *c.flags("msp-podcast"), "--store", store, "--normterm", nt]
        models, steps, results = sd.folder(cfg.models), list(prep), []
        label = f"{d.label} {v['name']}{sd.key.replace('/', ' ')}"
        test = c.splits.get("test") or "test1"
        for emo in s.settings.get("attributes", ATTRS):
            steps.append(dimensional_training(cfg, s, v, sd, emo))
            csv = cfg.results / f"{s.system.replace('-', '_')}_{v['name']}_{emo}{sd.tag}_{test}.csv"
            argv = [*common, *c.split_flags(test="--split"), "-emo", emo, "--models-dir", models, "--csv", csv]
            steps.append(Step(f"{s.system}/{v['name']}{sd.key}/test/{emo}", f"{label}: test {emo}", d.tester, argv,
                              s.corpus))
            named = script_outputs(cfg, f"{label} test {emo}", d.tester, argv)["results"][emo]
            results.append(Result("ccc", s.system, v["name"], named, {"attribute": emo, "corpus": s.corpus, **sd.info},
                                  steps[-1].key))
        jobs.append(Job(f"{s.system} {v['name']}{sd.key.replace('/', ' ')}", steps, results, s.system))
    return jobs


def dimensional_training(cfg: Config, s: System, v: dict, sd: Seeded, emo: str) -> Step:
    """The training step of a dimensional variant's attribute; its run folder from the trainer's own Experiment
    description (the cross-corpus steps read the same folder)."""
    d = DIMENSIONAL[s.system]
    c = cfg.corpora[s.corpus]
    argv = [*d.run_flags(v), *c.flags("msp-podcast"), "--store", c.features / d.store,
            "--normterm", c.home / d.normterm, *c.split_flags(**d.train_splits),
            "-emo", emo, "--out", sd.folder(cfg.models), *d.train_flags(v), *_run_flags(cfg, s, sd.seed),
            *v.get("extra", [])]
    label = f"{d.label} {v['name']}{sd.key.replace('/', ' ')}"
    run = script_outputs(cfg, f"{label} train {emo}", d.trainer, argv)["run"]
    return Step(f"{s.system}/{v['name']}{sd.key}/train/{emo}", f"{label}: train {emo}", d.trainer, argv, s.corpus,
                cfg.fresh_on_conflict, runs=(run,))


def audio_text_stores(cfg: Config, s: System) -> tuple[Path, Path, Path, Path]:
    c = cfg.corpora[s.corpus]
    speech, text = (s.settings.get("speech_model", "facebook/wav2vec2-large-robust"),
                    s.settings.get("text_model", "roberta-base"))
    a_store = c.features / ("Wav2Vec32" if speech == "tiny-random-wav2vec2" else f"Wav2Vec_{Path(speech).name}")
    t_store = c.features / ("MiniLM384" if text == "minilm" else f"Tokens_{Path(text).name}")
    return a_store, t_store, c.home / f"NormTerm_{a_store.name}", c.home / f"NormTerm_{t_store.name}"


def audio_text(cfg: Config, s: System) -> list[Job]:
    """Features + NormTerms, then per variant (and training seed) main.py's train + test, then per seed the
    missing-data evaluation of all variants' checkpoints side by side (evaluate_missing.py): the older rate sweep
    (missing_rates / missing_conditions) and the protocols."""
    c = cfg.corpora[s.corpus]
    a_store, t_store, a_nt, t_nt = audio_text_stores(cfg, s)
    speech = Model(s.settings.get("speech_model", "facebook/wav2vec2-large-robust"))
    steps = [*corpus_steps(cfg, s.corpus),
             *_features(cfg, s.corpus, "feat_wav2vec2", a_store, ["--model", speech], a_nt),
             *_features(cfg, s.corpus, "feat_roberta", t_store, ["--model", s.settings.get("text_model", "roberta-base")],
                        t_nt)]
    feats = [*c.flags("msp-podcast"), "--audio-store", a_store, "--text-store", t_store]
    results, runs, seeds = [], {}, {}  # runs: seed -> {run folder: variant}
    for v, sd in ((v, sd) for v in s.variants for sd in seeded(s, v)):
        step, names = _audio_text_train(cfg, s, v, sd, feats, (a_nt, t_nt))
        steps.append(step)
        seeds[sd.seed] = sd
        runs.setdefault(sd.seed, {})[names["run"]] = v["name"]
        results += [Result("ccc", s.system, v["name"], path, {"attribute": emo, "corpus": s.corpus, **sd.info}, step.key)
                    for emo, path in names["results"].items()]
    for seed, seed_runs in runs.items():
        more_steps, more_results = _audio_text_missing(cfg, s, seeds[seed], seed_runs, feats)
        steps += more_steps
        results += more_results
    return [Job("audio-text", steps, results, s.system)]


def _audio_text_train(cfg: Config, s: System, v: dict, sd: Seeded, feats: list, normterms: tuple) -> tuple[Step, dict]:
    """One variant's main.py step for one seed, and where it trains and writes: main.py's own run name, in the
    seed's folder (main.py's names do not carry the seed)."""
    it, batch, chunking = v.get("iterations", 3000), v.get("batch", 32), v.get("chunking", "multiscale")
    argv = [*feats, "--normterm-audio", normterms[0], "--normterm-text", normterms[1], "-iter", it, "-batch", batch,
            "--lr", v.get("lr", 1e-4), "--val-every", v.get("val_every", 100), "--chunking", chunking,
            *cfg.corpora[s.corpus].split_flags(train="--train-split", dev="--val-split", test="--test-split"),
            *(["--train-missing", v["train_missing"]] if v.get("train_missing") else []),
            "--out", sd.folder(cfg.models), "--results", sd.folder(cfg.results), *_run_flags(cfg, s, sd.seed),
            *v.get("extra", [])]
    named = script_outputs(cfg, f"audio-text variant {v['name']}", "main", argv)
    step = Step(f"audio-text/{v['name']}{sd.key}/train+test",
                f"audio-text {v['name']}{sd.key.replace('/', ' ')}: train + test", "main", argv, s.corpus,
                cfg.fresh_on_conflict, runs=(named["run"],))
    return step, {"run": named["run"], "results": {emo: named["results"][emo] for emo in ATTRS}}


def _audio_text_missing(cfg: Config, s: System, sd: Seeded, runs: dict, feats: list) -> tuple[list, list]:
    """evaluate_missing.py on one seed's checkpoints (every variant side by side, one series each): the protocols
    (protocol flags) and the older missing_rates / missing_conditions keys (its deprecated --conditions list,
    scored as the protocol "conditions"), in one step writing <out>_<protocol>.json each."""
    opts = protocol_options(s.settings, {})
    protocols = list(opts.get("protocols") or [])
    legacy = s.settings.get("missing_rates") is not None or s.settings.get("missing_conditions") is not None
    if not protocols and not legacy:
        return [], []
    flags = protocol_flags(opts, legacy)
    if legacy:
        if "--rates" not in flags:
            flags += ["--rates", ",".join(map(str, s.settings.get("missing_rates", [0, 0.1, 0.3, 0.5])))]
        flags += ["--conditions", ",".join(s.settings.get("missing_conditions", LEGACY_KINDS))]
        protocols.append("conditions")
    out = cfg.results / f"audio_text_missing_data{sd.tag}"
    argv = ["--checkpoints", *runs, *feats, *cfg.corpora[s.corpus].split_flags(train="--train-split", test="--split"),
            *flags, "--out", out]
    step = Step(f"audio-text/missing{sd.key}", f"audio-text under missing data{sd.key.replace('/', ' ')}: "
                + ", ".join(protocols), "evaluate_missing", argv, s.corpus)
    paths = script_outputs(cfg, "audio-text missing data", "evaluate_missing", argv)["protocols"]
    info = {"variants": {str(r): name for r, name in runs.items()}, **sd.info}
    return [step], protocol_results(s, "", paths, "CCC", step.key, info)


LEGACY_KINDS = ("frames", "bursts", "words", "words+audio")  # evaluate_missing.py's older default --conditions


def mdre_step(cfg: Config, s: System, v: dict, sd: Seeded | None = None) -> tuple[Step, dict]:
    """An MDRE variant's mdre.py step for one training seed (default: its first) and where it writes
    (mdre.py's Experiment outputs of its full argv: the seed is in the names when not 0)."""
    sd = sd or seeded(s, v)[0]
    c = cfg.corpora[s.corpus]
    model = v.get("model", "MDREA")
    missing = v.get("missing")
    protocol, folds = s.settings.get("protocol", "random5"), s.settings.get("folds")
    if c.kind == "iemocap":  # IEMOCAP's folds are computed by a protocol
        where, evaluated = ["--protocol", protocol, *(["--folds", ",".join(map(str, folds))] if folds else [])], protocol
    else:  # one fold: the corpus's own splits
        where = c.split_flags(train="--train-split", dev="--dev-split", test="--test-split")
        evaluated = f"test split {c.splits.get('test') or 'test'}"
    argv = [*c.flags("iemocap"), "--model", model, *where, "-iter", v.get("iterations", 10000),
            "-batch", v.get("batch", 128), "--lr", v.get("lr", 1e-3),
            *(["--val-every", v["val_every"]] if v.get("val_every") else []), "--patience", v.get("patience", 7),
            *(["--missing", ",".join(missing)] if missing else []),
            *protocol_flags(protocol_options(s.settings, v), bool(missing)), "--out", cfg.models,
            "--results", cfg.results, *_run_flags(cfg, s, sd.seed), *v.get("extra", [])]
    names = script_outputs(cfg, f"mdre variant {v['name']}", "mdre", argv)
    return Step(f"mdre/{v['name']}{sd.key}", f"MDRE family {v['name']}{sd.key.replace('/', ' ')}: {model}, {evaluated}",
                "mdre", argv, s.corpus, cfg.fresh_on_conflict, runs=tuple(names["runs"].values())), names


def mdre(cfg: Config, s: System) -> list[Job]:
    jobs = []
    for v, sd in ((v, sd) for v in s.variants for sd in seeded(s, v)):
        step, names = mdre_step(cfg, s, v, sd)
        results = [Result("class", s.system, v["name"], path, {"fold": fold_info(cfg, s, k), "corpus": s.corpus,
                                                               **sd.info}, step.key)
                   for k, path in names["folds"].items()]
        results.append(Result("class-folds", s.system, v["name"], names["table"], {**sd.info}, step.key))
        paths = names["protocols"]  # {protocol: <name>_<protocol>.json}, "conditions" the --missing list's
        results += protocol_results(s, v["name"], paths, "WA/UA", step.key, {**sd.info})
        jobs.append(Job(f"mdre {v['name']}{sd.key.replace('/', ' ')}", [*corpus_steps(cfg, s.corpus), step], results,
                        s.system))
    return jobs


def stm_step(cfg: Config, s: System, v: dict, sd: Seeded | None = None) -> tuple[Step, dict]:
    """A speech-text-mocap variant's step for one training seed (default: its first) and where it writes
    (speech_text_mocap.py's Experiment outputs of its argv)."""
    sd = sd or seeded(s, v)[0]
    configs = v.get("configs", STM_CONFIGS)
    missing = v.get("missing")
    opt = {"--lr": "lr", "--val-every": "val_every", "--patience": "patience", "--dev-share": "dev_share",
           "--d-model": "d_model", "--heads": "heads", "--layers": "layers", "--ff": "ff",
           "--fusion-hidden": "fusion_hidden", "-iter": "iterations", "-batch": "batch"}
    c = cfg.corpora[s.corpus]
    argv = [*c.flags("iemocap"), *c.split_flags(train="--train-split", dev="--dev-split", test="--test-split"),
            "--speech-model", Model(s.settings.get("speech_model", "facebook/wav2vec2-large-robust")),
            "--text-model", Model(s.settings.get("text_model", "bert-base-uncased"),  # IEMOCAP's: see resolve_model
                                  s.corpus if c.kind == "iemocap" else None),
            "--configs", ",".join(configs), *[x for flag, key in opt.items() if key in v for x in (flag, v[key])],
            *(["--loso"] if s.settings.get("loso") else []),
            "--missing", ",".join(missing) if missing else "none",
            *protocol_flags(protocol_options(s.settings, v), bool(missing)), "--out", cfg.models,
            "--results", cfg.results, *_run_flags(cfg, s, sd.seed), *v.get("extra", [])]
    names = script_outputs(cfg, f"speech-text-mocap variant {v['name']}", "speech_text_mocap", argv)
    return Step(f"speech-text-mocap/{v['name']}{sd.key}",
                f"speech + text + mocap {v['name']}{sd.key.replace('/', ' ')}: every configuration",
                "speech_text_mocap", argv, s.corpus, cfg.fresh_on_conflict, runs=tuple(names["runs"].values())), names


def _stm_protocol_results(cfg: Config, s: System, v: dict, sd: Seeded, names: dict, key: str) -> list[Result]:
    """The protocol files of a variant: per configuration and held-out session, as speech_text_mocap.py's
    Experiment outputs list them ({(configuration, session, protocol): path}; "conditions" = the --missing list's)."""
    return [r for (c, k, p), path in names["protocols"].items()
            for r in protocol_results(s, v["name"], {p: path}, "WA/UA", key,
                                      {"fold": fold_info(cfg, s, k), "configuration": c, **sd.info})]


def speech_text_mocap(cfg: Config, s: System) -> list[Job]:
    jobs = []
    for v, sd in ((v, sd) for v in s.variants for sd in seeded(s, v)):
        step, names = stm_step(cfg, s, v, sd)
        results = [Result("class", s.system, v["name"], path,
                          {"fold": fold_info(cfg, s, k), "configuration": c, "corpus": s.corpus, **sd.info}, step.key)
                   for (c, k), path in names["results"].items()]
        results.append(Result("ablation", s.system, v["name"], names["ablation"], {**sd.info}, step.key))
        results += _stm_protocol_results(cfg, s, v, sd, names, step.key)
        jobs.append(Job(f"speech-text-mocap {v['name']}{sd.key.replace('/', ' ')}",
                        [*corpus_steps(cfg, s.corpus), step], results, s.system))
    return jobs


RECIPES = {"chunk-lstm": dimensional, "deep-emo-cluster": dimensional, "audio-text": audio_text, "mdre": mdre,
           "speech-text-mocap": speech_text_mocap}


def cross_corpus(cfg: Config, c: dict) -> list[Job]:
    """A model of one corpus scored on another, for each training seed of the variant: an MSP-Podcast dimensional
    model on IEMOCAP's ratings (its testing script, labels rescaled 1-5 -> 1-7), or an IEMOCAP four-class model on
    MSP-Podcast's categories (cross_corpus.py). Each step's identity includes the checkpoints it scores, so a
    retrained model is scored again."""
    (s,) = [x for x in cfg.systems if x.system == c["system"]]
    (v,) = [x for x in s.variants if x["name"] == c["variant"]]
    if s.system not in DIMENSIONAL:
        return [_categorical_cross(cfg, c, s, v, sd) for sd in seeded(s, v)]
    return [_dimensional_cross(cfg, c, s, v, sd) for sd in seeded(s, v)]


def _dimensional_cross(cfg: Config, c: dict, s: System, v: dict, sd: Seeded) -> Job:
    d = DIMENSIONAL[s.system]
    root = cfg.corpora[c["corpus"]].root
    store, common, models = cfg.corpora[c["corpus"]].features / d.store, d.run_flags(v), sd.folder(cfg.models)
    nt = cfg.corpora[s.corpus].home / d.normterm  # for an original .pth.tar; our checkpoints carry their NormTerm
    steps = [*corpus_steps(cfg, c["corpus"]), *_features(cfg, c["corpus"], d.extractor, store, [])]
    results = []
    tag, label = s.system.replace("-", "_"), f"{v['name']}{sd.key.replace('/', ' ')}"
    for emo in s.settings.get("attributes", ATTRS):
        csv = cfg.results / (f"cross_{tag}_{v['name']}_{emo}{sd.tag}_on_{c['corpus']}_"
                             f"{c['split'].replace(',', '+')}.csv")
        steps.append(Step(f"cross/{s.system}/{v['name']}{sd.key}/{c['corpus']}/{c['split']}/{emo}",
                          f"{s.system} {label} ({s.corpus}) scored on {c['corpus']}: {emo}", d.tester,
                          [*common, "-emo", emo, "--models-dir", models, "--normterm", nt, "--corpus", "iemocap",
                           "--root", root, "--store", store, "--split", c["split"], "--csv", csv],
                          c["corpus"], inputs=dimensional_training(cfg, s, v, sd, emo).runs))
        results.append(Result("cross", s.system, v["name"], csv.with_suffix(".json"),
                              {"attribute": emo, "trained_on": s.corpus, "tested_on": c["corpus"], "split": c["split"],
                               **sd.info}, steps[-1].key))
    return Job(f"cross-corpus {s.system} {label} on {c['corpus']}", steps, results, CROSS_LANE)


def _categorical_cross(cfg: Config, c: dict, s: System, v: dict, sd: Seeded) -> Job:
    """Every fold's (MDRE) or held-out session's (speech+text+mocap) model of a variant on MSP-Podcast's
    categories, in one cross_corpus.py step (the corpus's stores are made once)."""
    if s.system == "mdre":
        runs = mdre_step(cfg, s, v, sd)[1]["runs"]
        what = v.get("model", "MDREA")
    else:
        what = c["configuration"]
        runs = {k: run for (conf, k), run in stm_step(cfg, s, v, sd)[1]["runs"].items() if conf == what}
    root = cfg.corpora[c["corpus"]].root
    name = f"{v['name']}{sd.key.replace('/', ' ')}"
    argv = ["--checkpoint", *runs.values(), "--root", root, "--split", c["split"], "--results", cfg.results]
    step = Step(f"cross/{s.system}/{v['name']}/{what}{sd.key}/{c['corpus']}/{c['split']}",
                f"{s.system} {what if v['name'] == what else v['name'] + ' ' + what}{sd.key.replace('/', ' ')} "
                f"({s.corpus}) scored on {c['corpus']} ({c['split']})", "cross_corpus", argv, c["corpus"],
                inputs=tuple(runs.values()))
    named = script_outputs(cfg, f"cross-corpus {s.system} {name}", "cross_corpus", argv)["results"]
    results = [Result("cross-class", s.system, v["name"], named[Path(run)],
                      {"fold": k, "configuration": what, "trained_on": s.corpus, "tested_on": c["corpus"],
                       "split": c["split"], **sd.info}, step.key) for k, run in runs.items()]
    return Job(f"cross-corpus {s.system} {name} {what} on {c['corpus']}",
               [*corpus_steps(cfg, c["corpus"]), step], results, CROSS_LANE)


def plan(cfg: Config) -> list[Job]:
    """Every job of the config, or a ConfigError when two steps would train the same run folder or write the same
    result file (two variants whose settings give the same names: one would show the other's numbers)."""
    jobs = [j for s in cfg.systems for j in RECIPES[s.system](cfg, s)]
    jobs += [j for c in cfg.cross_corpus for j in cross_corpus(cfg, c)]
    _refuse_shared_outputs(cfg, jobs)
    return jobs


def _refuse_shared_outputs(cfg: Config, jobs: list[Job]) -> None:
    from report.config import ConfigError
    steps = {s.key: s for j in jobs for s in j.steps}
    owner: dict = {}
    outputs = [(p, key) for key, st in steps.items() for p in st.runs]
    outputs += [(r.path, r.step) for j in jobs for r in j.results]
    for path, key in outputs:
        first = owner.setdefault(Path(path).resolve(), key)
        if first != key:
            raise ConfigError(f"{cfg.path}: '{steps[first].title}' and '{steps[key].title}' would both write {path}: "
                              "give the variants different settings (or drop one)")

"""Speech + text + mocap fusion (System 5, speech_text_mocap.py) on the experiment layer (engine.experiment).

`describe` turns the script's parsed flags into an Experiment: every flag that cannot apply refused, the
configurations and held-out sessions, and the name of every run folder and result file (`outputs`), from the
flags alone. `STM` holds the hooks engine.experiment.run calls: one fold per (held-out session, configuration),
sessions outer; the fold's name is its configuration (the series name of its protocol files). `folds` reads
IEMOCAP once, makes sure the stores exist (rank 0 extracts, the other ranks of a torchrun job wait), and shares
per held-out session the z-norm of its training part and the re-encoder of degraded transcripts between that
session's configurations; `method` is the configuration's FusionMethod, `test` writes the per-utterance CSV and
result JSON and prints the configuration's line, `draws` scores its missing-data protocols, `table` writes the
ablation table and, when the three-way model is trained, the table of the --missing conditions.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from corpora.records import audio_seconds
from engine.cli import UserError
from engine.experiment import Experiment, Fold, Training
from systems.mdre_experiment import (check_corpus_args, corpus_record, features_dir, fold_scores, is_split_corpus,
                                     list_left_out, read_split_fold, table_metrics, trained_corpus)
from systems.speech_text_mocap import (CLASSES, CONDITION_KINDS, CONFIGURATIONS, MOCAP_COLUMNS, REENCODED,
                                       REFUSED_KINDS, SYSTEM, THREE_WAY, TRAINING_REFUSED, ordered_streams, streams,
                                       sweep_kinds_of)

# the flags of the missing-data protocols (engine.cli.add_protocol_args): they change no model, so no run name
PROTOCOL_FLAGS = ("protocols", "rates", "sweep_kinds", "sim_seeds", "bootstrap", "ci_method")
# the settings each protocol's results depend on, named in its file (--bootstrap / --ci-method change only the
# intervals, which the file records)
PROTOCOL_NAMED = {"fixed": (), "random": ("rates", "sim_seeds"), "sweep": ("rates", "sweep_kinds", "sim_seeds"),
                  "conditions": ("missing", "sim_seeds")}
# the fields of a configuration's result file that its protocol files repeat
PROTOCOL_RESULT = ("system", "configuration", "modalities", "corpus", "fold", "split", "checkpoint", "seed")


# ------------------------------------------------------------------ the flags: checked, and the names they give
def streams_of(config: str) -> tuple:
    return ordered_streams(CONFIGURATIONS[config])


def protocols_of(args, config: str) -> list[str]:
    """The --protocols that apply to a configuration: fixed and random to one reading two or more streams,
    the sweep to one reading a stream of a --sweep-kinds kind."""
    wanted = [p.strip() for p in (args.protocols or "").split(",") if p.strip()]
    n_streams = len(streams_of(config))
    return [p for p in wanted if (p == "sweep" and sweep_kinds_of(args.sweep_kinds, config))
            or (p in ("fixed", "random") and n_streams >= 2)]


def outputs(args, ap, configs, sessions) -> dict:
    """Where these settings train and write: per configuration and held-out session its run folder and result
    JSON, then the ablation and missing-data tables. Every name carries each setting that changes a model or
    its scores when not at its default (engine.cli.settings_suffix), the tables also the configurations,
    sessions and conditions they hold, so two settings never share a name."""
    from engine.cli import settings_suffix
    tag = settings_suffix(args, ap, skip=("configs", "loso", "missing", *PROTOCOL_FLAGS))
    runs = {(c, k): f"stm_{c}_{'split' if is_split_corpus(args) else f's{k}'}{tag}" for c in configs for k in sessions}
    protocols = {(c, k, p): args.results / f"{runs[(c, k)]}_{p}{settings_suffix(args, ap, only=PROTOCOL_NAMED[p])}.json"
                 for c in configs for k in sessions for p in protocols_of(args, c)}
    if THREE_WAY in configs and args.missing.strip().lower() != "none":  # the --missing list, scored the same way
        protocols.update({(THREE_WAY, k, "conditions"): args.results / (
            f"{runs[(THREE_WAY, k)]}_conditions{settings_suffix(args, ap, only=PROTOCOL_NAMED['conditions'])}.json")
            for k in sessions})
    return {"tag": tag, "runs": {ck: args.out / name for ck, name in runs.items()},
            "results": {ck: args.results / f"{name}.json" for ck, name in runs.items()},
            "ablation": args.results / f"stm_ablation{tag}{settings_suffix(args, ap, only=('configs', 'loso'))}.json",
            "missing": args.results / f"stm_missing{tag}{settings_suffix(args, ap, only=('missing', 'loso', 'sim_seeds'))}.json",
            "protocols": protocols}


def checked_settings(args) -> tuple[list, list, dict]:
    """(configurations, --missing conditions, {configuration: {protocol: [Condition]}}), once every setting that
    cannot apply is refused (UserError naming the flag): an unknown configuration; a condition the system does not
    simulate; a --train-missing condition on a stream a configuration does not read (e.g. frames or mocap-absent
    for `text`), that removes its only one, or that re-encodes transcripts (words, wer); a protocol no listed
    configuration can take. --missing tests the three-way model alone, which reads every stream."""
    from engine.cli import check_conditions, parse_conditions
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGURATIONS]
    if unknown or not configs:
        raise UserError(f"--configs {args.configs}: choose from {', '.join(CONFIGURATIONS)}")
    if len(set(configs)) < len(configs):
        raise UserError(f"--configs {args.configs}: a configuration is listed twice")
    conditions = [] if args.missing.strip().lower() == "none" else parse_conditions(args.missing, "--missing")
    check_conditions(conditions, "--missing", THREE_WAY, streams(THREE_WAY), CONDITION_KINDS, why=REFUSED_KINDS)
    if args.train_missing is not None and args.train_missing.kind in TRAINING_REFUSED:
        raise UserError(f"--train-missing {args.train_missing}: {TRAINING_REFUSED[args.train_missing.kind]}")
    for config in configs:
        check_conditions([args.train_missing], "--train-missing", f"configuration {config}", streams(config),
                         CONDITION_KINDS, why=REFUSED_KINDS, training=True)
    return configs, conditions, checked_protocols(args, configs)


def checked_protocols(args, configs) -> dict:
    """{configuration: {protocol: [Condition], complete first}} of the protocol flags (engine.cli.protocol_plan):
    each protocol on every listed configuration it applies to (protocols_of), the sweep with the kinds that
    configuration's streams allow; UserError naming the flag when a protocol fits none of them."""
    from engine.cli import protocol_plan
    protocol_plan(args, THREE_WAY, streams_of(THREE_WAY), CONDITION_KINDS, REFUSED_KINDS)  # the flags themselves
    wanted = [p.strip() for p in (args.protocols or "").split(",") if p.strip()]
    plan = {}
    for config in configs:
        mine = protocols_of(args, config)
        if mine:
            sub = argparse.Namespace(**{**vars(args), "protocols": ",".join(mine),
                                        "sweep_kinds": ",".join(sweep_kinds_of(args.sweep_kinds, config))})
            plan[config] = protocol_plan(sub, f"configuration {config}", streams_of(config), CONDITION_KINDS,
                                         REFUSED_KINDS)
    for p in wanted:
        if not any(p in v for v in plan.values()):
            need = ("a stream of one of --sweep-kinds " + args.sweep_kinds if p == "sweep"
                    else "two or more modalities")
            raise UserError(f"--protocols {p}: no configuration of --configs {','.join(configs)} reads {need}")
    return plan


def store_paths(args, configs) -> dict:
    """{stream: store folder} of the streams these configurations read: the flag's, else the default under
    <root>/Features named after the model."""
    needed = {m for c in configs for m in CONFIGURATIONS[c]}
    paths = {}
    if "speech" in needed:
        paths["speech"] = args.speech_store or features_dir(args) / f"Wav2Vec_{Path(args.speech_model).name}"
    if "text" in needed:
        paths["text"] = args.text_store or features_dir(args) / f"Tokens_{Path(args.text_model).name}"
    if needed & set(MOCAP_COLUMNS):
        paths["mocap"] = args.mocap_store or features_dir(args) / "Mocap189x200"
    return paths


def describe(args: argparse.Namespace, ap: argparse.ArgumentParser, argv) -> Experiment:
    """The Experiment of speech_text_mocap.py's parsed flags, every flag that cannot apply refused first: one fold
    per (held-out session, configuration), Session 5 alone or, with --loso, Sessions 1-5 (a session the corpus
    lacks is skipped when it runs; its names are unused). Flags only: no file is read."""
    from utils import resolve_device
    check_corpus_args(args, ap)
    configs, _, _ = checked_settings(args)
    check_split_corpus(args, configs)
    sessions = test_keys(args)
    training = Training(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                        val_every=args.val_every, seed=args.seed, device=resolve_device(args.device),
                        resume=not args.no_resume, progress=not args.no_progress, deterministic=args.deterministic,
                        patience=args.patience, precision=args.precision)
    return Experiment(system=SYSTEM, script="speech_text_mocap.py", argv=tuple(map(str, argv)), settings=args,
                      corpus=args.root, inputs=store_paths(args, configs),
                      protocol="splits" if is_split_corpus(args) else "loso" if args.loso else "session5",
                      folds=tuple((c, k) for k in sessions for c in configs), training=training,
                      outputs=outputs(args, ap, configs, sessions), hooks="systems.speech_text_mocap_experiment:STM")


def check_split_corpus(args, configs) -> None:
    """UserError naming the flag for what a split corpus lacks: motion capture off IEMOCAP and manifests (a
    configuration reading it; a manifest row's mocap_path is read, features.mocap.file_mocap), --loso and
    --only-with-mocap (IEMOCAP only)."""
    if not is_split_corpus(args):
        return
    mocap = [c for c in configs if set(CONFIGURATIONS[c]) & set(MOCAP_COLUMNS)]
    if mocap and args.corpus != "manifest":
        raise UserError(f"--configs {','.join(mocap)}: motion capture is read from IEMOCAP's MOCAP_rotated/head/hand "
                        f"files or a manifest's mocap_path column only; --corpus {args.corpus} has none (use speech, "
                        "text, speech+text)")
    for flag in ("loso", "only_with_mocap"):
        if getattr(args, flag):
            raise UserError(f"--{flag.replace('_', '-')}: IEMOCAP only; --corpus {args.corpus} is one fold of its "
                            "named splits")


def test_keys(args) -> list:
    """The held-out parts' keys: IEMOCAP's Session 5 (with --loso Sessions 1-5), a split corpus's fold (1, or the
    EmoBox --fold)."""
    if is_split_corpus(args):
        return [args.fold or 1]
    return [1, 2, 3, 4, 5] if args.loso else [5]


def test_name(args, k) -> str:
    """'Session 5' / 'test split': what a held-out part is called in lines and tables."""
    return f"{args.test_split} split" if is_split_corpus(args) else f"Session {k}"


# ------------------------------------------------------------------ the corpus and the inputs, once per experiment
def split_folds(args) -> tuple[list, dict, str, tuple]:
    """(records, {fold: (train, dev, test) items}, corpus name, classes) of a split corpus (read_split_fold)."""
    name, classes, parts = read_split_fold(args, args.dev_share)
    records = [r for part in parts for r, _ in part]
    return records, {args.fold or 1: tuple([(r.utt_id, y) for r, y in part] for part in parts)}, name, classes


def session_folds(args) -> tuple[list, dict]:
    """(the four-class records, {held-out session: (train, dev, test) items}) of the corpus; UserError when it has
    none of the four classes, or none in Session 5 (the test session)."""
    from corpora.iemocap import four_class, loso_session_folds, read_iemocap
    from features.mocap import speaker_wore_markers
    corpus = read_iemocap(args.root)  # a CorpusError is a clear error (engine.cli.entry)
    corpus.report()
    labelled = four_class(corpus.records, "prml")
    if args.only_with_mocap:
        labelled = [(r, y) for r, y in labelled if speaker_wore_markers(r.utt_id)]
    if not labelled:
        raise UserError(f"{args.root}: no utterance of the four classes {', '.join(CLASSES)}")
    folds, absent = loso_session_folds(labelled, args.dev_share)  # numbered by held-out session
    if 5 not in folds:
        raise UserError(f"{args.root}: no four-class utterance in Session 5, the test session")
    if absent:
        print(f"warning: {args.root}: no four-class utterance in Session {', '.join(map(str, absent))}; it is in no "
              "training part" + (" and has no held-out fold" if args.loso else ""), file=sys.stderr)
    folds = {k: tuple([(r.utt_id, y) for r, y in part] for part in fold) for k, fold in folds.items()}
    return [r for r, _ in labelled], folds


def ensured_stores(exp: Experiment, records: list, transcripts: dict, train: list) -> dict:
    """{stream: FeatureStore} of the streams the configurations read. Under torchrun the process group starts
    first, so rank 0 alone extracts what the stores lack (and builds the tiny BERT) while the others wait."""
    from engine.loop import ddp_env
    s = exp.settings
    check_mocap_paths(exp, records)  # on every rank, before the others wait for rank 0
    rank, world, _ = ddp_env()
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if s.device.startswith("cuda") else "gloo")
    if rank == 0 and "text" in exp.inputs and str(s.text_model).lower() == "tiny-random-bert":
        from features.text import iemocap_training_texts, resolve_model  # its vocabulary: the training part's
        resolve_model(s.text_model, texts=[transcripts[u] for u, _ in train] if is_split_corpus(s)
                      else iemocap_training_texts(s.root))
    st = stores(exp, records, transcripts, extract=True) if rank == 0 else None
    if world > 1:
        dist.barrier()
        if rank != 0:
            st = stores(exp, records, transcripts, extract=False)
    return st


def check_mocap_paths(exp: Experiment, records: list) -> None:
    """UserError when the configurations read motion capture and no record of a split corpus (a manifest) has a
    mocap_path: every model's mocap input would be absent."""
    s = exp.settings
    if "mocap" in exp.inputs and is_split_corpus(s) and not any(r.mocap_path for r in records):
        raise UserError(f"--configs {s.configs}: no utterance of {s.root} used here has a mocap_path (its "
                        "motion-capture file); give one per row, or use speech, text, speech+text")


def stores(exp: Experiment, records: list, transcripts: dict, extract: bool) -> dict:
    """The stores of exp.inputs, extracting (`extract`) what they lack: wav2vec2 frames, BERT token features of the
    non-empty transcripts, motion capture (the listeners are listed in the mocap store's errors-0of1.csv)."""
    from features.store import FeatureStore
    from systems.common import store_with
    s, device, progress = exp.settings, exp.training.device, exp.training.progress
    out = {}
    if "speech" in exp.inputs:
        def w2v():
            from features.wav2vec2 import Wav2Vec2Features
            return Wav2Vec2Features(s.speech_model, device=device)
        path = exp.inputs["speech"]
        out["speech"] = (store_with(w2v, records, path, s.speech_model, progress, "speech") if extract
                         else FeatureStore(path))
    if "text" in exp.inputs:
        def bert():
            from features.text import TokenFeatures
            return TokenFeatures(s.text_model, device=device)
        path = exp.inputs["text"]
        out["text"] = (store_with(bert, [r for r in records if transcripts[r.utt_id]], path,
                                  s.text_model, progress, "text") if extract else FeatureStore(path))
    if "mocap" in exp.inputs:
        from features.mocap import extract_mocap, mocap_store
        out["mocap"] = mocap_store(exp.inputs["mocap"], 200, records[0].corpus if records else None)
        if extract:
            extract_mocap([r for r in records if r.utt_id not in out["mocap"]], out["mocap"], root=s.root,
                          progress=progress)
            out["mocap"].refresh()
    return out


def warn_lacking(st: dict, records: list, no_text: frozenset) -> None:
    """The kinds of the stores checked (issue 19.14), then a warning per stream naming the utterances that lack it
    (listeners without markers, manifest rows without mocap_path and empty transcripts are expected, and said
    once)."""
    from features.mocap import NO_MOCAP_PATH, absent_by_design, mocap_way
    from systems.common import require_store
    for name, store in st.items():  # the kinds of features, before training
        require_store(store, f"--{name}-store", {"speech": "wav2vec2", "text": "tokens"}.get(name, name))
    for name, store in st.items():
        lacking = [r.utt_id for r in records if r.utt_id not in store  # by design absent: below
                   and not (name == "mocap" and absent_by_design(r))
                   and not (name == "text" and r.utt_id in no_text)]
        if lacking:
            print(f"warning: {len(lacking)} utterance(s) have no {name} features (see {store.root}/errors-*.csv); "
                  f"that modality is absent for them: {', '.join(lacking[:8])}{' ...' if len(lacking) > 8 else ''}",
                  file=sys.stderr)
    if no_text and "text" in st:
        print(f"warning: {len(no_text)} utterance(s) have an empty transcript; text is absent for them: "
              f"{', '.join(sorted(no_text)[:8])}{' ...' if len(no_text) > 8 else ''}", file=sys.stderr)
    if "mocap" in st:
        no_path = [r.utt_id for r in records if mocap_way(r) == "none"]
        if no_path:
            print(f"warning: {len(no_path)} utterance(s) have {NO_MOCAP_PATH}; mocap is absent for them: "
                  f"{', '.join(no_path[:8])}{' ...' if len(no_path) > 8 else ''}", file=sys.stderr)
        n_mocap = sum(r.utt_id in st["mocap"] for r in records)
        print(f"{n_mocap} of {len(records)} utterances have motion capture (the others were spoken by the actor "
              f"without markers, have {NO_MOCAP_PATH}, or their mocap is unusable: see the store's errors-0of1.csv)",
              flush=True)


def token_words_of(s, st: dict, transcripts: dict, evaluated: list):
    """utt -> the token->word map of its stored token rows (systems.speech_text_mocap.tokenizer_token_words), when
    a word-rows condition is evaluated or trained with; else None."""
    trained = [s.train_missing] if s.train_missing else []
    if "text" not in st or not any(c.kind == "word-rows" for c in evaluated + trained):
        return None
    from transformers import AutoTokenizer

    from features.text import resolve_model
    from systems.speech_text_mocap import tokenizer_token_words
    path, alias = resolve_model(s.text_model)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=alias is not None or Path(path).is_dir())
    return tokenizer_token_words(tok, transcripts, st["text"])


# ------------------------------------------------------------------ the hooks of engine.experiment.run
class SpeechTextMocap:
    """The System hooks of speech_text_mocap.py (engine.experiment.run)."""
    name = SYSTEM
    metric = "WA/UA"
    classes = CLASSES

    def folds(self, exp: Experiment):
        """One Fold per (held-out session, configuration), made as run reaches it: the inputs once, then per
        session the z-norm of its training part and (rank 0, when words or wer are evaluated) the re-encoder of
        its degraded transcripts, shared by the session's configurations."""
        from engine.loop import ddp_env
        from features.missing import NONE
        from features.text import record_transcripts
        from systems.speech_text_mocap import training_norm
        from utils import writable_dir
        s = exp.settings
        configs, conditions, plan = checked_settings(s)  # describe refused what cannot apply; the plan again
        writable_dir(s.out)
        writable_dir(s.results)
        if is_split_corpus(s):
            records, parts, name, self.classes = split_folds(s)
        else:
            (records, parts), name, self.classes = session_folds(s), "IEMOCAP", CLASSES
        texts, lacking = record_transcripts(records)
        if any("text" in CONFIGURATIONS[c] for c in configs):
            list_left_out([sk for sk in lacking if sk.reason != "no transcript"], "the transcripts (text absent)")
        transcripts = {r.utt_id: (texts.get(r.utt_id) or "").strip() for r in records}
        st = ensured_stores(exp, records, transcripts, parts[test_keys(s)[0]][0])
        no_text = frozenset(u for u, t in transcripts.items() if not t)
        warn_lacking(st, records, no_text)
        evaluated = conditions + [c for v in plan.values() for conds in v.values() for c in conds]
        shared = {"stores": st, "no_text": no_text, "token_words": token_words_of(s, st, transcripts, evaluated),
                  "transcripts": transcripts, "spans": {r.utt_id: audio_seconds(r) for r in records},
                  "corpus_name": name}
        reencode = "text" in st and ddp_env()[0] == 0 and any(c.kind in REENCODED for c in evaluated)
        for k in (sorted(parts) if s.loso else test_keys(s)):
            train, dev, test = parts[k]
            norm = training_norm([u for u, _ in train], st.get("speech"), st.get("text"), st.get("mocap"),
                                 mocap_velocity=s.mocap_velocity)
            session = {**shared, "session": k, "norm": norm,
                       "degraded": self.degraded(exp, train, st, transcripts) if reencode else None}
            for config in configs:
                protocols = {p: (conds, exp.outputs["protocols"][(config, k, p)])
                             for p, conds in plan.get(config, {}).items()}
                if config == THREE_WAY and conditions:  # the --missing list
                    protocols["conditions"] = ([NONE, *(c for c in conditions if c.kind != "none")],
                                               exp.outputs["protocols"][(config, k, "conditions")])
                yield Fold((config, k), config, train, dev, test, run_dir=exp.outputs["runs"][(config, k)],
                           train_name=f"training part ({test_name(s, k)} held out)", val_name="dev part",
                           protocols=protocols, extra={**session, "titles": {
                               p: f"{config}, {test_name(s, k)} test: {p}" for p in protocols}})

    @staticmethod
    def degraded(exp: Experiment, train: list, st: dict, transcripts: dict):
        """wer's substitutes: the words of this fold's training transcripts (features.degraded_text)."""
        from features.degraded_text import DegradedText
        return DegradedText(st["text"], sorted({w for u, _ in train for w in transcripts[u].split()}),
                            device=exp.training.device, progress=exp.training.progress)

    def method(self, exp: Experiment, fold: Fold):
        """The configuration's FusionMethod over the stores, with the session's z-norm; its speech rows read from
        the store derived once per session (FusionMethod.derive_speech_rows; rank 0 writes it)."""
        from engine.loop import ddp_env
        from systems.speech_text_mocap import FusionMethod
        s, x, config = exp.settings, fold.extra, fold.name
        st = x["stores"]
        method = FusionMethod(
            CONFIGURATIONS[config], speech=st.get("speech"), text=st.get("text"), mocap=st.get("mocap"),
            norm=x["norm"], no_text=x["no_text"], token_words=x["token_words"], degraded=x["degraded"],
            transcripts=x["transcripts"], speech_pool=s.speech_pool,
            text_pooling="first" if s.text_pooling == "cls" else "mean", mocap_velocity=s.mocap_velocity,
            d_model=s.d_model, heads=s.heads, layers=s.layers, ff=s.ff, dropout=s.dropout,
            fusion_hidden=s.fusion_hidden, classes=self.classes, modality_dropout=s.modality_dropout if len(CONFIGURATIONS[config]) > 1 else 0.0,
            train_condition=str(s.train_missing) if s.train_missing else None, seed=s.seed,
            protocol={"name": exp.protocol, "test_session": x["session"], "dev_share": s.dev_share,
                      "only_with_mocap": s.only_with_mocap, **trained_corpus(s, fold.extra["corpus_name"])})
        method.derive_speech_rows([u for part in (fold.train, fold.dev, fold.test) for u, _ in part],
                                  progress=exp.training.progress, write=ddp_env()[0] == 0)
        return method

    def test(self, exp: Experiment, fold: Fold, method, model) -> dict:
        """Score the held-out session, write the per-utterance CSV, confusion matrix and result JSON, print the
        configuration's line; its row of the ablation table (WA / UA with intervals, the streams' shares)."""
        from engine.resources import ResourceMonitor, inference_record
        from systems.common import write_class_scores
        from systems.speech_text_mocap import present_shares, scored
        s, config, k, items = exp.settings, fold.name, fold.extra["session"], fold.test
        with ResourceMonitor() as mon:
            logits, present, _ = scored(method, model, items, None, 0, exp.training.device)
        utts, labels = [u for u, _ in items], [y for _, y in items]
        speech = fold.extra["stores"].get("speech")
        audio_s = speech.seconds(utts) if speech is not None and all(u in speech for u in utts) else None
        audio_s = audio_s or sum(fold.extra["spans"][u] for u in utts)  # no speech store, or some lack speech
        shares = present_shares(present, streams_of(config))
        result = {"system": SYSTEM, "configuration": config, "modalities": list(CONFIGURATIONS[config]),
                  **corpus_record(s, fold.extra["corpus_name"]), "protocol": exp.protocol, "fold": k,
                  "split": s.test_split if is_split_corpus(s) else f"Session {k} test",
                  "checkpoint": str(fold.run_dir), "seed": s.seed, "modality_dropout": method.modality_dropout,
                  "train_condition": method.train_condition, "title": f"{config}, {test_name(s, k)} held out",
                  "present": shares, **inference_record(mon.seconds, len(utts), audio_s, mon)}
        wa, ua = write_class_scores(exp.outputs["results"][fold.key].with_suffix(".csv"), utts, labels, logits,
                                    self.classes, result=result, resamples=s.bootstrap, ci_method=s.ci_method)
        fold.extra["result"] = {f: result[f] for f in PROTOCOL_RESULT}  # what its protocol files repeat
        # the file's intervals (same seeded bootstrap), printed; macro-F1 too off IEMOCAP
        ci = intervals(labels, logits.argmax(1), s, len(self.classes), table_metrics(s))
        res = fold.extra["loop_result"]
        scores = "  ".join(f"{m.replace('_', '-')} {sc.text()}" for m, sc in ci.items())
        print(f"{config} {test_name(s, k)}: {scores}  (train {len(fold.train)}, dev "
              f"{len(fold.dev)}, test {len(items)}; best dev loss at step {res.best_step} of {res.steps}; "
              f"{had(shares)})", flush=True)
        return {"WA": wa, "UA": ua, "WA_ci": ci["WA"].ci, "UA_ci": ci["UA"].ci, "present": shares,
                "train": len(fold.train), "dev": len(fold.dev), "test": len(items), "best_step": res.best_step,
                "steps": res.steps}

    def draws(self, exp: Experiment, fold: Fold, method, model):
        """predict(condition, simulation seed) -> engine.robustness.Draw of the configuration's model on its
        held-out session: the predicted classes and the streams each utterance really had."""
        from systems.speech_text_mocap import condition_draw
        return lambda cond, sim_seed: condition_draw(method, model, fold.test, cond, sim_seed, exp.training.device)

    def table(self, exp: Experiment, outcomes: list) -> None:
        """The ablation table over every configuration and held-out session; the --missing table of the three-way
        model when it was scored."""
        scores = {o.fold.key: o.row for o in outcomes}
        sessions = list(dict.fromkeys(k for _, k in scores))
        tests = {o.fold.key[1]: o.fold.test for o in outcomes}
        ablation_table(exp, list(dict.fromkeys(c for c, _ in scores)), sessions, scores, tests, self.classes,
                       outcomes[0].fold.extra["corpus_name"])
        miss_rows = [row for o in outcomes if "conditions" in o.protocol_rows
                     for row in missing_rows(o.protocol_rows["conditions"], o.fold.key[1])]
        if miss_rows:
            missing_table(exp, miss_rows, sessions)


STM = SpeechTextMocap()


# ------------------------------------------------------------------ the tables
def _cell(v):
    if isinstance(v, float):
        return f"{v:.6f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"[{v[0]:.4f}, {v[1]:.4f}]"  # an interval
    return "" if v is None else v


def write_table(path: Path, rows: list[dict]) -> None:
    from utils import atomic_path
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows({k: _cell(v) for k, v in r.items()} for r in rows)


def intervals(labels, preds, args, n_classes: int, metrics=("WA", "UA")) -> dict:
    """{metric: Scored} with the --bootstrap / --ci-method interval (mdre_experiment.fold_scores)."""
    return fold_scores(np.asarray(labels), np.asarray(preds), {"resamples": args.bootstrap, "method": args.ci_method},
                       n_classes, metrics)


def had(shares: dict) -> str:
    """'audio 100%, mocap 49%; none 51%': the share of test utterances that had each stream, and the share that
    had none of a configuration's streams (their prediction is the model's constant guess)."""
    text = ", ".join(f"{s} {v:.0%}" for s, v in shares.items() if s != "none")
    return f"{text}; none {shares['none']:.0%}" if shares.get("none") else text


def fmt(value: float, ci) -> str:
    """'0.5075 [0.39, 0.62]' (metrics.Scored.text), or the bare value without an interval."""
    from metrics import Scored
    return Scored(value, *(ci or (None, None))).text()


def missing_rows(rows: list[dict], session: int) -> list[dict]:
    """The --missing rows of one held-out session in stm_missing's layout (condition kind, rate; the complete data
    last), with their intervals, spread over simulation seeds and the shares of utterances that had each stream."""
    out = []
    for r in rows:
        complete = r["condition"] == "complete"
        rated = r.get("rate") is not None and not complete
        row = {"session": session, "condition": "complete" if complete else (r["kind"] if rated else r["condition"]),
               "rate": "0" if complete else (f"{r['rate']:g}" if rated else "")}
        row.update({k: r.get(k) for k in ("WA", "UA", "WA_ci", "UA_ci", "WA_sd", "UA_sd", "WA_p", "UA_p")})
        row.update({f"with_{s}": v for s, v in (r.get("present") or {}).items()})
        out.append(row)
    return out[1:] + out[:1]  # the complete row last, as the table always had it


def ablation_rows(exp: Experiment, configs: list, sessions: list, scores: dict) -> list[dict]:
    """Per configuration WA / UA on Session 5 with their intervals, the share of test utterances that had each of
    its streams (with_none: none of them, so the prediction is a constant guess), with --loso the mean over
    held-out sessions."""
    rows, key, pre = [], main_test(exp.settings), column_prefix(exp.settings)
    for config in configs:
        s5 = scores[(config, key)]
        row = {"configuration": config, "modalities": "+".join(CONFIGURATIONS[config]), "test": s5["test"],
               f"{pre}_WA": s5["WA"], f"{pre}_WA_ci": s5["WA_ci"], f"{pre}_UA": s5["UA"],
               f"{pre}_UA_ci": s5["UA_ci"], **{f"with_{s}": v for s, v in s5["present"].items()}}
        if exp.settings.loso:
            row["loso_WA"] = float(np.mean([scores[(config, k)]["WA"] for k in sessions]))
            row["loso_UA"] = float(np.mean([scores[(config, k)]["UA"] for k in sessions]))
        rows.append(row)
    return rows


def main_test(args):
    """The key of the held-out part the ablation table shows: Session 5, or a split corpus's fold."""
    return test_keys(args)[-1]


def column_prefix(args) -> str:
    """The ablation table's column prefix of that part: session5 (IEMOCAP), test (a split corpus)."""
    return "test" if is_split_corpus(args) else "session5"


def ablation_table(exp: Experiment, configs: list, sessions: list, scores: dict, tests: dict, classes,
                   corpus_name: str) -> None:
    """The configurations' table (printed with intervals, CSV, bar chart, JSON): ablation_rows, the bars over
    Session 5 or the leave-one-session-out mean, with the majority-class level of the same test sessions."""
    from engine.plots import bar_chart
    from metrics import interval_record
    from systems.common import write_result
    args, names = exp.settings, exp.outputs
    rows = ablation_rows(exp, configs, sessions, scores)
    tag, key, part, pre0 = names["tag"], main_test(args), test_name(args, main_test(args)), column_prefix(args)
    title = (f"{corpus_name} {len(classes)} classes, {'leave-one-session-out mean' if args.loso else part + ' held out'}"
             f"{' (' + tag.strip('_') + ')' if tag else ''}")
    head = f"| configuration | {part} WA | {part} UA |" + (" LOSO WA | LOSO UA |" if args.loso else "")
    print(f"\n{title}\n{head} test utterances with each stream |\n|---|---|---|" + ("---|---|" if args.loso else "")
          + "---|")
    for r, config in zip(rows, configs):
        s5 = scores[(config, key)]
        print(f"| {r['configuration']} | {fmt(r[pre0 + '_WA'], s5['WA_ci'])} | {fmt(r[pre0 + '_UA'], s5['UA_ci'])} |"
              + (f" {r['loso_WA']:.4f} | {r['loso_UA']:.4f} |" if args.loso else "") + f" {had(s5['present'])} |")
    how = (f"with 95 % {args.ci_method} bootstrap intervals over the {part} test utterances ({args.bootstrap} "
           "resamples)" if args.bootstrap else "without intervals (--bootstrap 0)")
    print(f"WA / UA {how}; where a stream's share is below 100 % the others were scored without it, "
          "and 'none' is the share predicted from the absent vectors alone (a constant guess)")
    stem = names["ablation"].with_name(names["ablation"].name[:-len(".json")])
    write_table(stem.with_name(stem.name + ".csv"), rows)
    pre = "loso" if args.loso else pre0
    # the majority-class level over the same held-out sessions as the bars (their mean of per-session WA)
    majority = float(np.mean([np.bincount([y for _, y in tests[k]], minlength=len(classes)).max() / len(tests[k])
                              for k in sessions]))
    bar_chart([r["configuration"] for r in rows], {"WA": [r[f"{pre}_WA"] for r in rows],
                                                   "UA": [r[f"{pre}_UA"] for r in rows]},
              stem.with_name(stem.name + ".png"), title=title, ylabel="accuracy", reference=majority,
              reference_label=f"majority class (WA), {'mean over the held-out sessions' if args.loso else part}")
    write_result(stem.with_name(stem.name + ".json"), {
        "metric": "WA/UA", "system": SYSTEM, **corpus_record(args, corpus_name), "classes": list(classes),
        "protocol": exp.protocol, "rows": rows, "interval": interval_record(args.bootstrap, method=args.ci_method),
        "per_session": [{"configuration": c, "session": k, **v} for (c, k), v in scores.items()], "seed": args.seed,
        "checkpoints": [str(names["runs"][ck]) for ck in scores]})  # write_result records each run's identity
    print(f"table: {stem.with_name(stem.name + '.csv')}, chart: {stem.with_name(stem.name + '.png')}")


def missing_table(exp: Experiment, miss_rows: list, sessions: list) -> None:
    """stm_missing.csv/.json/.png and the printed table: the three-way model under each --missing condition,
    per held-out session and their mean (with the interval when one session is tested)."""
    from engine.plots import missing_curves
    from metrics import interval_record
    from systems.common import write_result
    args, names = exp.settings, exp.outputs
    mstem = names["missing"].with_name(names["missing"].name[:-len(".json")])
    mean_rows = []
    for cond, rate in dict.fromkeys((r["condition"], r["rate"]) for r in miss_rows):
        sel = [r for r in miss_rows if r["condition"] == cond and r["rate"] == rate]
        row = {"series": THREE_WAY, "condition": cond, "rate": rate,
               "WA": float(np.mean([r["WA"] for r in sel])), "UA": float(np.mean([r["UA"] for r in sel]))}
        if len(sel) == 1:  # one held-out session: its interval and shares
            row.update({k: v for k, v in sel[0].items() if k not in row and k != "session"})
        mean_rows.append(row)
    write_table(mstem.with_name(mstem.name + ".csv"), miss_rows)
    missing_curves(mean_rows, ["WA", "UA"], mstem.with_name(mstem.name + ".png"), title=THREE_WAY)
    write_result(mstem.with_name(mstem.name + ".json"), {
        "metric": "WA/UA", "system": SYSTEM, "configuration": THREE_WAY, "corpus": str(args.root),
        "rows": miss_rows, "mean": mean_rows, "seed": args.seed, "sim_seeds": list(range(args.sim_seeds)),
        "interval": interval_record(args.bootstrap, method=args.ci_method),
        "checkpoints": [str(names["runs"][(THREE_WAY, k)]) for k in sessions]})
    print(f"\n{THREE_WAY} with data missing ({'mean over held-out sessions' if args.loso else 'Session 5'}; "
          f"each simulated condition averaged over {args.sim_seeds} simulation seeds):\n"
          "| condition | WA | UA | test utterances with each stream |\n|---|---|---|---|")
    for r in mean_rows:
        label = r["condition"] if r["rate"] in ("", "0") else f"{r['condition']}:{r['rate']}"
        shares = {k[len("with_"):]: v for k, v in r.items() if k.startswith("with_") and v is not None}
        print(f"| {label} | {fmt(r['WA'], r.get('WA_ci'))} | {fmt(r['UA'], r.get('UA_ci'))} | "
              f"{had(shares) if shares else ''} |")

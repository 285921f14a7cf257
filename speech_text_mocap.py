#!/usr/bin/env python
"""Speech + text + motion-capture fusion on IEMOCAP (four classes ang, exc, neu, sad): train and test every
configuration of the ablation in one command, print the table, write it as CSV + bar chart, and test the
models with modalities, frames or words missing (the literature's protocols: --protocols).

    python speech_text_mocap.py --root /data/IEMOCAP_full_release                 # all ten configurations
    python speech_text_mocap.py --root R --configs speech+text+mocap,text --loso  # + leave-one-session-out mean
    python speech_text_mocap.py --root R --configs speech+text+mocap --modality-dropout 0.3
    python speech_text_mocap.py --root R --configs speech+text+mocap,text --protocols fixed,random,sweep
    torchrun --nproc_per_node=2 speech_text_mocap.py --root R

Configurations: speech, text, mocap (face + head + hand), face, head, hand, speech+text, speech+mocap,
text+mocap, speech+text+mocap. Each is one transformer encoder per modality with padding masks, concatenation
fusion and a classifier (models/multimodal_transformer.py; systems/speech_text_mocap.py for the data).
Split: Session 5 is the test set, the dev part (best model, early stopping) a seeded --dev-share of Sessions 1-4;
--loso also runs the other four held-out sessions and reports the mean. Every configuration sees the same
utterances; one whose stream is missing (no mocap when the speaker wore no markers, an empty transcript) has
that modality absent (--only-with-mocap keeps the utterances with motion capture only).

Features (extracted into the stores on first use, resumable; failures listed in the stores' errors-*.csv):
wav2vec2 frames from --speech-model, BERT token features from --text-model (hub ids or local folders),
motion capture from the dialog MOCAP files (features/mocap.py).

Writes per configuration and held-out session <out>/stm_<config>_s<k>/ (model.safetensors + config.json,
run.json, state.pt, log.csv, loss.png) and <results>/stm_<config>_s<k>.csv (per utterance) + _confusion.csv/.png
+ .json; then <results>/stm_ablation.csv/.json/.png (WA / UA with 95 % bootstrap intervals, and the share of test
utterances that had each stream: a configuration whose stream an utterance lacks predicts it from the learned
absent vector, for mocap alone a constant guess) and, when the three-way model is trained,
<results>/stm_missing.csv/.json/.png (WA / UA under each --missing condition, over simulation seeds).
Missing-data protocols (engine.robustness; each condition's draws averaged over --sim-seeds, intervals over test
utterances, paired tests against the complete data, the share of utterances that really had each stream), per
configuration and held-out session <results>/stm_<config>_s<k>_<protocol>.json/.csv/.png + _per_utterance.csv:
fixed (every non-empty proper subset of the configuration's streams present, audio / text / mocap, face, head and
hand counting as mocap; with the mean and the pooled average), random (each stream of each utterance missing with
probability p at every --rates rate, one kept), sweep (each --sweep-kinds kind the configuration's streams allow,
at every rate: frames, bursts, words = words removed and the transcript re-encoded, wer = simulated recogniser
errors, word-rows = the original's blanked token rows), and the --missing list as "conditions" (three-way model).
Fixed and random apply to configurations of two or more streams. Re-running resumes. Names carry every setting
that differs from its default (stm_text_s5_lr0.001: output_names), so runs with other settings never share a run
folder or a result file; the protocol flags are in no run name (adding one retrains nothing).
"""
import csv
import sys
from pathlib import Path

import numpy as np

from engine.cli import (UserError, add_protocol_args, add_run_output_args, condition, entry, fraction, int_at_least,
                        parser, positive_float)

DEFAULT_MISSING = ("audio-absent,text-absent,mocap-absent,frames:0.1,frames:0.3,frames:0.5,"
                   "words:0.1,words:0.3,words:0.5")


# the flags of the missing-data protocols (engine.cli.add_protocol_args): they change no model, so no run name
PROTOCOL_FLAGS = ("protocols", "rates", "sweep_kinds", "sim_seeds", "bootstrap", "ci_method")
# the settings each protocol's results depend on, named in its file (--bootstrap / --ci-method change only the
# intervals, which the file records)
PROTOCOL_NAMED = {"fixed": (), "random": ("rates", "sim_seeds"), "sweep": ("rates", "sweep_kinds", "sim_seeds"),
                  "conditions": ("missing", "sim_seeds")}


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


def protocols_of(args, config: str) -> list[str]:
    """The --protocols that apply to a configuration: fixed and random to one reading two or more streams,
    the sweep to one reading a stream of a --sweep-kinds kind."""
    from systems.speech_text_mocap import sweep_kinds_of
    wanted = [p.strip() for p in (args.protocols or "").split(",") if p.strip()]
    n_streams = len(streams_of(config))
    return [p for p in wanted if (p == "sweep" and sweep_kinds_of(args.sweep_kinds, config))
            or (p in ("fixed", "random") and n_streams >= 2)]


def streams_of(config: str) -> tuple:
    from systems.speech_text_mocap import CONFIGURATIONS, ordered_streams
    return ordered_streams(CONFIGURATIONS[config])


def output_names(args, ap, configs, sessions) -> dict:
    """Where these settings train and write: per configuration and held-out session its run folder and result
    JSON, then the ablation and missing-data tables. Every name carries each setting that changes a model or
    its scores when not at its default (engine.cli.settings_suffix), the tables also the configurations,
    sessions and conditions they hold, so two settings never share a name. benchmark.py reads them from here."""
    from engine.cli import settings_suffix
    from systems.speech_text_mocap import THREE_WAY
    tag = settings_suffix(args, ap, skip=("configs", "loso", "missing", *PROTOCOL_FLAGS))
    runs = {(c, k): f"stm_{c}_s{k}{tag}" for c in configs for k in sessions}
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
    from systems.speech_text_mocap import (CONDITION_KINDS, CONFIGURATIONS, REFUSED_KINDS, THREE_WAY, TRAINING_REFUSED,
                                           streams)
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
    import argparse

    from engine.cli import protocol_plan
    from systems.speech_text_mocap import CONDITION_KINDS, REFUSED_KINDS, THREE_WAY, sweep_kinds_of
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


@entry
def main(argv=None) -> int:
    from corpora.iemocap import four_class, loso_session_folds, read_iemocap
    from engine.loop import LoopConfig, ddp_env, load_best, train
    from engine.resources import ResourceMonitor, inference_record
    from features.missing import NONE
    from features.mocap import speaker_wore_markers
    from systems.common import store_with, write_class_scores
    from systems.common import require_store
    from systems.speech_text_mocap import (CLASSES, CONFIGURATIONS, MOCAP_COLUMNS, REENCODED, THREE_WAY,
                                           FusionMethod, present_shares, scored, tokenizer_token_words,
                                           training_norm)
    from utils import resolve_device, writable_dir
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, required=True, help="IEMOCAP release folder (holding Session1..5)")
    ap.add_argument("--configs", default=",".join(CONFIGURATIONS),
                    help="comma-separated configurations to train and test, in table order")
    ap.add_argument("--loso", action="store_true",
                    help="also hold out Sessions 1-4 in turn and report the leave-one-session-out mean")
    ap.add_argument("--only-with-mocap", action="store_true",
                    help="keep only utterances whose speaker wore the markers (every configuration)")
    ap.add_argument("--dev-share", type=fraction(0, 0.5, high_open=False, why="the rest of the training sessions "
                                                                               "must stay for training"),
                    default=0.1, help="share of the training sessions' utterances held out as the dev part (seeded; "
                                      "in (0, 0.5])")
    f = ap.add_argument_group("features")
    f.add_argument("--speech-model", default="facebook/wav2vec2-large-robust",
                   help="wav2vec2 hub id, local folder, or tiny-random-wav2vec2 (the demo's tiny local model, offline)")
    f.add_argument("--text-model", default="bert-base-uncased",
                   help="BERT-style hub id, local folder, or tiny-random-bert (the demo's tiny local BERT, its "
                        "vocabulary from the transcripts of Sessions 1-4; offline)")
    f.add_argument("--speech-store", type=Path, help="wav2vec2 store (default <root>/Features/Wav2Vec_<model's folder name>)")
    f.add_argument("--text-store", type=Path, help="token feature store (default <root>/Features/Tokens_<model's folder name>)")
    f.add_argument("--mocap-store", type=Path, help="mocap store (default <root>/Features/Mocap189x200)")
    f.add_argument("--speech-pool", type=int_at_least(1), default=5,
                   help="wav2vec2 frames averaged into one encoder step (5: 10 steps/s)")
    f.add_argument("--text-pooling", choices=("cls", "mean"), default="cls",
                   help="text vector: the encoder's [CLS] row, or the mean over tokens")
    f.add_argument("--mocap-velocity", action="store_true",
                   help="append every mocap column's frame-to-frame difference (motion energy; not in the original)")
    m = ap.add_argument_group("model")
    m.add_argument("--d-model", type=int_at_least(4), default=128, help="width of every encoder")
    m.add_argument("--heads", type=int_at_least(1), default=4, help="attention heads per layer")
    m.add_argument("--layers", type=int_at_least(1), default=2, help="transformer layers per encoder")
    m.add_argument("--ff", type=int_at_least(1), default=256, help="feed-forward width")
    m.add_argument("--dropout", type=fraction(0, 1, low_open=False), default=0.1,
                   help="dropout inside the encoders (in [0, 1))")
    m.add_argument("--fusion-hidden", type=int_at_least(1), default=128, help="hidden units of the classifier")
    t = ap.add_argument_group("training")
    t.add_argument("-iter", "--iterations", type=int_at_least(1), default=3000, help="most training steps")
    t.add_argument("-batch", "--batch-size", type=int_at_least(2), default=32, help="utterances per batch")
    t.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    t.add_argument("--val-every", type=int_at_least(1), default=100, help="validate every N steps")
    t.add_argument("--patience", type=int_at_least(0, "0 is off"), default=10,
                   help="validations without improvement tolerated (0: off)")
    t.add_argument("--modality-dropout", type=fraction(0, 1, low_open=False), default=0.0,
                   help="training: mark each present modality of an utterance absent with this probability "
                        "(at least one kept), so fused models degrade gracefully")
    t.add_argument("--train-missing", type=condition,
                   help="missing data as training augmentation, e.g. frames:0.2, word-rows:0.2 or random-missing:0.3 "
                        "(words and wer, which re-encode transcripts, are not; default: none)")
    t.add_argument("--missing", default=DEFAULT_MISSING,
                   help=f"conditions the {THREE_WAY} model is tested under ('none' to skip); written as "
                        "<name>_conditions.* per session and stm_missing.* over sessions")
    t.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seed of initialisation, sampling, dropout, missing data")
    add_protocol_args(ap)  # --protocols ... --ci-method: on every configuration each applies to (protocols_of)
    add_run_output_args(ap.add_argument_group("output"), "speech-text-mocap")
    args = ap.parse_args(argv)
    configs, conditions, plan = checked_settings(args)
    writable_dir(args.out)
    writable_dir(args.results)
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
    records = [r for r, _ in labelled]
    needed = {m for c in configs for m in CONFIGURATIONS[c]}
    progress = not args.no_progress
    rank, world, _ = ddp_env()
    if world > 1:  # the process group now, so rank 0 alone extracts what the stores lack while the others wait
        import torch.distributed as dist
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    device = resolve_device(args.device)

    def stores(extract: bool) -> dict:
        from features.store import FeatureStore
        out = {}
        if "speech" in needed:
            def w2v():
                from features.wav2vec2 import Wav2Vec2Features
                return Wav2Vec2Features(args.speech_model, device=device)
            path = args.speech_store or args.root / "Features" / f"Wav2Vec_{Path(args.speech_model).name}"
            out["speech"] = (store_with(w2v, records, path, args.speech_model, progress, "speech") if extract
                             else FeatureStore(path))
        if "text" in needed:
            def bert():
                from features.text import TokenFeatures
                return TokenFeatures(args.text_model, device=device)
            path = args.text_store or args.root / "Features" / f"Tokens_{Path(args.text_model).name}"
            out["text"] = (store_with(bert, [r for r in records if (r.transcript or "").strip()], path,
                                      args.text_model, progress, "text") if extract else FeatureStore(path))
        if needed & set(MOCAP_COLUMNS):
            from features.mocap import extract_mocap, mocap_store
            path = args.mocap_store or args.root / "Features" / "Mocap189x200"
            out["mocap"] = mocap_store(path, 200, corpus.name)
            if extract:
                extract_mocap([r for r in records if r.utt_id not in out["mocap"]], out["mocap"], root=args.root,
                              progress=progress)  # the listeners are listed in its errors-0of1.csv
                out["mocap"].refresh()
        return out
    if rank == 0 and "text" in needed and str(args.text_model).lower() == "tiny-random-bert":
        from features.text import iemocap_training_texts, resolve_model  # its vocabulary: the training sessions'
        resolve_model(args.text_model, texts=iemocap_training_texts(args.root))
    st = stores(extract=True) if rank == 0 else None
    if world > 1:
        dist.barrier()
        if rank != 0:
            st = stores(extract=False)
    for name, store in st.items():  # the kinds of features, before training (issue 19.14)
        require_store(store, f"--{name}-store", {"speech": "wav2vec2", "text": "tokens"}.get(name, name))
    no_text = frozenset(r.utt_id for r in records if not (r.transcript or "").strip())
    for name, store in st.items():
        lacking = [r.utt_id for r in records if r.utt_id not in store  # listeners and empty transcripts: below
                   and not (name == "mocap" and not speaker_wore_markers(r.utt_id))
                   and not (name == "text" and r.utt_id in no_text)]
        if lacking:
            print(f"warning: {len(lacking)} utterance(s) have no {name} features (see {store.root}/errors-*.csv); "
                  f"that modality is absent for them: {', '.join(lacking[:8])}{' ...' if len(lacking) > 8 else ''}",
                  file=sys.stderr)
    if no_text and "text" in needed:
        print(f"warning: {len(no_text)} utterance(s) have an empty transcript; text is absent for them: "
              f"{', '.join(sorted(no_text)[:8])}{' ...' if len(no_text) > 8 else ''}", file=sys.stderr)
    if "mocap" in st:
        n_mocap = sum(r.utt_id in st["mocap"] for r in records)
        print(f"{n_mocap} of {len(records)} utterances have motion capture (the others were spoken by the actor "
              "without markers, or their mocap is unusable: see the store's errors-0of1.csv)", flush=True)
    evaluated = conditions + [c for v in plan.values() for conds in v.values() for c in conds]
    token_words = None
    if "text" in st and any(c.kind == "word-rows" for c in evaluated + ([args.train_missing] if args.train_missing else [])):
        from transformers import AutoTokenizer

        from features.text import resolve_model
        path, alias = resolve_model(args.text_model)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=alias is not None or Path(path).is_dir())
        token_words = tokenizer_token_words(tok, {r.utt_id: r.transcript for r in records}, st["text"])
    transcripts = {r.utt_id: (r.transcript or "").strip() for r in records}
    reencode = "text" in st and any(c.kind in REENCODED for c in evaluated)

    sessions = sorted(folds) if args.loso else [5]
    names = output_names(args, ap, configs, sessions)
    scores, miss_rows = {}, []
    spans = {r.utt_id: r.end - r.start for r in records}  # seconds of audio of every utterance
    for k in sessions:
        train_items, dev_items, test_items = folds[k]
        norm = training_norm([u for u, _ in train_items], st.get("speech"), st.get("text"), st.get("mocap"),
                             mocap_velocity=args.mocap_velocity)
        degraded = None
        if reencode and rank == 0:  # wer's substitutes: the words of this fold's training transcripts
            from features.degraded_text import DegradedText
            degraded = DegradedText(st["text"], sorted({w for u, _ in train_items for w in transcripts[u].split()}),
                                    device=device, progress=progress)
        for config in configs:
            method = FusionMethod(
                CONFIGURATIONS[config], speech=st.get("speech"), text=st.get("text"), mocap=st.get("mocap"),
                norm=norm, no_text=no_text, token_words=token_words, degraded=degraded, transcripts=transcripts,
                speech_pool=args.speech_pool,
                text_pooling="first" if args.text_pooling == "cls" else "mean", mocap_velocity=args.mocap_velocity,
                d_model=args.d_model,
                heads=args.heads, layers=args.layers, ff=args.ff, dropout=args.dropout,
                fusion_hidden=args.fusion_hidden, modality_dropout=args.modality_dropout if len(CONFIGURATIONS[config]) > 1 else 0.0,
                train_condition=str(args.train_missing) if args.train_missing else None, seed=args.seed,
                protocol={"name": "loso" if args.loso else "session5", "test_session": k,
                          "dev_share": args.dev_share, "only_with_mocap": args.only_with_mocap})
            run = names["runs"][(config, k)]
            cfg = LoopConfig(out_dir=run, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                             val_every=args.val_every, seed=args.seed, device=device, resume=not args.no_resume,
                             progress=progress, deterministic=args.deterministic, patience=args.patience,
                             train_name=f"training part (Session {k} held out)", val_name="dev part")
            res = train(method, train_items, dev_items, cfg)
            if rank != 0:
                continue
            model = load_best(method, run, device)
            with ResourceMonitor() as mon:
                logits, present, _ = scored(method, model, test_items, None, 0, device)
            utts, labels = [u for u, _ in test_items], [y for _, y in test_items]
            speech = st.get("speech")
            audio_s = speech.seconds(utts) if speech is not None and all(u in speech for u in utts) else None
            audio_s = audio_s or sum(spans[u] for u in utts)  # no speech store, or some utterances lack speech
            shares = present_shares(present, streams_of(config))
            result = {"system": "speech-text-mocap", "configuration": config, "modalities": list(CONFIGURATIONS[config]),
                      "corpus": str(args.root), "protocol": "loso" if args.loso else "session5", "fold": k,
                      "split": f"Session {k} test", "checkpoint": str(run), "seed": args.seed,
                      "modality_dropout": method.modality_dropout, "train_condition": method.train_condition,
                      "title": f"{config}, Session {k} held out", "present": shares,
                      **inference_record(mon.seconds, len(utts), audio_s, mon)}
            wa, ua = write_class_scores(names["results"][(config, k)].with_suffix(".csv"), utts, labels, logits, CLASSES,
                                        result=result, resamples=args.bootstrap, ci_method=args.ci_method)
            ci = intervals(labels, logits.argmax(1), args)  # the file's intervals (same seeded bootstrap), printed
            scores[(config, k)] = {"WA": wa, "UA": ua, "WA_ci": ci["WA"].ci, "UA_ci": ci["UA"].ci, "present": shares,
                                   "train": len(train_items), "dev": len(dev_items), "test": len(test_items),
                                   "best_step": res.best_step, "steps": res.steps}
            print(f"{config} Session {k}: WA {ci['WA'].text()}  UA {ci['UA'].text()}  (train {len(train_items)}, dev "
                  f"{len(dev_items)}, test {len(test_items)}; best dev loss at step {res.best_step} of {res.steps}; "
                  f"{had(shares)})", flush=True)
            base = {k2: result[k2] for k2 in ("system", "configuration", "modalities", "corpus", "fold", "split",
                                              "checkpoint", "seed")}
            for protocol, conds in plan.get(config, {}).items():
                score_protocol(method, model, test_items, conds, protocol, names["protocols"][(config, k, protocol)],
                               base, args, device)
            if config == THREE_WAY and conditions:
                out = names["protocols"][(config, k, "conditions")]
                conds = [NONE, *(c for c in conditions if c.kind != "none")]
                rows_k = score_protocol(method, model, test_items, conds, "conditions", out, base, args, device)
                miss_rows += missing_rows(rows_k, k)
    if rank != 0:
        return 0

    ablation_table(args, configs, sessions, scores, folds, names)
    if miss_rows:
        missing_table(args, miss_rows, names, sessions)
    return 0


def intervals(labels, preds, args) -> dict:
    """{"WA": Scored, "UA": Scored} with the --bootstrap / --ci-method interval (metrics.score)."""
    from metrics import score
    from systems.speech_text_mocap import CLASSES
    return {k: score(k, np.asarray(labels), np.asarray(preds), n_classes=len(CLASSES), resamples=args.bootstrap,
                     method=args.ci_method) for k in ("WA", "UA")}


def had(shares: dict) -> str:
    """'audio 100%, mocap 49%; none 51%': the share of test utterances that had each stream, and the share that
    had none of a configuration's streams (their prediction is the model's constant guess)."""
    text = ", ".join(f"{s} {v:.0%}" for s, v in shares.items() if s != "none")
    return f"{text}; none {shares['none']:.0%}" if shares.get("none") else text


def score_protocol(method, model, items, conds, protocol: str, path: Path, base: dict, args, device) -> list[dict]:
    """One protocol (or the --missing list, "conditions") on one trained model through
    engine.robustness.evaluate_conditions: per condition and simulation seed the predicted classes and the streams
    each utterance really had; writes <path stem>.json/.csv/.png and _per_utterance.csv. Returns its rows."""
    from engine.robustness import evaluate_conditions
    from systems.speech_text_mocap import CLASSES, condition_draw
    stem = path.with_name(path.name[:-len(".json")])
    return evaluate_conditions(lambda cond, seed: condition_draw(method, model, items, cond, seed, device), conds,
                               sim_seeds=args.sim_seeds, metric="WA/UA", classes=list(CLASSES), protocol=protocol,
                               out=stem, result=dict(base), series=base["configuration"], resamples=args.bootstrap,
                               ci_method=args.ci_method,
                               title=f"{base['configuration']}, {base['split']}: {protocol}")


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


def ablation_table(args, configs, sessions, scores, folds, names) -> None:
    """The configurations' table (printed with intervals, CSV, bar chart, JSON): per configuration WA / UA on
    Session 5 with their intervals, the share of test utterances that had each of its streams (with_none: none of
    them, so the prediction is a constant guess), and with --loso the mean over held-out sessions."""
    from engine.plots import bar_chart
    from systems.common import write_result
    from systems.speech_text_mocap import CLASSES, CONFIGURATIONS
    rows = []
    for config in configs:
        s5 = scores[(config, 5)]
        row = {"configuration": config, "modalities": "+".join(CONFIGURATIONS[config]), "test": s5["test"],
               "session5_WA": s5["WA"], "session5_WA_ci": s5["WA_ci"], "session5_UA": s5["UA"],
               "session5_UA_ci": s5["UA_ci"], **{f"with_{s}": v for s, v in s5["present"].items()}}
        if args.loso:
            row["loso_WA"] = float(np.mean([scores[(config, k)]["WA"] for k in sessions]))
            row["loso_UA"] = float(np.mean([scores[(config, k)]["UA"] for k in sessions]))
        rows.append(row)
    tag = names["tag"]
    title = (f"IEMOCAP 4 classes, {'leave-one-session-out mean' if args.loso else 'Session 5 held out'}"
             f"{' (' + tag.strip('_') + ')' if tag else ''}")
    head = "| configuration | Session 5 WA | Session 5 UA |" + (" LOSO WA | LOSO UA |" if args.loso else "")
    print(f"\n{title}\n{head} test utterances with each stream |\n|---|---|---|" + ("---|---|" if args.loso else "")
          + "---|")
    for r, config in zip(rows, configs):
        s5 = scores[(config, 5)]
        print(f"| {r['configuration']} | {fmt(r['session5_WA'], s5['WA_ci'])} | {fmt(r['session5_UA'], s5['UA_ci'])} |"
              + (f" {r['loso_WA']:.4f} | {r['loso_UA']:.4f} |" if args.loso else "") + f" {had(s5['present'])} |")
    how = (f"with 95 % {args.ci_method} bootstrap intervals over the Session 5 test utterances ({args.bootstrap} "
           "resamples)" if args.bootstrap else "without intervals (--bootstrap 0)")
    print(f"WA / UA {how}; where a stream's share is below 100 % the others were scored without it, "
          "and 'none' is the share predicted from the absent vectors alone (a constant guess)")
    stem = names["ablation"].with_name(names["ablation"].name[:-len(".json")])
    write_table(stem.with_name(stem.name + ".csv"), rows)
    pre = "loso" if args.loso else "session5"
    # the majority-class level over the same held-out sessions as the bars (their mean of per-session WA)
    majority = float(np.mean([np.bincount([y for _, y in folds[k][2]], minlength=len(CLASSES)).max() / len(folds[k][2])
                              for k in sessions]))
    bar_chart([r["configuration"] for r in rows], {"WA": [r[f"{pre}_WA"] for r in rows],
                                                   "UA": [r[f"{pre}_UA"] for r in rows]},
              stem.with_name(stem.name + ".png"), title=title, ylabel="accuracy", reference=majority,
              reference_label=f"majority class (WA), {'mean over the held-out sessions' if args.loso else 'Session 5'}")
    from metrics import interval_record
    write_result(stem.with_name(stem.name + ".json"), {
        "metric": "WA/UA", "system": "speech-text-mocap", "corpus": str(args.root), "classes": list(CLASSES),
        "protocol": "loso" if args.loso else "session5", "rows": rows,
        "interval": interval_record(args.bootstrap, method=args.ci_method),
        "per_session": [{"configuration": c, "session": k, **v} for (c, k), v in scores.items()], "seed": args.seed,
        "checkpoints": [str(names["runs"][ck]) for ck in scores]})  # write_result records each run's identity
    print(f"table: {stem.with_name(stem.name + '.csv')}, chart: {stem.with_name(stem.name + '.png')}")


def fmt(value: float, ci) -> str:
    """'0.5075 [0.39, 0.62]' (metrics.Scored.text), or the bare value without an interval."""
    from metrics import Scored
    return Scored(value, *(ci or (None, None))).text()


def missing_table(args, miss_rows, names, sessions) -> None:
    """stm_missing.csv/.json/.png and the printed table: the three-way model under each --missing condition,
    per held-out session and their mean (with the interval when one session is tested)."""
    from engine.plots import missing_curves
    from systems.common import write_result
    from systems.speech_text_mocap import THREE_WAY
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
    from metrics import interval_record
    write_result(mstem.with_name(mstem.name + ".json"), {
        "metric": "WA/UA", "system": "speech-text-mocap", "configuration": THREE_WAY, "corpus": str(args.root),
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


if __name__ == "__main__":
    sys.exit(main())

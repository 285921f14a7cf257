#!/usr/bin/env python
"""Speech + text + motion-capture fusion on IEMOCAP (four classes ang, exc, neu, sad): train and test every
configuration of the ablation in one command, print the table, write it as CSV + bar chart, and test the
three-way model with modalities and frames / words missing.

    python speech_text_mocap.py --root /data/IEMOCAP_full_release                 # all ten configurations
    python speech_text_mocap.py --root R --configs speech+text+mocap,text --loso  # + leave-one-session-out mean
    python speech_text_mocap.py --root R --configs speech+text+mocap --modality-dropout 0.3
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
+ .json; then <results>/stm_ablation.csv/.json/.png and, when the three-way model is trained,
<results>/stm_missing.csv/.json/.png (WA / UA under each --missing condition). Re-running resumes. Names
carry every setting that differs from its default (stm_text_s5_lr0.001: output_names), so runs with other
settings never share a run folder or a result file.
"""
import csv
import sys
from pathlib import Path

import numpy as np

from engine.cli import (UserError, add_run_output_args, condition, entry, fraction, int_at_least, parser,
                        positive_float)

DEFAULT_MISSING = ("audio-absent,text-absent,mocap-absent,frames:0.1,frames:0.3,frames:0.5,"
                   "words:0.1,words:0.3,words:0.5")


def write_table(path: Path, rows: list[dict]) -> None:
    from utils import atomic_path
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def output_names(args, ap, configs, sessions) -> dict:
    """Where these settings train and write: per configuration and held-out session its run folder and result
    JSON, then the ablation and missing-data tables. Every name carries each setting that changes a model or
    its scores when not at its default (engine.cli.settings_suffix), the tables also the configurations,
    sessions and conditions they hold, so two settings never share a name. benchmark.py reads them from here."""
    from engine.cli import settings_suffix
    tag = settings_suffix(args, ap, skip=("configs", "loso", "missing"))
    runs = {(c, k): f"stm_{c}_s{k}{tag}" for c in configs for k in sessions}
    return {"tag": tag, "runs": {ck: args.out / name for ck, name in runs.items()},
            "results": {ck: args.results / f"{name}.json" for ck, name in runs.items()},
            "ablation": args.results / f"stm_ablation{tag}{settings_suffix(args, ap, only=('configs', 'loso'))}.json",
            "missing": args.results / f"stm_missing{tag}{settings_suffix(args, ap, only=('missing', 'loso'))}.json"}


def checked_settings(args) -> tuple[list, list]:
    """(configurations, --missing conditions), once every setting that cannot apply is refused (UserError naming
    the flag): an unknown configuration; a condition the system does not simulate; a --train-missing condition on
    a stream a configuration does not read (e.g. frames or mocap-absent for `text`), or that removes its only one.
    --missing tests the three-way model alone, which reads every stream."""
    from engine.cli import check_conditions, parse_conditions
    from systems.speech_text_mocap import CONDITION_KINDS, CONFIGURATIONS, REFUSED_KINDS, THREE_WAY, streams
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGURATIONS]
    if unknown or not configs:
        raise UserError(f"--configs {args.configs}: choose from {', '.join(CONFIGURATIONS)}")
    if len(set(configs)) < len(configs):
        raise UserError(f"--configs {args.configs}: a configuration is listed twice")
    conditions = [] if args.missing.strip().lower() == "none" else parse_conditions(args.missing, "--missing")
    check_conditions(conditions, "--missing", THREE_WAY, streams(THREE_WAY), CONDITION_KINDS, why=REFUSED_KINDS)
    for config in configs:
        check_conditions([args.train_missing], "--train-missing", f"configuration {config}", streams(config),
                         CONDITION_KINDS, why=REFUSED_KINDS, training=True)
    return configs, conditions


@entry
def main(argv=None) -> int:
    from corpora.iemocap import four_class, loso_session_folds, read_iemocap
    from engine.loop import LoopConfig, ddp_env, evaluate, load_best, train
    from engine.plots import bar_chart, missing_curves
    from engine.resources import ResourceMonitor, inference_record
    from features.mocap import speaker_wore_markers
    from systems.common import store_with, write_class_scores, write_result
    from systems.common import require_store
    from systems.speech_text_mocap import (CLASSES, CONFIGURATIONS, MOCAP_COLUMNS, THREE_WAY, FusionMethod,
                                           tokenizer_token_words, training_norm)
    from utils import resolve_device, unweighted_accuracy, weighted_accuracy, writable_dir
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
                   help="missing data as training augmentation, e.g. frames:0.2 or words:0.2 (default: none)")
    t.add_argument("--missing", default=DEFAULT_MISSING,
                   help=f"conditions the {THREE_WAY} model is tested under ('none' to skip)")
    t.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seed of initialisation, sampling, dropout, missing data")
    add_run_output_args(ap.add_argument_group("output"), "speech-text-mocap")
    args = ap.parse_args(argv)
    configs, conditions = checked_settings(args)
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
    token_words = None
    if "text" in st and any(c.kind == "words" for c in conditions + ([args.train_missing] if args.train_missing else [])):
        from transformers import AutoTokenizer

        from features.text import resolve_model
        path, alias = resolve_model(args.text_model)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=alias is not None or Path(path).is_dir())
        token_words = tokenizer_token_words(tok, {r.utt_id: r.transcript for r in records}, st["text"])

    sessions = sorted(folds) if args.loso else [5]
    names = output_names(args, ap, configs, sessions)
    tag = names["tag"]
    scores, miss_rows = {}, []
    spans = {r.utt_id: r.end - r.start for r in records}  # seconds of audio of every utterance
    for k in sessions:
        train_items, dev_items, test_items = folds[k]
        norm = training_norm([u for u, _ in train_items], st.get("speech"), st.get("text"), st.get("mocap"),
                             mocap_velocity=args.mocap_velocity)
        for config in configs:
            method = FusionMethod(
                CONFIGURATIONS[config], speech=st.get("speech"), text=st.get("text"), mocap=st.get("mocap"),
                norm=norm, no_text=no_text, token_words=token_words, speech_pool=args.speech_pool,
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
                logits = evaluate(method, model, test_items, 64, device)
            utts, labels = [u for u, _ in test_items], [y for _, y in test_items]
            speech = st.get("speech")
            audio_s = speech.seconds(utts) if speech is not None and all(u in speech for u in utts) else None
            audio_s = audio_s or sum(spans[u] for u in utts)  # no speech store, or some utterances lack speech
            result = {"system": "speech-text-mocap", "configuration": config, "modalities": list(CONFIGURATIONS[config]),
                      "corpus": str(args.root), "protocol": "loso" if args.loso else "session5", "fold": k,
                      "split": f"Session {k} test", "checkpoint": str(run), "seed": args.seed,
                      "modality_dropout": method.modality_dropout, "train_condition": method.train_condition,
                      "title": f"{config}, Session {k} held out",
                      **inference_record(mon.seconds, len(utts), audio_s, mon)}
            wa, ua = write_class_scores(names["results"][(config, k)].with_suffix(".csv"), utts, labels, logits, CLASSES, result=result)
            scores[(config, k)] = {"WA": wa, "UA": ua, "train": len(train_items), "dev": len(dev_items),
                                   "test": len(test_items), "best_step": res.best_step, "steps": res.steps}
            print(f"{config} Session {k}: WA {wa:.4f}  UA {ua:.4f}  (train {len(train_items)}, dev {len(dev_items)}, "
                  f"test {len(test_items)}; best dev loss at step {res.best_step} of {res.steps})", flush=True)
            if config == THREE_WAY and conditions:
                for cond in conditions:
                    method.condition, method.eval_seed = cond, args.seed
                    pred = evaluate(method, model, test_items, 64, device).argmax(1)
                    miss_rows.append({"session": k, "condition": cond.kind,
                                      "rate": "" if cond.kind.endswith("absent") else f"{cond.rate:g}",
                                      "WA": weighted_accuracy(labels, pred),
                                      "UA": unweighted_accuracy(labels, pred, len(CLASSES))})
                method.condition = None
                miss_rows.append({"session": k, "condition": "complete", "rate": "0", "WA": wa, "UA": ua})
    if rank != 0:
        return 0

    rows = []
    for config in configs:
        s5 = scores[(config, 5)]
        row = {"configuration": config, "modalities": "+".join(CONFIGURATIONS[config]), "test": s5["test"],
               "session5_WA": s5["WA"], "session5_UA": s5["UA"]}
        if args.loso:
            row["loso_WA"] = float(np.mean([scores[(config, k)]["WA"] for k in sessions]))
            row["loso_UA"] = float(np.mean([scores[(config, k)]["UA"] for k in sessions]))
        rows.append(row)
    title = (f"IEMOCAP 4 classes, {'leave-one-session-out mean' if args.loso else 'Session 5 held out'}"
             f"{' (' + tag.strip('_') + ')' if tag else ''}")
    head = "| configuration | Session 5 WA | Session 5 UA |" + (" LOSO WA | LOSO UA |" if args.loso else "")
    print(f"\n{title}\n{head}\n|---|---|---|" + ("---|---|" if args.loso else ""))
    for r in rows:
        print(f"| {r['configuration']} | {r['session5_WA']:.4f} | {r['session5_UA']:.4f} |"
              + (f" {r['loso_WA']:.4f} | {r['loso_UA']:.4f} |" if args.loso else ""))
    stem = names["ablation"].with_name(names["ablation"].name[:-len(".json")])
    write_table(stem.with_name(stem.name + ".csv"), rows)
    pre = "loso" if args.loso else "session5"
    counts = np.bincount([y for _, y in folds[5][2]], minlength=len(CLASSES))
    bar_chart([r["configuration"] for r in rows], {"WA": [r[f"{pre}_WA"] for r in rows],
                                                   "UA": [r[f"{pre}_UA"] for r in rows]},
              stem.with_name(stem.name + ".png"), title=title, ylabel="accuracy", reference=float(counts.max() / counts.sum()),
              reference_label="Session 5 majority class (WA)")
    write_result(stem.with_name(stem.name + ".json"), {
        "metric": "WA/UA", "system": "speech-text-mocap", "corpus": str(args.root), "classes": list(CLASSES),
        "protocol": "loso" if args.loso else "session5", "rows": rows,
        "per_session": [{"configuration": c, "session": k, **v} for (c, k), v in scores.items()], "seed": args.seed,
        "checkpoints": [str(names["runs"][ck]) for ck in scores]})  # write_result records each run's identity
    print(f"table: {stem.with_name(stem.name + '.csv')}, chart: {stem.with_name(stem.name + '.png')}")
    if miss_rows:
        mstem = names["missing"].with_name(names["missing"].name[:-len(".json")])
        mean_rows = []
        for cond, rate in dict.fromkeys((r["condition"], r["rate"]) for r in miss_rows):
            sel = [r for r in miss_rows if r["condition"] == cond and r["rate"] == rate]
            mean_rows.append({"series": THREE_WAY, "condition": cond, "rate": rate,
                              "WA": float(np.mean([r["WA"] for r in sel])), "UA": float(np.mean([r["UA"] for r in sel]))})
        write_table(mstem.with_name(mstem.name + ".csv"), miss_rows)
        missing_curves(mean_rows, ["WA", "UA"], mstem.with_name(mstem.name + ".png"), title=THREE_WAY)
        write_result(mstem.with_name(mstem.name + ".json"), {
            "metric": "WA/UA", "system": "speech-text-mocap", "configuration": THREE_WAY, "corpus": str(args.root),
            "rows": miss_rows, "mean": mean_rows, "seed": args.seed,
            "checkpoints": [str(names["runs"][(THREE_WAY, k)]) for k in sessions]})
        print(f"\n{THREE_WAY} with data missing ({'mean over held-out sessions' if args.loso else 'Session 5'}):\n"
              "| condition | WA | UA |\n|---|---|---|")
        for r in mean_rows:
            label = r["condition"] if r["rate"] in ("", "0") else f"{r['condition']}:{r['rate']}"
            print(f"| {label} | {r['WA']:.4f} | {r['UA']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train and test the MDRE family (ARE, TRE, MDRE, MDREA) on IEMOCAP over every fold of a protocol; print the
fold table and the mean WA / UA.

    python mdre.py --root /data/IEMOCAP_full_release --model MDREA                 # the original's 5 random folds
    python mdre.py --root R --model MDRE --protocol loso --glove glove.840B.300d.txt  # leave one session out
    python mdre.py --root R --model MDREA --folds 1 --missing frames:0.3,words:0.3,audio-absent,text-absent
    python mdre.py --root R --model MDREA --unmasked-attention    # the 2018 paper's attention (padding unmasked)
    torchrun --nproc_per_node=2 mdre.py --root R --model TRE

Features: the MFCC-E-D-A and prosody stores (feat_mdre.py; extracted here on first use when the audio is
there). Text: NLTK-style tokens, a vocabulary from the training part of each fold (`--faithful-vocab`: from
every utterance, as the original, which lets test words in), 300-d GloVe rows from `--glove` when given, else
random 100-d vectors. Protocols: `random5` (the original's utterance-level folds, seeds 337 / 3372, dev and
test drawn from the held-out fold) and `loso` (speaker-independent: each session tested once, fold k holding
out Session k, also when another session is absent; the dev part is 10 % of the training sessions' utterances,
seeded). Training as the original: Adam 1e-3, batch 128, gradients clipped to +-10, sigmoid cross-entropy on
one-hot targets (`--loss softmax`), validation every 0.3 epoch of draws, best model by dev loss, early stop after
8 validations without improvement, at most -iter steps. A missing-data condition must touch a stream the model
reads (ARE has no words, TRE no audio): one that cannot is refused before anything runs.

Writes per fold <out>/<MODEL>_<protocol>_fold<k>/ (model.safetensors + config.json, run.json, state.pt,
log.csv, loss.png) and <results>/<MODEL>_<protocol>_fold<k>.csv (per utterance) + _confusion.csv/.png + .json;
then <results>/<MODEL>_<protocol>_folds.csv/.json (the fold table: each fold's WA / UA with a 95 % bootstrap
interval over its test utterances, then the mean and standard deviation over folds). Missing data (issue 20):
`--protocols fixed,random,sweep` (fixed: audio only and text only beside the complete data, MMIN's protocol;
random: each modality of each utterance missing with probability p at every --rates rate, one always kept;
sweep: each --sweep-kinds kind (frames, bursts, words, wer; those the model reads) at every rate) and the
--missing list (protocol "conditions") score every fold's model (one series per fold) through
engine.robustness, averaged over --sim-seeds simulation seeds, with --bootstrap / --ci-method intervals:
<results>/<MODEL>_<protocol>_<p>.json/.csv/.png + _per_utterance.csv. ARE and TRE read one modality: fixed and
random are refused for them. Re-running resumes.

    python mdre.py --root R --model MDREA --protocol loso --protocols fixed,random,sweep --rates 0,0.3,0.6
Names carry every setting that differs from its default (MDREA_loso_norm_lr0.0005_fold5: run_tag), so runs with
other settings never share a run folder or a result file.
"""
import sys
import warnings
from pathlib import Path

import numpy as np

from engine.cli import (UserError, add_protocol_args, add_run_output_args, comma_ints, condition, entry,
                        float_at_least, int_at_least, parser, positive_float)

# the flags of the missing-data protocols (engine.cli.add_protocol_args): they change no model, so no run name
PROTOCOL_FLAGS = ("protocols", "rates", "sweep_kinds", "sim_seeds", "bootstrap", "ci_method")


def fold_splits(items: list, protocol: str, dev_share: float = 0.1, seed: int = 3372) -> tuple[dict, list]:
    """({fold number: (train, dev, test)}, the sessions of 1-5 without an item) of (record, label) items: the
    original's random folds 1-5, or leave-one-session-out with a seeded dev share of the training sessions, each
    fold numbered by the session it holds out (Session 4 is fold 4 even when Session 3 is absent)."""
    from corpora.iemocap import SESSIONS, loso_session_folds, mdre_random_folds
    if protocol == "loso":
        return loso_session_folds(items, dev_share, seed)
    present = {r.session for r, _ in items}
    return dict(enumerate(mdre_random_folds(items), 1)), [s for s in SESSIONS if s not in present]


def chosen_folds(args, folds: dict, absent: list) -> list:
    """The folds --folds asks for (default: all there are), or UserError naming the flag: a fold the protocol does
    not have, or (loso) the fold of a session absent from --root."""
    chosen = args.folds or sorted(folds)
    for k in chosen:
        if k in folds:
            continue
        if args.protocol == "loso" and k in absent:
            raise UserError(f"--folds {k}: Session {k} has no four-class utterance under {args.root}, so there is "
                            f"no fold {k} to hold it out; loso folds here: {', '.join(map(str, sorted(folds)))}")
        raise UserError(f"--folds {k}: the {args.protocol} protocol has folds "
                        f"{', '.join(map(str, sorted(folds))) if args.protocol == 'loso' else '1..5'}")
    return chosen


def checked_conditions(args) -> dict:
    """{protocol: [Condition], complete data first} to score every fold's model under: the --protocols (fixed,
    random, sweep) and the --missing list (protocol "conditions"), once every setting that cannot apply to --model
    is refused (UserError naming the flag): a condition the family does not simulate or on a stream the model does
    not read (ARE has no words, TRE no audio), in --missing, --train-missing or --sweep-kinds; a protocol needing
    two modalities (fixed, random) on ARE or TRE; --unmasked-attention on a model without attention."""
    from engine.cli import check_conditions, parse_conditions, protocol_plan
    from features.missing import KIND_STREAMS, NONE, SWEEP_KINDS
    from systems.mdre import CONDITION_KINDS, REFUSED_KINDS, streams
    if args.unmasked_attention and args.model != "MDREA":
        raise UserError(f"--unmasked-attention: {args.model} has no attention (MDREA only)")
    conditions = parse_conditions(args.missing, "--missing")
    check_conditions(conditions, "--missing", args.model, streams(args.model), CONDITION_KINDS, why=REFUSED_KINDS)
    check_conditions([args.train_missing], "--train-missing", args.model, streams(args.model), CONDITION_KINDS,
                     why=REFUSED_KINDS, training=True)
    if args.sweep_kinds == ",".join(SWEEP_KINDS):  # the default sweep: the kinds this model's streams allow
        args.sweep_kinds = ",".join(k for k in SWEEP_KINDS if set(KIND_STREAMS[k]) <= streams(args.model))
    plan = protocol_plan(args, args.model, streams(args.model), CONDITION_KINDS, REFUSED_KINDS)
    if any(c != NONE for c in conditions):  # "--missing none" is no list
        plan["conditions"] = [NONE, *(c for c in conditions if c != NONE)]
    return plan


def ensure_features(records, root: Path, kind: str, progress: bool):
    """The MFCC or prosody store under <root>/Features, extracting what it lacks."""
    from features.extract import ensure_store
    from features.mdre_acoustic import EXTRACTORS
    ext = EXTRACTORS[kind]()
    return ensure_store(ext, records, root / "Features" / ext.name, progress=progress)


def run_tag(args, ap) -> str:
    """The stem of every run folder and result file of these settings: model, protocol, _norm / _allvocab, then
    every other setting that changes a model or its scores when not at its default (engine.cli.settings_suffix:
    seed, -iter, -batch, --lr, --loss, --glove, --train-missing, ...), so two settings never share a name."""
    from engine.cli import settings_suffix
    return (f"{args.model}_{args.protocol}{'_norm' if args.normalise else ''}{'_allvocab' if args.faithful_vocab else ''}"
            + settings_suffix(args, ap, skip=("model", "protocol", "normalise", "faithful_vocab", "folds", "missing",
                                              *PROTOCOL_FLAGS)))


def output_names(args, ap, folds) -> dict:
    """Where these settings train and write: run folders and result JSONs per fold, the fold table, and per
    missing-data protocol (--protocols; "conditions" = the --missing list, also under "missing") its result JSON
    with every fold as a series (each JSON has a .csv, .png and _per_utterance.csv beside it). benchmark.py reads
    the same names from here."""
    tag = run_tag(args, ap)
    protocols = [p.strip() for p in (args.protocols or "").split(",") if p.strip()]
    listed = [c for c in (args.missing or "").split(",") if c.strip().lower() not in ("", "none")]
    protocols += ["conditions"] if listed else []
    return {"runs": {k: args.out / f"{tag}_fold{k}" for k in folds},
            "folds": {k: args.results / f"{tag}_fold{k}.json" for k in folds},
            "table": args.results / f"{tag}_folds.json", "missing": args.results / f"{tag}_conditions.json",
            "protocols": {p: args.results / f"{tag}_{p}.json" for p in protocols}}


def fold_scores(labels, preds, interval_args: dict) -> dict:
    """{"WA": Scored, "UA": Scored} of one fold's test predictions, with bootstrap intervals over its utterances."""
    from metrics import score
    from systems.mdre import CLASSES
    return {m: score(m, labels, preds, n_classes=len(CLASSES), **interval_args) for m in ("WA", "UA")}


def write_fold_table(path: Path, rows: list[dict], tag: str, result: dict) -> None:
    """Print the fold table (each fold's WA / UA with its interval, then the mean and standard deviation over the
    folds) and write it as <path>.csv and <path> (JSON)."""
    import csv

    from systems.common import write_result
    from utils import atomic_path
    mean = {m: float(np.mean([r[m] for r in rows])) for m in ("WA", "UA")}
    sd = {m: float(np.std([r[m] for r in rows], ddof=1)) if len(rows) > 1 else None for m in ("WA", "UA")}
    print(f"\n| {tag} fold | train | dev | test | WA [95% CI] | UA [95% CI] |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['fold']} | {r['train']} | {r['dev']} | {r['test']} | {cell(r, 'WA')} | {cell(r, 'UA')} |")
    spread = {m: f" ± {sd[m]:.4f}" if sd[m] is not None else "" for m in sd}
    print(f"| mean of {len(rows)} (± sd over folds) | | | | {mean['WA']:.4f}{spread['WA']} | "
          f"{mean['UA']:.4f}{spread['UA']} |")
    table = path.with_suffix(".csv")
    with atomic_path(table) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({k: (f"{v:.6f}" if isinstance(v, float) else "" if v is None
                         else f"[{v[0]:.6f}, {v[1]:.6f}]" if isinstance(v, list) else v) for k, v in r.items()}
                    for r in rows)
    write_result(table.with_suffix(".json"), {**result, "folds": rows, "mean": mean, "sd": sd})


def cell(row: dict, key: str) -> str:
    """"0.5000 [0.40, 0.60]": a table cell of a row holding key and key_ci (metrics.interval_fields)."""
    from metrics import stored
    return stored(row, key).text()


def shared_draws(method, model, items, device):
    """predict(condition, sim_seed) -> Draw of one fold's model on its test items, each (condition, seed) computed
    once: the complete data and the other conditions several protocols share are not evaluated again."""
    memo = {}

    def predict(cond, sim_seed: int):
        key = (str(cond), sim_seed)
        if key not in memo:
            memo[key] = method.draw(model, items, cond, sim_seed, device)
        return memo[key]
    return predict


def score_protocol(protocol: str, conditions: list, folds: list, path: Path, args, result: dict, tag: str) -> list:
    """Every fold's model under one protocol's conditions through engine.robustness.evaluate_conditions, one series
    per fold ("fold 4": its model on its test utterances), written as <path> (JSON) with its .csv, .png and
    _per_utterance.csv beside it. Returns the rows."""
    from engine.robustness import evaluate_conditions
    from systems.mdre import CLASSES
    return evaluate_conditions(dict(folds), conditions, sim_seeds=args.sim_seeds, metric="WA/UA",
                               classes=list(CLASSES), protocol=protocol, out=path.with_suffix(""), result=result,
                               resamples=args.bootstrap, ci_method=args.ci_method,
                               title=f"{tag}: {protocol} protocol, WA / UA per fold")


@entry
def main(argv=None) -> int:
    from corpora.iemocap import FOUR_CLASS, four_class, read_iemocap
    from engine.loop import LoopConfig, ddp_env, evaluate, load_best, train
    from engine.resources import ResourceMonitor, inference_record
    from features.vocab import build_vocabulary, load_glove, tokenize
    from metrics import interval_fields, interval_record
    from systems.common import require_store, write_class_scores
    from systems.mdre import CLASSES, KINDS, MAX_TOKENS, UNK, USES_AUDIO, MDREMethod, training_norm
    from utils import resolve_device, writable_dir
    ap = parser(__doc__)
    ap.add_argument("--root", type=Path, required=True, help="IEMOCAP release folder (holding Session1..5)")
    ap.add_argument("--model", choices=KINDS, default="MDREA", help="which model of the family")
    ap.add_argument("--protocol", choices=("random5", "loso"), default="random5",
                    help="random5: the original's 5 random utterance folds; loso: leave one session out")
    ap.add_argument("--folds", type=comma_ints(1),
                    help="comma-separated fold numbers to run, each once: 1-5 (random5), or the held-out session's "
                         "number (loso) (default: all)")
    ap.add_argument("--glove", type=Path, help="GloVe-format text file of 300-d word vectors (default: random 100-d)")
    ap.add_argument("--faithful-vocab", action="store_true",
                    help="build the vocabulary from every utterance, test ones included, as the original")
    ap.add_argument("--loss", choices=("sigmoid", "softmax"), default="sigmoid",
                    help="sigmoid cross-entropy on one-hot targets (the original) or softmax cross-entropy")
    ap.add_argument("--normalise", action="store_true",
                    help="z-normalise MFCC and prosody with the training part's statistics (the original feeds raw "
                         "values: Hz, dB and log-energy scales)")
    ap.add_argument("-iter", "--iterations", type=int_at_least(1), default=10000, help="most training steps")
    ap.add_argument("-batch", "--batch-size", type=int_at_least(2), default=128, help="utterances per batch")
    ap.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--val-every", type=int_at_least(1),
                    help="validate every N steps (default: int(0.3 * train size / batch) + 1, the original's)")
    ap.add_argument("--patience", type=int_at_least(0, "0 is off"), default=7,
                    help="validations without improvement tolerated (0: off)")
    ap.add_argument("--clip", type=float_at_least(0, "0 is off"), default=10.0,
                    help="clip gradients by value to +-clip (0: off)")
    ap.add_argument("--unmasked-attention", action="store_true",
                    help="MDREA: the 2018 paper's attention, a softmax over all 128 text positions with the padding "
                         "(the original's masking fix came in 2020; default: masked)")
    ap.add_argument("--train-missing", type=condition,
                    help="missing data as training augmentation, e.g. frames:0.2, words:0.2 (default: none)")
    ap.add_argument("--missing", help="test every fold also under these comma-separated conditions, e.g. "
                                      "frames:0.3,words:0.3,wer:0.2,audio-absent,text-absent,present:audio "
                                      "(default: none); written as the protocol 'conditions'")
    ap.add_argument("--seed", type=int_at_least(0), default=0,
                    help="seed of initialisation, sampling, dropout, missing data")
    add_protocol_args(ap)
    add_run_output_args(ap, "mdre")
    args = ap.parse_args(argv)
    plan = checked_conditions(args)
    interval_args = {"resamples": args.bootstrap, "method": args.ci_method}
    writable_dir(args.out)
    writable_dir(args.results)
    corpus = read_iemocap(args.root)  # a CorpusError is a clear error (engine.cli.entry)
    corpus.report()
    labelled = four_class(corpus.records, "mdre")
    if not labelled:
        raise UserError(f"{args.root}: no utterance of the four classes {', '.join(FOUR_CLASS['mdre'].classes)}")
    # the fold draws run over every four-class utterance in the global order, as the original's
    folds, absent = fold_splits(labelled, args.protocol)
    if absent:
        print(f"warning: {args.root}: no four-class utterance in Session {', '.join(map(str, absent))}"
              + (f"; leave-one-session-out has no fold {', '.join(map(str, absent))} (folds keep their session's "
                 "number)" if args.protocol == "loso" else ""), file=sys.stderr)
    folds = {k: tuple([(r.utt_id, y) for r, y in part] for part in fold) for k, fold in folds.items()}
    chosen = chosen_folds(args, folds, absent)
    progress = not args.no_progress
    rank = ddp_env()[0]
    stores = {}
    world = ddp_env()[1]
    if world > 1:  # the process group now, so rank 0 alone extracts what the stores lack while the others wait
        import torch.distributed as dist
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    if args.model in USES_AUDIO:
        for kind in ("mfcc", "prosody"):
            if rank == 0:
                stores[kind] = ensure_features([r for r, _ in labelled], args.root, kind, progress)
            if world > 1:
                dist.barrier()
            if rank != 0:
                from features.mdre_acoustic import EXTRACTORS
                from features.store import FeatureStore
                stores[kind] = FeatureStore(args.root / "Features" / EXTRACTORS[kind].name)
    for kind, store in stores.items():  # the kinds of features, before training (issue 19.14)
        require_store(store, f"--root (its Features/{store.root.name})", kind)
    missing = sorted({r.utt_id for r, _ in labelled for s in stores.values() if r.utt_id not in s})
    if missing:
        print(f"warning: {len(missing)} utterance(s) have no acoustic features (see the stores' errors-*.csv) and "
              f"are left out: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}", file=sys.stderr)
    no_text = [r.utt_id for r, _ in labelled if not (r.transcript or "").strip()]
    if no_text and args.model != "ARE":
        print(f"warning: {len(no_text)} utterance(s) have an empty or missing transcript and get no words: "
              f"{', '.join(no_text[:10])}{' ...' if len(no_text) > 10 else ''}", file=sys.stderr)
    usable = set(r.utt_id for r, _ in labelled) - set(missing)
    tokens_of = {r.utt_id: tokenize(r.transcript or "") for r, _ in labelled}
    long = [u for u, t in tokens_of.items() if len(t) > MAX_TOKENS]
    if long:
        print(f"warning: {len(long)} transcript(s) have more than {MAX_TOKENS} tokens and keep their first "
              f"{MAX_TOKENS}: {', '.join(long[:10])}", file=sys.stderr)
    device = resolve_device(args.device)
    tag, names = run_tag(args, ap), output_names(args, ap, chosen)
    rows, scored = [], {p: [] for p in plan}  # scored: per protocol, each fold's (series, predict)
    spans = {r.utt_id: r.end - r.start for r, _ in labelled}  # seconds of audio (TRE has no acoustic store)
    for k in chosen:
        train_items, dev_items, test_items = ([it for it in part if it[0] in usable] for part in folds[k])
        vocab = build_vocabulary([tokens_of[u] for u, _ in train_items],
                                 [tokenize(r.transcript or "") for r in corpus.records] if args.faithful_vocab else None,
                                 faithful=args.faithful_vocab)
        with warnings.catch_warnings():  # over-long transcripts are listed once, above
            warnings.simplefilter("ignore")
            ids = {u: vocab.encode(toks, max_len=MAX_TOKENS)[: min(len(toks), MAX_TOKENS)]
                   for u, toks in tokens_of.items()}
        embedding = None
        if args.glove:
            try:
                embedding, coverage = load_glove(args.glove, vocab, seed=args.seed, progress=progress and rank == 0)
            except (OSError, ValueError) as e:
                raise UserError(f"--glove: {e}") from None
            print(f"fold {k}: GloVe {coverage}", flush=True)
        norm = (training_norm(stores["mfcc"], stores["prosody"], [u for u, _ in train_items])
                if args.normalise and stores else None)
        train_words = {int(i) for u, _ in train_items for i in ids[u]} - {UNK}  # wer's substitutes
        method = MDREMethod(args.model, stores.get("mfcc"), stores.get("prosody"), ids, vocab.tokens, norm=norm,
                            substitutes=tuple(sorted(train_words)),
                            embedding=embedding, loss_kind=args.loss, masked_attention=not args.unmasked_attention,
                            train_condition=str(args.train_missing) if args.train_missing else None, seed=args.seed,
                            protocol={"name": args.protocol, "fold": k, "folds": len(folds),
                                      "faithful_vocab": args.faithful_vocab, "glove": str(args.glove or "")})
        val_every = args.val_every or int(len(train_items) * 0.3 / args.batch_size) + 1
        run = names["runs"][k]
        cfg = LoopConfig(out_dir=run, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                         val_every=val_every, seed=args.seed, device=device, resume=not args.no_resume,
                         progress=progress, deterministic=args.deterministic, patience=args.patience,
                         clip_value=args.clip, train_name=f"fold {k} training part", val_name=f"fold {k} dev part")
        res = train(method, train_items, dev_items, cfg)
        if rank != 0:
            continue
        model = load_best(method, run, device)
        with ResourceMonitor() as mon:
            logits = evaluate(method, model, test_items, 256, device)
        utts, labels = [u for u, _ in test_items], [y for _, y in test_items]
        audio_s = stores["mfcc"].seconds(utts) if "mfcc" in stores else None  # prosody has no frame rate
        result = {"system": "mdre", "model": args.model, "corpus": str(args.root), "protocol": args.protocol,
                  "fold": k, "split": f"fold {k} test", "checkpoint": str(run), "seed": args.seed,
                  "loss": args.loss, "faithful_vocab": args.faithful_vocab, "normalise": args.normalise,
                  "masked_attention": not args.unmasked_attention,
                  "title": f"{tag} fold {k}",
                  **inference_record(mon.seconds, len(utts), audio_s or sum(spans[u] for u in utts), mon)}
        write_class_scores(names["folds"][k].with_suffix(".csv"), utts, labels, logits, CLASSES, result=result,
                           resamples=args.bootstrap, ci_method=args.ci_method)
        acc = fold_scores(labels, logits.argmax(1), interval_args)
        rows.append({"fold": k, "train": len(train_items), "dev": len(dev_items), "test": len(test_items),
                     **{f: v for key, s in acc.items() for f, v in interval_fields(key, s).items()},
                     "best_step": res.best_step, "steps": res.steps,
                     "stopped_early": res.stopped_early, "vocab": len(vocab.tokens)})
        print(f"{tag} fold {k}: WA {acc['WA'].text()}  UA {acc['UA'].text()}  (train {len(train_items)}, dev "
              f"{len(dev_items)}, test {len(test_items)}; best dev loss at step {res.best_step} of {res.steps})",
              flush=True)
        predict = shared_draws(method, model, test_items, device)
        for p in plan:  # every fold's model under every protocol's conditions, scored together below
            scored[p].append((f"fold {k}", predict))
    if rank != 0 or not rows:
        return 0
    write_fold_table(names["table"], rows, tag, {
        "metric": "WA/UA", "system": "mdre", "model": args.model, "corpus": str(args.root), "protocol": args.protocol,
        "seed": args.seed, "loss": args.loss, "faithful_vocab": args.faithful_vocab,
        "interval": interval_record(**interval_args),
        "checkpoints": [str(names["runs"][r["fold"]]) for r in rows]})  # write_result records each run's identity
    for p, conds in plan.items():
        score_protocol(p, conds, scored[p], names["protocols"][p], args, {
            "system": "mdre", "model": args.model, "corpus": str(args.root), "fold_protocol": args.protocol,
            "seed": args.seed, "checkpoints": [str(names["runs"][r["fold"]]) for r in rows]}, tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())

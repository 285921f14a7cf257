"""mdre.py's experiment: its description from the flags and its hooks over IEMOCAP's folds.

`describe` gives the Experiment (names, folds, conditions); `MDRE` holds the hooks by which
engine.experiment.run trains and tests the family.

The corpus is read once, in `folds`: the four-class utterances, the folds of the protocol (random5 or loso, each
numbered as today), the MFCC and prosody stores (rank 0 of a torchrun job extracts what they lack while the
others wait) and the warnings about what is left out. Each fold then gets its vocabulary, GloVe rows and
normalisation in `method`; `test` writes the per-utterance CSV and result JSON and prints the fold's line; the
missing-data protocols score every fold's model together, one series per fold (`pooled_protocols`), after the
fold table.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from engine.cli import UserError
from engine.experiment import Experiment, Fold, Training

# the flags of the missing-data protocols (engine.cli.add_protocol_args): they change no model, so no run name
PROTOCOL_FLAGS = ("protocols", "rates", "sweep_kinds", "sim_seeds", "bootstrap", "ci_method")
EVAL_BATCH = 256  # test utterances per forward pass
# the flags that pick the corpus and its parts (add_corpus_args): a run name carries them when not at their default
CORPUS_FLAGS = ("corpus", "fold", "train_split", "dev_split", "test_split")
DEV_SEED = 3372  # the dev draw's seed, as the leave-one-session-out dev part's


# ------------------------------------------------------------------ any corpus with categorical labels
def add_corpus_args(ap, system: str) -> None:
    """--corpus, --fold and the split flags of the categorical systems (mdre.py, speech_text_mocap.py); --root is the
    script's own."""
    from corpora import KINDS
    from engine.cli import int_at_least
    ap.add_argument("--corpus", choices=KINDS, default="iemocap",
                    help=f"what --root is (default iemocap: {system}'s IEMOCAP protocol); msp-podcast, manifest (--root "
                         "is the CSV/JSONL manifest) and emobox (--root is EmoBox's data/<corpus> folder) are one fold "
                         "of their named splits, classes as the corpus declares them")
    ap.add_argument("--fold", type=int_at_least(1),
                    help="--corpus emobox: the EmoBox fold to read (required there; default: none, the other corpora "
                         "have no folds)")
    ap.add_argument("--train-split", default="train", help="split corpora: the training split (default train)")
    ap.add_argument("--dev-split", default="dev",
                    help="split corpora: the dev split (best model, early stopping; default dev; when the corpus has "
                         "no dev split, a seeded --dev-share of the training split is drawn instead)")
    ap.add_argument("--test-split", default="test",
                    help="split corpora: the scored split (default test; MSP-Podcast's aliases work, e.g. test1)")


def check_corpus_args(args, ap) -> None:
    """UserError naming the flag when the corpus flags do not fit together: --fold off EmoBox (or missing on it),
    split flags on IEMOCAP (whose folds are computed)."""
    if args.corpus == "emobox" and args.fold is None:
        raise UserError("--corpus emobox: give --fold N (the EmoBox fold to read)")
    from features.extract import check_fold
    check_fold(args.corpus, args.fold)
    if args.corpus == "iemocap":
        given = [f"--{f.replace('_', '-')}" for f in ("train_split", "dev_split", "test_split")
                 if getattr(args, f) != ap.get_default(f)]
        if given:
            raise UserError(f"{', '.join(given)}: IEMOCAP has no named splits (its folds are computed); these flags "
                            "are for --corpus msp-podcast, manifest or emobox")


def is_split_corpus(args) -> bool:
    """Whether the run is one fold of a corpus's named splits (every --corpus but IEMOCAP)."""
    return args.corpus != "iemocap"


def trained_corpus(args, name: str) -> dict:
    """What a checkpoint's config records of the corpus it was trained on ({"corpus": {kind, name[, fold]}}), for
    scoring it elsewhere (cross_corpus.py); {} on IEMOCAP, so the runs made before --corpus keep their identity."""
    if not is_split_corpus(args):
        return {}
    return {"corpus": {"kind": args.corpus, "name": name, **({"fold": args.fold} if args.fold is not None else {})}}


def list_left_out(skipped: list, what: str) -> None:
    """Print the records left out (corpora.Skipped), by reason, with the first names: nothing goes unsaid."""
    if not skipped:
        return
    reasons: dict = {}
    for sk in skipped:
        reasons.setdefault(sk.reason, []).append(sk.utt_id)
    print(f"warning: {len(skipped)} utterance(s) of {what} left out:", file=sys.stderr)
    for reason, utts in reasons.items():
        print(f"  {len(utts)} x {reason}: {first_ten(utts)}", file=sys.stderr)


def draw_dev(train: list, share: float, seed: int = DEV_SEED) -> tuple[list, list, str]:
    """(train, dev, how) of (record, label) items: a seeded `share` of the training split held out as the dev part,
    whole speakers at a time (speaker-disjoint; a reader's "unknown:<id>" speaker is one utterance, so a corpus
    without speakers is drawn by utterance), at least one item, at least one speaker left for training."""
    import random
    by_speaker: dict = {}
    for r, _ in train:
        by_speaker.setdefault(r.speaker, 0)
        by_speaker[r.speaker] += 1
    order = sorted(by_speaker)
    random.Random(seed).shuffle(order)
    target, held, n = max(1, round(share * len(train))), set(), 0
    for spk in order[:-1]:
        if n >= target:
            break
        held.add(spk)
        n += by_speaker[spk]
    known = [s for s in held if not s.startswith("unknown:")]
    how = (f"speaker-disjoint, {len(known)} speaker(s)" if len(known) == len(held) and held else "by utterance"
           if not known else f"{len(known)} known speaker(s) and {len(held) - len(known)} utterance(s) without one")
    return [it for it in train if it[0].speaker not in held], [it for it in train if it[0].speaker in held], how


def read_split_fold(args, dev_share: float):
    """(corpus name, classes, (train, dev, test) of (record, class index)) of one fold of a split corpus: the
    --train-split, --dev-split and --test-split parts of --root (EmoBox: of --fold), classes from
    corpora.class_labels (declared order = class index). Records the reader skipped and those without a class are
    listed. With the default --dev-split and no dev split in the corpus, the dev part is a seeded --dev-share of the
    training split (draw_dev), said in the output."""
    from corpora import CorpusError, class_labels, read_corpus
    kind, fold = args.corpus, args.fold
    parts, classes, name, draw = {}, None, None, False
    for part, split in (("train", args.train_split), ("dev", args.dev_split), ("test", args.test_split)):
        try:
            corpus = read_corpus(kind, args.root, split, fold=fold)  # a CorpusError is a clear error (entry)
        except CorpusError:
            if part != "dev" or split != "dev":  # only the default dev split may be missing: it is drawn
                raise
            draw = True
            continue
        corpus.report(stream=sys.stderr)  # the stream of now (report's default is bound at import)
        name = corpus.name
        classes, parts[part], left_out = class_labels(corpus, kind)
        list_left_out(left_out, f"{corpus.name} split {split}")
        if not parts[part]:
            raise UserError(f"{args.root}: the {split} split of {corpus.name} has no utterance of the classes "
                            f"{', '.join(classes)} (--{part}-split)")
    if draw:
        parts["train"], parts["dev"], how = draw_dev(parts["train"], dev_share)
        print(f"{name} has no dev split: the dev part is {len(parts['dev'])} utterance(s) of the training split "
              f"{args.train_split} (--dev-share {dev_share:g}, seeded, {how})", flush=True)
    return name, tuple(classes), (parts["train"], parts["dev"], parts["test"])


def features_dir(args) -> Path:
    """Where the default feature stores of --root lie (features.extract.features_folder: <root>/Features, for a
    manifest <its folder>/Features), as the extractors and the other systems put them."""
    from features.extract import features_folder
    return features_folder(args.corpus, args.root)


def describe(args: argparse.Namespace, ap: argparse.ArgumentParser, argv) -> Experiment:
    """The Experiment of mdre.py's parsed flags. Flags only (no file is read): every setting that cannot apply to
    --model is refused here (checked_conditions); the folds a corpus lacks are refused by `MDRE.folds`."""
    from features.mdre_acoustic import EXTRACTORS
    from systems.mdre import USES_AUDIO
    from utils import resolve_device
    check_corpus_args(args, ap)
    args.protocol = protocol_of(args)
    if is_split_corpus(args) and args.folds:
        raise UserError(f"--folds: --corpus {args.corpus} is one fold of its named splits (EmoBox: choose it with "
                        "--fold)")
    if args.protocol == "random5" and args.dev_share != ap.get_default("dev_share"):
        raise UserError("--dev-share: the random5 protocol draws its dev parts as the original did; --dev-share is "
                        "for loso and split corpora")
    conditions = checked_conditions(args)
    folds = (args.fold or 1,) if is_split_corpus(args) else tuple(args.folds or range(1, 6))
    tag = run_tag(args, ap)
    training = Training(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                        val_every=args.val_every,  # None: the original's 0.3 epoch, per fold (MDRE.folds)
                        seed=args.seed, device=resolve_device(args.device), resume=not args.no_resume,
                        progress=not args.no_progress, deterministic=args.deterministic, patience=args.patience,
                        clip_value=args.clip, precision=args.precision)
    outputs = {**output_names(args, ap, folds), "tag": tag}
    outputs["titles"] = {p: f"{tag}: {p} protocol, WA / UA per fold" for p in outputs["protocols"]}
    return Experiment(system="mdre", script="mdre.py", argv=tuple(sys.argv[1:] if argv is None else argv),
                      settings=args, corpus=args.root, protocol=args.protocol, folds=folds, training=training,
                      inputs={kind: features_dir(args) / EXTRACTORS[kind].name
                              for kind in ("mfcc", "prosody") if args.model in USES_AUDIO},
                      conditions=conditions, outputs=outputs, hooks="systems.mdre_experiment:MDRE")


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


def protocol_of(args) -> str:
    """The fold protocol: --protocol (IEMOCAP; default random5), "splits" for a split corpus (refused with
    --protocol: random5 and loso are IEMOCAP's)."""
    if is_split_corpus(args):
        if args.protocol not in (None, "splits"):
            raise UserError(f"--protocol {args.protocol}: IEMOCAP's folds; --corpus {args.corpus} is one fold of its "
                            "named splits (--train-split, --dev-split, --test-split)")
        return "splits"
    return args.protocol or "random5"


def run_tag(args, ap) -> str:
    """The stem of every run folder and result file of these settings: model, protocol (a split corpus: its kind),
    _norm / _allvocab, then every other setting that changes a model or its scores when not at its default
    (engine.cli.settings_suffix: seed, -iter, -batch, --lr, --loss, --glove, --train-missing, the split flags...),
    so two settings never share a name. An EmoBox fold is in the fold's own name (_fold<N>), not here."""
    from engine.cli import settings_suffix
    where = args.corpus if is_split_corpus(args) else protocol_of(args)
    return (f"{args.model}_{where}{'_norm' if args.normalise else ''}{'_allvocab' if args.faithful_vocab else ''}"
            + settings_suffix(args, ap, skip=("model", "protocol", "normalise", "faithful_vocab", "folds", "missing",
                                              "corpus", "fold", *PROTOCOL_FLAGS)))


def output_names(args, ap, folds) -> dict:
    """Where these settings train and write: run folders and result JSONs per fold, the fold table, and per
    missing-data protocol (--protocols; "conditions" = the --missing list, also under "missing") its result JSON
    with every fold as a series (each JSON has a .csv, .png and _per_utterance.csv beside it)."""
    tag = run_tag(args, ap)
    protocols = [p.strip() for p in (args.protocols or "").split(",") if p.strip()]
    listed = [c for c in (args.missing or "").split(",") if c.strip().lower() not in ("", "none")]
    protocols += ["conditions"] if listed else []
    return {"runs": {k: args.out / f"{tag}_fold{k}" for k in folds},
            "folds": {k: args.results / f"{tag}_fold{k}.json" for k in folds},
            "table": args.results / f"{tag}_folds.json", "missing": args.results / f"{tag}_conditions.json",
            "protocols": {p: args.results / f"{tag}_{p}.json" for p in protocols}}


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


def acoustic_stores(labelled: list, inputs: dict, device: str, progress: bool) -> dict:
    """{"mfcc", "prosody": FeatureStore} of the model's acoustic features (`inputs`: {kind: store folder}; none
    for TRE), extracted where they lack an utterance and checked to hold the kinds they should. Under torchrun
    the process group starts here (nccl for --device cuda...), so rank 0 alone extracts while the others wait."""
    from engine.loop import ddp_env
    from features.extract import ensure_store
    from features.mdre_acoustic import EXTRACTORS
    from features.store import FeatureStore
    from systems.common import require_store
    rank, world = ddp_env()[:2]
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    stores = {}
    for kind, folder in inputs.items():
        if rank == 0:
            stores[kind] = ensure_store(EXTRACTORS[kind](), [r for r, _ in labelled], folder, progress=progress)
        if world > 1:
            dist.barrier()
        if rank != 0:
            stores[kind] = FeatureStore(folder)
    for kind, store in stores.items():  # the kinds of features, before training (issue 19.14)
        require_store(store, f"--root (its {store.root.parent.name}/{store.root.name})", kind)
    return stores


def first_ten(utts: list) -> str:
    """The first ten of some utterance ids, for a warning."""
    return f"{', '.join(utts[:10])}{' ...' if len(utts) > 10 else ''}"


def warn_left_out(labelled: list, stores: dict, tokens_of: dict, model: str, texts: dict) -> set:
    """Warn about the utterances without acoustic features (left out: returns the others), with an empty
    transcript (they read no words) and with more than MAX_TOKENS tokens (cut)."""
    from systems.mdre import MAX_TOKENS
    missing = sorted({r.utt_id for r, _ in labelled for s in stores.values() if r.utt_id not in s})
    if missing:
        print(f"warning: {len(missing)} utterance(s) have no acoustic features (see the stores' errors-*.csv) and "
              f"are left out: {first_ten(missing)}", file=sys.stderr)
    no_text = [r.utt_id for r, _ in labelled if not (texts.get(r.utt_id) or "").strip()]
    if no_text and model != "ARE":
        print(f"warning: {len(no_text)} utterance(s) have an empty or missing transcript and get no words: "
              f"{first_ten(no_text)}", file=sys.stderr)
    long = [u for u, t in tokens_of.items() if len(t) > MAX_TOKENS]
    if long:
        print(f"warning: {len(long)} transcript(s) have more than {MAX_TOKENS} tokens and keep their first "
              f"{MAX_TOKENS}: {', '.join(long[:10])}", file=sys.stderr)
    return set(r.utt_id for r, _ in labelled) - set(missing)


def table_metrics(args) -> tuple[str, ...]:
    """The metrics of the fold line and table: WA / UA (IEMOCAP's, as published), and macro-F1 beside them on the
    other corpora (the MSP-Podcast challenge's metric; every result JSON has all three)."""
    return ("WA", "UA", "macro_F1") if is_split_corpus(args) else ("WA", "UA")


def fold_scores(labels, preds, interval_args: dict, n_classes: int, metrics=("WA", "UA")) -> dict:
    """{metric: Scored} of one fold's test predictions, with bootstrap intervals over its utterances."""
    from metrics import score
    return {m: score(m, labels, preds, n_classes=n_classes, **interval_args) for m in metrics}


def write_fold_table(path: Path, rows: list[dict], tag: str, result: dict, metrics=("WA", "UA")) -> None:
    """Print the fold table (each fold's metrics with their intervals, then the mean and standard deviation over
    the folds) and write it as <path>.csv and <path> (JSON)."""
    import csv

    from systems.common import write_result
    from utils import atomic_path
    mean = {m: float(np.mean([r[m] for r in rows])) for m in metrics}
    sd = {m: float(np.std([r[m] for r in rows], ddof=1)) if len(rows) > 1 else None for m in metrics}
    print(f"\n| {tag} fold | train | dev | test | " + " | ".join(f"{m.replace('_', '-')} [95% CI]" for m in metrics)
          + " |\n|---|---|---|---|" + "---|" * len(metrics))
    for r in rows:
        print(f"| {r['fold']} | {r['train']} | {r['dev']} | {r['test']} | "
              + " | ".join(cell(r, m) for m in metrics) + " |")
    spread = {m: f" ± {sd[m]:.4f}" if sd[m] is not None else "" for m in sd}
    print(f"| mean of {len(rows)} (± sd over folds) | | | | "
          + " | ".join(f"{mean[m]:.4f}{spread[m]}" for m in metrics) + " |")
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


class Corpus:
    """What every fold of one run shares: the corpus's records, the acoustic stores, the labelled utterances'
    tokens and seconds, those usable (with features), the number of folds of the protocol, the corpus's name and
    its classes (class index order)."""

    def __init__(self, records: list, labelled: list, stores: dict, tokens_of: dict, usable: set, n_folds: int, *,
                 name: str, classes: tuple, texts: dict):
        self.records, self.stores, self.tokens_of = records, stores, tokens_of
        self.usable, self.n_folds, self.name, self.classes, self.texts = usable, n_folds, name, classes, texts
        from corpora.records import audio_seconds
        self.spans = {r.utt_id: audio_seconds(r) for r, _ in labelled}  # seconds of audio (TRE has no store)


class MDRESystem:
    """The System hooks of mdre.py (engine.experiment.run): IEMOCAP's folds, the family's method per fold, the
    fold's result files and line, the fold table, then every protocol with one series per fold."""
    name = "mdre"
    metric = "WA/UA"
    pooled_protocols = True
    table_first = True  # the fold table is printed before the protocols' tables
    # the run's classes in class index order: IEMOCAP's four until `folds` has read the corpus (engine.robustness
    # scores the protocols with them)
    classes = ("angry", "happy", "sad", "neutral")

    def folds(self, exp: Experiment) -> list[Fold]:
        """The chosen folds over --root's labelled utterances (IEMOCAP: the protocol's folds of the four classes; a
        split corpus: its one fold of named splits and declared classes), those without acoustic features left
        out; a fold the corpus does not have is refused (UserError) before the stores are ensured."""
        from features.text import record_transcripts
        from features.vocab import tokenize
        from systems.mdre import CLASSES
        from utils import writable_dir
        s = exp.settings
        writable_dir(s.out)
        writable_dir(s.results)
        if is_split_corpus(s):
            name, classes, parts = read_split_fold(s, s.dev_share)
            labelled = [it for part in parts for it in part]
            splits = {s.fold or 1: tuple([(r.utt_id, y) for r, y in part] for part in parts)}
            records, chosen = [r for r, _ in labelled], list(splits)
        else:
            name, records, labelled, splits, chosen = self._iemocap_folds(s)
        self.classes = classes if is_split_corpus(s) else CLASSES
        stores = acoustic_stores(labelled, exp.inputs, s.device, exp.training.progress)
        texts, lacking = record_transcripts(records if s.faithful_vocab else [r for r, _ in labelled])
        if s.model != "ARE":  # a missing or unreadable file, with why (no transcript at all: warn_left_out)
            mine = {r.utt_id for r, _ in labelled}
            list_left_out([sk for sk in lacking if sk.utt_id in mine and sk.reason != "no transcript"],
                          "the transcripts (they read no words)")
        tokens_of = {r.utt_id: tokenize(texts.get(r.utt_id) or "") for r, _ in labelled}
        usable = warn_left_out(labelled, stores, tokens_of, s.model, texts)
        shared = Corpus(records, labelled, stores, tokens_of, usable, len(splits), name=name,
                        classes=self.classes, texts=texts)
        return [self._fold(exp, k, splits[k], shared) for k in chosen]

    @staticmethod
    def _iemocap_folds(s):
        """(name, records, labelled, {fold: (train, dev, test) items}, chosen folds) of IEMOCAP's four classes
        under the protocol."""
        from corpora.iemocap import FOUR_CLASS, four_class, read_iemocap
        corpus = read_iemocap(s.root)  # a CorpusError is a clear error (engine.cli.entry)
        corpus.report()
        labelled = four_class(corpus.records, "mdre")
        if not labelled:
            raise UserError(f"{s.root}: no utterance of the four classes {', '.join(FOUR_CLASS['mdre'].classes)}")
        # the fold draws run over every four-class utterance in the global order, as the original's
        splits, absent = fold_splits(labelled, s.protocol, s.dev_share)
        if absent:
            print(f"warning: {s.root}: no four-class utterance in Session {', '.join(map(str, absent))}"
                  + (f"; leave-one-session-out has no fold {', '.join(map(str, absent))} (folds keep their "
                     "session's number)" if s.protocol == "loso" else ""), file=sys.stderr)
        splits = {k: tuple([(r.utt_id, y) for r, y in part] for part in fold) for k, fold in splits.items()}
        return corpus.name, corpus.records, labelled, splits, chosen_folds(s, splits, absent)

    @staticmethod
    def _fold(exp: Experiment, k: int, parts: tuple, shared: Corpus) -> Fold:
        """Fold k of its (train, dev, test) parts, their utterances without acoustic features left out."""
        train, dev, test = ([it for it in part if it[0] in shared.usable] for part in parts)
        fold = Fold(k, f"fold {k}", train, dev, test, run_dir=exp.outputs["runs"][k],
                    train_name=f"fold {k} training part", val_name=f"fold {k} dev part", extra={"corpus": shared})
        if exp.training.val_every is None:  # the original's: every 0.3 epoch of draws
            fold.extra["loop"] = {"val_every": int(len(train) * 0.3 / exp.training.batch_size) + 1}
        return fold

    def method(self, exp: Experiment, fold: Fold):
        """The fold's MDREMethod: a vocabulary of its training part (or of every utterance, --faithful-vocab),
        GloVe rows when --glove, the training part's normalisation when --normalise."""
        from engine.loop import ddp_env
        from features.vocab import build_vocabulary, load_glove, tokenize
        from systems.mdre import MAX_TOKENS, UNK, MDREMethod, training_norm
        s, shared = exp.settings, fold.extra["corpus"]
        vocab = build_vocabulary([shared.tokens_of[u] for u, _ in fold.train],
                                 [tokenize(shared.texts.get(r.utt_id) or "") for r in shared.records]
                                 if s.faithful_vocab else None,
                                 faithful=s.faithful_vocab)
        with warnings.catch_warnings():  # over-long transcripts are listed once, in folds
            warnings.simplefilter("ignore")
            ids = {u: vocab.encode(toks, max_len=MAX_TOKENS)[: min(len(toks), MAX_TOKENS)]
                   for u, toks in shared.tokens_of.items()}
        embedding = None
        if s.glove:
            try:
                embedding, coverage = load_glove(s.glove, vocab, seed=s.seed,
                                                 progress=exp.training.progress and ddp_env()[0] == 0)
            except (OSError, ValueError) as e:
                raise UserError(f"--glove: {e}") from None
            print(f"fold {fold.key}: GloVe {coverage}", flush=True)
        stores = shared.stores
        norm = (training_norm(stores["mfcc"], stores["prosody"], [u for u, _ in fold.train])
                if s.normalise and stores else None)
        train_words = {int(i) for u, _ in fold.train for i in ids[u]} - {UNK}  # wer's substitutes
        fold.extra["vocab"] = len(vocab.tokens)
        return MDREMethod(s.model, stores.get("mfcc"), stores.get("prosody"), ids, vocab.tokens, norm=norm,
                          substitutes=tuple(sorted(train_words)), embedding=embedding, loss_kind=s.loss,
                          masked_attention=not s.unmasked_attention, classes=shared.classes,
                          train_condition=str(s.train_missing) if s.train_missing else None, seed=s.seed,
                          protocol={"name": s.protocol, "fold": fold.key, "folds": shared.n_folds,
                                    "faithful_vocab": s.faithful_vocab, "glove": str(s.glove or ""),
                                    **trained_corpus(s, shared.name)})

    def test(self, exp: Experiment, fold: Fold, method, model) -> dict:
        """Score the fold's test part: the per-utterance CSV, confusion matrix and result JSON, the fold's line;
        the fold table's row."""
        from engine.loop import evaluate
        from engine.resources import ResourceMonitor, inference_record
        from metrics import interval_fields
        from systems.common import write_class_scores
        s, shared, res, k = exp.settings, fold.extra["corpus"], fold.extra["loop_result"], fold.key
        device, tag = exp.training.device, exp.outputs["tag"]
        with ResourceMonitor() as mon:
            logits = evaluate(method, model, fold.test, EVAL_BATCH, device)
        utts, labels = [u for u, _ in fold.test], [y for _, y in fold.test]
        audio_s = shared.stores["mfcc"].seconds(utts) if "mfcc" in shared.stores else None  # prosody: no frame rate
        result = {"system": "mdre", "model": s.model, **corpus_record(s, shared.name), "protocol": s.protocol,
                  "fold": k, "split": s.test_split if is_split_corpus(s) else f"fold {k} test", "checkpoint": str(fold.run_dir), "seed": s.seed,
                  "loss": s.loss, "faithful_vocab": s.faithful_vocab, "normalise": s.normalise,
                  "masked_attention": not s.unmasked_attention, "title": f"{tag} fold {k}",
                  **inference_record(mon.seconds, len(utts), audio_s or sum(shared.spans[u] for u in utts), mon)}
        write_class_scores(exp.outputs["folds"][k].with_suffix(".csv"), utts, labels, logits, shared.classes,
                           result=result, resamples=s.bootstrap, ci_method=s.ci_method)
        acc = fold_scores(labels, logits.argmax(1), {"resamples": s.bootstrap, "method": s.ci_method},
                          len(shared.classes), table_metrics(s))
        scores = "  ".join(f"{m.replace('_', '-')} {sc.text()}" for m, sc in acc.items())
        print(f"{tag} fold {k}: {scores}  (train {len(fold.train)}, dev "
              f"{len(fold.dev)}, test {len(fold.test)}; best dev loss at step {res.best_step} of {res.steps})",
              flush=True)
        return {"fold": k, "train": len(fold.train), "dev": len(fold.dev), "test": len(fold.test),
                **{f: v for key, sc in acc.items() for f, v in interval_fields(key, sc).items()},
                "best_step": res.best_step, "steps": res.steps, "stopped_early": res.stopped_early,
                "vocab": fold.extra["vocab"]}

    def draws(self, exp: Experiment, fold: Fold, method, model):
        """predict(condition, sim_seed) -> Draw of the fold's model on its test part."""
        return lambda cond, sim_seed: method.draw(model, fold.test, cond, sim_seed, exp.training.device)

    def pooled_result(self, exp: Experiment, outcomes: list) -> dict:
        """The fields every protocol's result file shares: the model, corpus, fold protocol and the checkpoints."""
        s = exp.settings
        return {"system": "mdre", "model": s.model, **corpus_record(s, outcomes[0].fold.extra["corpus"].name),
                "fold_protocol": s.protocol,
                "seed": s.seed, "checkpoints": [str(o.fold.run_dir) for o in outcomes]}

    def table(self, exp: Experiment, outcomes: list) -> None:
        """The fold table: printed, and written as <tag>_folds.csv / .json."""
        from metrics import interval_record
        s, shared = exp.settings, outcomes[0].fold.extra["corpus"]
        write_fold_table(exp.outputs["table"], [o.row for o in outcomes], exp.outputs["tag"], {
            "metric": "WA/UA", "system": "mdre", "model": s.model, **corpus_record(s, shared.name),
            "classes": list(shared.classes), "protocol": s.protocol,
            "seed": s.seed, "loss": s.loss, "faithful_vocab": s.faithful_vocab,
            "interval": interval_record(resamples=s.bootstrap, method=s.ci_method),
            "checkpoints": [str(o.fold.run_dir) for o in outcomes]},  # write_result records each run's identity
            table_metrics(s))


def corpus_record(args, name: str) -> dict:
    """The corpus fields of a result: its root, kind and name, and for a split corpus its fold and splits."""
    fields = {"corpus": str(args.root), "corpus_kind": args.corpus, "corpus_name": name}
    if is_split_corpus(args):
        fields.update(splits={"train": args.train_split, "dev": args.dev_split, "test": args.test_split},
                      **({"emobox_fold": args.fold} if args.fold is not None else {}))
    return fields


MDRE = MDRESystem()

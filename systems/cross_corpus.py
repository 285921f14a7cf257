"""Categorical models scored on another corpus's categories (cross_corpus.py's hooks): IEMOCAP's four-class models
on MSP-Podcast's EmoClass (the built-in mapping, corpora.iemocap.MSP_CATEGORY), or any categorical checkpoint on
any corpus with declared classes (MSP-Podcast, a manifest, an EmoBox fold), its classes matched by name or by
--class-map.

The models are MDRE's or speech+text+mocap's, on the experiment layer.

Each checkpoint is a fold that is only tested (stages ("test",)): `folds` checks every checkpoint and reads the
corpus once, `method` rebuilds the checkpoint's method over MSP-Podcast's stores (extracted on first use, checked
against the checkpoint), `load` reads its best weights, `test` writes <results>/<run>_on_msp-podcast_<split>.csv
(per utterance; <run>_on_<kind>_<split> for a manifest or EmoBox corpus) + _confusion.csv/.png + .json (WA, UA,
macro-F1, the class mapping, what was left out, the inference time)
and `table` prints one row per checkpoint with a mean over the folds of one model. `describe` names the result
files from the flags alone.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from engine.cli import UserError
from engine.experiment import Experiment, Fold, Training

SYSTEMS = {"mdre": "mdre", "speech-text-mocap": "prml"}  # system -> its four-class scheme (corpora.iemocap)
SCORED_KINDS = ("msp-podcast", "manifest", "emobox")


def listed(what: str, utts: list) -> None:
    if utts:
        print(f"warning: {len(utts)} utterance(s) {what}: {', '.join(utts[:10])}{' ...' if len(utts) > 10 else ''}",
              file=sys.stderr)


def outputs(args) -> dict:
    """What a command writes, from its flags alone: {"results": {checkpoint: its result JSON},
    "per_utterance": {checkpoint: its per-utterance CSV}} (the confusion matrix beside them, <stem>_confusion)."""
    from engine.cli import precision_tag
    tag = precision_tag(args.precision)  # scored in bf16: never fp32's files
    where = "msp-podcast" if args.corpus == "msp-podcast" else f"{args.corpus}{'' if args.fold is None else args.fold}"
    csvs = {run: args.results / f"{run.name}_on_{where}_{args.split}{tag}.csv" for run in dict.fromkeys(args.checkpoint)}
    return {"results": {run: csv.with_suffix(".json") for run, csv in csvs.items()}, "per_utterance": csvs}


def describe(args: argparse.Namespace, argv) -> Experiment:
    """The Experiment of cross_corpus.py's parsed flags: every checkpoint a fold, only tested. Flags only (no file
    is read: the checkpoints are checked when the experiment runs, before any work)."""
    from features.extract import check_fold
    check_fold(args.corpus, args.fold)
    if args.split is None:  # MSP-Podcast's test set is test1; a manifest's or EmoBox fold's is test
        args.split = "test1" if args.corpus == "msp-podcast" else "test"
    return Experiment(system="cross-corpus", script="cross_corpus.py",
                      argv=tuple(sys.argv[1:] if argv is None else argv), settings=args, corpus=args.root,
                      inputs={"speech": args.speech_store, "text": args.text_store}, protocol="splits",
                      folds=tuple(dict.fromkeys(args.checkpoint)),
                      training=Training(eval_batch_size=args.batch_size, device=args.device, precision=args.precision,
                                        progress=not args.no_progress, allow_unfinished=args.allow_unfinished),
                      outputs=outputs(args), stages=("test",), hooks="systems.cross_corpus:CROSS_CORPUS")


def read_checkpoint(run: Path, allow_unfinished: bool = False) -> dict:
    """The run folder's config.json, checked to be a categorical model this script can score (weights read later)
    of a run that finished training (or `allow_unfinished`)."""
    import json

    from engine.checkpoint import CONFIG, WEIGHTS, require_finished
    if not (run / WEIGHTS).is_file() or not (run / CONFIG).is_file():
        raise UserError(f"{run}: not a checkpoint folder (needs {WEIGHTS} and {CONFIG})")
    require_finished(run, allow_unfinished)
    try:
        cfg = json.loads((run / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{run / CONFIG}: cannot read ({e})") from None
    if cfg.get("system") not in SYSTEMS:
        raise UserError(f"{run}: a {cfg.get('system')} model; cross_corpus.py scores categorical models "
                        f"({', '.join(SYSTEMS)}) on another corpus's categories (MSP-Podcast's dimensional models go "
                        "the other way with testing.py / online_testing.py --corpus iemocap)")
    classes = cfg.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise UserError(f"{run / CONFIG}: no class list (\"classes\"): not a categorical checkpoint of this toolkit")
    if cfg["system"] == "speech-text-mocap" and not {"speech", "text"} & set(cfg["modalities"]):
        raise UserError(f"{run}: the {'+'.join(cfg['modalities'])} model reads motion capture only, which the "
                        "scored corpus does not give")
    return cfg


class Inputs:
    """The scored corpus's side: records, transcripts and the stores, made once for every checkpoint that needs
    them (extracted on first use into the corpus's Features folder, features.extract.features_folder, checked
    against each checkpoint)."""

    def __init__(self, args, records: list, device: str, corpus_name: str):
        from features.extract import features_folder
        from features.text import record_transcripts
        self.args, self.records, self.device, self.stores = args, records, device, {}
        self.corpus_name, self.features = corpus_name, features_folder(args.corpus, args.root)
        texts, _ = record_transcripts(records)  # inline or from the transcript file; the others get no words
        self.text = {r.utt_id: (texts.get(r.utt_id) or "").strip() for r in records}
        listed("have no transcript (no words / text absent)", [u for u, t in self.text.items() if not t])

    def store(self, key: str, make) -> object:
        if key not in self.stores:
            self.stores[key] = make()
        return self.stores[key]

    def mdre_acoustic(self, kind: str):
        from features.extract import ensure_store
        from features.mdre_acoustic import EXTRACTORS
        from features.store import StoreError
        ext = EXTRACTORS[kind]()
        try:
            return self.store(kind, lambda: ensure_store(ext, self.records, self.features / ext.name,
                                                         progress=not self.args.no_progress, corpus=self.corpus_name))
        except StoreError as e:
            raise UserError(str(e)) from None

    def pretrained(self, what: str, model: str):
        """The wav2vec2 (what = speech) or token (text) store of `model` under the corpus's Features folder or
        --<what>-store."""
        from systems.common import store_with
        path = getattr(self.args, f"{what}_store") or self.features / (
            f"{'Wav2Vec' if what == 'speech' else 'Tokens'}_{Path(model).name}")

        def factory():
            if what == "speech":
                from features.wav2vec2 import Wav2Vec2Features
                return Wav2Vec2Features(model, device=self.device)
            from features.text import TokenFeatures
            return TokenFeatures(model, device=self.device)
        records = self.records if what == "speech" else [r for r in self.records if self.text[r.utt_id]]
        return self.store(f"{what}:{model}:{path}", lambda: store_with(
            factory, records, path, model, not self.args.no_progress, what, corpus=self.corpus_name))


def mdre_method(cfg: dict, run: Path, inputs: Inputs, items: list):
    """(method, the items with acoustic features, facts for the result) of an MDRE-family checkpoint."""
    from features.vocab import Vocabulary, tokenize
    from systems.common import check_same_features
    from systems.mdre import MAX_TOKENS, USES_AUDIO, method_from_config
    stores = {}
    if cfg["model"]["kind"] in USES_AUDIO:
        for kind in ("mfcc", "prosody"):
            stores[kind] = inputs.mdre_acoustic(kind)
            check_same_features(cfg["features"][kind], stores[kind], kind, run)
    vocab = Vocabulary(cfg["vocab"])
    tokens = {u: tokenize(inputs.text[u]) for u, _ in items}
    with warnings.catch_warnings():  # a transcript over MAX_TOKENS keeps its first MAX_TOKENS, as in training
        warnings.simplefilter("ignore")
        ids = {u: vocab.encode(t, max_len=MAX_TOKENS)[: min(len(t), MAX_TOKENS)] for u, t in tokens.items()}
    lacking = sorted({u for u, _ in items for s in stores.values() if u not in s})
    listed("have no acoustic features (see the stores' errors-*.csv) and are left out", lacking)
    gone = set(lacking)
    return (method_from_config(cfg, stores.get("mfcc"), stores.get("prosody"), ids),
            [it for it in items if it[0] not in gone], {"no_features": lacking})


def stm_method(cfg: dict, run: Path, inputs: Inputs, items: list):
    """(method, items, facts for the result) of a speech+text+mocap checkpoint: motion capture absent for every
    utterance."""
    from systems.common import check_same_features
    from systems.speech_text_mocap import method_from_config
    mods, stores = set(cfg["modalities"]), {}
    for what in ("speech", "text"):
        if what in mods:
            recorded = cfg["features"][what]
            model = getattr(inputs.args, f"{what}_model") or recorded["params"]["model"]
            stores[what] = inputs.pretrained(what, model)
            check_same_features(recorded, stores[what], what, run)
    no_text = frozenset(u for u, _ in items if not inputs.text[u])
    facts = {"absent": sorted(mods - {"speech", "text"})}
    for what, store in stores.items():
        lacking = [u for u, _ in items if u not in store and not (what == "text" and u in no_text)]
        listed(f"have no {what} features (see {store.root}/errors-*.csv); {what} is absent for them", lacking)
        facts[f"no_{what}"] = lacking
    try:
        method = method_from_config(cfg, stores.get("speech"), stores.get("text"), frozenset(), no_text=no_text)
    except ValueError as e:
        raise UserError(f"{run}: {e}") from None
    return method, items, facts


class CrossCorpus:
    """The System hooks of cross_corpus.py (engine.experiment.run): one tested fold per checkpoint."""
    name = "cross-corpus"
    metric = "WA/UA"

    def folds(self, exp: Experiment) -> list[Fold]:
        """One fold per checkpoint, every checkpoint checked before any work; the corpus read once, its inputs
        (transcripts, stores) shared by every fold."""
        from corpora import read_corpus
        from utils import resolve_device, writable_dir
        s = exp.settings
        configs = {run: read_checkpoint(run, s.allow_unfinished) for run in exp.folds}  # before any work
        class_map = read_class_map(s.class_map) if s.class_map else None
        writable_dir(s.results)
        corpus = read_corpus(s.corpus, s.root, s.split, fold=s.fold)  # a CorpusError is a clear error (entry)
        corpus.report()
        device = resolve_device(exp.training.device)
        shared = {"corpus": corpus, "records": corpus.records, "class_map": class_map,
                  "inputs": Inputs(s, corpus.records, device, corpus.name), "device": device, "durations": {}}
        return [Fold(run, run.name, run_dir=run, extra={"config": cfg, **shared}) for run, cfg in configs.items()]

    def method(self, exp: Experiment, fold: Fold):
        """The checkpoint's method over the scored corpus's stores; the fold's test items are the utterances of
        the classes the model's map to (class_items) that have what the model reads."""
        s, cfg = exp.settings, fold.extra["config"]
        items, left_out, mapping = class_items(fold.extra["corpus"], s.corpus, cfg, fold.extra["class_map"])
        if not items:
            raise UserError(f"{s.root}: no {s.split} utterance of a class the model knows (mapping: "
                            f"{mapping or 'none matched'}); give --class-map CORPUS_CLASS=MODEL_CLASS,...")
        if left_out:
            print(f"{sum(left_out.values())} {s.split} utterance(s) of other classes are left out: " +
                  ", ".join(f"{k} {n}" for k, n in left_out.items()), file=sys.stderr)
        build = mdre_method if cfg["system"] == "mdre" else stm_method
        method, fold.test, facts = build(cfg, fold.run_dir, fold.extra["inputs"], [(r.utt_id, y) for r, y in items])
        if not fold.test:
            raise UserError(f"{fold.run_dir}: no {s.split} utterance left to score (see the warnings above)")
        fold.extra["facts"] = {"left_out": left_out, "class_mapping": mapping, **facts}
        return method

    def load(self, exp: Experiment, fold: Fold, method):
        from engine.loop import load_best
        try:
            return load_best(method, fold.run_dir, fold.extra["device"], exp.training.allow_unfinished)
        except Exception as e:  # noqa: BLE001 - safetensors / torch raise several types for a damaged file
            raise UserError(f"{fold.run_dir}: cannot load its weights ({type(e).__name__}: {e})") from None

    def test(self, exp: Experiment, fold: Fold, method, model) -> dict:
        """Score the fold's items, write the per-utterance CSV, the confusion matrix and the result JSON, print
        the checkpoint's line; the row of the table."""
        from engine.loop import evaluate
        from engine.resources import ResourceMonitor
        from systems.common import write_class_scores
        from utils import output_file
        with ResourceMonitor() as mon:
            logits = evaluate(method, model, fold.test, exp.training.eval_batch_size, fold.extra["device"])
        utts, labels = [u for u, _ in fold.test], [y for _, y in fold.test]
        out = exp.outputs["per_utterance"][fold.key]
        wa, ua = write_class_scores(out, utts, labels, logits, self.classes(fold),
                                    result=self._result(exp, fold, mon, utts))
        split, name = exp.settings.split, fold.extra["corpus"].name
        print(f"{fold.name} on {name} {split}: WA {wa:.4f}  UA {ua:.4f}  ({len(utts)} utterances; "
              f"{output_file(out, '.json')})", flush=True)
        return {"checkpoint": fold.name, "utterances": len(utts), "WA": wa, "UA": ua}

    @staticmethod
    def classes(fold: Fold) -> list[str]:
        """The checkpoint's output order (its config.json's classes)."""
        return list(fold.extra["config"]["classes"])

    def _result(self, exp: Experiment, fold: Fold, mon, utts: list) -> dict:
        """The fields of the checkpoint's result file: what was scored, the class mapping, what was left out and
        the inference time."""
        from engine.resources import inference_record
        s, cfg, run, durations = exp.settings, fold.extra["config"], fold.run_dir, fold.extra["durations"]
        if not durations:
            from corpora.records import audio_seconds
            durations.update({r.utt_id: audio_seconds(r) for r in fold.extra["records"]})
        corpus = fold.extra["corpus"]
        name = cfg.get("model", {}).get("kind") if cfg["system"] == "mdre" else "+".join(cfg["modalities"])
        # a run on a split corpus records it in its protocol (mdre_experiment.trained_corpus); IEMOCAP's runs do not
        trained_on = (cfg.get("protocol") or {}).get("corpus") or {"kind": "iemocap", "name": "IEMOCAP"}
        return {"system": cfg["system"], "model" if cfg["system"] == "mdre" else "configuration": name,
                "corpus": str(s.root), "corpus_kind": s.corpus, "corpus_name": corpus.name, "split": s.split,
                **({"emobox_fold": s.fold} if s.fold is not None else {}),
                "checkpoint": str(run), "trained_on": {**trained_on, "protocol": cfg.get("protocol")},
                "seed": cfg.get("seed"), "title": f"{run.name} on {corpus.name} {s.split}",
                **fold.extra["facts"],
                **inference_record(mon.seconds, len(utts), sum(durations[u] for u in utts), mon)}

    def table(self, exp: Experiment, outcomes: list) -> None:
        name = outcomes[0].fold.extra["corpus"].name if outcomes else exp.settings.corpus
        print(summary_table([tuple(o.row.values()) for o in outcomes], exp.settings.split, name))


def model_of(run_name: str) -> str:
    """The model a fold's run belongs to: its run name without the fold part (MDRE `_fold<k>`, speech + text +
    mocap `_s<k>`), so the folds of one model share it and two models (MDREA and ARE, or two configurations)
    never do."""
    import re
    return re.sub(r"_(?:fold|s)\d+(?=_|$)", "", run_name)


def summary_table(rows: list[tuple], split: str, corpus: str = "MSP-Podcast") -> str:
    """The printed table: one row per checkpoint, and a mean only over the folds of one model (a mean across
    different systems or configurations says nothing)."""
    lines = [f"\n| checkpoint | {corpus} {split} utterances | WA | UA |", "|---|---|---|---|"]
    lines += [f"| {name} | {n} | {wa:.4f} | {ua:.4f} |" for name, n, wa, ua in rows]
    for model in dict.fromkeys(model_of(r[0]) for r in rows):
        mine = [r for r in rows if model_of(r[0]) == model]
        if len(mine) > 1:
            lines.append(f"| mean of {model}'s {len(mine)} folds | | {np.mean([r[2] for r in mine]):.4f} | "
                         f"{np.mean([r[3] for r in mine]):.4f} |")
    return "\n".join(lines)


def read_class_map(spec: str) -> dict[str, str]:
    """--class-map: 'corpus class=model class,...' or a JSON file {corpus class: model class}; UserError otherwise."""
    import json
    path = Path(spec)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"--class-map {path}: cannot read ({e})") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise UserError(f"--class-map {path}: expected {{\"corpus class\": \"model class\", ...}}")
        return data
    pairs = [p.split("=", 1) for p in spec.split(",") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise UserError(f"--class-map {spec!r}: give CORPUS_CLASS=MODEL_CLASS,... or a .json file")
    return {a.strip(): b.strip() for a, b in pairs}


def class_items(corpus, kind: str, cfg: dict, class_map: dict | None) -> tuple[list, dict, dict]:
    """([(record, model class index)], {corpus class or EmoClass letter: utterances left out}, {corpus class: model
    class}) of the scored corpus for a checkpoint with classes cfg["classes"].

    IEMOCAP's four-class models on MSP-Podcast without --class-map: the built-in EmoClass mapping
    (corpora.iemocap.MSP_CATEGORY: A, H, N, S). Otherwise the corpus's declared classes (corpora.class_labels:
    MSP-Podcast's eight primary emotions, a manifest's class map, EmoBox's label_map) are matched to the model's
    by name (case-insensitive), or by --class-map; a class with no model class is left out and counted, as are
    the corpus's records without a class (by their reason)."""
    from corpora import CorpusError, class_labels
    from corpora.iemocap import FOUR_CLASS, MSP_CATEGORY, msp_four_class
    model = list(cfg["classes"])
    scheme = SYSTEMS[cfg["system"]]
    if kind == "msp-podcast" and class_map is None and model == list(FOUR_CLASS[scheme].classes):
        items, left_out = msp_four_class(corpus.records, scheme)
        mapping = {letter: model[FOUR_CLASS[scheme].codes[code]] for letter, code in MSP_CATEGORY[scheme].items()}
        return items, left_out, mapping
    try:
        classes, pairs, unlabelled = class_labels(corpus, kind)
    except CorpusError as e:
        raise UserError(str(e)) from None
    by_name = {c.lower(): c for c in model}
    if class_map is not None:
        unknown = sorted(set(class_map.values()) - set(model))
        if unknown:
            raise UserError(f"--class-map: {', '.join(unknown)} not among the model's classes {model}")
        mapping = {c: class_map[c] for c in classes if c in class_map}
    else:
        mapping = {c: by_name[c.lower()] for c in classes if c.lower() in by_name}
    items, left_out = [], {}
    for r, y in pairs:
        if classes[y] in mapping:
            items.append((r, model.index(mapping[classes[y]])))
        else:
            left_out[classes[y]] = left_out.get(classes[y], 0) + 1
    for s in unlabelled:
        why = s.reason.split(":")[0]
        left_out[why] = left_out.get(why, 0) + 1
    return items, dict(sorted(left_out.items())), mapping


CROSS_CORPUS = CrossCorpus()

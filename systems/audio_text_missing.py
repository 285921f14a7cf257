"""System 3's missing-data evaluation of trained audio-text checkpoints (evaluate_missing.py) on the experiment layer.

Each checkpoint is a fold that is only tested (stages ("test",)): its `load` hook hands over the checkpoint loaded
and checked with every other before the first condition is drawn. The protocols' conditions are pooled: scored
after the last checkpoint with one series per checkpoint, side by side in one set of files per protocol
(<out>_<protocol>.csv, .json, .png, _per_utterance.csv), through engine.robustness with the metric CCC on Act, Dom
and Val. `describe` names those files from the flags alone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError
from engine.experiment import Experiment, Fold, Training

ATTRIBUTE_KEYS = ("Act", "Dom", "Val")
WORD_KINDS = {"words", "wer", "words+audio", "word-rows"}  # conditions that edit the transcript


def legacy_conditions(args) -> list:
    """The deprecated --conditions list: [complete, each kind at each rate > 0, audio-absent, text-absent]."""
    from engine.cli import parse_conditions
    rates = [float(r) for r in args.rates.split(",")]
    kinds = [k.strip() for k in args.conditions.split(",") if k.strip()]
    return parse_conditions(",".join(["none", *(f"{k}:{r:g}" for k in kinds for r in rates if r > 0),
                                      *([] if args.no_absent else ["audio-absent", "text-absent"])]), "--conditions")


def protocol_names(args) -> list[str]:
    """The protocols the flags ask for, in order: --protocols (default sweep; without it, the deprecated
    --conditions list alone), then "conditions" when --conditions is given."""
    if args.protocols is None:
        args.protocols = "" if args.conditions is not None else "sweep"
    names = [p.strip() for p in args.protocols.split(",") if p.strip()]
    return names + (["conditions"] if args.conditions is not None else [])


def plan(args) -> dict:
    """{protocol: [Condition]} of the flags, checked before any work (UserError naming the flag)."""
    from engine.cli import check_conditions, protocol_plan
    from features.missing import Condition
    from systems.audio_text import KINDS, MODALITIES
    protocol_names(args)  # resolves the default
    model = "the audio-text model"
    protocols = protocol_plan(args, model, MODALITIES, KINDS)
    if args.conditions is not None:
        protocols["conditions"] = legacy_conditions(args)
        check_conditions(protocols["conditions"], "--conditions", model, MODALITIES, KINDS)
    if not protocols:
        raise UserError("--protocols: nothing to score; name fixed, random or sweep")
    return {p: [Condition(c.kind, c.rate, burst=args.burst) if c.kind == "bursts" else c for c in conds]
            for p, conds in protocols.items()}


def series_names(checkpoints: list) -> dict:
    """{checkpoint: its series name}: the checkpoints' distinct short names, shown in full, told apart."""
    from engine.plots import distinct_names
    return dict(zip(checkpoints, distinct_names(checkpoints)))


def outputs(args) -> dict:
    """What a command writes, from its flags alone: {"protocols": {protocol: <out>_<protocol>.json}} and the title
    of each protocol's table and figure ({"titles": {protocol: title}})."""
    from engine.cli import precision_tag
    from utils import output_file
    stem = output_file(args.out, "")
    stem = stem.with_name(stem.name + precision_tag(args.precision))  # scored in bf16: never fp32's files
    series = ", ".join(series_names(args.checkpoints).values())
    protocols = protocol_names(args)
    return {"protocols": {p: stem.with_name(f"{stem.name}_{p}.json") for p in protocols},
            "titles": {p: f"audio-text, {args.split}: CCC under the {p} protocol; series, in the table's order: "
                          f"{series}" for p in protocols}}


def describe(args: argparse.Namespace, argv) -> Experiment:
    """The Experiment of evaluate_missing.py's parsed flags: every checkpoint a fold, only tested, the protocols'
    conditions pooled over them. Flags only (no file is read); a flag that cannot apply is a UserError here."""
    from systems.common import check_corpus_args
    check_corpus_args(args)  # EmoBox refused (no dimensional labels), --fold only for EmoBox
    conditions = plan(args)
    return Experiment(system="audio-text-missing", script="evaluate_missing.py",
                      argv=tuple(sys.argv[1:] if argv is None else argv), settings=args, corpus=args.root,
                      inputs={"audio": args.audio_store, "text": args.text_store},
                      folds=tuple(dict.fromkeys(args.checkpoints)),
                      training=Training(device=args.device, allow_unfinished=args.allow_unfinished,
                                        precision=args.precision),
                      conditions=conditions, outputs=outputs(args), stages=("test",),
                      hooks="systems.audio_text_missing:AUDIO_TEXT_MISSING")


def check_inputs(method, items, conds, split: str) -> None:
    """Refuse (before any scoring) word conditions on utterances that lack what they need: a transcript (words,
    wer, words+audio) or one whose tokens match the text features (word-rows)."""
    word_kinds = sorted({c.kind for c in conds} & WORD_KINDS)
    if "word-rows" in word_kinds:  # its token map needs more than the transcript: one matching the features
        bad, what = method.without_word_alignment(items), "no transcript matching their text features"
    else:
        bad, what = [u for u, _ in items if not Path(method.transcripts.get(u) or "").is_file()], "no transcript"
    if word_kinds and bad:
        raise UserError(f"the word conditions ({', '.join(word_kinds)}): {len(bad)} {split} utterance(s) have "
                        f"{what}: {', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''} (leave those conditions "
                        "out to score the rest)")


def draw_function(method, model, items, device: str, first_seed: int):
    """predict(condition, sim_seed) -> engine.robustness.Draw of one checkpoint over `items`."""
    from engine.loop import evaluate
    from engine.robustness import Draw
    from features.missing import REENCODED_KINDS
    utts = [u for u, _ in items]
    labels = np.array([y for _, y in items], np.float64)

    def predict(cond, sim_seed: int) -> Draw:
        method.condition, method.eval_seed, method.draw_info = cond, first_seed + sim_seed, {}
        if cond.kind in REENCODED_KINDS:
            method.prepare_text(items)  # every edited transcript encoded in batches, or found cached
        z = evaluate(method, model, items, 64, device)
        preds = np.stack([method.nt_audio.denorm(z[:, k], a.lower()) for k, a in enumerate(ATTRIBUTE_KEYS)], 1)
        info = [method.draw_info[u] for u in utts]
        extra = {}
        if cond.kind in REENCODED_KINDS:  # corpus-level: edits over reference words, as a WER is reported
            words = sum(i.get("words", 0) for i in info)
            extra["realised_wer"] = sum(i.get("wer", 0.0) * i.get("words", 0) for i in info) / max(words, 1)
        return Draw(utts=utts, labels=labels, preds=preds, present=[i["present"] for i in info], extra=extra)
    return predict


class AudioTextMissing:
    """The System hooks of evaluate_missing.py (engine.experiment.run): checkpoints in, pooled conditions out."""
    name = "audio-text-missing"
    metric = "CCC"
    attributes = ATTRIBUTE_KEYS
    pooled_protocols = True

    def folds(self, exp: Experiment) -> list[Fold]:
        """One fold per checkpoint, every one loaded and checked (finished training, its feature sets, what the
        word conditions need) before the first is scored."""
        from engine.checkpoint import require_finished
        from systems.audio_text import transcript_vocabulary
        from systems.common import corpus_args
        from utils import writable_dir
        s = exp.settings
        writable_dir(s.out.parent)
        for ck in s.checkpoints:  # every checkpoint's training finished (or --allow-unfinished), before any work
            if ck.is_dir():
                require_finished(ck, s.allow_unfinished)
        items, words, transcripts, stores = self._items(exp)
        every = [c for conds in exp.conditions.values() for c in conds]
        kind, fold = corpus_args(s)
        vocabulary = (transcript_vocabulary(s.root, s.train_split, kind=kind, fold=fold)
                      if any(c.kind == "wer" for c in every) else ())
        names = series_names(s.checkpoints)
        folds = []
        for ck in exp.folds:  # all loaded and checked before the first is scored
            method, model = self._loaded(ck, stores, words, transcripts, s.allow_unfinished)
            method.vocabulary, method.device = vocabulary, exp.training.device
            check_inputs(method, items, every, s.split)
            folds.append(Fold(ck, names[ck], test=items, run_dir=ck,
                              extra={"method": method, "model": model.to(exp.training.device)}))
        return folds

    @staticmethod
    def _items(exp: Experiment):
        """(items, words, transcripts, (audio store, text store)) of the scored split, the stores checked to
        hold the kinds of features the system reads."""
        from features.store import FeatureStore
        from systems.audio_text import audio_text_items
        from systems.common import corpus_args, require_store
        s = exp.settings
        audio, text = FeatureStore(s.audio_store), FeatureStore(s.text_store)
        require_store(audio, "--audio-store", "wav2vec2")  # the kinds of features, before any work (issue 19.14)
        require_store(text, "--text-store", "tokens")
        kind, fold = corpus_args(s)  # evaluate_missing.py's --corpus/--fold (MSP-Podcast without them)
        items, words, transcripts = audio_text_items(s.root, s.split, audio, text, kind=kind, fold=fold)
        if not items:
            raise UserError(f"no {s.split} utterance with labels, both feature sets and a TextGrid")
        return items, words, transcripts, (audio, text)

    @staticmethod
    def _loaded(ck: Path, stores: tuple, words: dict, transcripts: dict, allow_unfinished: bool):
        from systems.audio_text import load_trained
        try:
            return load_trained(ck, *stores, words, transcripts, allow_unfinished)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None

    def method(self, exp: Experiment, fold: Fold):
        return fold.extra["method"]

    def load(self, exp: Experiment, fold: Fold, method):
        return fold.extra["model"]

    def test(self, exp: Experiment, fold: Fold, method, model) -> dict:
        """Nothing of its own: the complete data is the first row of every protocol's files."""
        return {}

    def draws(self, exp: Experiment, fold: Fold, method, model):
        return draw_function(method, model, fold.test, exp.training.device, exp.settings.seed)

    def pooled_result(self, exp: Experiment, outcomes: list) -> dict:
        """The fields every protocol's result file shares: corpus, split, the checkpoints and their series."""
        s = exp.settings
        return {"system": "audio-text", "corpus": str(s.root), "split": s.split,
                "checkpoints": [str(c) for c in s.checkpoints], "first_sim_seed": s.seed,
                "utterances": len(outcomes[0].fold.test),
                "series": {o.fold.name: str(o.fold.key) for o in outcomes}}

    def table(self, exp: Experiment, outcomes: list) -> None:
        """What each protocol scored and where its files are (its table is printed as it is scored)."""
        s, n = exp.settings, len(outcomes[0].fold.test)
        for protocol, conds in exp.conditions.items():
            out = exp.outputs["protocols"][protocol].with_suffix("")
            print(f"{protocol}: {len(conds)} conditions x {len(outcomes)} checkpoint(s) for {n} {s.split} "
                  f"utterances -> {out}.csv, {out}.json, {out}.png, {out}_per_utterance.csv")


AUDIO_TEXT_MISSING = AudioTextMissing()

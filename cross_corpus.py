#!/usr/bin/env python
"""Score IEMOCAP-trained four-class models (mdre.py, speech_text_mocap.py) on MSP-Podcast's categories: the reverse
direction of cross-corpus testing. (The forward one, MSP-Podcast's dimensional models on IEMOCAP's ratings, is
`testing.py` / `online_testing.py --corpus iemocap`.)

    python cross_corpus.py --checkpoint Models/MDREA_loso_fold5 --root /data/MSP-Podcast --split test1
    python cross_corpus.py --checkpoint Models/MDREA_random5_fold1 Models/MDREA_random5_fold2 --root R
    python cross_corpus.py --checkpoint "Models/stm_speech+text+mocap_s5" --root R --speech-store R/Features/W2V

Classes: MSP-Podcast's EmoClass A, H, N, S as the model's four (MDRE: angry, happy, sad, neutral; the
speech+text+mocap system: ang, exc, neu, sad, where MSP's Happy is scored as IEMOCAP's excited, the nearest of its
classes); every other class (U, C, D, F, O, X) and rows without EmoClass are left out and counted in the result.
Inputs are the checkpoint's own: the features it was trained on, extracted from MSP-Podcast's audio and
transcripts into <root>/Features on first use (same extractor and settings, checked against the checkpoint), its
vocabulary and its z-norm statistics. MSP-Podcast has no motion capture: a model with mocap among its modalities
has it absent for every utterance (as for an IEMOCAP speaker without markers); a mocap-only model is refused. An
utterance without a transcript gets no words (MDRE) or has its text absent (speech+text+mocap); listed.

Writes per checkpoint <results>/<run>_on_msp-podcast_<split>.csv (per utterance) + _confusion.csv/.png + .json
(WA, UA, the class mapping, what was left out, the inference time) and prints the table.
"""
import sys
import warnings
from pathlib import Path

import numpy as np

from engine.cli import UserError, add_allow_unfinished_arg, entry, int_at_least, parser

SYSTEMS = {"mdre": "mdre", "speech-text-mocap": "prml"}  # system -> its four-class scheme (corpora.iemocap)
CORPUS = "MSP-Podcast"


def listed(what: str, utts: list) -> None:
    if utts:
        print(f"warning: {len(utts)} utterance(s) {what}: {', '.join(utts[:10])}{' ...' if len(utts) > 10 else ''}",
              file=sys.stderr)


def read_checkpoint(run: Path, allow_unfinished: bool = False) -> dict:
    """The run folder's config.json, checked to be a four-class model this script can score (weights read later)
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
        raise UserError(f"{run}: a {cfg.get('system')} model; cross_corpus.py scores IEMOCAP's four-class models "
                        f"({', '.join(SYSTEMS)}) on MSP-Podcast's categories (MSP-Podcast's dimensional models go "
                        "the other way with testing.py / online_testing.py --corpus iemocap)")
    from corpora.iemocap import FOUR_CLASS
    if list(cfg.get("classes") or []) != list(FOUR_CLASS[SYSTEMS[cfg["system"]]].classes):
        raise UserError(f"{run}: classes {cfg.get('classes')} are not the {cfg['system']} system's "
                        f"{list(FOUR_CLASS[SYSTEMS[cfg['system']]].classes)}")
    if cfg["system"] == "speech-text-mocap" and not {"speech", "text"} & set(cfg["modalities"]):
        raise UserError(f"{run}: the {'+'.join(cfg['modalities'])} model reads motion capture only, which "
                        "MSP-Podcast does not have")
    return cfg


class Inputs:
    """The MSP-Podcast side of the scoring: records, transcripts and the stores, made once for every checkpoint
    that needs them (extracted on first use into <root>/Features, checked against each checkpoint)."""

    def __init__(self, args, records: list, device: str):
        from corpora.msp_podcast import read_transcript
        from corpora.records import CorpusError
        self.args, self.records, self.device, self.stores = args, records, device, {}
        self.text = {}
        for r in records:
            try:
                self.text[r.utt_id] = read_transcript(r)
            except CorpusError:
                self.text[r.utt_id] = ""
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
            return self.store(kind, lambda: ensure_store(ext, self.records, self.args.root / "Features" / ext.name,
                                                         progress=not self.args.no_progress, corpus=CORPUS))
        except StoreError as e:
            raise UserError(str(e)) from None

    def pretrained(self, what: str, model: str):
        """The wav2vec2 (what = speech) or token (text) store of `model` under <root>/Features or --<what>-store."""
        from systems.common import store_with
        path = getattr(self.args, f"{what}_store") or self.args.root / "Features" / (
            f"{'Wav2Vec' if what == 'speech' else 'Tokens'}_{Path(model).name}")

        def factory():
            if what == "speech":
                from features.wav2vec2 import Wav2Vec2Features
                return Wav2Vec2Features(model, device=self.device)
            from features.text import TokenFeatures
            return TokenFeatures(model, device=self.device)
        records = self.records if what == "speech" else [r for r in self.records if self.text[r.utt_id]]
        return self.store(f"{what}:{model}:{path}", lambda: store_with(
            factory, records, path, model, not self.args.no_progress, what, corpus=CORPUS))


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


@entry
def main(argv=None) -> int:
    from corpora.iemocap import FOUR_CLASS, MSP_CATEGORY, msp_four_class
    from corpora.msp_podcast import read_msp_podcast
    from engine.loop import evaluate, load_best
    from engine.resources import ResourceMonitor, inference_record
    from systems.common import write_class_scores
    from utils import output_file, resolve_device, writable_dir
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                    help="run folder(s) written by mdre.py or speech_text_mocap.py")
    ap.add_argument("--corpus", choices=("msp-podcast",), default="msp-podcast", help="the corpus scored on")
    ap.add_argument("--root", type=Path, required=True, help="MSP-Podcast release folder (Audios/, Labels/, ...)")
    ap.add_argument("--split", default="test1", help="the split scored (test1, test2, development, train)")
    f = ap.add_argument_group("features (speech+text+mocap models)")
    f.add_argument("--speech-model", help="wav2vec2 hub id or local folder (default: the one the checkpoint records)")
    f.add_argument("--text-model", help="BERT-style hub id or local folder (default: the one the checkpoint records)")
    f.add_argument("--speech-store", type=Path, help="wav2vec2 store of the corpus (default <root>/Features/"
                                                     "Wav2Vec_<model's folder name>)")
    f.add_argument("--text-store", type=Path, help="token store (default <root>/Features/Tokens_<model's folder name>)")
    ap.add_argument("--results", type=Path, default=Path("results"), help="folder of the result files")
    ap.add_argument("--batch-size", type=int_at_least(1), default=64, help="utterances per forward pass")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_allow_unfinished_arg(ap)
    args = ap.parse_args(argv)
    configs = {run: read_checkpoint(run, args.allow_unfinished) for run in args.checkpoint}  # every checkpoint checked before any work
    writable_dir(args.results)
    corpus = read_msp_podcast(args.root, args.split)  # a CorpusError is a clear error (engine.cli.entry)
    corpus.report()
    device = resolve_device(args.device)
    inputs = Inputs(args, corpus.records, device)
    durations = {}
    rows = []
    for run, cfg in configs.items():
        scheme = SYSTEMS[cfg["system"]]
        items, left_out = msp_four_class(corpus.records, scheme)
        if not items:
            raise UserError(f"{args.root}: no {args.split} utterance of EmoClass {', '.join(MSP_CATEGORY[scheme])}")
        if left_out:
            print(f"{sum(left_out.values())} {args.split} utterance(s) of other classes are left out: " +
                  ", ".join(f"{k} {n}" for k, n in left_out.items()), file=sys.stderr)
        items = [(r.utt_id, y) for r, y in items]
        build = mdre_method if cfg["system"] == "mdre" else stm_method
        method, items, facts = build(cfg, run, inputs, items)
        if not items:
            raise UserError(f"{run}: no {args.split} utterance left to score (see the warnings above)")
        try:
            model = load_best(method, run, device, args.allow_unfinished)
        except Exception as e:  # noqa: BLE001 - safetensors / torch raise several types for a damaged file
            raise UserError(f"{run}: cannot load its weights ({type(e).__name__}: {e})") from None
        with ResourceMonitor() as mon:
            logits = evaluate(method, model, items, args.batch_size, device)
        utts, labels = [u for u, _ in items], [y for _, y in items]
        if not durations:
            import soundfile as sf
            durations.update({r.utt_id: sf.info(str(r.audio_path)).duration for r in corpus.records})
        classes = list(FOUR_CLASS[scheme].classes)  # the checkpoint's output order (its config.json says so too)
        name = cfg.get("model", {}).get("kind") if cfg["system"] == "mdre" else "+".join(cfg["modalities"])
        result = {"system": cfg["system"], "model" if cfg["system"] == "mdre" else "configuration": name,
                  "corpus": str(args.root), "corpus_kind": "msp-podcast", "split": args.split,
                  "checkpoint": str(run), "trained_on": {"corpus": "IEMOCAP", "protocol": cfg.get("protocol")},
                  "seed": cfg.get("seed"), "title": f"{run.name} on MSP-Podcast {args.split}",
                  "class_mapping": {letter: classes[FOUR_CLASS[scheme].codes[code]]
                                    for letter, code in MSP_CATEGORY[scheme].items()},
                  "left_out": left_out, **facts,
                  **inference_record(mon.seconds, len(utts), sum(durations[u] for u in utts), mon)}
        out = args.results / f"{run.name}_on_msp-podcast_{args.split}.csv"
        wa, ua = write_class_scores(out, utts, labels, logits, classes, result=result)
        rows.append((run.name, len(utts), wa, ua))
        print(f"{run.name} on MSP-Podcast {args.split}: WA {wa:.4f}  UA {ua:.4f}  ({len(utts)} utterances; "
              f"{output_file(out, '.json')})", flush=True)
    print(summary_table(rows, args.split))
    return 0


def model_of(run_name: str) -> str:
    """The model a fold's run belongs to: its run name without the fold part (MDRE `_fold<k>`, speech + text +
    mocap `_s<k>`), so the folds of one model share it and two models (MDREA and ARE, or two configurations)
    never do."""
    import re
    return re.sub(r"_(?:fold|s)\d+(?=_|$)", "", run_name)


def summary_table(rows: list[tuple], split: str) -> str:
    """The printed table: one row per checkpoint, and a mean only over the folds of one model (a mean across
    different systems or configurations says nothing)."""
    lines = [f"\n| checkpoint | MSP-Podcast {split} utterances | WA | UA |", "|---|---|---|---|"]
    lines += [f"| {name} | {n} | {wa:.4f} | {ua:.4f} |" for name, n, wa, ua in rows]
    for model in dict.fromkeys(model_of(r[0]) for r in rows):
        mine = [r for r in rows if model_of(r[0]) == model]
        if len(mine) > 1:
            lines.append(f"| mean of {model}'s {len(mine)} folds | | {np.mean([r[2] for r in mine]):.4f} | "
                         f"{np.mean([r[3] for r in mine]):.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

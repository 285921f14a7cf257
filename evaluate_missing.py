#!/usr/bin/env python
"""CCC of audio-text checkpoints under simulated missing data, side by side (the paper's resilience claim), in
the robustness literature's protocols, with 95 % bootstrap intervals:

    python evaluate_missing.py --checkpoints Models/RUN_multiscale Models/RUN_fixed --root R \\
        --audio-store R/Features/Wav2Vec1024 --text-store R/Features/RoBERTa768 [--split test1] \\
        [--protocols fixed,random,sweep] [--rates 0,0.1,...,0.7] [--sweep-kinds frames,bursts,words,wer]

Protocols (--protocols, default sweep): fixed = the complete data, audio only (present:audio) and text only
(present:text) (MMIN's fixed conditions); random = each modality of each utterance missing with probability p
at every --rates p > 0, at least one kept (GCNet's random-missing protocol); sweep = every --sweep-kinds kind at
every rate: frames (audio frames dropped at random), bursts (audio lost in two-state Markov bursts of --burst
frames), words (that share of the transcript's words REMOVED and the transcript encoded again by the text store's
encoder; cached under <text store>/degraded/), wer (simulated recogniser errors to that word error rate:
substitutes and insertions drawn from the --train-split transcripts' words, re-encoded; the realised WER of each
draw is recorded), word-rows (the original authors' helper: the words' rows of the encoded features blanked; it
leaks the sentence through the context) and words+audio (words plus the words' audio spans from the TextGrid).
An absent stream is the system's one definition (systems.audio_text.absent_stream: a fixed number of rows at the
Train mean, the same as prediction_process.py uses for a WAV without transcript).

Each seeded condition is drawn --sim-seeds times (simulation seeds --seed, --seed+1, ...; per utterance and
condition, so every checkpoint sees the same draws) and averaged, with its spread. Every protocol goes through
engine.robustness and writes <out>_<protocol>.csv (the table), .json (the shared result format, with intervals,
paired tests against the complete data and the robustness summary), .png (curves with interval bands) and
<out>_<protocol>_per_utterance.csv, and prints the table.

Deprecated: --conditions KINDS (each kind at every rate, plus audio-absent and text-absent unless --no-absent)
still works; it is scored as the protocol "conditions" (<out>_conditions.*) instead of the default sweep, or
beside the protocols named with --protocols.
"""
import sys
from pathlib import Path

import numpy as np

from engine.cli import UserError, add_allow_unfinished_arg, add_protocol_args, entry, parser
from utils import output_file, writable_dir

ATTRIBUTE_KEYS = ("Act", "Dom", "Val")


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


def output_names(args, ap=None) -> dict:
    """What a command writes, from its arguments alone (report.recipes names a benchmark step's results
    with it): {"protocols": {protocol: <out>_<protocol>.json}}."""
    stem = output_file(args.out, "")
    return {"protocols": {p: stem.with_name(f"{stem.name}_{p}.json") for p in protocol_names(args)}}


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


def check_inputs(method, items, conds, split: str) -> None:
    """Refuse (before any scoring) word conditions on utterances that lack what they need: a transcript (words,
    wer, words+audio) or one whose tokens match the text features (word-rows)."""
    word_kinds = sorted({c.kind for c in conds} & {"words", "wer", "words+audio", "word-rows"})
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


@entry
def main(argv=None) -> int:
    from engine.plots import distinct_names
    from engine.robustness import evaluate_conditions
    from features.store import FeatureStore
    from systems.audio_text import audio_text_items, load_trained, transcript_vocabulary
    from systems.common import require_store
    ap = parser(__doc__)
    ap.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="audio-text checkpoint folders")
    ap.add_argument("--root", type=Path, required=True, help="MSP-Podcast root (labels, TextGrids, transcripts)")
    ap.add_argument("--audio-store", type=Path, required=True, help="the checkpoints' audio feature store")
    ap.add_argument("--text-store", type=Path, required=True,
                    help="the checkpoints' text feature store (word conditions cache re-encoded text below it)")
    ap.add_argument("--split", default="test1", help="split to score")
    ap.add_argument("--train-split", default="train",
                    help="split whose transcripts' words are wer's substitutes and insertions (default train)")
    add_protocol_args(ap, "sweep")
    ap.set_defaults(protocols=None)  # sweep, unless the deprecated --conditions is given alone
    ap.add_argument("--conditions", default=None,
                    help="deprecated: comma-separated kinds, each at every rate, scored as the protocol "
                         "'conditions' (with audio-absent and text-absent unless --no-absent); by default none")
    ap.add_argument("--no-absent", action="store_true", help="--conditions without the absent rows")
    ap.add_argument("--burst", type=float, default=5.0, help="mean burst length in frames for bursts")
    ap.add_argument("--seed", type=int, default=0, help="first simulation seed (the draws use seed .. seed+N-1)")
    ap.add_argument("--out", type=Path, default=Path("results/missing_data"),
                    help="name of the outputs: <out>_<protocol>.csv, .json, .png and _per_utterance.csv (a name "
                         "ending in .csv, .json or .png has that suffix dropped first)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    add_allow_unfinished_arg(ap)
    args = ap.parse_args(argv)
    protocols = plan(args)
    writable_dir(args.out.parent)
    from engine.checkpoint import require_finished
    for ck in args.checkpoints:  # every checkpoint's training finished (or --allow-unfinished), before any work
        if ck.is_dir():
            require_finished(ck, args.allow_unfinished)
    names = dict(zip(args.checkpoints, distinct_names(args.checkpoints)))  # shown in full, told apart
    audio, text = FeatureStore(args.audio_store), FeatureStore(args.text_store)
    require_store(audio, "--audio-store", "wav2vec2")  # the kinds of features, before any work (issue 19.14)
    require_store(text, "--text-store", "tokens")
    items, words, transcripts = audio_text_items(args.root, args.split, audio, text)
    if not items:
        raise UserError(f"no {args.split} utterance with labels, both feature sets and a TextGrid")
    every = [c for conds in protocols.values() for c in conds]
    vocabulary = transcript_vocabulary(args.root, args.train_split) if any(c.kind == "wer" for c in every) else ()
    loaded = {}
    for ck in args.checkpoints:  # all loaded and checked before the first is scored
        try:
            method, model = load_trained(ck, audio, text, words, transcripts, args.allow_unfinished)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
        method.vocabulary, method.device = vocabulary, args.device
        check_inputs(method, items, every, args.split)
        loaded[ck] = (method, model.to(args.device))
    result = {"system": "audio-text", "corpus": str(args.root), "split": args.split,
              "checkpoints": [str(c) for c in args.checkpoints], "first_sim_seed": args.seed,
              "utterances": len(items), "series": {names[c]: str(c) for c in args.checkpoints}}
    for protocol, conds in protocols.items():
        out = output_names(args)["protocols"][protocol].with_suffix("")  # <out>_<protocol>
        predicts = {names[ck]: draw_function(m, model, items, args.device, args.seed) for ck, (m, model) in
                    loaded.items()}  # one series per checkpoint, in one set of files
        evaluate_conditions(predicts if len(predicts) > 1 else next(iter(predicts.values())), conds,
                            sim_seeds=args.sim_seeds, metric="CCC", attributes=list(ATTRIBUTE_KEYS),
                            protocol=protocol, out=out, result=result, series=next(iter(predicts)),
                            resamples=args.bootstrap, ci_method=args.ci_method,
                            title=f"audio-text, {args.split}: CCC under the {protocol} protocol; series, in "
                                  f"the table's order: {', '.join(predicts)}")
        print(f"{protocol}: {len(conds)} conditions x {len(loaded)} checkpoint(s) for {len(items)} {args.split} "
              f"utterances -> {out}.csv, {out}.json, {out}.png, {out}_per_utterance.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

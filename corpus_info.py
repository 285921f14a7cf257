#!/usr/bin/env python
"""Check a corpus folder and summarise it: utterances per split and class, label statistics, speakers and the
speakers splits share, duration percentiles, transcript / alignment / mocap coverage, skipped rows.

    python corpus_info.py --corpus msp-podcast --root /data/MSP-PODCAST-Publish-1.10 [--split dev]
    python corpus_info.py --corpus iemocap --root /data/IEMOCAP_full_release [--json info.json]

`--corpus` takes every kind corpora.read_corpus reads. Splits are the corpus's own (IEMOCAP has none: its
sessions are summarised instead). Speakers named "unknown:<utterance>" (a row without a speaker) are counted
apart and never make splits overlap; a speaker in two splits prints a WARNING line. Durations come from the WAV
headers (soundfile.info, never the samples), or end - start where a record is a segment of a longer file;
files whose header cannot be read are counted and named. Coverage: the share of utterances with a non-empty
inline transcript or an existing transcript file, with an existing TextGrid, and with motion capture (IEMOCAP:
every MOCAP stream file of the dialog; a corpus that lists mocap files per utterance: that file).

Exit code 1 when the corpus cannot be read; skipped rows are listed (and written with --skipped-csv).
"""
import json
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np

from corpora import read_corpus
from corpora.records import ATTRIBUTES, Corpus, Utterance
from engine.cli import entry, parser
from utils import atomic_write_text, writable_dir

PERCENTILES = (5, 50, 95)
UNKNOWN_SPEAKER = "unknown:"  # the readers' placeholder for a row without a speaker: one per utterance
SHOWN = 5  # names printed per list (the JSON holds them all)


def summarise(records, key) -> str:
    counts = Counter(key(r) for r in records)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


def group_of(r: Utterance) -> str:
    """The split a record belongs to; its session where the corpus has no splits (IEMOCAP); else 'all'."""
    if r.split is not None:
        return r.split
    return f"Session{r.session}" if r.session is not None else "all"


def label_stats(records) -> dict:
    """{attribute: {n, mean, std, min, max}} over the records that have it (population std)."""
    out = {}
    for a in ATTRIBUTES:
        v = np.array([r.labels[a] for r in records if a in r.labels], np.float64)
        if len(v):
            out[a] = {"n": len(v), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                      "max": float(v.max())}
    return out


def known_speakers(records) -> set[str]:
    return {r.speaker for r in records if not r.speaker.startswith(UNKNOWN_SPEAKER)}


def group_summary(records) -> dict:
    return {"utterances": len(records), "speakers": len(known_speakers(records)),
            "unknown_speaker_utterances": sum(r.speaker.startswith(UNKNOWN_SPEAKER) for r in records),
            "classes": dict(sorted(Counter(r.category for r in records if r.category).items())),
            "labels": label_stats(records)}


def speaker_overlap(groups: dict[str, list]) -> list[dict]:
    """Every pair of groups that shares known speakers: {splits, speakers (count), names (sorted)}."""
    speakers = {g: known_speakers(recs) for g, recs in groups.items()}
    out = []
    for a, b in combinations(sorted(groups), 2):
        shared = sorted(speakers[a] & speakers[b])
        if shared:
            out.append({"splits": [a, b], "speakers": len(shared), "names": shared})
    return out


def durations(records, progress: bool = False) -> dict:
    """Seconds per utterance (segment end - start, else the WAV header): count, total, percentiles, and the
    files whose header could not be read."""
    from tqdm import tqdm

    from corpora.records import audio_seconds
    seconds, unreadable = [], []
    for r in tqdm(records, desc="audio headers", unit="utt", disable=not progress):
        try:
            seconds.append(audio_seconds(r))
        except (RuntimeError, OSError) as e:  # soundfile's LibsndfileError is a RuntimeError
            unreadable.append({"utterance": r.utt_id, "file": str(r.audio_path), "reason": str(e).strip()})
    d = np.array(seconds, np.float64)
    pct = {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(d, PERCENTILES))} if len(d) else {}
    return {"timed": len(d), "total_s": float(d.sum()), **pct, "unreadable": unreadable}


def mocap_files(corpus: Corpus, r: Utterance) -> list[Path]:
    """The motion-capture files a record needs: the record's own (a manifest row's mocap_path), else IEMOCAP's
    MOCAP streams of the dialog; [] when the corpus has none."""
    if r.mocap_path is not None:
        return [r.mocap_path]
    if r.session is not None and r.dialog:
        from corpora.iemocap import MOCAP_STREAMS, mocap_path
        return [mocap_path(r, stream) for stream in MOCAP_STREAMS]
    return []


def coverage(corpus: Corpus) -> dict:
    """How many utterances have a transcript, a TextGrid, motion capture (counts; shares are count / n)."""
    recs = corpus.records

    def has_transcript(r):
        return bool(r.transcript) or (r.transcript_path is not None and Path(r.transcript_path).is_file())

    def has_mocap(r):
        files = mocap_files(corpus, r)
        return bool(files) and all(f.is_file() for f in files)
    return {"transcript": sum(map(has_transcript, recs)),
            "textgrid": sum(r.alignment_path is not None and Path(r.alignment_path).is_file() for r in recs),
            "mocap": sum(map(has_mocap, recs))}


def summary(corpus: Corpus, progress: bool = False) -> dict:
    """Everything corpus_info prints, as one JSON-ready dict."""
    recs = corpus.records
    groups: dict[str, list] = {}
    for r in recs:
        groups.setdefault(group_of(r), []).append(r)
    grouped_by = "split" if any(r.split is not None for r in recs) else (
        "session" if any(r.session is not None for r in recs) else "none")
    return {"name": corpus.name, "root": str(corpus.root), **group_summary(recs), "grouped_by": grouped_by,
            "groups": {g: group_summary(groups[g]) for g in sorted(groups)},
            "speaker_overlap": speaker_overlap(groups), "durations": durations(recs, progress),
            "coverage": coverage(corpus),
            "skipped": {"rows": len(corpus.skipped),
                        "by_reason": dict(Counter(s.reason.split(":")[0] for s in corpus.skipped))}}


def _names(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")


def _share(count: int, n: int) -> str:
    return f"{count}/{n} ({100 * count / n:.1f}%)" if n else "0/0"


def print_summary(s: dict, out=None) -> None:
    """The per-group lines, the overlap warnings, durations and coverage of `summary`'s dict (to stdout)."""
    out = out or sys.stdout  # looked up at the call: a replaced sys.stdout (captured output) is used
    n = s["utterances"]
    print(f"  per {s['grouped_by'] if s['grouped_by'] != 'none' else 'corpus'}:", file=out)
    for g, info in s["groups"].items():
        unknown = info["unknown_speaker_utterances"]
        line = (f"    {g}: {info['utterances']} utterances, {info['speakers']} speakers"
                + (f" (+ {unknown} utterances without a speaker)" if unknown else ""))
        if info["classes"]:
            line += "; classes " + ", ".join(f"{c}: {k}" for c, k in info["classes"].items())
        print(line, file=out)
        for a, st in info["labels"].items():
            print(f"      {a}: n={st['n']} mean={st['mean']:.3f} std={st['std']:.3f} min={st['min']:.3f} "
                  f"max={st['max']:.3f}", file=out)
    for o in s["speaker_overlap"]:
        a, b = o["splits"]
        print(f"  WARNING: {a} and {b} share {o['speakers']} speaker(s): {_names(o['names'])} "
              "(scores on one are not speaker-independent of training on the other)", file=out)
    d = s["durations"]
    if d["timed"]:
        print(f"  durations ({d['timed']} utterances, {d['total_s'] / 3600:.2f} h): "
              + ", ".join(f"{q}% {d[f'p{q}']:.2f} s" for q in PERCENTILES), file=out)
    if d["unreadable"]:
        print(f"  {len(d['unreadable'])} audio header(s) unreadable: "
              f"{_names([u['utterance'] for u in d['unreadable']])}", file=out)
    c = s["coverage"]
    print(f"  coverage: transcript {_share(c['transcript'], n)}, TextGrid {_share(c['textgrid'], n)}, "
          f"mocap {_share(c['mocap'], n)}", file=out)


@entry
def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--corpus", required=True,
                    help="which reader: a kind corpora.read_corpus knows (msp-podcast, iemocap, ...)")
    ap.add_argument("--root", type=Path, required=True, help="corpus root folder (or file, for a file-based kind)")
    ap.add_argument("--split", help="MSP-Podcast split or alias (train, dev, test1, test2, test3, test, ...; default: all)")
    ap.add_argument("--skipped-csv", type=Path, help="write the skipped rows (utterance, file, reason) here (default: none)")
    ap.add_argument("--fold", type=int, help="EmoBox only: read this fold's files (default: none)")
    ap.add_argument("--json", type=Path, help="write the whole summary as JSON here (default: none)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar while reading audio headers")
    args = ap.parse_args(argv)
    for flag, path in (("--skipped-csv", args.skipped_csv), ("--json", args.json)):
        if path:
            writable_dir(path.parent, flag)
    fold = {} if args.fold is None else {"fold": args.fold}  # only readers with folds take one
    corpus = read_corpus(args.corpus, args.root, args.split, **fold)
    recs = corpus.records
    print(f"{corpus.name} at {corpus.root}: {len(recs)} utterances, {len({r.speaker for r in recs})} speakers")
    if any(r.split is not None for r in recs):
        print("  splits:", summarise(recs, lambda r: r.split))
    if args.corpus == "iemocap":
        from corpora.iemocap import FOUR_CLASS, four_class
        print("  sessions:", summarise(recs, lambda r: r.session))
        for scheme in FOUR_CLASS:
            print(f"  4-class ({scheme}): {len(four_class(recs, scheme))} utterances")
    print("  categories:", summarise(recs, lambda r: r.category))
    for a, st in label_stats(recs).items():
        print(f"  {a}: n={st['n']} mean={st['mean']:.3f} std={st['std']:.3f} min={st['min']:.3f} max={st['max']:.3f}")
    info = summary(corpus, progress=not args.no_progress)
    print_summary(info)
    corpus.report(stream=sys.stdout)
    if args.skipped_csv:
        corpus.write_skipped(args.skipped_csv)
    if args.json:
        atomic_write_text(args.json, json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

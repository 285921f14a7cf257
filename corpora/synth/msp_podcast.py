"""A synthetic corpus in the exact MSP-Podcast layout, any release from v1.6 to v1.11.

    <out>/Audios|Audio/MSP-PODCAST_<podcast>_<segment>.wav      16 kHz mono PCM16
    <out>/Labels/labels_consensus.csv | labels_concensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    <out>/Transcripts/<utt>.txt                                  plain text
    <out>/ForceAligned/<utt>.TextGrid                            tiers: words (first), phones

Each espeak-ng voice is one speaker (podcast); speakers are disjoint across splits. Labels follow
`corpora.synth.rules`. Deterministic for a seed: all random draws happen up front, in utterance order.
Re-running on a half-written folder keeps the finished audio and rewrites the rest (every file is
written atomically; the labels CSV and `synth_summary.json` are written last).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from corpora.synth import generator_version, rules
from corpora.synth.speech import speak_many
from corpora.textgrid import write_textgrid
from features.audio import TARGET_SR, write_wav
from utils import atomic_write_text

RELEASES = {
    "1.6": {"audio": "Audio", "labels": "labels_concensus.csv", "splits": ("Train", "Validation", "Test")},
    "1.8": {"audio": "Audio", "labels": "labels_concensus.csv",
            "splits": ("Train", "Validation", "Test1", "Test2")},
    "1.10": {"audio": "Audios", "labels": "labels_consensus.csv",
             "splits": ("Train", "Development", "Test1", "Test2")},
    "1.11": {"audio": "Audios", "labels": "labels_consensus.csv",
             "splits": ("Train", "Development", "Test1", "Test2", "Test3")},
}
SPLIT_SHARE = {"Train": 0.55, "Validation": 0.15, "Development": 0.15, "Test": 0.3, "Test1": 0.15, "Test2": 0.15,
               "Test3": 0.1}
# Voice variants with `breath` (f2, f3, f5) add noise that differs from run to run: they are left out.
VOICES = (("en-us+m1", "Male"), ("en-us+f1", "Female"), ("en-gb-x-rp+m3", "Male"), ("en-gb-x-rp+f4", "Female"),
          ("en-029+m2", "Male"), ("en-029+Annie", "Female"), ("en-us+m4", "Male"),
          ("en-gb-scotland+belinda", "Female"), ("en-gb-x-rp+m5", "Male"), ("en-us+linda", "Female"),
          ("en-gb-scotland+m6", "Male"), ("en+anika", "Female"), ("en+m7", "Male"), ("en-us+f4", "Female"),
          ("en-029+m8", "Male"), ("en-gb-x-rp+f1", "Female"))
SUMMARY = "synth_summary.json"


def speaker_splits(n_speakers: int, split_names: tuple[str, ...]) -> list[str]:
    """Split of each speaker: every split gets at least one speaker, the rest by SPLIT_SHARE."""
    shares = np.array([SPLIT_SHARE[s] for s in split_names])
    counts = np.ones(len(split_names), int)
    for _ in range(n_speakers - len(split_names)):  # greedy: give the next speaker to the most under-served
        counts[np.argmax(shares / shares.sum() * n_speakers - counts)] += 1
    return [s for s, c in zip(split_names, counts) for _ in range(c)]


def write_msp_podcast(out: str | Path, n: int = 500, seed: int = 0, release: str = "1.10",
                      n_speakers: int | None = None, progress: bool = True) -> dict:
    if release not in RELEASES:
        raise ValueError(f"release {release!r} not one of {', '.join(RELEASES)}")
    lay, out = RELEASES[release], Path(out)
    splits = lay["splits"]
    n_spk = n_speakers or int(np.clip(round(n / 30), len(splits), len(VOICES)))
    if not len(splits) <= n_spk <= len(VOICES) or n < n_spk:
        raise ValueError(f"need {len(splits)}..{len(VOICES)} speakers and at least one utterance each "
                         f"(n={n}, speakers={n_spk})")
    spk_split = speaker_splits(n_spk, splits)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(VOICES))[:n_spk]  # which voices play the speakers, seed-dependent
    plans, seg = [], [0] * n_spk
    for i in range(n):
        k = i % n_spk
        seg[k] += 1
        text, c = rules.draw_utterance(rng)
        scores = rules.attribute_scores(c, rng)
        plans.append({"utt": f"MSP-PODCAST_{k + 1:04d}_{seg[k]:04d}", "speaker": k, "text": text,
                      "controls": c, "scores": scores})

    audio_dir = out / lay["audio"]
    rows, seconds = [], 0.0
    jobs = [(p["text"], VOICES[order[p["speaker"]]][0], rules.to_prosody(p["controls"])) for p in plans]
    spoken_all = speak_many(jobs)
    for p, spoken in tqdm(zip(plans, spoken_all), total=n, desc=f"MSP-Podcast {release} demo corpus",
                          disable=not progress, unit="utt"):
        gender = VOICES[order[p["speaker"]]][1]
        wav = audio_dir / f"{p['utt']}.wav"
        seconds += len(spoken.audio) / TARGET_SR
        if not wav.is_file():  # resume: finished files are kept
            write_wav(wav, spoken.audio)
            atomic_write_text(out / "Transcripts" / f"{p['utt']}.txt", p["text"] + "\n")
            write_textgrid(out / "ForceAligned" / f"{p['utt']}.TextGrid",
                           {"words": spoken.words, "phones": spoken.phones}, len(spoken.audio) / TARGET_SR)
        split = spk_split[p["speaker"]]
        s = p["scores"]
        labelled = split != "Test3"
        rows.append([f"{p['utt']}.wav", rules.msp_emo_class(s) if labelled else "",
                     *(f"{s[a]:.4f}" if labelled else "" for a in ("act", "val", "dom")),
                     str(101 + int(order[p["speaker"]])), gender, split])

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
    w.writerows(rows)
    atomic_write_text(out / "Labels" / lay["labels"], buf.getvalue())
    summary = {"kind": "msp-podcast", "release": release, "n": n, "seed": seed, "generator": generator_version(),
               "speakers": n_spk,
               "seconds": round(seconds, 2), "splits": {s: sum(r[-1] == s for r in rows) for s in splits},
               "controls": {p["utt"]: asdict(p["controls"]) for p in plans}}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1))
    return summary

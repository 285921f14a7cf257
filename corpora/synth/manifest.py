"""A synthetic corpus in the manifest format (corpora.manifest): the synthetic MSP-Podcast corpus, described by a
CSV manifest instead of its own layout, with dimensional labels on a declared 1-5 scale and a categorical label.

    <out>/msp/...               the synthetic MSP-Podcast corpus the rows point into (corpora.synth.msp_podcast)
    <out>/corpus.csv            id, path, split, speaker, gender, transcript_path, textgrid_path,
                                arousal, dominance, valence (1-5), label (EmoClass letter; empty for X)
    <out>/corpus.json           {"name": "SynthManifest", "scale": [1, 5], "classes": {"A": "angry", ...}}

Splits are named as a manifest user would (train, dev, test, test2). The labels are MSP-Podcast's 1-7 scores moved
to 1-5 (y5 = 1 + (y7 - 1) * 4/6, six decimals), so the reader's rescaling back to 1-7 is exercised on every run;
`X` (no agreement) rows keep their dimensional labels and have no class. Deterministic for a seed.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from utils import atomic_write_text

CLASSES = {"A": "angry", "S": "sad", "H": "happy", "N": "neutral"}  # the synthetic corpus's EmoClass letters
SPLITS = {"train": "train", "dev": "dev", "test1": "test", "test2": "test2"}  # MSP-Podcast split -> manifest's
MANIFEST, SIDECAR = "corpus.csv", "corpus.json"


def to_five(y7: float) -> float:
    return 1.0 + (y7 - 1.0) * 4.0 / 6.0


def write_manifest_corpus(out: str | Path, n: int = 200, seed: int = 0, *, progress: bool = True) -> dict:
    """Write the synthetic MSP-Podcast corpus under <out>/msp and its manifest <out>/corpus.csv + corpus.json;
    returns {"manifest": path, "rows": n, "classes": {class: count}, "splits": {split: count}}."""
    from corpora.msp_podcast import read_msp_podcast
    from corpora.synth.msp_podcast import write_msp_podcast
    out = Path(out)
    write_msp_podcast(out / "msp", n=n, seed=seed, release="1.10", progress=progress)
    corpus = read_msp_podcast(out / "msp")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "path", "split", "speaker", "gender", "transcript_path", "textgrid_path",
                "arousal", "dominance", "valence", "label"])
    classes: dict[str, int] = {}
    splits: dict[str, int] = {}
    for r in corpus.records:
        rel = lambda p: p.relative_to(out).as_posix()  # noqa: E731 - paths relative to the manifest's folder
        label = r.category if r.category in CLASSES else ""
        split = SPLITS[r.split]
        w.writerow([r.utt_id, rel(r.audio_path), split, r.speaker, r.gender or "", rel(r.transcript_path),
                    rel(r.alignment_path), *(f"{to_five(r.labels[a]):.6f}" for a in ("act", "dom", "val")), label])
        if label:
            classes[CLASSES[label]] = classes.get(CLASSES[label], 0) + 1
        splits[split] = splits.get(split, 0) + 1
    atomic_write_text(out / SIDECAR, json.dumps({"name": "SynthManifest", "scale": [1, 5], "classes": CLASSES},
                                                indent=1) + "\n")
    atomic_write_text(out / MANIFEST, buf.getvalue())  # last: a manifest means a finished corpus
    return {"manifest": str(out / MANIFEST), "rows": len(corpus.records), "classes": classes, "splits": splits}

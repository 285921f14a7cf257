"""MSP-Podcast reader for releases v1.6 to v1.12.

Release differences it absorbs:
  audio folder      `Audio/` or `Audios/`
  labels file       `Labels/labels_concensus.csv` (v1.6-1.8 spelling) or `Labels/labels_consensus.csv`
  split names       Train; Validation (<=1.8) or Development (>=1.10); Test (v1.6) or Test1, Test2, Test3
Canonical split names are train, dev, test1, test2, test3; `--split` accepts the aliases in SPLIT_ALIASES,
so `dev` and `test1` work on every release. Test3 is unlabelled.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from corpora.records import ATTRIBUTES, Corpus, CorpusError, Skipped, Utterance

COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
REQUIRED = ("FileName", "EmoAct", "EmoVal", "EmoDom", "Split_Set")  # EmoClass, SpkrID, Gender are optional
LABEL_COLUMNS = {"act": "EmoAct", "dom": "EmoDom", "val": "EmoVal"}
LABEL_RANGE = (1.0, 7.0)

# canonical split -> the Split_Set strings releases use for it
SPLITS = {"train": ("Train",), "dev": ("Development", "Validation"), "test1": ("Test1", "Test"),
          "test2": ("Test2",), "test3": ("Test3",)}
UNLABELLED_SPLITS = ("test3",)
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "dev": "dev", "development": "dev", "validation": "dev", "valid": "dev", "val": "dev",
    "test": "test1", "test1": "test1", "test2": "test2", "test3": "test3",
}
_RAW_TO_CANONICAL = {raw.lower(): canon for canon, raws in SPLITS.items() for raw in raws}


def canonical_split(name: str) -> str:
    """'Validation' / 'development' / 'dev' -> 'dev', 'Test' / 'test1' -> 'test1', ... ; CorpusError otherwise."""
    key = name.strip().lower()
    if key in SPLIT_ALIASES:
        return SPLIT_ALIASES[key]
    if key in _RAW_TO_CANONICAL:
        return _RAW_TO_CANONICAL[key]
    raise CorpusError(f"unknown split {name!r}; use one of {', '.join(sorted(SPLIT_ALIASES))}")


def find_layout(root: str | Path) -> tuple[Path, Path]:
    """(audio folder, labels CSV) of a release, whichever spelling it uses."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: MSP-Podcast root folder not found")
    audio = next((root / d for d in ("Audios", "Audio") if (root / d).is_dir()), None)
    if audio is None:
        raise CorpusError(f"{root}: no audio folder (expected {root / 'Audios'} or {root / 'Audio'})")
    labels = next((root / "Labels" / f for f in ("labels_consensus.csv", "labels_concensus.csv")
                   if (root / "Labels" / f).is_file()), None)
    if labels is None:
        raise CorpusError(f"{root / 'Labels'}: no labels_consensus.csv or labels_concensus.csv")
    return audio, labels


def _parse_label(value: str) -> float:
    return float(value) if value.strip() else math.nan


def read_msp_podcast(root: str | Path, split: str | None = None, *, check_audio: bool = True) -> Corpus:
    """All rows of the labels CSV (or one split) as records, in CSV order.

    Rows are skipped, with the reason, when: the split value is unknown, a label is missing or outside 1-7
    (except in the unlabelled Test3), or the audio file is missing (`check_audio`).
    """
    root = Path(root)
    audio_dir, labels_csv = find_layout(root)
    want = canonical_split(split) if split is not None else None
    with open(labels_csv, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CorpusError(f"{labels_csv}: missing column(s) {', '.join(missing)} (found {', '.join(header)})")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    present = {p.name for p in audio_dir.iterdir()} if check_audio else None
    transcripts, aligned = root / "Transcripts", root / "ForceAligned"
    records, skipped = [], []
    for row in rows:
        name = row["FileName"]
        utt = name[:-4] if name.lower().endswith(".wav") else name
        try:
            canon = canonical_split(row["Split_Set"])
        except CorpusError:
            skipped.append(Skipped(utt, str(labels_csv), f"unknown split: {row['Split_Set']!r}"))
            continue
        if want is not None and canon != want:
            continue
        try:
            labels = {a: _parse_label(row[LABEL_COLUMNS[a]]) for a in ATTRIBUTES}
        except ValueError:
            skipped.append(Skipped(utt, str(labels_csv), "label not a number: " +
                                   ", ".join(row[LABEL_COLUMNS[a]] for a in ATTRIBUTES)))
            continue
        if canon in UNLABELLED_SPLITS:
            labels = {a: v for a, v in labels.items() if not math.isnan(v)}
        else:
            bad = [f"{LABEL_COLUMNS[a]}={v}" for a, v in labels.items()
                   if math.isnan(v) or not LABEL_RANGE[0] <= v <= LABEL_RANGE[1]]
            if bad:
                why = "missing label" if any(math.isnan(v) for v in labels.values()) else "label outside 1-7"
                skipped.append(Skipped(utt, str(labels_csv), f"{why}: {', '.join(bad)}"))
                continue
        if present is not None and f"{utt}.wav" not in present:
            skipped.append(Skipped(utt, str(audio_dir / f"{utt}.wav"), "audio file missing"))
            continue
        spk = row.get("SpkrID", "")
        records.append(Utterance(
            utt_id=utt, audio_path=audio_dir / f"{utt}.wav", corpus="MSP-Podcast", split=canon,
            speaker=spk if spk and spk.lower() != "unknown" else f"unknown:{utt}",
            labels=labels, category=row.get("EmoClass") or None, gender=row.get("Gender") or None,
            transcript_path=transcripts / f"{utt}.txt", alignment_path=aligned / f"{utt}.TextGrid"))
    return Corpus(name="MSP-Podcast", root=root, records=records, skipped=skipped)


def read_transcript(record: Utterance) -> str:
    """The plain-text transcript; CorpusError naming the file when it is missing or empty."""
    path = record.transcript_path
    if path is None or not path.is_file():
        raise CorpusError(f"{path}: transcript missing for {record.utt_id}")
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        raise CorpusError(f"{path}: transcript empty for {record.utt_id}")
    return text

"""MSP-Podcast reader for releases v1.6 to v1.12 and 2.0.

Release differences it absorbs:
  audio folder      `Audio/` or `Audios/`
  labels file       `Labels/labels_concensus.csv` (v1.6-1.8 spelling) or `Labels/labels_consensus.csv`; where
                    neither exists, `Labels/labels_consensus.json` (shipped beside the CSV since v1.12)
  split names       Train; Validation (<=1.8) or Development (>=1.10); Test (v1.6) or Test1, Test2, Test3
Canonical split names are train, dev, test1, test2, test3; `--split` accepts the aliases in SPLIT_ALIASES,
so `dev` and `test1` work on every release. Test3 is unlabelled.

A labels file that mixes two spellings of one split (both Test and Test1 rows, or both Validation and
Development rows) keeps them apart: the rows of the first spelling in SPLITS (Test1, Development) get the
canonical name (test1, dev), the others their lower-cased spelling (test, validation); `--split` then takes
a spelling (Test, test1, Validation, development, ...) and refuses an alias that fits both (dev, val, valid).

Rows that repeat a FileName are never read twice: identical repeats are skipped (the first row is used),
conflicting ones are all skipped; either way `Corpus.skipped` names their row numbers (the header is row 1,
as a spreadsheet shows it). Detection runs over the whole file, whatever split is asked for.

MSP-Podcast 2.0 (Busso et al. 2025, > 400 h): read with the same rules. Verified against the v1.12 readme (the
newest release documentation found): Audios/, Labels/labels_consensus.{csv,json}, Transcripts/, ForceAligned/,
partitions Train, Development, Test1, Test2, Test3 (Test3's labels hidden). Not verified (no 2.0 readme or file
found): 2.0's file and split names, and the JSON file's layout, read as {"<FileName>": {"EmoClass": ..., "EmoAct":
..., "Split_Set": ...}, ...} (or a list of such objects with a FileName key). A 2.0 split name this reader does
not know is never guessed: its rows are listed as skipped ("unknown split") and docs/corpora.md says what to do.

Categorical labels (`EmoClass`): CATEGORIES maps the eight primary emotions to class names (the classes of the
Interspeech 2025 challenge's Task 1, scored with macro-F1); `O` (other) and `X` (no agreement) are in no class
and are left out of categorical training and scoring, listed, as the challenge's baseline did
(corpora.class_labels).

Features and labels without audio: `require_audio=False` reads a folder with no `Audio/`/`Audios/`; records
then point at `Audios/<utt>.wav` (`Audio/` where that folder exists) and no row is skipped for missing audio.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from corpora.records import ATTRIBUTES, Corpus, CorpusError, Skipped, Utterance, read_transcript_file

COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
REQUIRED = ("FileName", "EmoAct", "EmoVal", "EmoDom", "Split_Set")  # EmoClass, SpkrID, Gender are optional
LABEL_COLUMNS = {"act": "EmoAct", "dom": "EmoDom", "val": "EmoVal"}
LABEL_RANGE = (1.0, 7.0)
# EmoClass letter -> class: the eight primary emotions; O (other) and X (no agreement) have no class
CATEGORIES = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust",
              "C": "contempt", "N": "neutral"}
NO_CLASS = {"O": "other", "X": "no agreement"}

# canonical split -> the Split_Set strings releases use for it; the first is the canonical default spelling
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
    """'Validation' / 'development' / 'dev' -> 'dev', 'Test' / 'test1' -> 'test1', ... ; CorpusError otherwise.

    Knows no file: where one labels file mixes two spellings of a split, `read_msp_podcast` keeps them apart."""
    key = name.strip().lower()
    if key in SPLIT_ALIASES:
        return SPLIT_ALIASES[key]
    if key in _RAW_TO_CANONICAL:
        return _RAW_TO_CANONICAL[key]
    raise CorpusError(f"unknown split {name!r}; use one of {', '.join(sorted(SPLIT_ALIASES))}")


def find_layout(root: str | Path, *, require_audio: bool = True) -> tuple[Path, Path]:
    """(audio folder, labels CSV) of a release, whichever spelling it uses.

    Without `require_audio`, a missing audio folder is fine: the folder returned is then `root/Audios`."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: MSP-Podcast root folder not found")
    audio = next((root / d for d in ("Audios", "Audio") if (root / d).is_dir()), None)
    if audio is None:
        if require_audio:
            raise CorpusError(f"{root}: no audio folder (expected {root / 'Audios'} or {root / 'Audio'})")
        audio = root / "Audios"
    labels = next((root / "Labels" / f for f in ("labels_consensus.csv", "labels_concensus.csv",
                                                  "labels_consensus.json") if (root / "Labels" / f).is_file()), None)
    if labels is None:
        raise CorpusError(f"{root / 'Labels'}: no labels_consensus.csv, labels_concensus.csv or labels_consensus.json")
    return audio, labels


def _parse_label(value: str) -> float:
    return float(value) if value.strip() else math.nan


def _mixed_splits(split_values) -> dict[str, list[str]]:
    """canonical split -> the spellings (in SPLITS order) of those canonical splits the file spells several ways."""
    present = {v.lower() for v in split_values}
    mixed = {canon: [r for r in raws if r.lower() in present] for canon, raws in SPLITS.items()}
    return {canon: raws for canon, raws in mixed.items() if len(raws) > 1}


def _split_name(value: str, mixed: dict[str, list[str]]) -> str:
    """The record's split for a Split_Set value: canonical, or the lower-cased spelling where the file mixes
    spellings and this is not the default one. CorpusError when unknown."""
    canon = canonical_split(value)
    key = value.strip().lower()
    if canon in mixed and key in _RAW_TO_CANONICAL and key != SPLITS[canon][0].lower():
        return key
    return canon


def _wanted_split(request: str, mixed: dict[str, list[str]], labels_csv: Path) -> str:
    """The record split a `split=` request selects, given the spellings the file mixes."""
    canon = canonical_split(request)
    if canon not in mixed:
        return canon
    key = request.strip().lower()
    if key in _RAW_TO_CANONICAL:  # names one spelling exactly
        return _split_name(key, mixed)
    raise CorpusError(f"{labels_csv}: split {request!r} is ambiguous: the file holds both "
                      f"{' and '.join(mixed[canon])} rows; ask for {' or '.join(mixed[canon])}")


def _row_numbers(rows: list[int]) -> str:
    nums = [str(n) for n in rows]
    return "rows " + (", ".join(nums[:-1]) + " and " + nums[-1])


def _row_content(row: dict[str, str]) -> dict[str, object]:
    """What two rows of one FileName must share to count as identical (labels compared as numbers)."""
    out: dict[str, object] = {}
    for k, v in row.items():
        if k == "FileName":
            continue
        if k in LABEL_COLUMNS.values():
            try:
                f = float(v)
                v = f if not math.isnan(f) else v
            except ValueError:
                pass
        elif k == "Split_Set":
            v = v.lower()
        out[k] = v
    return out


def _duplicates(utts: list[str], rows: list[dict[str, str]], labels_csv: Path) -> dict[int, str]:
    """Row index -> reason, for every row that must not be used because its FileName repeats."""
    where: dict[str, list[int]] = {}
    for i, utt in enumerate(utts):
        where.setdefault(utt, []).append(i)
    skip = {}
    for idx in where.values():
        if len(idx) < 2:
            continue
        nums = _row_numbers([i + 2 for i in idx])  # header is row 1
        contents = [_row_content(rows[i]) for i in idx]
        differ = [k for k in contents[0] if any(c.get(k) != contents[0][k] for c in contents[1:])]
        if differ:
            why = (f"duplicate FileName with conflicting values: {nums} of {labels_csv.name} differ in "
                   f"{', '.join(differ)}; none is used")
            skip.update({i: why for i in idx})
        else:
            why = f"duplicate FileName: {nums} of {labels_csv.name} are identical; row {idx[0] + 2} is used"
            skip.update({i: why for i in idx[1:]})
    return skip


def read_msp_podcast(root: str | Path, split: str | None = None, *, check_audio: bool = True,
                     require_audio: bool = True) -> Corpus:
    """All rows of the labels CSV (or one split) as records, in CSV order.

    Rows are skipped, with the reason, when: the split value is unknown, a label is missing or outside 1-7
    (except in the unlabelled Test3), the FileName repeats (see the module docstring), or the audio file is
    missing (`check_audio`). `require_audio=False` reads a corpus without its audio folder and checks no
    audio file (features and labels only). `split` takes a canonical name, an alias or a release spelling;
    where the file mixes spellings of a split, only a spelling selects (an alias that fits both raises).
    """
    root = Path(root)
    audio_dir, labels_csv = find_layout(root, require_audio=require_audio)
    if split is not None:
        canonical_split(split)  # an unknown name fails before the file is read
    header, rows = _read_label_rows(labels_csv)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CorpusError(f"{labels_csv}: missing column(s) {', '.join(missing)} (found {', '.join(header)})")
    mixed = _mixed_splits(row["Split_Set"] for row in rows)
    want = _wanted_split(split, mixed, labels_csv) if split is not None else None
    utts = [n[:-4] if n.lower().endswith(".wav") else n for n in (row["FileName"] for row in rows)]
    names: list[str | None] = []
    for row in rows:
        try:
            names.append(_split_name(row["Split_Set"], mixed))
        except CorpusError:
            names.append(None)
    duplicate = _duplicates(utts, rows, labels_csv)
    # a repeated FileName is reported where one of its rows is in the split asked for (or has an unknown split,
    # which is reported whatever the split)
    repeated = {utts[i] for i in duplicate}
    touches = {utt for utt, name in zip(utts, names) if utt in repeated and (want is None or name in (want, None))}
    present = {p.name for p in audio_dir.iterdir()} if check_audio and require_audio else None
    transcripts, aligned = root / "Transcripts", root / "ForceAligned"
    records, skipped = [], []
    for i, row in enumerate(rows):
        utt, name = utts[i], names[i]
        if i in duplicate:
            if utt in touches:
                skipped.append(Skipped(utt, str(labels_csv), duplicate[i]))
            continue
        if name is None:
            skipped.append(Skipped(utt, str(labels_csv), f"unknown split: {row['Split_Set']!r}"))
            continue
        if want is not None and name != want:
            continue
        canon = canonical_split(row["Split_Set"])
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
            utt_id=utt, audio_path=audio_dir / f"{utt}.wav", corpus="MSP-Podcast", split=name,
            speaker=spk if spk and spk.lower() != "unknown" else f"unknown:{utt}",
            labels=labels, category=row.get("EmoClass") or None, gender=row.get("Gender") or None,
            transcript_path=transcripts / f"{utt}.txt", alignment_path=aligned / f"{utt}.TextGrid"))
    return Corpus(name="MSP-Podcast", root=root, records=records, skipped=skipped,
                  classes=tuple(CATEGORIES.values()))


def _read_label_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows as stripped text) of labels_consensus.csv, or of labels_consensus.json (an object keyed by
    FileName, or a list of objects holding FileName)."""
    if path.suffix.lower() != ".json":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            return header, [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    import json
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict):
        data = [{"FileName": k, **v} if isinstance(v, dict) else v for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise CorpusError(f"{path}: expected {{\"<FileName>\": {{\"EmoAct\": ..., ...}}, ...}} or a list of objects")
    header = list(dict.fromkeys(k for d in data for k in d))
    return header, [{k: "" if v is None else str(v).strip() for k, v in d.items()} for d in data]


def read_transcript(record: Utterance) -> str:
    """The plain-text transcript; CorpusError naming the file when it is missing or empty."""
    path = record.transcript_path
    if path is None or not path.is_file():
        raise CorpusError(f"{path}: transcript missing for {record.utt_id}")
    text = read_transcript_file(path)
    if not text:
        raise CorpusError(f"{path}: transcript empty for {record.utt_id}")
    return text

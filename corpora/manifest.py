"""A corpus described by a manifest: one CSV or JSONL file (chosen by extension), one row per utterance.

Columns (CSV header, or the keys of each JSONL object):
  id               required; unique (a repeated id is refused with a CorpusError naming both rows)
  path             required; the audio file, relative to the manifest's folder, or absolute
  start, end       optional, seconds: the utterance is this segment of a longer file (both or neither; end > start)
  split            optional; aliases: train/training -> train, dev/development/valid/validation/val -> dev,
                   test -> test (any case); every other name is kept as given (e.g. test2, fold3)
  speaker          optional; empty -> "unknown:<id>" (one speaker per utterance, as the MSP-Podcast reader does)
  gender           optional
  transcript       optional inline text, or
  transcript_path  optional text file (relative to the manifest's folder); a row may not give both
  textgrid_path    optional forced alignment (Praat TextGrid); Utterance.alignment_path
  mocap_path       optional motion-capture file (IEMOCAP's per-dialog MOCAP text format); Utterance.mocap_path
  arousal, dominance, valence   optional dimensional labels on the declared scale, stored on 1-7
  label            optional categorical label, mapped through the declared class map to Utterance.category

The declaration: a sidecar JSON next to the manifest with the same stem (`corpus.csv` -> `corpus.json`):
  {"name": "MyCorpus",                       optional; default the manifest's stem
   "scale": [1, 5],                          required when any of arousal/dominance/valence is a column
   "classes": {"ang": "ang", "exc": "hap"}}  required when `label` is a column: raw label -> class; a list
                                             ["ang", "hap"] declares the identity map
Corpus.classes lists the map's classes in the order they first appear in it (the categorical systems' class
indices). Dimensional labels are rescaled linearly from [lo, hi] to [1, 7] (the scale the dimensional systems are
trained on): v' = 1 + 6 (v - lo) / (hi - lo). Utterance.labels uses records.ATTRIBUTES (act, dom, val).

A row without any label (every label column empty) is kept unlabelled (e.g. a test split without labels);
a row with some but not all of the dimensional columns filled is skipped. Rows are skipped, with the reason,
when: a required value is empty, start/end are not numbers, only one is given, start < 0 or end <= start,
a label is not a number or lies outside the declared scale, a label is not in the class map, both transcript
and transcript_path are given, or the audio file is missing. A JSONL line that is not a JSON object is skipped
too (named "line N"). The file is refused (CorpusError) when it is missing, has no id/path column, has a
column this reader does not know (a typo such as "valance" would otherwise leave every row unlabelled), declares
no scale/class map for its label columns, declares a bad scale, or repeats an id. Row numbers count as a
spreadsheet shows them: the CSV header is row 1; JSONL lines count from 1.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from corpora.records import Corpus, CorpusError, Skipped, Utterance, decode_utf8

REQUIRED = ("id", "path")
DIMENSIONS = {"arousal": "act", "dominance": "dom", "valence": "val"}  # column -> records.ATTRIBUTES name
OPTIONAL = ("start", "end", "split", "speaker", "gender", "transcript", "transcript_path", "textgrid_path",
            "mocap_path", "label", *DIMENSIONS)
COLUMNS = (*REQUIRED, *OPTIONAL)
TARGET_SCALE = (1.0, 7.0)
SPLIT_ALIASES = {"train": "train", "training": "train",
                 "dev": "dev", "development": "dev", "valid": "dev", "validation": "dev", "val": "dev",
                 "test": "test"}


@dataclass(frozen=True)
class Declaration:
    """The sidecar's content: corpus name, label scale (None: no dimensional labels), class map (None: none)."""

    name: str
    scale: tuple[float, float] | None = None
    classes: dict[str, str] | None = None


def split_name(value: str) -> str:
    """The split a manifest's value names: an alias's canonical name, otherwise the value as given."""
    value = value.strip()
    return SPLIT_ALIASES.get(value.lower(), value)


def rescale(value: float, scale: tuple[float, float]) -> float:
    """`value` on `scale` moved linearly to 1-7."""
    lo, hi = scale
    return TARGET_SCALE[0] + (TARGET_SCALE[1] - TARGET_SCALE[0]) * (value - lo) / (hi - lo)


def parse_scale(value, where: str) -> tuple[float, float]:
    """[lo, hi] as two finite numbers with lo < hi; CorpusError naming `where` otherwise."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or value[0] >= value[1]:
        raise CorpusError(f"{where}: bad scale {value!r}: give two numbers [lo, hi] with lo < hi, e.g. [1, 5]")
    return float(value[0]), float(value[1])


def parse_classes(value, where: str) -> dict[str, str]:
    """A class map {raw: class} (or a list of class names: the identity map); CorpusError otherwise."""
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return {v: v for v in value}
    if isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, str) and v
                                                 for k, v in value.items()):
        return dict(value)
    raise CorpusError(f"{where}: bad class map {value!r}: give {{\"raw label\": \"class\", ...}} or a list of "
                      f"class names")


def read_declaration(manifest: Path) -> Declaration:
    """The sidecar `<stem>.json` beside the manifest (absent: name only)."""
    sidecar = manifest.with_suffix(".json")
    if not sidecar.is_file():
        return Declaration(name=manifest.stem)
    try:
        meta = json.loads(decode_utf8(sidecar.read_bytes(), sidecar))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{sidecar}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CorpusError(f"{sidecar}: expected a JSON object with name, scale and/or classes")
    unknown = sorted(set(meta) - {"name", "scale", "classes"})
    if unknown:
        raise CorpusError(f"{sidecar}: unknown key(s) {', '.join(unknown)} (known: name, scale, classes)")
    return Declaration(name=str(meta.get("name") or manifest.stem),
                       scale=parse_scale(meta["scale"], str(sidecar)) if "scale" in meta else None,
                       classes=parse_classes(meta["classes"], str(sidecar)) if "classes" in meta else None)


def _cell(value) -> str:
    """A CSV cell or JSON value as stripped text (JSON null -> empty, numbers as Python writes them)."""
    return "" if value is None else str(value).strip()


def jsonl_rows(text: str) -> list[tuple[int, dict | str]]:
    """[(line number, the line's JSON object or why it is not one)] of a JSONL text, blank lines left out (the
    manifest reader's and the EmoBox reader's one parser)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            out.append((number, f"not valid JSON ({e.msg})"))
            continue
        out.append((number, obj if isinstance(obj, dict) else "not a JSON object"))
    return out


def _read_rows(manifest: Path) -> tuple[list[str], list[tuple[int, dict[str, str] | str]]]:
    """(columns, [(row number, row or the reason it cannot be read)]) of a CSV or JSONL manifest."""
    text = decode_utf8(manifest.read_bytes(), manifest).lstrip("\ufeff")
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = [h.strip() for h in (reader.fieldnames or [])]
        rows = [(reader.line_num, {k.strip(): _cell(v) for k, v in row.items() if k is not None})
                for row in reader]
        return columns, rows
    if suffix == ".jsonl":
        columns: list[str] = []
        rows = []
        for number, obj in jsonl_rows(text):
            if isinstance(obj, dict):
                columns += [k for k in obj if k not in columns]
                obj = {k: _cell(v) for k, v in obj.items()}
            rows.append((number, obj))
        return columns, rows
    raise CorpusError(f"{manifest}: a manifest is a .csv or .jsonl file")


def _check_columns(manifest: Path, columns: list[str], decl: Declaration) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CorpusError(f"{manifest}: missing column(s) {', '.join(missing)} (found {', '.join(columns)})")
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise CorpusError(f"{manifest}: unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
    sidecar = manifest.with_suffix(".json")
    if any(c in DIMENSIONS for c in columns) and decl.scale is None:
        raise CorpusError(f"{manifest}: dimensional label columns need a declared scale: write "
                          f"{{\"scale\": [lo, hi]}} into {sidecar}")
    if "label" in columns and decl.classes is None:
        raise CorpusError(f"{manifest}: a label column needs a declared class map: write "
                          f"{{\"classes\": {{\"raw\": \"class\", ...}}}} into {sidecar}")


def refuse_duplicates(source: Path, ids: list[tuple[str, str]]) -> None:
    """CorpusError naming both places of the first id that repeats. `ids`: (place, e.g. "row 3", id)."""
    first: dict[str, str] = {}
    for where, utt in ids:
        if utt in first:
            raise CorpusError(f"{source}: duplicate id {utt!r} in {first[utt]} and {where}")
        first[utt] = where


def _number(value: str) -> float | None:
    """float(value), None when empty; ValueError when not a finite number."""
    if not value:
        return None
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(value)
    return x


def parse_segment(row: dict[str, str]) -> tuple[float | None, float | None] | str:
    """(start, end) of the row (None, None: the whole file), or the reason they cannot be used."""
    try:
        start, end = _number(row.get("start", "")), _number(row.get("end", ""))
    except ValueError:
        return f"start/end not a number: start={row.get('start', '')!r}, end={row.get('end', '')!r}"
    if (start is None) != (end is None):
        return "segment needs both start and end"
    if start is not None and (start < 0 or end <= start):
        return f"bad segment: start={start:g}, end={end:g} (need 0 <= start < end)"
    return start, end


def _labels(row: dict[str, str], columns: list[str], decl: Declaration) -> tuple[dict[str, float], str | None] | str:
    """(labels on 1-7, category) of the row, or the reason it cannot be used."""
    dims = [c for c in DIMENSIONS if c in columns]
    given = [c for c in dims if row.get(c, "")]
    labels: dict[str, float] = {}
    if given and len(given) < len(dims):
        return "missing label: " + ", ".join(c for c in dims if c not in given)
    for c in given:
        try:
            v = _number(row[c])
        except ValueError:
            return f"label not a number: {c}={row[c]!r}"
        lo, hi = decl.scale
        if not lo <= v <= hi:
            return f"label outside the declared scale {lo:g}-{hi:g}: {c}={v:g}"
        labels[DIMENSIONS[c]] = rescale(v, decl.scale)
    raw = row.get("label", "")
    if raw and raw not in decl.classes:
        return f"unknown class: {raw!r} (declared: {', '.join(sorted(decl.classes))})"
    return labels, (decl.classes[raw] if raw else None)


def _relative(base: Path, value: str) -> Path | None:
    return (base / value) if value else None  # an absolute value stays absolute (pathlib drops base)


def _record(row: dict[str, str], columns: list[str], decl: Declaration, base: Path) -> Utterance | str:
    """The row as an Utterance, or the reason it is skipped (the audio file is checked by the caller)."""
    empty = [c for c in REQUIRED if not row.get(c, "")]
    if empty:
        return f"missing required value: {', '.join(empty)}"
    segment = parse_segment(row)
    if isinstance(segment, str):
        return segment
    labelled = _labels(row, columns, decl)
    if isinstance(labelled, str):
        return labelled
    if row.get("transcript", "") and row.get("transcript_path", ""):
        return "both transcript and transcript_path given"
    utt, speaker = row["id"], row.get("speaker", "")
    return Utterance(
        utt_id=utt, audio_path=base / row["path"], speaker=speaker or f"unknown:{utt}", corpus=decl.name,
        split=split_name(row["split"]) if row.get("split", "") else None, labels=labelled[0],
        category=labelled[1], gender=row.get("gender") or None, transcript=row.get("transcript") or None,
        transcript_path=_relative(base, row.get("transcript_path", "")),
        alignment_path=_relative(base, row.get("textgrid_path", "")), start=segment[0], end=segment[1],
        segment=None if segment[0] is None else (segment[0], segment[1]),
        mocap_path=_relative(base, row.get("mocap_path", "")))


def read_manifest(path: str | Path, *, split: str | None = None, check_audio: bool = True) -> Corpus:
    """Every row of the manifest (or of one split: `split` takes the aliases of SPLIT_ALIASES) as records, in
    file order, with every row left out listed in `skipped`. See the module docstring for the format."""
    manifest = Path(path)
    if not manifest.is_file():
        raise CorpusError(f"{manifest}: manifest file not found")
    decl = read_declaration(manifest)
    columns, rows = _read_rows(manifest)
    _check_columns(manifest, columns, decl)
    readable = [(n, row) for n, row in rows if isinstance(row, dict)]
    unit = "line" if manifest.suffix.lower() == ".jsonl" else "row"
    refuse_duplicates(manifest, [(f"{unit} {n}", row["id"]) for n, row in readable if row.get("id", "")])
    want = split_name(split) if split is not None else None
    if want is not None:
        present = sorted({split_name(row["split"]) for _, row in readable if row.get("split", "")})
        if want not in present:
            raise CorpusError(f"{manifest}: no split {split!r} (splits: {', '.join(present) or 'none'})")
    base = manifest.parent
    records, skipped = [], []
    for number, row in rows:
        if isinstance(row, str):
            skipped.append(Skipped(f"line {number}", str(manifest), row))
            continue
        if want is not None and split_name(row.get("split", "")) != want:
            continue
        rec = _record(row, columns, decl, base)
        if isinstance(rec, str):
            at = f"{unit} {number}"
            where = f"{rec} ({at})" if ":" in rec else f"{rec}: {at}"  # report() groups reasons by their head
            skipped.append(Skipped(row.get("id") or f"row {number}", str(manifest), where))
            continue
        if check_audio and not rec.audio_path.is_file():
            skipped.append(Skipped(rec.utt_id, str(rec.audio_path), "audio file missing"))
            continue
        records.append(rec)
    classes = tuple(dict.fromkeys(decl.classes.values())) if decl.classes else ()
    return Corpus(name=decl.name, root=manifest, records=records, skipped=skipped, classes=classes)

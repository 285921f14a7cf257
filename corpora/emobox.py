"""EmoBox's data preparation (Ma et al., Interspeech 2024), read directly.

Layout (verified against the emo-box/EmoBox repository: README.md "Prepare datasets" / "Metadata", the files
under data/<corpus>/ and EmoBox/EmoDataset.py):

  <EmoBox>/data/<corpus>/<corpus>.jsonl                             every utterance of the corpus
  <EmoBox>/data/<corpus>/label_map.json                             raw "emo" value -> class (merges, e.g. exc->hap)
  <EmoBox>/data/<corpus>/fold_<N>/<corpus>_train_fold_<N>.jsonl     the fold's training part
  <EmoBox>/data/<corpus>/fold_<N>/<corpus>_test_fold_<N>.jsonl      the fold's test part
  <EmoBox>/data/<corpus>/fold_<N>/<corpus>_valid_fold_<N>.jsonl     official validation part (few corpora)
  <EmoBox>/downloads/<corpus>/...                                   the audio, where "wav" points

One JSON object per line, e.g. (data/aesdd/fold_1/aesdd_test_fold_1.jsonl):
  {"key": "aesdd-a06-5b", "dataset": "aesdd", "wav": "downloads/aesdd/anger/a06 (5)b.wav", "type": "raw",
   "sample_rate": 44100, "num_frame": 237054.0, "task": "category", "length": 5.375, "emo": "a", "channel": 1}
and label_map.json is {"a": "Angry", "h": "Happy", ...}. "wav" is relative to the EmoBox folder (the user's
data dir, the parent of data/ and downloads/). EmoDataset.read_wav also reads optional "start_time" and
"end_time" (seconds, a segment of a longer file): they become Utterance.start / end.

How rows become records: `key` -> utt_id (a repeated key is refused), `wav` -> audio_path, label_map[`emo`]
-> category (an `emo` the map lacks is skipped as "unknown class"), fold file -> split (train, test, dev for
the valid file), `dataset` -> Utterance.corpus. Rows are also skipped, with the reason, for a missing key/wav/
emo, a `type` other than "raw" (precomputed features, which our extractors cannot use), a bad segment, or a
missing audio file.

Not verified (no example found): the rows carry no speaker field, so every utterance is its own speaker
("unknown:<key>"; EmoBox's folds are already speaker-independent where the corpus allows); the "task" values
"valence"/"arousal" that the README's comment names appear in no file found, so a row whose task is not
"category" is skipped with the reason rather than guessed at; EmoDataset's code spells the fold folder
"fold<N>" while every stored folder is "fold_<N>": both spellings are accepted.
"""
from __future__ import annotations

import json
from pathlib import Path

from corpora.manifest import jsonl_rows, parse_classes, parse_segment, refuse_duplicates
from corpora.records import Corpus, CorpusError, Skipped, Utterance, decode_utf8

PARTS = {"train": "train", "valid": "dev", "test": "test"}  # fold file part -> split name


def find_fold_files(folder: Path, fold: int) -> dict[str, Path]:
    """split -> fold file of `fold` (train and test required, valid optional); CorpusError otherwise."""
    corpus = folder.name
    fold_dir = next((folder / d for d in (f"fold_{fold}", f"fold{fold}") if (folder / d).is_dir()), None)
    if fold_dir is None:
        folds = sorted(p.name for p in folder.glob("fold*") if p.is_dir())
        raise CorpusError(f"{folder}: no fold {fold} (folds: {', '.join(folds) or 'none'})")
    files = {split: fold_dir / f"{corpus}_{part}_fold_{fold}.jsonl" for part, split in PARTS.items()}
    missing = [str(files[s]) for s in ("train", "test") if not files[s].is_file()]
    if missing:
        raise CorpusError(f"{', '.join(missing)}: fold file missing")
    return {s: p for s, p in files.items() if p.is_file()}


def read_label_map(folder: Path) -> dict[str, str]:
    path = folder / "label_map.json"
    if not path.is_file():
        raise CorpusError(f"{path}: label_map.json missing")
    try:
        return parse_classes(json.loads(decode_utf8(path.read_bytes(), path)), str(path))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}: not valid JSON ({e})") from None


def _row(obj: dict, label_map: dict[str, str], base: Path, split: str | None) -> Utterance | str:
    """The JSONL object as an Utterance, or the reason it is skipped (audio checked by the caller)."""
    empty = [k for k in ("key", "wav", "emo") if obj.get(k) in (None, "")]
    if empty:
        return f"missing value: {', '.join(empty)}"
    if obj.get("type", "raw") != "raw":
        return f"not raw audio: type={obj['type']!r}"
    if obj.get("task", "category") != "category":
        return f"not a categorical row: task={obj['task']!r}"
    emo = str(obj["emo"])
    if emo not in label_map:
        return f"unknown class: {emo!r} (label_map.json has {', '.join(sorted(label_map))})"
    times = {"start": obj.get("start_time"), "end": obj.get("end_time")}
    segment = parse_segment({k: "" if v is None else str(v) for k, v in times.items()})
    if isinstance(segment, str):
        return segment
    key = str(obj["key"])
    return Utterance(utt_id=key, audio_path=base / str(obj["wav"]), speaker=f"unknown:{key}",
                     corpus=str(obj.get("dataset") or "EmoBox"), split=split, category=label_map[emo],
                     start=segment[0], end=segment[1],
                     segment=None if segment[0] is None else (segment[0], segment[1]))


def _read_jsonl(path: Path) -> list[tuple[int, dict | str]]:
    return jsonl_rows(decode_utf8(path.read_bytes(), path))


def read_emobox(folder: str | Path, *, fold: int | None = None, split: str | None = None,
                data_dir: str | Path | None = None, check_audio: bool = True) -> Corpus:
    """The records of EmoBox's `data/<corpus>` folder: the whole `<corpus>.jsonl` (splits None), or with `fold`
    the fold files (splits train, test and, where the fold has an official one, dev). `split` (with `fold`
    only) keeps one of them (train, dev/valid, test). `data_dir`: where "wav" paths start (default: the
    folder two up, the EmoBox checkout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: EmoBox corpus folder not found (expected <EmoBox>/data/<corpus>)")
    if split is not None and fold is None:
        raise CorpusError(f"{folder}: EmoBox splits are per fold: give fold= with split=")
    label_map = read_label_map(folder)
    base = Path(data_dir) if data_dir is not None else folder.parent.parent
    if fold is None:
        whole = folder / f"{folder.name}.jsonl"
        if not whole.is_file():
            raise CorpusError(f"{whole}: corpus file missing")
        sources = {None: whole}
    else:
        sources = find_fold_files(folder, fold)
        if split is not None:
            want = {"valid": "dev", "validation": "dev"}.get(split.strip().lower(), split.strip().lower())
            if want not in sources:
                raise CorpusError(f"{folder}: fold {fold} has no {split!r} part (parts: {', '.join(sources)})")
            sources = {want: sources[want]}
    records, skipped, keys = [], [], []
    for split_name, path in sources.items():
        rows = _read_jsonl(path)
        keys += [(f"{path.name} line {n}", str(o["key"])) for n, o in rows if isinstance(o, dict) and o.get("key")]
        for number, obj in rows:
            rec = obj if isinstance(obj, str) else _row(obj, label_map, base, split_name)
            if isinstance(rec, str):
                utt = str(obj.get("key")) if isinstance(obj, dict) and obj.get("key") else f"line {number}"
                skipped.append(Skipped(utt, str(path), f"{rec} (line {number})" if ":" in rec
                                       else f"{rec}: line {number}"))
            elif check_audio and not rec.audio_path.is_file():
                skipped.append(Skipped(rec.utt_id, str(rec.audio_path), "audio file missing"))
            else:
                records.append(rec)
    refuse_duplicates(folder, keys)
    return Corpus(name=f"EmoBox {folder.name}" + (f" fold {fold}" if fold is not None else ""), root=folder,
                  records=records, skipped=skipped, classes=tuple(dict.fromkeys(label_map.values())))

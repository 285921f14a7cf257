"""The manifest corpus reader (corpora/manifest.py) and EmoBox's format (corpora/emobox.py)."""
import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from corpora import CorpusError, class_labels, read_corpus
from corpora.emobox import read_emobox
from corpora.manifest import read_manifest, rescale
from features.audio import write_wav

HEADER = ["id", "path", "start", "end", "split", "speaker", "transcript", "transcript_path", "textgrid_path",
          "mocap_path", "arousal", "dominance", "valence", "label"]


def wav(path: Path, seconds: float = 0.2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, np.zeros(int(16000 * seconds), dtype=np.float32))


def write_csv(path: Path, rows: list[dict], header=HEADER) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())
    return path


def declare(manifest: Path, **meta) -> None:
    manifest.with_suffix(".json").write_text(json.dumps(meta))


@pytest.fixture
def corpus_dir(tmp_path):
    wav(tmp_path / "audio" / "a.wav")
    wav(tmp_path / "audio" / "long.wav", 2.0)
    return tmp_path


def good_rows(absolute: Path) -> list[dict]:
    return [
        dict(id="u1", path="audio/a.wav", split="Training", speaker="s1", arousal="1", dominance="3",
             valence="5", label="exc", transcript="hello there"),
        dict(id="u2", path="audio/long.wav", start="0.5", end="1.25", split="valid", speaker="s2",
             arousal="5", dominance="2", valence="4", label="ang", transcript_path="text/u2.txt",
             textgrid_path="align/u2.TextGrid", mocap_path="mocap/u2.txt"),
        dict(id="u3", path=str(absolute), split="test"),  # absolute path; a test split without labels
        dict(id="u4", path="audio/a.wav", split="fold7", arousal="2", dominance="2", valence="2"),
    ]


def test_csv_rows_of_every_kind(corpus_dir):
    m = write_csv(corpus_dir / "corpus.csv", good_rows(corpus_dir / "audio" / "long.wav"))
    declare(m, name="Mine", scale=[1, 5], classes={"ang": "ang", "exc": "hap", "hap": "hap"})
    c = read_manifest(m)
    assert c.skipped == [] and c.name == "Mine" and [r.utt_id for r in c.records] == ["u1", "u2", "u3", "u4"]
    u1, u2, u3, u4 = c.records
    assert u1.labels == {"act": 1.0, "dom": 4.0, "val": 7.0} and u1.category == "hap" and u1.split == "train"
    assert u1.transcript == "hello there" and u1.transcript_path is None and (u1.start, u1.end) == (None, None)
    assert u1.audio_path == corpus_dir / "audio" / "a.wav" and u1.corpus == "Mine"
    assert (u2.start, u2.end) == (0.5, 1.25) and u2.split == "dev" and u2.category == "ang"
    assert u2.transcript_path == corpus_dir / "text" / "u2.txt"
    assert u2.alignment_path == corpus_dir / "align" / "u2.TextGrid"
    assert u2.mocap_path == corpus_dir / "mocap" / "u2.txt" and u1.mocap_path is None
    assert u2.segment == (0.5, 1.25) and u1.segment is None
    assert c.classes == ("ang", "hap")  # the map's classes in declared order: the categorical systems' indices
    assert u3.audio_path == corpus_dir / "audio" / "long.wav" and u3.labels == {} and u3.category is None
    assert u3.speaker == "unknown:u3" and u3.split == "test"
    assert u4.split == "fold7" and u4.labels == {a: pytest.approx(2.5) for a in ("act", "dom", "val")}
    assert [r.utt_id for r in read_manifest(m, split="validation").records] == ["u2"]
    assert [r.utt_id for r in read_corpus("manifest", m, split="train").records] == ["u1"]
    with pytest.raises(CorpusError, match="no split 'test2'.*dev, fold7, test, train"):
        read_manifest(m, split="test2")


def test_jsonl_equals_csv_and_missing_optional_columns(corpus_dir):
    rows = good_rows(corpus_dir / "audio" / "long.wav")
    csv_m = write_csv(corpus_dir / "c.csv", rows)
    jsonl_m = corpus_dir / "j.jsonl"
    # JSONL rows name only the keys they have, numbers as JSON numbers
    jsonl_m.write_text("\n".join(json.dumps({k: (float(v) if k in ("start", "end", "arousal", "dominance",
                                                                      "valence") else v) for k, v in r.items()})
                                 for r in rows) + "\n\n")
    for m in (csv_m, jsonl_m):
        declare(m, scale=[1, 5], classes=["ang", "exc"])
    a, b = read_manifest(csv_m), read_manifest(jsonl_m)
    assert b.skipped == [] and a.records == [replace(r, corpus="c") for r in b.records]
    minimal = write_csv(corpus_dir / "min.csv", [dict(id="x", path="audio/a.wav")], header=["id", "path"])
    (x,) = read_manifest(minimal).records  # no sidecar needed without label columns
    assert x.split is None and x.labels == {} and x.category is None and x.speaker == "unknown:x"


@pytest.mark.parametrize("row, reason", [
    (dict(id="b", path="audio/a.wav", start="1.0", end="0.5"), "bad segment: start=1, end=0.5"),
    (dict(id="b", path="audio/a.wav", start="0.5"), "segment needs both start and end"),
    (dict(id="b", path="audio/a.wav", start="x", end="1"), "start/end not a number"),
    (dict(id="b", path="audio/a.wav", arousal="6", dominance="1", valence="1"),
     "label outside the declared scale 1-5: arousal=6"),
    (dict(id="b", path="audio/a.wav", arousal="2", valence="1"), "missing label: dominance"),
    (dict(id="b", path="audio/a.wav", arousal="2", dominance="nan?", valence="1"), "label not a number"),
    (dict(id="b", path="audio/a.wav", label="sur"), "unknown class: 'sur'"),
    (dict(id="b", path=""), "missing required value: path"),
    (dict(id="b", path="audio/a.wav", transcript="t", transcript_path="t.txt"), "both transcript and"),
    (dict(id="b", path="audio/missing.wav"), "audio file missing"),
])
def test_bad_rows_are_listed_and_the_rest_read(corpus_dir, row, reason):
    m = write_csv(corpus_dir / "bad.csv", [dict(id="ok", path="audio/a.wav"), row])
    declare(m, scale=[1, 5], classes=["ang"])
    c = read_manifest(m)
    assert [r.utt_id for r in c.records] == ["ok"]
    (s,) = c.skipped
    assert s.utt_id == "b" and reason in s.reason
    if reason == "audio file missing":
        assert s.file == str(corpus_dir / "audio" / "missing.wav")
    else:
        assert s.file == str(m) and "row 3" in s.reason


def test_refused_files(corpus_dir):
    rows = [dict(id="a", path="audio/a.wav", arousal="1", dominance="1", valence="1")]
    m = write_csv(corpus_dir / "r.csv", rows)
    with pytest.raises(CorpusError, match=r"declared scale.*r\.json"):
        read_manifest(m)
    for scale in ([5, 1], [1], "1-5", [1, float("inf")]):
        declare(m, scale=scale)
        with pytest.raises(CorpusError, match="bad scale"):
            read_manifest(m)
    declare(m, scale=[1, 5], scael=[1, 5])
    with pytest.raises(CorpusError, match="unknown key.*scael"):
        read_manifest(m)
    labelled = write_csv(corpus_dir / "l.csv", [dict(id="a", path="audio/a.wav", label="ang")],
                         header=["id", "path", "label"])
    with pytest.raises(CorpusError, match="class map"):
        read_manifest(labelled)
    dup = write_csv(corpus_dir / "d.csv", [dict(id="a", path="audio/a.wav"), dict(id="z", path="audio/a.wav"),
                                           dict(id="a", path="audio/long.wav")], header=["id", "path"])
    with pytest.raises(CorpusError, match=r"d\.csv: duplicate id 'a' in row 2 and row 4"):
        read_manifest(dup)
    typo = write_csv(corpus_dir / "t.csv", [dict(id="a", path="audio/a.wav", valance="3")],
                     header=["id", "path", "valance"])
    with pytest.raises(CorpusError, match="unknown column.*valance"):
        read_manifest(typo)
    with pytest.raises(CorpusError, match="missing column.*path"):
        read_manifest(write_csv(corpus_dir / "n.csv", [dict(id="a")], header=["id"]))
    with pytest.raises(CorpusError, match=r"\.csv or \.jsonl"):
        read_manifest(write_csv(corpus_dir / "n.tsv", [dict(id="a", path="p")], header=["id", "path"]))
    with pytest.raises(CorpusError, match="manifest file not found"):
        read_manifest(corpus_dir / "absent.csv")


def test_jsonl_bad_lines_are_listed(corpus_dir):
    m = corpus_dir / "j.jsonl"
    m.write_text('{"id": "a", "path": "audio/a.wav"}\n{not json\n[1, 2]\n{"id": "a2", "path": "audio/a.wav"}\n')
    c = read_manifest(m)
    assert [r.utt_id for r in c.records] == ["a", "a2"]
    assert [(s.utt_id, s.reason.split(" (")[0]) for s in c.skipped] == [("line 2", "not valid JSON"),
                                                                        ("line 3", "not a JSON object")]
    m.write_text('{"id": "a", "path": "audio/a.wav"}\n{"id": "a", "path": "audio/long.wav"}\n')
    with pytest.raises(CorpusError, match="duplicate id 'a' in line 1 and line 2"):
        read_manifest(m)


def test_rescale_is_linear_onto_1_to_7():
    assert [rescale(v, (1, 5)) for v in (1, 3, 5)] == [1.0, 4.0, 7.0]
    assert rescale(0.5, (0, 1)) == 4.0 and rescale(-1, (-1, 1)) == 1.0


# ---------------------------------------------------------------------------------------------- EmoBox
def emobox_row(key: str, emo: str, **extra) -> dict:
    """One row as EmoBox's data/<corpus>/*.jsonl files write it (fields as in data/aesdd/*.jsonl)."""
    return {"key": key, "dataset": "toy", "wav": f"downloads/toy/{key}.wav", "type": "raw", "sample_rate": 16000,
            "num_frame": 3200.0, "task": "category", "length": 0.2, "emo": emo, "channel": 1, **extra}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def emobox(tmp_path):
    """<EmoBox>/data/toy with the corpus file, label_map.json and two folds (fold 2 with an official valid)."""
    folder = tmp_path / "data" / "toy"
    rows = [emobox_row("k1", "a"), emobox_row("k2", "h"), emobox_row("k3", "e"),
            emobox_row("k4", "s", start_time=0.05, end_time=0.15), emobox_row("k5", "x")]
    for r in rows[:4]:
        wav(tmp_path / r["wav"])
    write_jsonl(folder / "toy.jsonl", rows)
    (folder / "label_map.json").write_text(json.dumps({"a": "Angry", "h": "Happy", "e": "Happy", "s": "Sad"}))
    write_jsonl(folder / "fold_1" / "toy_train_fold_1.jsonl", rows[:3])
    write_jsonl(folder / "fold_1" / "toy_test_fold_1.jsonl", rows[3:])
    write_jsonl(folder / "fold_2" / "toy_train_fold_2.jsonl", rows[2:4])
    write_jsonl(folder / "fold_2" / "toy_valid_fold_2.jsonl", rows[1:2])
    write_jsonl(folder / "fold_2" / "toy_test_fold_2.jsonl", rows[:1])
    return folder


def test_emobox_corpus_file_and_label_map(emobox):
    c = read_corpus("emobox", emobox)
    assert [(r.utt_id, r.category, r.split) for r in c.records] == [
        ("k1", "Angry", None), ("k2", "Happy", None), ("k3", "Happy", None), ("k4", "Sad", None)]
    k4 = c.records[3]
    assert (k4.start, k4.end) == (0.05, 0.15) and k4.corpus == "toy" and k4.speaker == "unknown:k4"
    assert k4.segment == (0.05, 0.15)  # what the extractors read of k4.wav
    classes, pairs, _ = class_labels(c, "emobox")  # label_map.json's classes, merges (e -> Happy) once, in order
    assert classes == ("Angry", "Happy", "Sad") and [y for _, y in pairs] == [0, 1, 1, 2]
    assert k4.audio_path == emobox.parent.parent / "downloads" / "toy" / "k4.wav"
    (s,) = c.skipped
    assert s.utt_id == "k5" and s.reason.startswith("unknown class: 'x'") and "line 5" in s.reason


def test_emobox_folds(emobox):
    f1 = read_emobox(emobox, fold=1)
    assert [(r.utt_id, r.split) for r in f1.records] == [("k1", "train"), ("k2", "train"), ("k3", "train"),
                                                          ("k4", "test")]
    assert [s.utt_id for s in f1.skipped] == ["k5"]
    f2 = read_corpus("emobox", emobox, fold=2)
    assert sorted((r.utt_id, r.split) for r in f2.records) == [("k1", "test"), ("k2", "dev"), ("k3", "train"),
                                                                ("k4", "train")]
    assert [r.utt_id for r in read_emobox(emobox, fold=2, split="valid").records] == ["k2"]
    with pytest.raises(CorpusError, match="no 'valid' part"):
        read_emobox(emobox, fold=1, split="valid")
    with pytest.raises(CorpusError, match="no fold 3.*fold_1, fold_2"):
        read_emobox(emobox, fold=3)
    with pytest.raises(CorpusError, match="per fold"):
        read_emobox(emobox, split="train")


def test_emobox_bad_rows_and_refusals(emobox):
    (emobox.parent.parent / "downloads" / "toy" / "k2.wav").unlink()
    write_jsonl(emobox / "fold_1" / "toy_test_fold_1.jsonl",
                [emobox_row("k4", "s", type="feature"), emobox_row("k6", "a", start_time=1.0, end_time=0.5),
                 {"key": "k7", "wav": "downloads/toy/k1.wav"}])
    c = read_emobox(emobox, fold=1)
    assert [r.utt_id for r in c.records] == ["k1", "k3"]
    assert [(s.utt_id, s.reason.split(":")[0]) for s in c.skipped] == [
        ("k2", "audio file missing"), ("k4", "not raw audio"), ("k6", "bad segment"), ("k7", "missing value")]
    write_jsonl(emobox / "fold_1" / "toy_test_fold_1.jsonl", [emobox_row("k1", "a")])
    with pytest.raises(CorpusError, match="duplicate id 'k1' in toy_train_fold_1.jsonl line 1 and "
                                          "toy_test_fold_1.jsonl line 1"):
        read_emobox(emobox, fold=1)
    (emobox / "label_map.json").unlink()
    with pytest.raises(CorpusError, match="label_map.json missing"):
        read_emobox(emobox)

"""corpus_info.py: per-split counts and labels, speaker overlap, duration percentiles, coverage, JSON output."""
import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import corpus_info
from corpora import read_corpus
from corpora.records import Corpus, Utterance


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory):
    from corpora.synth.iemocap import write_iemocap
    root = tmp_path_factory.mktemp("iem") / "IEMOCAP_full_release"
    write_iemocap(root, n=20, seed=1, progress=False)
    return root


def _run(argv, capsys) -> tuple[str, dict]:
    """(what corpus_info printed, the JSON it wrote); argv gets --json and --no-progress added."""
    out_json = Path(argv[argv.index("--root") + 1]).parent / "info.json"
    assert corpus_info.main([*map(str, argv), "--json", str(out_json), "--no-progress"]) == 0
    return capsys.readouterr().out, json.loads(out_json.read_text())


def _rewrite_labels(root: Path, edit) -> None:
    path = root / "Labels" / "labels_consensus.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_msp_podcast_splits_durations_coverage_and_json(msp_corpus, tmp_path, capsys):
    root = shutil.copytree(msp_corpus, tmp_path / "msp")
    recs = read_corpus("msp-podcast", root).records
    gone_text, gone_grid = recs[0], recs[1]  # one transcript and one TextGrid removed
    gone_text.transcript_path.unlink()
    gone_grid.alignment_path.unlink()
    printed, info = _run(["--corpus", "msp-podcast", "--root", root], capsys)

    per_split = Counter(r.split for r in recs)
    assert {g: v["utterances"] for g, v in info["groups"].items()} == per_split and info["grouped_by"] == "split"
    for split, group in info["groups"].items():
        mine = [r for r in recs if r.split == split]
        assert group["speakers"] == len({r.speaker for r in mine})
        assert group["classes"] == dict(Counter(r.category for r in mine if r.category))
        act = np.array([r.labels["act"] for r in mine])
        assert group["labels"]["act"] == pytest.approx({"n": len(mine), "mean": act.mean(), "std": act.std(),
                                                        "min": act.min(), "max": act.max()})
        assert f"    {split}: {len(mine)} utterances, {group['speakers']} speakers" in printed
    # percentiles of the durations, from the samples themselves (the script reads headers only)
    seconds = [len(sf.read(str(r.audio_path))[0]) / sf.info(str(r.audio_path)).samplerate for r in recs]
    d = info["durations"]
    assert d["timed"] == len(recs) and d["unreadable"] == [] and d["total_s"] == pytest.approx(sum(seconds))
    assert [d["p5"], d["p50"], d["p95"]] == pytest.approx(list(np.percentile(seconds, [5, 50, 95])))
    assert f"5% {d['p5']:.2f} s, 50% {d['p50']:.2f} s, 95% {d['p95']:.2f} s" in printed
    n = len(recs)
    assert info["coverage"] == {"transcript": n - 1, "textgrid": n - 1, "mocap": 0}
    assert f"transcript {n - 1}/{n} ({100 * (n - 1) / n:.1f}%)" in printed
    assert "splits: dev:" in printed and "WARNING" not in printed and info["speaker_overlap"] == []


def test_shared_speakers_between_splits_are_warned_about(msp_corpus, tmp_path, capsys):
    root = shutil.copytree(msp_corpus, tmp_path / "msp")

    def move_a_train_speaker_into_dev(rows):
        col, spk = rows[0].index("Split_Set"), rows[0].index("SpkrID")
        train_speaker = next(r[spk] for r in rows[1:] if r[col] == "Train")
        first_dev = next(r for r in rows[1:] if r[col] == "Development")
        first_dev[spk] = train_speaker
    _rewrite_labels(root, move_a_train_speaker_into_dev)
    printed, info = _run(["--corpus", "msp-podcast", "--root", root], capsys)
    assert len(info["speaker_overlap"]) == 1
    overlap = info["speaker_overlap"][0]
    assert overlap["splits"] == ["dev", "train"] and overlap["speakers"] == 1
    assert f"WARNING: dev and train share 1 speaker(s): {overlap['names'][0]}" in printed


def test_unknown_speakers_never_overlap():
    recs = [Utterance(utt_id=u, audio_path=Path("x.wav"), speaker=f"unknown:{u}", corpus="c", split=s)
            for u, s in (("a", "train"), ("b", "test"))]
    recs.append(Utterance(utt_id="c", audio_path=Path("x.wav"), speaker="7", corpus="c", split="train"))
    groups = {"train": [recs[0], recs[2]], "test": [recs[1]]}
    assert corpus_info.speaker_overlap(groups) == []
    assert corpus_info.group_summary(groups["train"])["speakers"] == 1
    assert corpus_info.group_summary(groups["train"])["unknown_speaker_utterances"] == 1


def test_segments_use_end_minus_start_and_unreadable_headers_are_named(tmp_path):
    from features.audio import write_wav
    write_wav(tmp_path / "one.wav", np.zeros(8000, np.float32))  # 0.5 s at 16 kHz
    (tmp_path / "bad.wav").write_bytes(b"not a wav at all")
    recs = [Utterance(utt_id="seg", audio_path=tmp_path / "absent_long_file.wav", speaker="s", corpus="c",
                      start=1.0, end=3.5),  # a segment: never opened
            Utterance(utt_id="one", audio_path=tmp_path / "one.wav", speaker="s", corpus="c"),
            Utterance(utt_id="bad", audio_path=tmp_path / "bad.wav", speaker="s", corpus="c")]
    d = corpus_info.durations(recs)
    assert d["timed"] == 2 and d["total_s"] == pytest.approx(3.0)
    assert [d["p5"], d["p50"], d["p95"]] == pytest.approx(list(np.percentile([2.5, 0.5], [5, 50, 95])))
    assert [u["utterance"] for u in d["unreadable"]] == ["bad"] and d["unreadable"][0]["file"].endswith("bad.wav")
    info = corpus_info.summary(Corpus(name="c", root=tmp_path, records=recs))
    assert info["grouped_by"] == "none" and info["groups"]["all"]["utterances"] == 3
    assert info["coverage"] == {"transcript": 0, "textgrid": 0, "mocap": 0}


def test_iemocap_sessions_segments_and_mocap(iemocap_root, capsys):
    printed, info = _run(["--corpus", "iemocap", "--root", iemocap_root], capsys)
    recs = read_corpus("iemocap", iemocap_root).records
    assert info["grouped_by"] == "session"
    assert {g: v["utterances"] for g, v in info["groups"].items()} == Counter(f"Session{r.session}" for r in recs)
    assert info["speaker_overlap"] == [] and "WARNING" not in printed
    seconds = [r.end - r.start for r in recs]
    assert info["durations"]["p50"] == pytest.approx(np.percentile(seconds, 50))
    n = len(recs)
    assert info["coverage"]["transcript"] == n and info["coverage"]["mocap"] == n
    assert "per session:" in printed and "4-class (mdre):" in printed


def test_json_target_is_checked_before_reading(msp_corpus, tmp_path, capsys):
    target = tmp_path / "file_not_dir"
    target.write_text("")
    assert corpus_info.main(["--corpus", "msp-podcast", "--root", str(msp_corpus),
                             "--json", str(target / "info.json")]) == 1
    assert capsys.readouterr().err.startswith(f"error: {target}")
    assert corpus_info.main(["--corpus", "nope", "--root", str(msp_corpus)]) == 1
    assert "unknown corpus kind 'nope'" in capsys.readouterr().err

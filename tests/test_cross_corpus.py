"""Cross-corpus testing: an MSP-Podcast-trained dimensional model scored on IEMOCAP's labels, rescaled from
IEMOCAP's 1-5 to MSP-Podcast's 1-7 (corpora.iemocap.msp_scale, --corpus iemocap of the testing scripts)."""
import csv
import json
import re

import numpy as np
import pytest

from corpora.iemocap import iemocap_split, msp_scale, read_iemocap, split_sessions
from corpora.records import CorpusError

RUN = "LSTM_iter2_batch4_ChunkSeq2One_NonAtten_Act"


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    """A 10-utterance demo IEMOCAP (two per session) with its IS13 LLD store at the default place."""
    import feat_opensmile
    from corpora.synth.iemocap import MIN_UTTERANCES, write_iemocap
    d = tmp_path_factory.mktemp("xcorpus")
    root = d / "IEMOCAP_full_release"
    write_iemocap(root, n=MIN_UTTERANCES, seed=0, progress=False)
    assert feat_opensmile.main(["--corpus", "iemocap", "--root", str(root), "--config-cache", str(d / "cfg"),
                                "--no-progress"]) == 0
    return root


@pytest.fixture(scope="module")
def msp_model(msp_corpus, tmp_path_factory):
    """(folder with IS13 store `is13`, NormTerm `NT` and run folders `Models/`) of a 2-iteration chunk LSTM of
    Act trained with training.py on the shared demo MSP-Podcast corpus."""
    import feat_opensmile
    import norm_para
    import training
    d = tmp_path_factory.mktemp("xmsp")
    assert feat_opensmile.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--store", str(d / "is13"),
                                "--config-cache", str(d / "cfg"), "--no-progress"]) == 0
    assert norm_para.main(["--store", str(d / "is13"), "--root", str(msp_corpus), "--out", str(d / "NT"),
                           "--no-progress"]) == 0
    assert training.main(["-iter", "2", "-batch", "4", "-emo", "Act", "-atten", "NonAtten", "--root", str(msp_corpus),
                          "--store", str(d / "is13"), "--normterm", str(d / "NT"), "--out", str(d / "Models"),
                          "--val-every", "1", "--no-progress"]) == 0
    return d


def raw_labels(root) -> dict[str, dict[str, float]]:
    """utterance -> {val, act, dom} read straight from the EmoEvaluation summary lines (not via the reader)."""
    line = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(\S+)\t\w{3}\t\[([\d.]+), ([\d.]+), ([\d.]+)\]")
    out = {}
    for f in sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt")):
        for m in filter(None, map(line.match, f.read_text().splitlines())):
            out[m[1]] = {"val": float(m[2]), "act": float(m[3]), "dom": float(m[4])}
    return out


def test_msp_scale_and_splits(iemocap):
    assert msp_scale(1) == 1 and msp_scale(5) == 7 and msp_scale(3) == 4 and msp_scale(2.5) == 3.25
    assert split_sessions("all") == (1, 2, 3, 4, 5) and split_sessions("Session4, session5") == (4, 5)
    for bad in ("session9", "test1", "session4,all", ""):
        with pytest.raises(CorpusError, match=re.escape(f"unknown IEMOCAP split {bad!r}")) as e:
            split_sessions(bad)
        assert "all, session1, session2, session3, session4, session5" in str(e.value)
    every = read_iemocap(iemocap).records
    assert [r.utt_id for r in iemocap_split(iemocap, "all").records] == [r.utt_id for r in every]
    for split, sessions in (("session3", {3}), ("session4,session5", {4, 5})):
        got = iemocap_split(iemocap, split).records
        assert [r.utt_id for r in got] == [r.utt_id for r in every if r.session in sessions]
        assert got and {r.session for r in got} == sessions and {r.utt_id[:5] for r in got} == {
            f"Ses0{s}" for s in sessions}


def test_labelled_items_rescale_and_list_what_is_left_out(iemocap, tmp_path, capsys):
    from features.store import FeatureStore
    from systems.common import labelled_items
    records = iemocap_split(iemocap, "session1,session2").records
    store = FeatureStore.create(tmp_path / "s", name="toy", extractor="Toy", params={}, dims=2, frame_rate=100.0)
    with store.writer() as w:
        for r in records[1:]:
            w.add(r.utt_id, np.ones((3, 2), np.float32))
    items = labelled_items(iemocap, "session1,session2", "dom", FeatureStore(tmp_path / "s"), "iemocap")
    assert items == [(r.utt_id, pytest.approx(1 + (r.labels["dom"] - 1) * 1.5)) for r in records[1:]]
    err = capsys.readouterr().err
    assert "1 IEMOCAP session1,session2 utterance(s) have no features" in err and records[0].utt_id in err


def test_testing_py_scores_an_msp_model_on_iemocap(iemocap, msp_model, tmp_path, capsys):
    import testing
    store = iemocap / "Features" / "OpenSmile_lld_IS13ComParE"
    args = ["-iter", "2", "-batch", "4", "-emo", "Act", "-atten", "NonAtten", "--corpus", "iemocap",
            "--root", str(iemocap), "--checkpoint", str(msp_model / "Models" / RUN), "--no-progress"]
    out = tmp_path / "out.csv"
    assert testing.main([*args, "--store", str(store), "--csv", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    raw = raw_labels(iemocap)
    assert len(raw) == 10 and sorted(r["utterance"] for r in rows) == sorted(raw)
    for r in rows:
        assert float(r["label"]) == pytest.approx(1 + (raw[r["utterance"]]["act"] - 1) * 1.5, abs=1e-6)
        assert np.isfinite(float(r["prediction"]))
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["corpus_kind"] == "iemocap" and result["split"] == "all" and result["corpus"] == str(iemocap)
    assert result["label_scale"] == "IEMOCAP 1-5 rescaled to 1-7" and result["utterances"] == 10
    capsys.readouterr()
    # the default store is the IEMOCAP one; a session split scores that session only
    assert testing.main([*args, "--split", "session2", "--csv", str(tmp_path / "s2.csv")]) == 0
    assert len((tmp_path / "s2.csv").read_text().splitlines()) == 1 + 2
    assert json.loads((tmp_path / "s2.json").read_text())["split"] == "session2"
    capsys.readouterr()
    cases = [(["--split", "session9"], "unknown IEMOCAP split 'session9'"),
             (["--store", str(msp_model / "is13")], "holds MSP-Podcast features, but --corpus is iemocap"),
             (["--root", str(tmp_path), "--store", str(store)], "no Session1..Session5 folder")]
    for extra, message in cases:
        assert testing.main([*args, *extra, "--csv", str(tmp_path / "bad.csv")]) == 1
        err = capsys.readouterr().err
        # a `defaults: ...` line may come first (which default paths were used); the error is one line
        assert err.splitlines()[-1].startswith("error: ") and message in err and "Traceback" not in err, err
    no_root = [a for a in args if a not in ("--root", str(iemocap))]
    assert testing.main([*no_root, "--csv", str(tmp_path / "bad.csv")]) == 1
    assert "--corpus iemocap needs --root" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()

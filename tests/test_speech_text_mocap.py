"""Speech + text + mocap fusion (System 5) end to end on a small synthetic IEMOCAP release with a tiny local
wav2vec2 and a tiny local BERT: every configuration of the ablation, the table (CSV, chart, JSON), the result
files, the Session-5 split, resume, leave-one-session-out, modality dropout, the missing-data table, absent
streams (listener utterances, empty transcripts, NaN markers) and clear errors. Runs are tiny (-iter 4,
d_model 16) and the ten-configuration run is shared by the module."""
import csv
import json
import shutil

import numpy as np
import pytest

from systems.speech_text_mocap import CLASSES, CONFIGURATIONS, THREE_WAY

TINY = ["-iter", "4", "-batch", "8", "--val-every", "2", "--d-model", "16", "--heads", "2", "--layers", "1",
        "--ff", "32", "--fusion-hidden", "16", "--no-progress", "--deterministic"]
# the settings run() passes as every run and result name carries them (engine.cli.settings_suffix)
NAMED = "speech-modelw2v_text-modelbert_d-model16_heads2_layers1_ff32_fusion-hidden16_iter4_batch8_val-every2"
TAG = f"_{NAMED}_deterministic"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from corpora.iemocap import read_iemocap
    from corpora.synth.iemocap import write_iemocap
    from features.text import save_tiny_random_bert
    from features.wav2vec2 import save_tiny_random
    d = tmp_path_factory.mktemp("stm")
    root = d / "IEMOCAP_full_release"
    write_iemocap(root, n=120, seed=5, progress=False)
    save_tiny_random(d / "w2v")
    # the stand-in for bert-base-uncased gets its vocabulary from the training sessions only (Session 5 is tested)
    save_tiny_random_bert(d / "bert", texts=[r.transcript or "" for r in read_iemocap(root).records if r.session != 5])
    return root, d


def run(setup, out, *extra):
    import speech_text_mocap
    root, d = setup
    return speech_text_mocap.main(["--root", str(root), "--speech-model", str(d / "w2v"), "--text-model",
                                   str(d / "bert"), "--out", str(out / "M"), "--results", str(out / "R"),
                                   *TINY, *extra])


def prml(root):
    from corpora.iemocap import four_class, read_iemocap
    return {r.utt_id: (r, y) for r, y in four_class(read_iemocap(root).records, "prml")}


@pytest.fixture(scope="module")
def ablation(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run(setup, out) == 0
    return out, buf.getvalue()


def test_every_configuration_in_one_table(setup, ablation):
    out, stdout = ablation
    R = out / "R"
    rows = list(csv.DictReader(open(R / f"stm_ablation{TAG}.csv")))
    assert [r["configuration"] for r in rows] == list(CONFIGURATIONS)
    assert [r["modalities"] for r in rows] == ["+".join(m) for m in CONFIGURATIONS.values()]
    table = json.loads((R / f"stm_ablation{TAG}.json").read_text())
    assert [r["configuration"] for r in table["rows"]] == list(CONFIGURATIONS) and table["classes"] == list(CLASSES)
    assert (R / f"stm_ablation{TAG}.png").read_bytes()[:4] == b"\x89PNG"
    assert "| configuration | Session 5 WA | Session 5 UA | test utterances with each stream |" in stdout
    for r, t in zip(rows, table["rows"]):  # the printed table is the CSV's, each score with its 95 % interval
        lo, hi = t["session5_WA_ci"]
        assert lo <= t["session5_WA"] <= hi and r["session5_WA_ci"] == f"[{lo:.4f}, {hi:.4f}]"
        assert (f"| {r['configuration']} | {float(r['session5_WA']):.4f} [{lo:.2f}, {hi:.2f}] | "
                f"{float(r['session5_UA']):.4f} [") in stdout
    assert table["interval"]["method"] == "bca" and table["interval"]["resamples"] == 1000
    # every configuration is scored on exactly Session 5's four-class utterances, labels in the fixed order
    root, _ = setup
    corpus = prml(root)
    session5 = {u for u, (rec, _) in corpus.items() if rec.session == 5}
    for config, mods in CONFIGURATIONS.items():
        per_utt = list(csv.DictReader(open(R / f"stm_{config}_s5{TAG}.csv")))
        assert {p["utterance"] for p in per_utt} == session5
        assert all(p["label"] == CLASSES[corpus[p["utterance"]][1]] for p in per_utt)
        assert all(p["label"] == corpus[p["utterance"]][0].category for p in per_utt)  # ang exc neu sad codes
        res = json.loads((R / f"stm_{config}_s5{TAG}.json").read_text())
        labels = np.array([CLASSES.index(p["label"]) for p in per_utt])
        pred = np.array([CLASSES.index(p["prediction"]) for p in per_utt])
        assert res["WA"] == pytest.approx(np.mean(labels == pred))
        assert res["UA"] == pytest.approx(np.mean([np.mean(pred[labels == c] == c) for c in np.unique(labels)]))
        assert res["configuration"] == config and res["modalities"] == list(mods) and res["fold"] == 5
        (trow,) = [t for t in table["rows"] if t["configuration"] == config]
        assert res["WA_ci"] == trow["session5_WA_ci"] and res["present"]["none"] == trow["with_none"]
        assert res["inference"]["rtf"] > 0 and res["inference"]["utterances"] == len(per_utt)
        assert (R / f"stm_{config}_s5{TAG}_confusion.png").read_bytes()[:4] == b"\x89PNG"
        cfg = json.loads((out / "M" / f"stm_{config}_s5{TAG}" / "config.json").read_text())
        assert cfg["modalities"] == list(mods) and list(cfg["model"]["inputs"]) == list(mods)
        assert (out / "M" / f"stm_{config}_s5{TAG}" / "model.safetensors").is_file()
        widths = {"speech": 32, "text": 32, "mocap": 189, "face": 165, "head": 6, "hand": 18}
        assert cfg["model"]["inputs"] == {m: widths[m] for m in mods}


def test_dev_part_comes_from_the_training_sessions_only(setup):
    from corpora.iemocap import loso_dev_folds
    root, _ = setup
    items = sorted(prml(root).values(), key=lambda ry: ry[0].utt_id)
    for train, dev, test in loso_dev_folds(items, 0.1):
        k = test[0][0].session
        assert {r.session for r, _ in test} == {k} and k not in {r.session for r, _ in train + dev}
        assert len(dev) == max(1, round(0.1 * (len(train) + len(dev))))
        assert {r.utt_id for r, _ in train} | {r.utt_id for r, _ in dev} | {r.utt_id for r, _ in test} == \
            {r.utt_id for r, _ in items}


def test_missing_data_table_of_the_three_way_model(ablation):
    out, stdout = ablation
    R = out / "R"
    rows = list(csv.DictReader(open(R / f"stm_missing{TAG}.csv")))
    assert [(r["condition"], r["rate"]) for r in rows] == [
        ("audio-absent", ""), ("text-absent", ""), ("mocap-absent", ""), ("frames", "0.1"), ("frames", "0.3"),
        ("frames", "0.5"), ("words", "0.1"), ("words", "0.3"), ("words", "0.5"), ("complete", "0")]
    complete = json.loads((R / f"stm_{THREE_WAY}_s5{TAG}.json").read_text())
    assert float(rows[-1]["UA"]) == pytest.approx(complete["UA"])
    assert (R / f"stm_missing{TAG}.png").read_bytes()[:4] == b"\x89PNG"
    assert f"{THREE_WAY} with data missing (Session 5; each simulated condition averaged over 3" in stdout
    lo, hi = json.loads(rows[-1]["WA_ci"])  # the intervals and the shares of utterances that had each stream
    assert lo <= float(rows[-1]["WA"]) <= hi and float(rows[2]["with_mocap"]) == 0 < float(rows[0]["with_mocap"])
    assert f"| mocap-absent | {float(rows[2]['WA']):.4f} [" in stdout
    assert (R / f"stm_{THREE_WAY}_s5{TAG}_conditions.json").is_file()  # the same rows, engine.robustness's file


def test_second_run_resumes_every_configuration(setup, ablation, capsys):
    out, _ = ablation
    before = (out / "R" / f"stm_ablation{TAG}.csv").read_text()
    assert run(setup, out) == 0
    assert (out / "R" / f"stm_ablation{TAG}.csv").read_text() == before
    logs = [list(csv.DictReader(open(out / "M" / f"stm_{c}_s5{TAG}" / "log.csv"))) for c in CONFIGURATIONS]
    assert all([r["step"] for r in log] == ["2", "4"] for log in logs)  # nothing trained twice


def test_listener_utterances_and_empty_transcripts_are_absent_streams(setup, ablation):
    """A speaker without markers has mocap absent (never the listener's motion); an empty transcript has text
    absent; a marker lost for a whole utterance is the training mean after normalisation; present streams of
    the same batch are untouched."""
    from features.mocap import MocapStats, speaker_wore_markers
    from features.store import FeatureStore
    from systems.speech_text_mocap import FusionMethod, training_norm
    root, _ = setup
    out, _ = ablation
    feats = root / "Features"
    speech, text, mocap = (FeatureStore(p) for p in sorted(feats.glob("Wav2Vec_*")) + sorted(feats.glob("Tokens_*"))
                           + [feats / "Mocap189x200"])
    corpus = prml(root)
    utts = sorted(corpus)
    listeners = [u for u in utts if not speaker_wore_markers(u)]
    wearers = [u for u in utts if speaker_wore_markers(u)]
    assert listeners and wearers and set(mocap.keys()) == {u for u in mocap.keys() if speaker_wore_markers(u)}
    errors = {e["utterance"] if "utterance" in e else e["utt"]: e for e in mocap.errors()}
    assert set(listeners) <= set(errors)  # listed with the reason, not dropped silently
    norm = training_norm(utts, speech, text, mocap)
    m = FusionMethod(("speech", "text", "mocap"), speech=speech, text=text, mocap=mocap, norm=norm,
                     no_text=frozenset(wearers[:1]))
    items = [(u, 0) for u in (wearers[0], wearers[1], listeners[0])]
    b = m.collate(items)
    assert b["present"].tolist() == [[True, False, True], [True, True, True], [True, True, False]]
    assert not b["mask"]["mocap"][2].any() and not b["mask"]["text"][0].any()
    # the wearer's mocap in the batch is its own stored motion, z-normalised
    x = norm["mocap"].apply(np.array(mocap[wearers[1]]))
    np.testing.assert_allclose(b["x"]["mocap"][1].numpy(), x, atol=1e-6)
    # NaN markers: a column lost for the whole utterance becomes 0 (the training mean), never NaN
    stats = MocapStats(np.zeros(189), np.ones(189))
    lost = np.array(mocap[wearers[1]], np.float32)
    lost[:, 5] = np.nan
    z = stats.apply(lost)
    assert np.isfinite(z).all() and (z[:, 5] == 0).all()
    # conditions: each stream absent on demand; frames blank speech rows before pooling; the others untouched
    from features.missing import parse_condition
    m.condition = parse_condition("mocap-absent")
    b2 = m.collate(items)
    assert not b2["present"][:, 2].any() and b2["present"][:, :2].tolist() == b["present"][:, :2].tolist()
    assert np.array_equal(b2["x"]["speech"].numpy(), b["x"]["speech"].numpy())
    m.condition = parse_condition("frames:0.5")
    b3 = m.collate(items)
    assert not np.array_equal(b3["x"]["speech"].numpy(), b["x"]["speech"].numpy())
    assert np.array_equal(b3["x"]["text"].numpy(), b["x"]["text"].numpy())
    assert np.array_equal(b3["x"]["mocap"].numpy(), b["x"]["mocap"].numpy())


def test_modality_dropout_trains_on_subsets_but_never_on_nothing(setup, ablation, tmp_path):
    from features.store import FeatureStore
    from systems.speech_text_mocap import FusionMethod, training_norm
    root, _ = setup
    feats = root / "Features"
    speech, text, mocap = (FeatureStore(p) for p in sorted(feats.glob("Wav2Vec_*")) + sorted(feats.glob("Tokens_*"))
                           + [feats / "Mocap189x200"])
    utts = sorted(prml(root))
    norm = training_norm(utts, speech, text, mocap)
    m = FusionMethod(("speech", "text", "mocap"), speech=speech, text=text, mocap=mocap, norm=norm,
                     modality_dropout=0.6, seed=1)
    items = [(u, 0) for u in utts]
    avail = m.collate(items)["present"].numpy()
    dropped = m.train_collate(items)["present"].numpy()
    assert (dropped <= avail).all() and dropped.any(axis=1).all()  # a subset, never empty
    assert 0.3 < 1 - dropped.sum() / avail.sum() < 0.7
    assert np.array_equal(m.collate(items)["present"].numpy(), avail)  # evaluation is never dropped
    # the command line flag: recorded in the run and its name
    assert run(setup, tmp_path, "--configs", THREE_WAY, "--modality-dropout", "0.5", "--missing", "none") == 0
    cfg = json.loads((tmp_path / "M" / f"stm_{THREE_WAY}_s5_{NAMED}_modality-dropout0.5_deterministic" / "config.json").read_text())
    assert cfg["modality_dropout"] == 0.5
    assert (tmp_path / "R" / f"stm_ablation_{NAMED}_modality-dropout0.5_deterministic_configs{THREE_WAY}.csv").is_file()


def test_leave_one_session_out_and_only_with_mocap(setup, tmp_path, capsys):
    assert run(setup, tmp_path, "--configs", "head,text", "--loso", "--only-with-mocap", "--missing", "none") == 0
    out = capsys.readouterr().out
    assert "| configuration | Session 5 WA | Session 5 UA | LOSO WA | LOSO UA |" in out
    corpus = prml(setup[0])
    from features.mocap import speaker_wore_markers
    R = tmp_path / "R"
    for config in ("head", "text"):
        was = []
        for k in (1, 2, 3, 4, 5):
            per_utt = list(csv.DictReader(open(R / f"stm_{config}_s{k}_only-with-mocap{TAG}.csv")))
            assert {p["utterance"] for p in per_utt} == {u for u, (r, _) in corpus.items()
                                                       if r.session == k and speaker_wore_markers(u)}
            was.append(json.loads((R / f"stm_{config}_s{k}_only-with-mocap{TAG}.json").read_text())["WA"])
        (row,) = [r for r in csv.DictReader(open(R / f"stm_ablation_only-with-mocap{TAG}_configshead+text_loso.csv")) if r["configuration"] == config]
        assert float(row["loso_WA"]) == pytest.approx(np.mean(was), abs=1e-6)


def test_word_rows_condition_blanks_token_rows_of_dropped_words(setup, ablation):
    """`word-rows` is the original authors' helper (the old `words`): the dropped words' rows of the encoded
    features are blanked, the [CLS] / [SEP] rows never."""
    from transformers import AutoTokenizer

    from features.missing import parse_condition
    from features.store import FeatureStore
    from systems.speech_text_mocap import FusionMethod, tokenizer_token_words, training_norm
    root, d = setup
    text = FeatureStore(sorted((root / "Features").glob("Tokens_*"))[0])
    corpus = prml(root)
    utts = sorted(u for u in corpus if u in text)
    tok = AutoTokenizer.from_pretrained(str(d / "bert"), local_files_only=True)
    tw = tokenizer_token_words(tok, {u: r.transcript for u, (r, _) in corpus.items()}, text)
    m = FusionMethod(("text",), text=text, norm=training_norm(utts, None, text, None), token_words=tw)
    long = [u for u in utts if tw(u) is not None and tw(u)[1] >= 4][:3]
    assert long
    items = [(u, 0) for u in long]
    full = m.collate(items)["x"]["text"].numpy()
    m.condition = parse_condition("word-rows:0.5")
    half = m.collate(items)["x"]["text"].numpy()
    for i, u in enumerate(long):
        rows = text.frames(u)
        blank = (half[i, :rows] == 0).all(axis=1) & ~(full[i, :rows] == 0).all(axis=1)
        words = tw(u)[0]
        assert blank.any() and not blank[0] and not blank[rows - 1]  # [CLS] and [SEP] never blanked
        assert set(np.unique(words[blank])) and (words[blank] >= 0).all()
        assert len(set(words[blank])) == round(0.5 * tw(u)[1])


def test_clear_errors(setup, ablation, tmp_path, capsys):
    import speech_text_mocap
    for extra, msg in [(["--configs", "speech,smell"], "choose from"),
                       (["--missing", "words+audio:0.2"], "not available"),
                       (["--train-missing", "bursts:0.2", "--missing", "text-absent,nonsense:1"], "nonsense")]:
        assert run(setup, tmp_path, *extra) == 1
        assert msg in capsys.readouterr().err
    assert speech_text_mocap.main(["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "M"),
                                   "--results", str(tmp_path / "R")]) == 1
    assert "nowhere" in capsys.readouterr().err
    # a store made from another model is refused, naming both
    root, d = setup
    bad_root = shutil.copytree(root, tmp_path / "copy", ignore=shutil.ignore_patterns("Mocap*", "Tokens_*"))
    assert run((bad_root, d), tmp_path, "--configs", "speech", "--speech-store",
               str(next((root / "Features").glob("Wav2Vec_*"))), "--speech-model", str(d / "bert")) == 1
    err = capsys.readouterr().err
    assert "store made with model" in err and "w2v" in err and "bert" in err and "--speech-model" in err


def test_torchrun_two_cpu_processes(setup, tmp_path):
    """Rank 0 extracts the features while rank 1 waits; both train; only rank 0 writes results and prints."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    root, d = setup
    corpus = shutil.copytree(root, tmp_path / "corpus", ignore=shutil.ignore_patterns("Features"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(repo / "speech_text_mocap.py"), "--root", str(corpus), "--speech-model", str(d / "w2v"),
                           "--text-model", str(d / "bert"), "--configs", "text+mocap", "--missing", "none",
                           "--out", str(tmp_path / "M"), "--results", str(tmp_path / "R"),
                           *[a for a in TINY if a != "--deterministic"]],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("text+mocap Session 5: WA") == 1
    assert (tmp_path / "R" / f"stm_text+mocap_s5_{NAMED}.json").is_file()
    assert [r["step"] for r in csv.DictReader(open(tmp_path / "M" / f"stm_text+mocap_s5_{NAMED}" / "log.csv"))] == ["2", "4"]


def test_mocap_velocity_appends_normalised_frame_differences(setup, ablation):
    from features.mocap import MocapStats, stored_mocap
    from features.store import FeatureStore
    from systems.speech_text_mocap import FusionMethod, training_norm, with_velocity
    root, _ = setup
    mocap = FeatureStore(root / "Features" / "Mocap189x200")
    utts = sorted(mocap.keys())
    norm = training_norm(utts, None, None, mocap, mocap_velocity=True)
    assert norm["mocap"].mean.shape == (378,)
    m = FusionMethod(("head", "mocap"), mocap=mocap, norm=norm, mocap_velocity=True)
    assert m.input_dims() == {"head": 12, "mocap": 378}
    b = m.collate([(utts[0], 0)])
    raw = stored_mocap(mocap, utts[0])
    v = with_velocity(raw)
    assert np.array_equal(v[1:, 189:], np.diff(raw, axis=0)) and not v[0, 189:].any()
    z = MocapStats(norm["mocap"].mean, norm["mocap"].std).apply(v)
    np.testing.assert_allclose(b["x"]["head"][0].numpy(), np.concatenate([z[:, 165:171], z[:, 354:360]], 1), atol=1e-6)
    np.testing.assert_allclose(b["x"]["mocap"][0].numpy(), z, atol=1e-6)


@pytest.mark.parametrize("argv, code, message", [
    # issue 19.27: every flag checked before any work
    (["--seed", "-1"], 2, "--seed: -1 is too small (at least 0)"),
    (["--dev-share", "0.99"], 2, "--dev-share: 0.99 is outside (0, 0.5]"),
    (["--patience", "-3"], 2, "--patience: -3 is too small (at least 0: 0 is off)"),
    (["--modality-dropout", "1.5"], 2, "--modality-dropout: 1.5 is outside [0, 1)"),
    (["--configs", "text,text"], 1, "--configs text,text: a configuration is listed twice"),
    (["--missing", "words+audio:0.2"], 1, "--missing words+audio:0.2: not available for speech+text+mocap"),
    # issue 19.8: a training condition on a stream the configuration does not read, or on its only stream
    (["--configs", "text", "--train-missing", "mocap-absent"], 1,
     "--train-missing mocap-absent: configuration text has no mocap stream"),
    (["--configs", "speech,text", "--train-missing", "frames:0.2"], 1,
     "--train-missing frames:0.2: configuration text has no audio stream"),
    (["--configs", "speech", "--train-missing", "word-rows:0.2"], 1,
     "--train-missing word-rows:0.2: configuration speech has no text stream"),
    # issue 20: words / wer re-encode transcripts, which training does not do; the protocol flags
    (["--train-missing", "words:0.2"], 1, "--train-missing words:0.2: re-encoding transcripts"),
    (["--protocols", "fixed", "--configs", "text,face"], 1,
     "--protocols fixed: no configuration of --configs text,face reads two or more modalities"),
    (["--protocols", "sweep", "--configs", "mocap", "--sweep-kinds", "frames,words"], 1,
     "--protocols sweep: no configuration of --configs mocap reads a stream of one of --sweep-kinds frames,words"),
    (["--protocols", "fixed,smell"], 1, "--protocols fixed,smell: unknown protocol 'smell'"),
    (["--protocols", "random", "--rates", "0,1.5"], 1, "--rates 0,1.5: distinct numbers in [0, 1]"),
    (["--protocols", "sweep", "--sweep-kinds", "words+audio"], 1, "--sweep-kinds words+audio:0.5: not available"),
    (["--protocols", "sweep", "--sweep-kinds", "frames,smell"], 1, "--sweep-kinds: unknown missing-data condition kind 'smell'"),
    (["--sim-seeds", "0"], 2, "--sim-seeds: 0 is too small (at least 1)"),
    (["--ci-method", "normal"], 2, "--ci-method: invalid choice"),
    (["--configs", "face", "--train-missing", "mocap-absent"], 1, "configuration face reads mocap only"),
])
def test_flags_refused_before_any_work(tmp_path, capsys, argv, code, message):
    import speech_text_mocap
    root = tmp_path / "IEMOCAP_full_release"
    (root / "Session5").mkdir(parents=True)  # a folder that would be read if the flags passed
    try:
        got = speech_text_mocap.main(["--root", str(root), "--out", str(tmp_path / "M"), "--results",
                                      str(tmp_path / "R"), *argv])
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == code and message in err, err
    assert not (tmp_path / "M").exists() and not (tmp_path / "R").exists() and not (root / "Features").exists()


def test_training_conditions_that_apply_are_accepted():
    """The shared check lets through what every configuration can use: text-absent in training leaves the
    three-way model speech and mocap, and speech+text its speech."""
    import argparse

    from features.missing import parse_condition
    from systems.speech_text_mocap_experiment import checked_settings
    args = argparse.Namespace(configs="speech+text+mocap,speech+text", missing="frames:0.3,mocap-absent",
                              train_missing=parse_condition("text-absent"), protocols="fixed,sweep", rates="0,0.5",
                              sweep_kinds="frames,wer", sim_seeds=2, bootstrap=0, ci_method="bca")
    configs, conditions, plan = checked_settings(args)
    assert configs == ["speech+text+mocap", "speech+text"] and [str(c) for c in conditions] == ["frames:0.3",
                                                                                                "mocap-absent"]
    # each protocol on every configuration it applies to: the fixed subsets of its own streams
    assert [str(c) for c in plan["speech+text"]["fixed"]] == ["none", "present:audio", "present:text"]
    assert [str(c) for c in plan["speech+text+mocap"]["fixed"]] == [
        "none", "present:audio", "present:text", "present:mocap", "present:audio+text", "present:audio+mocap",
        "present:text+mocap"]
    assert [str(c) for c in plan["speech+text"]["sweep"]] == ["none", "frames:0.5", "wer:0.5"]


def test_published_anchor_rows_say_they_are_not_comparable():
    """Issue 19.31: the report's System-5 anchors come from other architectures (the PRML code has no wav2vec2 and
    no transformer): each row says so where the report shows it (label and source)."""
    from report.anchors import ANCHORS
    for a in ANCHORS["speech-text-mocap"]:
        assert "not comparable row by row" in a["label"] and "no wav2vec2, no transformer" in a["source"]


# ------------------------------------------------------------------ issue 20: missing data that is really missing
@pytest.fixture(scope="module")
def three_way(setup, ablation):
    """(method, model, Session-5 test items) of the ablation's trained three-way model, rebuilt from its checkpoint
    over the corpus's stores, with the re-encoder of degraded transcripts (vocabulary: Sessions 1-4's words)."""
    from engine.checkpoint import load_checkpoint
    from engine.loop import load_best
    from features.degraded_text import DegradedText
    from features.store import FeatureStore
    from transformers import AutoTokenizer

    from systems.speech_text_mocap import method_from_config, tokenizer_token_words
    root, d = setup
    out, _ = ablation
    run = out / "M" / f"stm_{THREE_WAY}_s5{TAG}"
    corpus = prml(root)
    stores = [FeatureStore(root / "Features" / n) for n in ("Wav2Vec_w2v", "Tokens_bert", "Mocap189x200")]
    transcripts = {u: (r.transcript or "").strip() for u, (r, _) in corpus.items()}
    method = method_from_config(load_checkpoint(run)[1], *stores,
                                no_text=frozenset(u for u, t in transcripts.items() if not t))
    vocab = sorted({w for u, (r, _) in corpus.items() if r.session != 5 for w in transcripts[u].split()})
    method.degraded, method.transcripts = DegradedText(stores[1], vocab), transcripts
    tok = AutoTokenizer.from_pretrained(str(d / "bert"), local_files_only=True)
    method.token_words = tokenizer_token_words(tok, transcripts, stores[1])
    items = sorted((u, y) for u, (r, y) in corpus.items() if r.session == 5)
    return method, load_best(method, run, "cpu"), items


def test_words_are_removed_and_the_transcript_encoded_again(three_way):
    """Issue 20.1: `words:R` removes R of the words and re-encodes the shorter transcript with the store's BERT;
    0 % is the complete data exactly, 100 % is text absent exactly (no [CLS] row of the whole sentence left),
    and a second pass is served from the cache."""
    from features.missing import parse_condition
    from systems.speech_text_mocap import scored
    method, model, items = three_way
    complete, had, _ = scored(method, model, items, None, 0, "cpu")
    zero, _, extra0 = scored(method, model, items, parse_condition("words:0"), 0, "cpu")
    assert np.array_equal(zero, complete) and extra0["realised_wer"] == 0
    absent, had_absent, _ = scored(method, model, items, parse_condition("text-absent"), 0, "cpu")
    every, had_every, extra1 = scored(method, model, items, parse_condition("words:1"), 0, "cpu")
    assert np.array_equal(every, absent) and had_every == had_absent and extra1["realised_wer"] == 1
    assert not any("text" in h.split("+") for h in had_every) and any("text" in h.split("+") for h in had)
    # what `words` meant before: blanking every word's rows leaves [CLS] / [SEP], computed from the whole sentence
    rows, had_rows, _ = scored(method, model, items, parse_condition("word-rows:1"), 0, "cpu")
    assert had_rows == had and not np.allclose(rows, absent)
    # half the words: the text rows are those of the shorter transcript, encoded again (not blanked rows)
    cond = parse_condition("words:0.5")
    long = [(u, y) for u, y in items if len(method.transcripts[u].split()) >= 4][:2]
    method.condition = cond
    batch = method.collate(long)
    method.condition = None
    for i, (u, _) in enumerate(long):
        words, _ = method.degraded.degraded(u, method.transcripts[u], cond, 0)
        rows = int(batch["mask"]["text"][i].sum())
        assert 0 < len(words) < len(method.transcripts[u].split()) and rows < method.text.frames(u)
        assert not (batch["x"]["text"][i, :rows] == 0).all(dim=1).any()  # no blanked row
    first, _, _ = scored(method, model, items, cond, 0, "cpu")
    encoded = method.degraded.encoded
    again, _, _ = scored(method, model, items, cond, 0, "cpu")
    assert method.degraded.encoded == encoded and np.array_equal(again, first)  # cached: nothing encoded twice
    assert not np.array_equal(first, complete)


def test_wer_condition_hits_its_target(three_way):
    """Issue 20.3: `wer:R` substitutes (from the training transcripts' words), deletes and inserts words to a target
    word error rate; the realised WER of each draw is recorded and is within tolerance of the target."""
    from features.missing import parse_condition
    from systems.speech_text_mocap import scored
    method, model, items = three_way
    for rate, seed in ((0.2, 0), (0.5, 0), (0.5, 1)):
        _, _, extra = scored(method, model, items, parse_condition(f"wer:{rate}"), seed, "cpu")
        assert abs(extra["realised_wer"] - rate) < 0.08, (rate, seed, extra)
    u = next(u for u, _ in items if len(method.transcripts[u].split()) >= 5)
    words, info = method.degraded.degraded(u, method.transcripts[u], parse_condition("wer:0.5"), 0)
    assert info["substitutions"] > 0 and set(words) - set(method.transcripts[u].split()) <= set(method.degraded.vocabulary)


class Aliased:
    """A feature store in which some utterances read another one's features (same stream, other utterance)."""

    def __init__(self, store, alias: dict):
        self.store, self.alias, self.dims = store, alias, store.dims

    def __contains__(self, utt):
        return self.alias.get(utt, utt) in self.store

    def __getitem__(self, utt):
        return self.store[self.alias.get(utt, utt)]

    def times(self, utt):
        return self.store.times(self.alias.get(utt, utt))


def test_an_absent_stream_is_one_thing_everywhere_and_reveals_nothing(three_way):
    """Issue 20.2: an absent stream gives the same output whatever the utterance's length (two utterances with
    transcripts of different lengths and the same speech and mocap: text-absent logits equal); an empty
    transcript, text-absent, `present:` without text and the training augmentation all feed the same absent
    text; a corpus without motion capture (cross_corpus.py) scores exactly like mocap-absent."""
    import dataclasses

    import torch

    from features.missing import parse_condition
    from systems.speech_text_mocap import scored
    method, model, items = three_way
    lengths = {u: method.text.frames(u) for u, _ in items if "text" in method.available(u)}
    a, b = min(lengths, key=lengths.get), max(lengths, key=lengths.get)
    assert lengths[a] < lengths[b] and {"audio", "mocap"} <= set(method.available(a))
    twin = dataclasses.replace(method, speech=Aliased(method.speech, {b: a}), mocap=Aliased(method.mocap, {b: a}))
    pair = [(a, 0), (b, 0)]
    full, _, _ = scored(twin, model, pair, None, 0, "cpu")
    assert not np.allclose(full[0], full[1])  # the texts differ ...
    for spec in ("text-absent", "present:audio+mocap", "words:1"):
        gone, had, _ = scored(twin, model, pair, parse_condition(spec), 0, "cpu")
        np.testing.assert_array_equal(gone[0], gone[1])  # ... and nothing of them is left when text is absent
        assert had == ["audio+mocap", "audio+mocap"]
    empty = dataclasses.replace(twin, no_text=frozenset([a, b]))
    np.testing.assert_array_equal(scored(empty, model, pair, None, 0, "cpu")[0], gone)
    # training augmentation: the same batch as evaluation's absent text (no rows, all-False mask, not present)
    train = dataclasses.replace(twin, train_condition="text-absent")
    twin.condition = parse_condition("text-absent")
    tb, eb = train.train_collate(pair), twin.collate(pair)
    twin.condition = None
    assert torch.equal(tb["present"], eb["present"]) and torch.equal(tb["mask"]["text"], eb["mask"]["text"]) and not tb["mask"]["text"].any()
    with torch.inference_mode():
        np.testing.assert_allclose(model(tb["x"], tb["mask"], tb["present"]).numpy(), gone, atol=1e-6)
    # no motion capture in the corpus: the same as mocap-absent, utterance by utterance
    nomocap = dataclasses.replace(method, mocap=frozenset())
    np.testing.assert_array_equal(scored(nomocap, model, items, None, 0, "cpu")[0],
                                  scored(method, model, items, parse_condition("mocap-absent"), 0, "cpu")[0])


def test_protocols_on_every_configuration_they_apply_to(setup, ablation, capsys):
    """Issue 20.4-6, 9, 11: --protocols fixed,random,sweep on the trained models (resumed: the protocol flags are in
    no run name): the three-way model gets all three, `text` the sweep of its text kinds only; per condition WA / UA with intervals and spread over simulation seeds, the shares of utterances that
    really had each stream, and the fixed protocol's mean and pooled averages."""
    out, _ = ablation
    R = out / "R"
    configs = f"text,{THREE_WAY}"
    assert run(setup, out, "--configs", configs, "--protocols", "fixed,random,sweep", "--rates", "0,0.5",
               "--sweep-kinds", "frames,wer", "--sim-seeds", "2", "--bootstrap", "200", "--missing", "none") == 0
    stdout = capsys.readouterr().out
    assert not (out / "M" / f"stm_{THREE_WAY}_s5{TAG}_protocolsfixed+random+sweep").exists()  # no retraining
    rates = "_rates0+0.5"
    three = {p: json.loads((R / f"stm_{THREE_WAY}_s5{TAG}_{p}{x}.json").read_text())
             for p, x in (("fixed", ""), ("random", f"{rates}_sim-seeds2"),
                          ("sweep", f"{rates}_sweep-kindsframes+wer_sim-seeds2"))}
    fixed = three["fixed"]
    assert [r["condition"] for r in fixed["rows"]] == [
        "complete", "present:audio", "present:text", "present:mocap", "present:audio+text", "present:audio+mocap",
        "present:text+mocap"]
    by = {r["condition"]: r for r in fixed["rows"]}
    complete = json.loads((R / f"stm_{THREE_WAY}_s5{TAG}.json").read_text())
    assert by["complete"]["WA"] == pytest.approx(complete["WA"]) and by["complete"]["WA_p"] is None
    assert by["present:mocap"]["present"]["audio"] == 0 and by["present:mocap"]["present"]["text"] == 0
    assert 0 < by["present:mocap"]["present"]["mocap"] < 1  # the listeners' utterances have no motion capture
    assert by["present:audio"]["present"]["audio"] == 1
    for r in fixed["rows"]:
        lo, hi = r["WA_ci"]
        assert lo <= r["WA"] <= hi
    assert set(fixed["summary"]) >= {"mean", "pooled"}
    assert fixed["summary"]["mean"]["WA"] == pytest.approx(np.mean([r["WA"] for r in fixed["rows"]]))
    random_ = {r["condition"]: r for r in three["random"]["rows"]}
    assert list(random_) == ["complete", "random-missing:0.5"] and three["random"]["sim_seeds"] == [0, 1]
    assert random_["random-missing:0.5"]["WA_sd"] is not None
    sweep = {r["condition"]: r for r in three["sweep"]["rows"]}
    assert list(sweep) == ["complete", "frames:0.5", "wer:0.5"]
    assert abs(sweep["wer:0.5"]["realised_wer"] - 0.5) < 0.08
    assert set(three["sweep"]["summary"]) >= {"frames", "wer"}
    # `text` reads one stream: only its sweep, over the text kinds
    text_sweep = json.loads((R / f"stm_text_s5{TAG}_sweep{rates}_sweep-kindsframes+wer_sim-seeds2.json").read_text())
    assert [r["condition"] for r in text_sweep["rows"]] == ["complete", "wer:0.5"]
    assert not list(R.glob(f"stm_text_s5{TAG}_fixed*")) and not list(R.glob(f"stm_text_s5{TAG}_random*"))
    for p in ("fixed", "random"):  # every protocol also writes its table, figure and per-utterance CSV
        stem = R / f"stm_{THREE_WAY}_s5{TAG}_{p}{'' if p == 'fixed' else rates + '_sim-seeds2'}"
        assert (R / f"{stem.name}.png").read_bytes()[:4] == b"\x89PNG" and (R / f"{stem.name}.csv").is_file()
        per_utt = list(csv.DictReader(open(R / f"{stem.name}_per_utterance.csv")))
        assert {"condition", "sim_seed", "utterance", "present", "label", "prediction"} <= set(per_utt[0])
    # the ablation table says which share of the test utterances had each stream
    (row,) = [r for r in csv.DictReader(open(R / f"stm_ablation{TAG}_configs{configs.replace(',', '+')}.csv"))
              if r["configuration"] == "text"]
    assert 0 < float(row["with_text"]) <= 1 and not row.get("with_mocap")  # text reads no mocap: no share
    assert f"| {THREE_WAY} | " in stdout and "mocap " in stdout.split(f"| {THREE_WAY} | ")[-1].splitlines()[0]


def test_the_ablation_reads_speech_rows_from_a_store_derived_once_per_session(setup, ablation):
    """Every configuration of the Session-5 run shares one derived store of z-normalised, pooled speech rows
    (features.derived), made from the training part's statistics, holding the session's utterances."""
    import json as _json
    from features.store import FeatureStore
    root, _ = setup
    speech = FeatureStore(next((root / "Features").glob("Wav2Vec_*")))
    derived = sorted((speech.root / "derived").glob("speech-rows-*"))
    assert len(derived) == 1  # one held-out session, so one set of statistics
    rows = FeatureStore(derived[0])
    assert set(rows.keys()) == set(speech.keys()) & set(prml(root))
    meta = _json.loads((derived[0] / "meta.json").read_text())
    assert meta["params"]["speech_pool"] == 5 and meta["params"]["source"] == speech.describe()
    u = rows.keys()[0]
    assert len(rows[u]) == min(-(-speech.frames(u) // 5), 400)

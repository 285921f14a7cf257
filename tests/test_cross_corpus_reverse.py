"""The reverse cross-corpus direction: IEMOCAP-trained four-class models (mdre.py, speech_text_mocap.py) scored on
MSP-Podcast's categories with cross_corpus.py. Labels are checked against the labels CSV read here directly, the
rebuilt methods against the ones training made, and bad checkpoints / features give clear errors."""
import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest

from corpora.iemocap import FOUR_CLASS, MSP_CATEGORY, msp_four_class
from corpora.records import Utterance


def test_msp_categories_map_to_each_scheme_and_the_rest_is_counted(tmp_path):
    recs = [Utterance(f"u{i}", tmp_path / f"u{i}.wav", "s", "MSP-Podcast", category=c)
            for i, c in enumerate(["A", "H", "N", "S", "X", "U", None, "h", "C"])]
    kept, left = msp_four_class(recs, "mdre")  # angry, happy, sad, neutral
    assert [(r.utt_id, y) for r, y in kept] == [("u0", 0), ("u1", 1), ("u2", 3), ("u3", 2), ("u7", 1)]
    assert left == {"C": 1, "U": 1, "X": 1, "none": 1}
    kept, left = msp_four_class(recs, "prml")  # ang, exc, neu, sad: MSP's Happy scored as excited
    assert [y for _, y in kept] == [0, 1, 2, 3, 1] and FOUR_CLASS["prml"].classes[1] == "exc"
    assert sum(left.values()) + len(kept) == len(recs)
    with pytest.raises(ValueError, match="not one of"):
        msp_four_class(recs, "emobox")

# the fixture's settings as the run names carry them (engine.cli.settings_suffix)
MDREA_RUN = "MDREA_loso_norm_iter3_batch8_val-every3_patience0_fold5"
STM = "_dev-share0.2_speech-modelw2v_text-modelbert_d-model8_heads2_layers1_ff16_fusion-hidden8_iter3_batch8_val-every3_patience0"


@pytest.fixture(scope="module")
def trained(msp_corpus, tmp_path_factory):
    """(folder, MSP copy, run folders) of a tiny MDREA (mdre.py, LOSO fold 5) and a tiny speech+text+mocap and
    mocap-only model (speech_text_mocap.py) trained on a 60-utterance demo IEMOCAP."""
    import mdre
    import speech_text_mocap
    from corpora.iemocap import read_iemocap
    from corpora.synth.iemocap import write_iemocap
    from features.text import save_tiny_random_bert
    from features.wav2vec2 import save_tiny_random
    d = tmp_path_factory.mktemp("reverse")
    iem = d / "IEMOCAP_full_release"
    write_iemocap(iem, n=60, seed=3, progress=False)
    w2v = save_tiny_random(d / "w2v")
    bert = save_tiny_random_bert(d / "bert", texts=[r.transcript or "" for r in read_iemocap(iem).records])
    assert mdre.main(["--root", str(iem), "--model", "MDREA", "--protocol", "loso", "--folds", "5", "-iter", "3",
                      "-batch", "8", "--val-every", "3", "--patience", "0", "--normalise", "--out", str(d / "M"),
                      "--results", str(d / "R"), "--no-progress"]) == 0
    assert speech_text_mocap.main(["--root", str(iem), "--speech-model", str(w2v), "--text-model", str(bert),
                                   "--configs", "mocap,speech+text+mocap", "-iter", "3", "-batch", "8", "--val-every",
                                   "3", "--patience", "0", "--d-model", "8", "--heads", "2", "--layers", "1", "--ff",
                                   "16", "--fusion-hidden", "8", "--dev-share", "0.2", "--missing", "none",
                                   "--out", str(d / "M"), "--results", str(d / "R"), "--no-progress"]) == 0
    msp = d / "MSP-PODCAST-Publish-1.10"
    shutil.copytree(msp_corpus, msp)  # stores are written into the corpus folder
    # two Test1 rows of classes the four-class models do not have: surprise, and no EmoClass at all
    labels = next((msp / "Labels").glob("*.csv"))
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    test1 = [r for r in rows if r["Split_Set"] == "Test1"]
    test1[0]["EmoClass"], test1[1]["EmoClass"] = "U", ""
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return d, msp


def msp_test1_rows(msp) -> list[dict]:
    with open(next((msp / "Labels").glob("*.csv")), newline="") as f:
        return [r for r in csv.DictReader(f) if r["Split_Set"] == "Test1"]


def test_both_systems_are_scored_on_msp_podcast_categories(trained, capsys):
    import cross_corpus
    d, msp = trained
    runs = [d / "M" / MDREA_RUN, d / "M" / f"stm_speech+text+mocap_s5{STM}"]
    assert cross_corpus.main(["--checkpoint", *map(str, runs), "--root", str(msp), "--results", str(d / "X"),
                              "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = msp_test1_rows(msp)
    letters = {r["FileName"][:-4]: r["EmoClass"] for r in rows}
    four = {u: c for u, c in letters.items() if c and c in "AHNS"}
    assert four and len(four) == len(rows) - 2
    for run, system, happy in ((runs[0], "mdre", "happy"), (runs[1], "speech-text-mocap", "exc")):
        res = json.loads((d / "X" / f"{run.name}_on_msp-podcast_test1.json").read_text())
        assert res["system"] == system and res["corpus_kind"] == "msp-podcast" and res["split"] == "test1"
        assert res["class_mapping"]["H"] == happy and res["checkpoint"] == str(run)
        assert res["left_out"] == {"U": 1, "none": 1} == dict(Counter(c or "none" for c in letters.values()
                                                                      if not c or c not in "AHNS"))
        assert res["utterances"] == len(four) and res["inference"]["rtf"] > 0
        with open(d / "X" / f"{run.name}_on_msp-podcast_test1.csv", newline="") as f:
            per = list(csv.DictReader(f))
        scheme = "mdre" if system == "mdre" else "prml"
        classes = FOUR_CLASS[scheme].classes
        assert {r["utterance"]: r["label"] for r in per} == {
            u: classes[FOUR_CLASS[scheme].codes[MSP_CATEGORY[scheme][c]]] for u, c in four.items()}
        assert res["WA"] == pytest.approx(np.mean([r["label"] == r["prediction"] for r in per]))
        recalls = [np.mean([r["label"] == r["prediction"] for r in per if r["label"] == c]) for c in classes
                   if any(r["label"] == c for r in per)]
        assert res["UA"] == pytest.approx(np.mean(recalls)) or len(recalls) < 4
        assert (d / "X" / res["confusion_png"]).is_file()
        assert f"| {run.name} | {len(four)} | {res['WA']:.4f} | {res['UA']:.4f} |" in out
    assert json.loads((d / "X" / f"{runs[1].name}_on_msp-podcast_test1.json").read_text())["absent"] == ["mocap"]
    assert "mean of" not in out  # an MDRE and a speech + text + mocap model: no mean across different models
    # the stores are made once, at the documented places, and a second call only reads them
    assert (msp / "Features" / "MDRE_MFCC39").is_dir() and (msp / "Features" / "Wav2Vec_w2v").is_dir()
    assert cross_corpus.main(["--checkpoint", str(runs[0]), "--root", str(msp), "--results", str(d / "X2"),
                              "--no-progress"]) == 0
    again = json.loads((d / "X2" / f"{runs[0].name}_on_msp-podcast_test1.json").read_text())
    first = json.loads((d / "X" / f"{runs[0].name}_on_msp-podcast_test1.json").read_text())
    assert again["confusion"] == first["confusion"]


def written_logits(path) -> dict:
    with open(path, newline="") as f:
        return {r["utterance"]: [float(v) for k, v in r.items() if k.startswith("logit_")] for r in csv.DictReader(f)}


def test_rebuilt_methods_give_the_logits_training_wrote(trained):
    """method_from_config(the checkpoint's config) over the training corpus's stores reproduces the per-utterance
    logits mdre.py / speech_text_mocap.py wrote for their test fold: the z-norm, vocabulary, pooling and sizes are
    all recorded, so scoring on another corpus is the same model."""
    from corpora.iemocap import read_iemocap
    from engine.checkpoint import load_checkpoint
    from engine.loop import evaluate, load_best
    from features.store import FeatureStore
    from features.vocab import Vocabulary, tokenize
    from systems import mdre as md
    from systems import speech_text_mocap as stm
    d, _ = trained
    iem = d / "IEMOCAP_full_release"
    text = {r.utt_id: r.transcript or "" for r in read_iemocap(iem).records}

    run = d / "M" / MDREA_RUN
    cfg = load_checkpoint(run)[1]
    want = written_logits(d / "R" / f"{run.name}.csv")
    vocab = Vocabulary(cfg["vocab"])
    ids = {u: vocab.encode(tokenize(text[u]))[: len(tokenize(text[u]))] for u in want}
    method = md.method_from_config(cfg, FeatureStore(iem / "Features" / "MDRE_MFCC39"),
                                   FeatureStore(iem / "Features" / "MDRE_Prosody35"), ids)
    assert cfg["norm"] is not None and {k: method.config()[k] for k in ("model", "vocab", "loss", "norm")} == {
        k: cfg[k] for k in ("model", "vocab", "loss", "norm")}
    got = evaluate(method, load_best(method, run, "cpu"), [(u, 0) for u in want], 16, "cpu")
    np.testing.assert_allclose(got, np.array(list(want.values())), atol=2e-5)

    run = d / "M" / f"stm_speech+text+mocap_s5{STM}"
    cfg = load_checkpoint(run)[1]
    want = written_logits(d / "R" / f"{run.name}.csv")
    stores = [FeatureStore(iem / "Features" / n) for n in ("Wav2Vec_w2v", "Tokens_bert", "Mocap189x200")]
    method = stm.method_from_config(cfg, *stores, no_text=frozenset(u for u, t in text.items() if not t.strip()))
    for k in ("modalities", "model", "inputs", "norm"):
        assert method.config()[k] == cfg[k], k
    got = evaluate(method, load_best(method, run, "cpu"), [(u, 0) for u in want], 16, "cpu")
    np.testing.assert_allclose(got, np.array(list(want.values())), atol=2e-5)
    # over a corpus without motion capture the mocap modality is absent for every utterance, nothing else changes
    absent = stm.method_from_config(cfg, stores[0], stores[1], frozenset())
    batch = absent.collate([(u, 0) for u in want])
    present = {m: batch["present"][:, j] for j, m in enumerate(cfg["modalities"])}
    assert not present["mocap"].any() and present["speech"].all()


def test_wrong_checkpoints_and_features_are_clear_errors(trained, msp_corpus, tmp_path, capsys):
    import cross_corpus
    from engine.cli import UserError
    from features.store import FeatureStore
    from systems.common import check_same_features
    d, msp = trained
    base = ["--root", str(msp), "--results", str(tmp_path / "R"), "--no-progress"]
    assert cross_corpus.main(["--checkpoint", str(d / "M" / f"stm_mocap_s5{STM}"), *base]) == 1
    assert "motion capture only" in capsys.readouterr().err
    assert cross_corpus.main(["--checkpoint", str(tmp_path / "nowhere"), *base]) == 1
    assert "not a checkpoint folder" in capsys.readouterr().err
    lstm = tmp_path / "lstm"  # a dimensional model's folder: pointed at the forward direction's scripts
    lstm.mkdir()
    (lstm / "config.json").write_text(json.dumps({"system": "chunk-lstm"}))
    (lstm / "model.safetensors").write_bytes(b"")
    assert cross_corpus.main(["--checkpoint", str(lstm), *base]) == 1
    err = capsys.readouterr().err
    assert str(lstm) in err and "testing.py" in err and "--corpus iemocap" in err
    damaged = tmp_path / "damaged"
    shutil.copytree(d / "M" / MDREA_RUN, damaged)
    (damaged / "model.safetensors").write_bytes(b"not safetensors")
    assert cross_corpus.main(["--checkpoint", str(damaged), *base]) == 1
    err = capsys.readouterr().err
    assert str(damaged) in err and "cannot load its weights" in err
    assert cross_corpus.main(["--checkpoint", str(d / "M" / MDREA_RUN), "--split", "nosuch", *base]) == 1
    assert "nosuch" in capsys.readouterr().err
    run = d / "M" / MDREA_RUN
    recorded = json.loads((run / "config.json").read_text())["features"]["mfcc"]
    other = FeatureStore.create(tmp_path / "mfcc", name=recorded["name"], extractor=recorded["extractor"],
                                params={**recorded["params"], "lifter": 0}, dims=recorded["dims"], frame_rate=100.0)
    with pytest.raises(UserError, match=r"params\.lifter") as e:
        check_same_features(recorded, other, "mfcc", run)
    assert str(other.root) in str(e.value) and str(run) in str(e.value)
    same = FeatureStore.create(tmp_path / "same", name=recorded["name"], extractor=recorded["extractor"],
                               params={**recorded["params"], "opensmile_version": "9.9"}, dims=recorded["dims"],
                               frame_rate=100.0)
    check_same_features(recorded, same, "mfcc", run)  # a library version alone is not a different feature


def test_an_utterance_without_transcript_is_listed_and_still_scored(trained, tmp_path, capsys):
    import cross_corpus
    d, msp = trained
    copy = tmp_path / "msp"
    shutil.copytree(msp, copy)
    gone = next(r["FileName"][:-4] for r in msp_test1_rows(copy) if r["EmoClass"] and r["EmoClass"] in "AHNS")
    (copy / "Transcripts" / f"{gone}.txt").unlink()
    run = d / "M" / f"stm_speech+text+mocap_s5{STM}"
    assert cross_corpus.main(["--checkpoint", str(run), "--root", str(copy), "--results", str(tmp_path / "R"),
                              "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "no transcript" in err and gone in err
    res = json.loads((tmp_path / "R" / f"{run.name}_on_msp-podcast_test1.json").read_text())
    with open(tmp_path / "R" / f"{run.name}_on_msp-podcast_test1.csv", newline="") as f:
        assert gone in {r["utterance"] for r in csv.DictReader(f)}
    assert res["utterances"] == sum(bool(r["EmoClass"]) and r["EmoClass"] in "AHNS" for r in msp_test1_rows(copy))

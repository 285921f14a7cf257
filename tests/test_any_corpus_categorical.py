"""Issue 24: the categorical systems (mdre.py's family, speech_text_mocap.py) on any corpus with categorical labels:
a manifest's declared classes (4, or a 3-class map), an EmoBox fold without a dev file (dev drawn from the training
split), MSP-Podcast's eight primary emotions (O / X left out and listed); the result files name the corpus and carry
the run's classes, WA, UA and macro-F1; what only IEMOCAP has is refused with a clear message."""
import csv
import json
import shutil
from pathlib import Path

import pytest

from engine.cli import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ["-iter", "4", "-batch", "8", "--val-every", "2", "--no-progress", "--deterministic", "--bootstrap", "50"]


def run_mdre(tmp_path, *argv):
    import mdre
    return mdre.main([*argv, *FAST, "--out", str(tmp_path / "M"), "--results", str(tmp_path / "R")])


def refused(script, *argv) -> None:
    """The script's Experiment of these flags (flags only), which must refuse them."""
    import importlib
    importlib.import_module(script).describe([*argv, *FAST])


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_mdre_on_a_manifest_scores_its_four_classes_with_macro_f1(manifest_corpus, tmp_path, capsys):
    assert run_mdre(tmp_path, "--corpus", "manifest", "--root", str(manifest_corpus), "--model", "TRE") == 0
    out, err = capsys.readouterr()
    assert "macro-F1 [95% CI]" in out and "TRE_manifest" in out
    assert "no categorical label" in err  # the X rows, listed
    res = json.loads(only(tmp_path / "R", "TRE_manifest*_fold1.json").read_text())
    assert res["classes"] == ["angry", "sad", "happy", "neutral"]
    assert res["corpus_kind"] == "manifest" and res["corpus_name"] == "SynthManifest" and res["split"] == "test"
    assert {"WA", "UA", "macro_F1"} <= set(res) and res["utterances"] == 15
    cfg = json.loads(only(tmp_path / "M", "TRE_manifest*_fold1").joinpath("config.json").read_text())
    assert cfg["classes"] == res["classes"]
    table = json.loads(only(tmp_path / "R", "TRE_manifest*_folds.json").read_text())
    assert "macro_F1" in table["mean"] and table["corpus_name"] == "SynthManifest"


def test_a_three_class_map_gives_a_three_output_head(manifest_corpus, tmp_path, capfd):
    """Rows whose label the map lacks (N) are left out and listed; the model's head, the checkpoint's classes and
    the per-utterance logits have three classes."""
    from engine.checkpoint import load_checkpoint
    folder = manifest_corpus.parent
    three = folder / "three.csv"  # beside the fixture's manifest: its relative audio / transcript paths hold
    shutil.copy(manifest_corpus, three)
    (folder / "three.json").write_text(json.dumps({"name": "Three", "scale": [1, 5],
                                                   "classes": {"A": "angry", "S": "sad", "H": "happy"}}))
    assert run_mdre(tmp_path, "--corpus", "manifest", "--root", str(three), "--model", "TRE") == 0
    assert "unknown class" in capfd.readouterr().err  # the reader's report of the N rows
    state, cfg = load_checkpoint(only(tmp_path / "M", "TRE_manifest*_fold1"))
    assert cfg["classes"] == ["angry", "sad", "happy"]
    assert [tuple(v.shape) for k, v in state.items() if k.startswith("head.") and v.ndim == 2] == [(200, 3)]
    rows = list(csv.DictReader(open(only(tmp_path / "R", "TRE_manifest*_fold1.csv"))))
    assert rows and [c for c in rows[0] if c.startswith("logit_")] == ["logit_angry", "logit_sad", "logit_happy"]
    assert {r["label"] for r in rows} <= {"angry", "sad", "happy"}


def write_emobox(root: Path, manifest: Path) -> Path:
    """A tiny EmoBox folder (data/<c>/<c>.jsonl, label_map.json, fold_1 train + test files, no valid file) over
    the manifest corpus's audio, wav paths relative to the EmoBox folder."""
    data = root / "data" / "tiny"
    (data / "fold_1").mkdir(parents=True)
    shutil.copytree(manifest.parent / "msp" / "Audios", root / "downloads" / "tiny")
    rows = [r for r in csv.DictReader(open(manifest)) if r["label"]]
    lines = {s: [json.dumps({"key": r["id"], "dataset": "tiny", "wav": f"downloads/tiny/{Path(r['path']).name}",
                             "type": "raw", "task": "category", "emo": r["label"]})
                 for r in rows if (r["split"] == "test") == (s == "test")] for s in ("train", "test")}
    (data / "tiny.jsonl").write_text("\n".join(lines["train"] + lines["test"]) + "\n")
    (data / "label_map.json").write_text(json.dumps({"A": "Angry", "S": "Sad", "H": "Happy", "N": "Neutral"}))
    for s, ls in lines.items():
        (data / "fold_1" / f"tiny_{s}_fold_1.jsonl").write_text("\n".join(ls) + "\n")
    return data


def test_an_emobox_fold_without_a_dev_file_draws_dev_from_train(manifest_corpus, tmp_path, capsys):
    data = write_emobox(tmp_path / "EmoBox", manifest_corpus)
    n_train = len((data / "fold_1" / "tiny_train_fold_1.jsonl").read_text().splitlines())
    with pytest.raises(UserError, match="give --fold"):
        refused("mdre", "--corpus", "emobox", "--root", str(data), "--model", "TRE")
    assert run_mdre(tmp_path, "--corpus", "emobox", "--root", str(data), "--fold", "1", "--model", "TRE",
                    "--dev-share", "0.2") == 0
    out = capsys.readouterr().out
    assert "EmoBox tiny fold 1 has no dev split" in out and "by utterance" in out
    table = json.loads(only(tmp_path / "R", "TRE_emobox*_folds.json").read_text())
    row = table["folds"][0]
    assert row["dev"] == round(0.2 * n_train) and row["train"] + row["dev"] == n_train
    assert table["classes"] == ["Angry", "Sad", "Happy", "Neutral"] and table["emobox_fold"] == 1


def test_msp_podcast_categorical_leaves_o_and_x_out_and_lists_them(msp_corpus, tmp_path, capsys):
    assert run_mdre(tmp_path, "--corpus", "msp-podcast", "--root", str(msp_corpus), "--model", "TRE",
                    "--test-split", "test1") == 0
    out, err = capsys.readouterr()
    assert "EmoClass X" in err and "macro-F1" in out
    res = json.loads(only(tmp_path / "R", "TRE_msp-podcast*_fold1.json").read_text())
    assert res["classes"] == ["angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral"]
    assert res["corpus_kind"] == "msp-podcast" and "macro_F1" in res


def test_speech_text_mocap_text_on_a_manifest(manifest_corpus, tmp_path, capsys, monkeypatch):
    """The text configuration with the tiny BERT (its vocabulary from the manifest's training transcripts)."""
    import speech_text_mocap
    monkeypatch.setenv("SER_MODEL_CACHE", str(tmp_path / "cache"))
    base = ["--corpus", "manifest", "--root", str(manifest_corpus), "--text-model", "tiny-random-bert",
            "--d-model", "8", "--heads", "2", "--layers", "1", "--ff", "16", "--fusion-hidden", "8",
            "--missing", "none", *FAST, "--out", str(tmp_path / "M"), "--results", str(tmp_path / "R")]
    assert speech_text_mocap.main([*base, "--configs", "text+mocap"]) == 1  # no row has a mocap_path
    assert "has a mocap_path" in capsys.readouterr().err
    assert speech_text_mocap.main([*base, "--configs", "text"]) == 0
    out = capsys.readouterr().out
    assert "SynthManifest 4 classes, test split held out" in out and "macro-F1" in out
    res = json.loads(only(tmp_path / "R", "stm_text_split*.json").read_text())
    assert res["classes"] == ["angry", "sad", "happy", "neutral"] and res["corpus_name"] == "SynthManifest"
    assert {"WA", "UA", "macro_F1"} <= set(res) and res["present"]["text"] == 1.0
    cfg = json.loads(only(tmp_path / "M", "stm_text_split*").joinpath("config.json").read_text())
    assert cfg["classes"] == res["classes"]


def test_iemocap_only_flags_are_refused_on_other_corpora(manifest_corpus, tmp_path):
    with pytest.raises(UserError, match="--protocol loso"):
        refused("mdre", "--corpus", "manifest", "--root", str(manifest_corpus), "--protocol", "loso")
    with pytest.raises(UserError, match="IEMOCAP has no named splits"):
        refused("mdre", "--root", str(tmp_path), "--test-split", "test1")
    with pytest.raises(UserError, match="only --corpus emobox has folds"):
        refused("mdre", "--corpus", "manifest", "--root", str(manifest_corpus), "--fold", "1")
    with pytest.raises(UserError, match="--loso: IEMOCAP only"):
        refused("speech_text_mocap", "--corpus", "manifest", "--root", str(manifest_corpus), "--configs", "text",
                "--loso")


def test_a_manifest_model_is_scored_on_msp_podcast_classes_by_name_or_class_map(manifest_corpus, msp_corpus,
                                                                                 tmp_path, capsys):
    """cross_corpus.py on any categorical checkpoint: a TRE trained on the manifest's angry/sad/happy/neutral is
    scored on MSP-Podcast's eight primary emotions, classes matched by name (the other classes and X counted as
    left out); --class-map narrows the mapping; the result names both corpora."""
    import cross_corpus
    assert run_mdre(tmp_path, "--corpus", "manifest", "--root", str(manifest_corpus), "--model", "TRE") == 0
    run = only(tmp_path / "M", "TRE_manifest*_fold1")
    assert json.loads((run / "config.json").read_text())["protocol"]["corpus"] == {"kind": "manifest",
                                                                                   "name": "SynthManifest"}
    base = ["--checkpoint", str(run), "--root", str(msp_corpus), "--results", str(tmp_path / "X"), "--no-progress"]
    assert cross_corpus.main(base) == 0
    out = capsys.readouterr().out
    assert f"{run.name} on MSP-Podcast test1" in out
    res = json.loads(only(tmp_path / "X", f"{run.name}_on_msp-podcast_test1.json").read_text())
    assert res["class_mapping"] == {c: c for c in ("angry", "sad", "happy", "neutral")}
    assert res["trained_on"]["name"] == "SynthManifest" and res["corpus_name"] == "MSP-Podcast"
    from corpora import class_labels, read_corpus
    msp = read_corpus("msp-podcast", msp_corpus, "test1")
    _, pairs, unlabelled = class_labels(msp, "msp-podcast")
    assert res["utterances"] == len(pairs) and sum(res["left_out"].values()) == len(unlabelled)
    assert "macro_F1" in res
    assert cross_corpus.main([*base, "--class-map", "angry=angry,happy=happy", "--results", str(tmp_path / "Y")]) == 0
    res = json.loads(only(tmp_path / "Y", f"{run.name}_on_msp-podcast_test1.json").read_text())
    assert res["class_mapping"] == {"angry": "angry", "happy": "happy"}
    assert res["left_out"]["sad"] + res["left_out"]["neutral"] + res["utterances"] == len(pairs)
    assert cross_corpus.main([*base, "--class-map", "angry=furious"]) == 1
    assert "furious not among the model's classes" in capsys.readouterr().err

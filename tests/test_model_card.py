"""Model cards (issue 22, item 4): every checkpoint folder's README.md, written by the loop from what the run
recorded, rewritten by every result that scores it; the six shipped cards are what convert_legacy renders."""
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from engine.model_card import CARD, record_result, render_card
from metrics import stored

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["## Model", "## Training data", "## Training", "## Test scores", "## How it was made",
            "## Intended use and limits", "## Licence"]


def sections(card: str) -> list[str]:
    return [line for line in card.splitlines() if line.startswith("## ")]


def test_a_trained_run_gets_a_card_and_its_test_score_with_the_interval(mel_setup, tmp_path, monkeypatch):
    import testing
    import training
    corpus, root = mel_setup
    monkeypatch.chdir(tmp_path)
    args = ["-iter", "4", "-batch", "8", "-emo", "Act", "-atten", "GatedVec", "--root", str(corpus),
            "--store", str(root / "mel"), "--normterm", str(root / "NT"), "--no-progress"]
    assert training.main([*args, "--out", "Models", "--val-every", "2"]) == 0
    run = tmp_path / "Models" / "LSTM_iter4_batch8_ChunkSeq2One_GatedVec_Act"
    card = (run / CARD).read_text()
    assert sections(card) == SECTIONS
    assert "synthetic demo corpus in the MSP-Podcast layout (release 1.10 layout, 60 utterances, seed 7" in card
    assert "- Trained: iteration 4 of 4 (4 optimiser steps): finished" in card
    assert "python training.py -iter 4 -batch 8 -emo Act -atten GatedVec" in card  # the command that made it
    params = sum(t.numel() for t in load_file(run / "model.safetensors").values())
    assert f"- Parameters: {params:,} in " in card
    assert "Not tested yet: run `python testing.py " in card and f"--checkpoint {run.relative_to(tmp_path)}`" in card
    assert "not a model of human emotion" in card and "no corpus licence applies" in card

    assert testing.main([*args, "--models-dir", "Models", "--csv", "res/x.csv"]) == 0
    card = (run / CARD).read_text()
    result = json.loads((tmp_path / "res" / "x.json").read_text())
    row = f"| msp-podcast | test1 | CCC (act) | {stored(result, 'value').text()} | 15 | `../../res/x.json` |"
    assert row in card and "[" in stored(result, "value").text() and "Not tested yet" not in card
    assert json.loads((run / "run.json").read_text())["results"] == ["../../res/x.json"]
    # the same file written again is one row, not two; the card renders the same text again
    record_result(run, tmp_path / "res" / "x.json")
    assert (run / CARD).read_text().count("`../../res/x.json`") == 1
    assert render_card(run) == (run / CARD).read_text()
    # the training command again resumes the finished run: its test results stay on the card
    assert training.main([*args, "--out", "Models", "--val-every", "2"]) == 0
    assert row in (run / CARD).read_text()


@pytest.mark.parametrize("folder", sorted(p.name for p in (REPO / "trained_models").glob("LSTM_*")))
def test_the_shipped_cards_are_what_convert_legacy_renders(folder):
    from convert_legacy import published_card
    path = REPO / "trained_models" / folder
    card = (path / CARD).read_text()
    assert card == render_card(path, published=published_card(path)), "regenerate: see docs/model_cards.md"
    assert sections(card) == SECTIONS
    assert "not published | reported by the authors" in card and "MIT" in card


def test_a_published_folder_is_left_alone_by_results(tmp_path):
    """A folder without run.json (a published model, a bare copy) keeps its card when a result scores it."""
    folder = tmp_path / "pub"
    shutil.copytree(REPO / "trained_models" / "LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Act", folder)
    before = (folder / CARD).read_bytes()
    (tmp_path / "r.json").write_text(json.dumps({"metric": "CCC", "value": 0.5, "checkpoint": str(folder)}))
    record_result(folder, tmp_path / "r.json")
    assert (folder / CARD).read_bytes() == before and not (folder / "run.json").exists()


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    from corpora.synth.iemocap import write_iemocap
    root = tmp_path_factory.mktemp("card_corpus") / "IEMOCAP_full_release"
    write_iemocap(root, n=50, seed=3, progress=False)
    return root


def test_an_mdre_fold_card_shows_wa_and_ua_with_intervals(iemocap, tmp_path):
    import mdre
    assert mdre.main(["--root", str(iemocap), "--model", "MDREA", "--protocol", "loso", "--folds", "5", "-iter", "2",
                      "-batch", "8", "--val-every", "2", "--out", str(tmp_path / "M"), "--results",
                      str(tmp_path / "R"), "--no-progress", "--deterministic"]) == 0
    (run,) = (tmp_path / "M").iterdir()
    card = (run / CARD).read_text()
    assert sections(card) == SECTIONS and "4 classes: angry, happy, sad, neutral" in card
    (fold,) = (tmp_path / "R").glob("*_fold5.json")
    result = json.loads(fold.read_text())
    for metric in ("WA", "UA"):
        assert f"| {metric} | {stored(result, metric).text()} | {result['utterances']} | `../../R/{fold.name}` |" in card
    assert "Also evaluated in:" in card and "_folds.json`: loso (WA/UA)" in card  # the fold table names it too
    assert "python mdre.py --root" in card and "Protocol: name loso, fold 5" in card

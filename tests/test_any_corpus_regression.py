"""The dimensional systems, extractors and norm_para.py on any corpus (issue 24): a manifest end to end (store
beside the manifest, NormTerm, chunk-LSTM training and scoring of its test split), segment rows, the labels on 1-7,
and the refusals (--fold without EmoBox, EmoBox for a dimensional system, a manifest without dimensional labels)."""
import csv
import json

import numpy as np
import pytest
import soundfile as sf

from engine.cli import UserError
from features.store import FeatureStore

LLD = "OpenSmile_lld_IS13ComParE"


@pytest.fixture(scope="module")
def manifest_lld(manifest_corpus, tmp_path_factory):
    """(manifest CSV, the LLD store feat_opensmile.py writes by default beside it), with norm_para.py's NormTerm
    at the manifest's folder's NormTerm (where training.py looks by default)."""
    import feat_opensmile
    import norm_para
    cache = tmp_path_factory.mktemp("smile")
    assert feat_opensmile.main(["--corpus", "manifest", "--root", str(manifest_corpus), "--config-cache", str(cache),
                                "--no-progress"]) == 0
    store = manifest_corpus.parent / "Features" / LLD
    assert norm_para.main(["--store", str(store), "--corpus", "manifest", "--root", str(manifest_corpus),
                           "--out", str(manifest_corpus.parent / "NormTerm"), "--no-progress"]) == 0
    return manifest_corpus, store


def manifest_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_manifest_trains_and_scores_with_the_default_store_and_names_its_corpus(manifest_lld, tmp_path):
    import testing
    import training
    manifest, store = manifest_lld
    assert FeatureStore(store).meta["corpus"] == "SynthManifest"  # extracted from the manifest, named by it
    assert len(FeatureStore(store)) == 60
    args = ["-iter", "2", "-batch", "4", "-emo", "Act", "-atten", "NonAtten", "--corpus", "manifest",
            "--root", str(manifest), "--no-progress"]  # no --store, no --normterm: the defaults beside the manifest
    assert training.main([*args, "--out", str(tmp_path / "M"), "--val-every", "1"]) == 0
    run = next((tmp_path / "M").iterdir())
    assert json.loads((run / "config.json").read_text())["corpus"] == {"kind": "manifest", "name": "SynthManifest"}
    out = tmp_path / "t.csv"
    assert testing.main([*args, "--models-dir", str(tmp_path / "M"), "--csv", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert (result["corpus_kind"], result["corpus_name"], result["split"]) == ("manifest", "SynthManifest", "test")
    test_ids = {r["id"] for r in manifest_rows(manifest) if r["split"] == "test"}
    assert {r["utterance"] for r in manifest_rows(out)} == test_ids  # the manifest's test split, every row of it


def test_labelled_items_of_a_manifest_are_on_the_1_to_7_scale(manifest_lld):
    from systems.common import labelled_items
    manifest, store = manifest_lld
    items = dict(labelled_items(manifest, "train", "val", FeatureStore(store), "manifest"))
    on_five = {r["id"]: float(r["valence"]) for r in manifest_rows(manifest) if r["split"] == "train"}
    assert items.keys() == on_five.keys()
    for utt, y5 in on_five.items():
        assert items[utt] == pytest.approx(1 + (y5 - 1) * 6 / 4)
    # test1, the scripts' default test split, is the manifest's test split (it has no test1)
    assert {u for u, _ in labelled_items(manifest, "test1", "val", FeatureStore(store), "manifest")} == {
        r["id"] for r in manifest_rows(manifest) if r["split"] == "test"}


def test_a_manifest_without_dimensional_columns_is_refused(manifest_lld, tmp_path):
    from systems.common import labelled_items
    manifest, store = manifest_lld
    rows = manifest_rows(manifest)
    bare = tmp_path / "bare.csv"
    with open(bare, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "split"])
        w.writerows([r["id"], str(manifest.parent / r["path"]), r["split"]] for r in rows)
    with pytest.raises(UserError, match="bare.csv: no row of split train has arousal.*arousal column"):
        labelled_items(bare, "train", "act", FeatureStore(store), "manifest")


def test_fold_without_emobox_and_emobox_for_a_dimensional_system_are_refused(manifest_corpus, tmp_path, capsys):
    import norm_para
    import training
    common = ["-iter", "2", "-batch", "4", "-emo", "Act", "-atten", "NonAtten", "--out", str(tmp_path / "M")]
    assert training.main([*common, "--corpus", "manifest", "--root", str(manifest_corpus), "--fold", "1"]) == 1
    assert "--fold 1: only --corpus emobox has folds" in capsys.readouterr().err
    assert norm_para.main(["--corpus", "manifest", "--root", str(manifest_corpus), "--fold", "2",
                           "--out", str(tmp_path / "NT")]) == 1
    assert "--fold 2: only --corpus emobox has folds" in capsys.readouterr().err
    assert training.main([*common, "--corpus", "emobox", "--root", str(tmp_path), "--fold", "1"]) == 1
    assert "EmoBox rows carry no arousal/dominance/valence labels" in capsys.readouterr().err
    assert training.main([*common, "--corpus", "manifest"]) == 1  # no default root but MSP-Podcast's
    assert "--corpus manifest needs --root: the manifest file" in capsys.readouterr().err
    assert not (tmp_path / "M").exists()


def test_a_segment_row_extracts_exactly_the_cut_out_audio(tmp_path):
    import feat_mel
    sr = 16000
    x = np.random.RandomState(3).uniform(-0.5, 0.5, 3 * sr).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, sr, subtype="FLOAT")
    (tmp_path / "cut").mkdir()
    sf.write(tmp_path / "cut" / "seg.wav", x[int(0.5 * sr): int(2.25 * sr)], sr, subtype="FLOAT")
    (tmp_path / "seg.csv").write_text("id,path,start,end\nseg,long.wav,0.5,2.25\n")
    assert feat_mel.main(["--corpus", "manifest", "--root", str(tmp_path / "seg.csv"), "--no-progress"]) == 0
    assert feat_mel.main(["--wav-dir", str(tmp_path / "cut"), "--store", str(tmp_path / "cut_store"),
                          "--no-progress"]) == 0
    from_manifest = FeatureStore(tmp_path / "Features" / "Mel_Spec128")["seg"]  # default: beside the manifest
    np.testing.assert_array_equal(from_manifest, FeatureStore(tmp_path / "cut_store")["seg"])

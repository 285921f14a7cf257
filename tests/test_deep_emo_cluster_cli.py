"""What main.py -ep ... and online_testing.py (and testing.py, the same pattern) tell the user: refusals before any
work (-batch 1, -nc larger than the chunks, a pool holding evaluation utterances), `main.py --help` listing both
systems, and testing banners / result names that describe the checkpoint scored, never the command line alone
(issue 19: items 10, 13, 18, 21, 23, 26, 29)."""
import json
import shutil

import numpy as np
import pytest

from conftest import unwritable_folders

BASE = ["-ep", "1", "-batch", "4", "-emo", "Act", "-nc", "3", "-mt", "Temp-CNN"]


def data_args(mel_setup):
    corpus, root = mel_setup
    return ["--root", str(corpus), "--store", str(root / "mel"), "--normterm", str(root / "NT"), "--no-progress"]


def test_refusals_before_any_work(mel_setup, tmp_path, capsys, monkeypatch):
    import main
    from features.store import FeatureStore
    corpus, root = mel_setup
    data, out = data_args(mel_setup), ["--out", str(tmp_path / "M")]
    # -batch 1: one label per batch, 1 - CCC constant (13)
    with pytest.raises(SystemExit):
        main.main([*BASE[:2], "-batch", "1", *BASE[4:], *data, *out])
    err = capsys.readouterr().err
    assert "-batch" in err and "1 - CCC is constant" in err
    with monkeypatch.context() as m:  # under torchrun with 2 processes: each needs 2 sentences of a batch
        m.setenv("WORLD_SIZE", "2")
        assert main.main([*BASE[:2], "-batch", "3", *BASE[4:], *data, *out]) == 1
    assert "-batch 3: under torchrun each of the 2 processes needs at least 2" in capsys.readouterr().err
    # -nc above the training chunks, and above the unlabelled pool's (23): named before any embedding
    assert main.main([*BASE[:6], "-nc", "5000", *BASE[8:], *data, *out]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: -nc 5000: more clusters than the") and "train split" in err, err
    src = FeatureStore(root / "mel")
    small = FeatureStore.create(tmp_path / "pool", name="Mel_Spec128", extractor="MelSpectrogram",
                                params=src.meta["params"], dims=128, frame_rate=src.meta["frame_rate"])
    with small.writer() as w:
        for u in ("pool_a", "pool_b"):
            w.add(u, src[src.keys()[0]])
    assert main.main([*BASE[:6], "-nc", "30", *BASE[8:], *data, *out, "-unlabel", "2",
                      "--unlabelled-store", str(tmp_path / "pool")]) == 1
    err = capsys.readouterr().err
    assert "-nc 30: more clusters than the 22 chunks of the 2 sentence(s) of the unlabelled pool" in err, err
    # a pool holding test1 or dev utterances (18): a split, or a store holding the whole corpus
    for pool in (["--unlabelled-split", "test1"], ["--unlabelled-store", str(root / "mel")]):
        assert main.main([*BASE, *data, *out, "-unlabel", "1000", *pool]) == 1
        err = capsys.readouterr().err
        assert "holds evaluation utterances" in err and "test1" in err and "--allow-test-in-pool" in err, err
    assert not (tmp_path / "M").exists() or not any((tmp_path / "M").iterdir())  # nothing written


def test_main_help_lists_both_systems(capsys):
    import main
    with pytest.raises(SystemExit) as e:
        main.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--audio-store", "--chunking", "-ep EPOCH", "-nc NUM_CLUSTERS", "-mt", "--unlabelled-split",
                 "--allow-test-in-pool", "DeepEmoCluster (System 2)"):
        assert flag in out, flag


def test_testing_describes_the_checkpoint_it_scores(mel_setup, tmp_path, capsys, monkeypatch):
    import main
    import online_testing
    from test_deep_emo_cluster import _original_layout as original_layout
    corpus, root = mel_setup
    data = data_args(mel_setup)
    # a pool overlapping test1, allowed explicitly: recorded in the run's config (18)
    assert main.main([*BASE, *data, "--out", str(tmp_path / "M"), "-unlabel", "3", "--unlabelled-split", "test1",
                      "--allow-test-in-pool"]) == 0
    assert "allowed by --allow-test-in-pool" in capsys.readouterr().err
    run = tmp_path / "M" / "TempDeepEmoCluster_epoch1_batch4_3clusters_Act_Temp-CNN_unlabel3"
    assert json.loads((run / "config.json").read_text())["unlabelled"]["overlap"] == {"test1": 3}
    mine = tmp_path / "my_model"
    shutil.copytree(run, mine)
    monkeypatch.chdir(tmp_path)
    # flags that contradict the checkpoint are refused, naming each (10)
    wrong = ["-ep", "30", "-batch", "64", "-emo", "Act", "-nc", "3", "-mt", "Temp-CNN", "-unlabel", "3"]
    assert online_testing.main([*wrong, *data, "--checkpoint", str(mine)]) == 1
    err = capsys.readouterr().err
    assert "-ep 30 (the checkpoint: 1)" in err and "-batch 64 (the checkpoint: 4)" in err, err
    assert not (tmp_path / "results").exists()
    # the banner and the result file come from the checkpoint, named after it; the pool overlap is told (10, 18);
    # --normterm with our checkpoint is not silently ignored (26)
    ok = [*BASE, "-unlabel", "3", *data[:4], "--no-progress"]
    assert online_testing.main([*ok, "--checkpoint", str(mine), "--normterm", str(root / "NT")]) == 0
    io = capsys.readouterr()
    assert "Epochs: 1\nBatch Size: 4\nUnlabeled Size: 3\nEmoClusters (#): 3" in io.out
    assert "3 utterance(s) of test1 were in this model's unlabelled training pool" in io.err
    assert f"--normterm {root / 'NT'} is not used ({mine} carries the same NormTerm)" in io.err
    result = json.loads((tmp_path / "results" / "my_model_test1.json").read_text())
    assert result["training_pool_overlap"] == {"test1": 3} and result["run_settings"]["-ep"] == "1"
    assert online_testing.main([*ok, "--checkpoint", str(mine), "--normterm", str(tmp_path / "nope")]) == 1
    assert f"--normterm {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
    from types import SimpleNamespace

    from features.normterm import NormTerm
    from systems.common import normterm_for_checkpoint
    nt = NormTerm.load(root / "NT")
    NormTerm(nt.feat_mean + 1, nt.feat_std, nt.labels).save(tmp_path / "other_NT")
    given = SimpleNamespace(normterm=tmp_path / "other_NT", normterm_given=True)
    assert normterm_for_checkpoint(given, mine) is None
    err = capsys.readouterr().err
    assert err.startswith("warning: --normterm") and "statistics differ" in err, err
    # an unwritable --csv names the flag (26)
    target = unwritable_folders(tmp_path)[0]
    assert online_testing.main([*ok, "--checkpoint", str(mine), "--csv", str(target / "x.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {target}") and "--csv" in err, err
    # an original .pth.tar under any name: the weights say what it is, and the output says so (29)
    legacy = original_layout(run, "weights_v2")
    nt = ["--normterm", str(root / "NT")]
    assert online_testing.main([*ok, "--checkpoint", str(legacy), *nt, "--csv", str(tmp_path / "l.csv")]) == 0
    out = capsys.readouterr().out
    assert "the temporal model and the cluster count from the weights; the attribute from -emo" in out, out
    assert "Epochs: 1 (from the command line: weights_v2.pth.tar does not record it)" in out
    ours = np.genfromtxt(tmp_path / "results" / "my_model_test1.csv", delimiter=",", skip_header=1, usecols=1)
    np.testing.assert_array_equal(np.genfromtxt(tmp_path / "l.csv", delimiter=",", skip_header=1, usecols=1), ours)
    bad = [*ok[:8], "-mt", "Temp-GRU", *ok[10:]]
    assert online_testing.main([*bad, "--checkpoint", str(legacy), *nt, "--csv", str(tmp_path / "g.csv")]) == 1
    assert "-mt Temp-GRU (the checkpoint: Temp-CNN)" in capsys.readouterr().err


def test_chunk_lstm_testing_describes_the_checkpoint_it_scores(mel_setup, tmp_path, capsys, monkeypatch):
    import testing
    import training
    data = data_args(mel_setup)
    args = ["-iter", "2", "-batch", "4", "-emo", "Dom", "-atten", "NonAtten", *data]
    assert training.main([*args, "--out", str(tmp_path / "M"), "--val-every", "1"]) == 0
    mine = tmp_path / "chunk_model"
    shutil.copytree(tmp_path / "M" / "LSTM_iter2_batch4_ChunkSeq2One_NonAtten_Dom", mine)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert testing.main(["-iter", "5000", *args[2:], "--checkpoint", str(mine)]) == 1
    assert "-iter 5000 (the checkpoint: 2)" in capsys.readouterr().err
    assert testing.main([*args, "--checkpoint", str(mine), "--normterm", str(tmp_path / "nope")]) == 1
    assert "--normterm" in capsys.readouterr().err
    assert testing.main([*args[:-3], "--no-progress", "--checkpoint", str(mine)]) == 0
    assert "Iterations: 2\nBatch_Size: 4" in capsys.readouterr().out
    assert (tmp_path / "results" / "chunk_model_test1.csv").is_file()

"""DeepEmoCluster end to end on the shared loop: main.py (epochs, k-means, fresh heads, the unlabelled stage),
exact resume and determinism, online_testing.py and prediction_process.py with our checkpoints and with
original-layout .pth.tar files, torchrun with two CPU processes, and the bad inputs the original crashes on."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
RUN = "TempDeepEmoCluster_epoch{ep}_batch4_3clusters_Act_{mt}_unlabel{u}"


def train_args(mel_setup, ep, mt, *extra):
    corpus, root = mel_setup
    return ["-ep", str(ep), "-batch", "4", "-emo", "Act", "-nc", "3", "-mt", mt, "--root", str(corpus),
            "--store", str(root / "mel"), "--normterm", str(root / "NT"), "--no-progress", *extra]


def weights(folder: Path) -> dict:
    return torch.load(folder / "state.pt", weights_only=True)["model"]


def test_resume_after_a_kill_is_bit_exact_and_runs_repeat(mel_setup, tmp_path, capsys):
    """Temp-Triplet draws triplets from the method's RNG, Temp-Trans has dropout: both must resume exactly."""
    import main
    for mt in ("Temp-Triplet", "Temp-Trans"):
        name = RUN.format(ep=2, mt=mt, u=0)
        assert main.main(train_args(mel_setup, 2, mt, "--out", str(tmp_path / "a"))) == 0
        assert main.main(train_args(mel_setup, 2, mt, "--out", str(tmp_path / "b"))) == 0
        # as if killed after epoch 1: the same run folder, stopped there, then the full command again
        assert main.main(train_args(mel_setup, 1, mt, "--out", str(tmp_path / "c"))) == 0
        (tmp_path / "c" / RUN.format(ep=1, mt=mt, u=0)).rename(tmp_path / "c" / name)
        capsys.readouterr()
        assert main.main(train_args(mel_setup, 2, mt, "--out", str(tmp_path / "c"))) == 0
        out = capsys.readouterr().out
        assert "at epoch 1 (best validation" in out  # it resumed, it did not start over
        # the best validation CCC with its 95 % bootstrap interval over the validation sentences (issue 20.7)
        assert re.search(r"best validation CCC -?\d\.\d{4} \[-?\d\.\d\d, -?\d\.\d\d\] at epoch \d of 2", out), out
        a, b, c = (weights(tmp_path / d / name) for d in "abc")
        for k in a:
            assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), (mt, k)
        log = list(csv.DictReader(open(tmp_path / "c" / name / "log.csv")))
        assert [r["epoch"] for r in log] == ["1", "2"] and log[1]["nmi"] != "nan"
        assert log[0]["labelled_kmeans_objective"] and (tmp_path / "a" / name / "loss.png").is_file()
        cfg = json.loads((tmp_path / "a" / name / "config.json").read_text())
        assert cfg["system"] == "deep_emo_cluster" and cfg["model"] == {"variant": mt, "num_clusters": 3}


def test_unlabelled_stage_from_a_split_with_a_pool_smaller_than_asked(mel_setup, tmp_path, capsys):
    import main
    argv = train_args(mel_setup, 1, "Temp-CNN", "--out", str(tmp_path), "-unlabel", "500",
                      "--unlabelled-split", "test2")
    assert main.main(argv) == 0
    assert "fewer than -unlabel 500: all are used" in capsys.readouterr().err
    run = tmp_path / RUN.format(ep=1, mt="Temp-CNN", u=500)
    cfg = json.loads((run / "config.json").read_text())
    from corpora.msp_podcast import read_msp_podcast
    test2 = read_msp_podcast(mel_setup[0], split="test2").records
    assert cfg["unlabelled"]["size"] == len(test2) and cfg["unlabelled"]["source"] == "split test2"
    row = next(csv.DictReader(open(run / "log.csv")))
    assert float(row["unlabelled_loss"]) > 0 and "unlabelled_kmeans_objective" in row


def test_unlabelled_pool_from_a_wav_folder_and_from_a_store(mel_setup, tmp_path):
    """A folder of WAVs (mel extracted on first use, bad files listed) or any mel store, U drawn with a seed."""
    import shutil

    import main
    from conftest import write_odd_wavs
    from features.audio import load_audio
    from features.store import FeatureStore
    corpus, root = mel_setup
    wavs = tmp_path / "pool"
    (wavs / "sub").mkdir(parents=True)
    for p in sorted((corpus / "Audios").glob("*.wav"))[:5]:
        shutil.copy(p, wavs / "sub" / p.name)
    write_odd_wavs(wavs / "odd", load_audio(sorted((corpus / "Audios").glob("*.wav"))[0]))
    assert main.main(train_args(mel_setup, 1, "Temp-GRU", "--out", str(tmp_path / "a"), "-unlabel", "6",
                                "--unlabelled-wav-dir", str(wavs))) == 0
    pool = FeatureStore(wavs / "Features" / "Mel_Spec128")
    assert len(pool) == 8 and {e["utterance"] for e in pool.errors()} == {"odd/empty", "odd/corrupt", "odd/silent",
                                                                         "odd/short"}
    cfg = json.loads((tmp_path / "a" / RUN.format(ep=1, mt="Temp-GRU", u=6) / "config.json").read_text())
    assert cfg["unlabelled"]["size"] == 6 and cfg["unlabelled"]["source"].startswith("WAV folder")
    assert cfg["unlabelled"]["seed"] == 99
    assert main.main(train_args(mel_setup, 1, "Temp-GRU", "--out", str(tmp_path / "b"), "-unlabel", "6",
                                "--unlabelled-store", str(wavs / "Features" / "Mel_Spec128"))) == 0
    a = weights(tmp_path / "a" / RUN.format(ep=1, mt="Temp-GRU", u=6))
    b = weights(tmp_path / "b" / RUN.format(ep=1, mt="Temp-GRU", u=6))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same pool, the same draw, the same model


def test_the_unlabelled_stage_trains_only_what_the_original_trains(mel_setup):
    """CE (+ triplet) through the shared weights, classifier and head; the emotion regressor stays untouched."""
    from engine.loop import Context
    from features.normterm import NormTerm
    from features.store import FeatureStore
    from systems.deep_emo_cluster import DeepEmoClusterMethod
    corpus, root = mel_setup
    store = FeatureStore(root / "mel")
    pool = store.keys()[:8]
    m = DeepEmoClusterMethod(store, NormTerm.load(root / "NT"), "act", "Temp-GRU", 3, 4, pool_store=store, pool=pool)
    torch.manual_seed(0)
    model = m.build_model()
    opts = m.optimizers(model)
    assert all(not any(p is q for q in model.top_layer_class.parameters())
               for g in opts["adam"].param_groups for p in g["params"])
    ctx = Context(torch.device("cpu"), 0, 1, 8, False)
    stage = m.epoch_stages(model, 0, ctx, [(u, 4.0) for u in store.keys()[8:20]])[0]
    stage.prepare(stage)
    assert stage.name == "unlabelled" and len(stage.optimizers) == 2
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = stage.collate([stage.items[i] for i in stage.batches[0]])
    assert batch["x"].shape == (4 * 11, 1, 62, 128) and batch["pseudo"].shape == (44,) and "y" not in batch
    loss = stage.loss(model, batch)
    for o in stage.optimizers:
        o.zero_grad()
    loss.backward()
    for o in stage.optimizers:
        o.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert not any(n.startswith(("emo_regressor", "top_layer_attri")) for n in changed)
    assert any(n.startswith("top_layer_class") for n in changed) and any(n.startswith("cnn_features") for n in changed)


def test_empty_clusters_and_short_sentences_are_handled(mel_setup, tmp_path, monkeypatch):
    """k-means leaving clusters empty (the original divides by zero) and a sentence shorter than one chunk
    (the original raises) must train and predict."""
    import engine.clustering
    import systems.deep_emo_cluster as dec
    from engine.loop import LoopConfig, train
    from features.normterm import NormTerm
    from features.store import FeatureStore
    corpus, root = mel_setup
    src = FeatureStore(root / "mel")
    store = FeatureStore.create(tmp_path / "s", name="Mel_Spec128", extractor="MelSpectrogram",
                                params=src.meta["params"], dims=128, frame_rate=src.meta["frame_rate"])
    with store.writer() as w:
        for u in src.keys()[:24]:
            w.add(u, src[u][:40] if u == src.keys()[0] else src[u])  # 40 frames < 62
    store = FeatureStore(tmp_path / "s")
    real = engine.clustering.kmeans

    def only_two(x, k, **kw):  # every chunk in clusters 0 and 1: cluster 2 stays empty
        r = real(x, 2, **kw)
        return engine.clustering.KMeansResult(r.assign, np.vstack([r.centroids, r.centroids[:1]]), r.objective,
                                              r.backend)
    monkeypatch.setattr(dec, "kmeans", only_two)
    items = [(u, 3.0 + i % 4) for i, u in enumerate(store.keys())]
    method = dec.DeepEmoClusterMethod(store, NormTerm.load(root / "NT"), "act", "Temp-CNN", 3, 4)
    res = train(method, items[:16], items[16:], LoopConfig(out_dir=tmp_path / "r", iterations=0, epochs=1,
                                                            batch_size=4, progress=False))
    assert res.epochs == 1 and np.isfinite(res.best_val)
    row = next(csv.DictReader(open(tmp_path / "r" / "log.csv")))
    assert row["labelled_empty_clusters"] == "1"
    pred = dec.Predictor.load(tmp_path / "r")
    out = pred.predict([store[store.keys()[0]], np.asarray(store[store.keys()[1]])])
    assert out.shape == (2,) and np.isfinite(out).all()


def _original_layout(folder: Path, name: str, legacy: bool = True) -> Path:
    """Our trained model saved as the original saves it: {'arch', 'state_dict'} with the `.module` infix."""
    from engine.checkpoint import load_checkpoint
    sd, cfg = load_checkpoint(folder)
    infix = {k.replace("cnn_features.", "cnn_features.module.", 1).replace("cnn_out.", "cnn_out.module.", 1): v
             for k, v in sd.items()}
    path = folder.parent / f"{name}.pth.tar"
    torch.save({"arch": "vgg16", "state_dict": infix}, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_testing_and_prediction_with_ours_and_original_checkpoints(mel_setup, tmp_path, capsys):
    import main
    import online_testing
    import prediction_process
    corpus, root = mel_setup
    base = train_args(mel_setup, 1, "Temp-Trans")
    assert main.main([*base, "--out", str(tmp_path / "M")]) == 0
    name = RUN.format(ep=1, mt="Temp-Trans", u=0)
    capsys.readouterr()
    assert online_testing.main([*base, "--models-dir", str(tmp_path / "M"), "--csv", str(tmp_path / "ours.csv")]) == 0
    out = capsys.readouterr().out
    for line in ("Epochs: 1", "Batch Size: 4", "Unlabeled Size: 0", "EmoClusters (#): 3",
                 "Model: Vgg16_DeepEmoCluster", "Temporal-Modeling: Temp-Trans", "Test Act-CCC: "):
        assert line in out
    result = json.loads((tmp_path / "ours.json").read_text())  # one result file per evaluation, shared format
    assert f"Test Act-CCC: {result['value']}" in out and result["system"] == "deep_emo_cluster"
    assert result["split"] == "test1" and result["per_utterance_csv"] == "ours.csv" and result["code_version"]
    legacy = _original_layout(tmp_path / "M" / name, name)
    assert online_testing.main([*base, "--checkpoint", str(legacy), "--csv", str(tmp_path / "orig.csv")]) == 0
    ours = np.genfromtxt(tmp_path / "ours.csv", delimiter=",", skip_header=1, usecols=1)
    orig = np.genfromtxt(tmp_path / "orig.csv", delimiter=",", skip_header=1, usecols=1)
    np.testing.assert_array_equal(ours, orig)  # the same weights through the legacy path give the same scores
    # prediction_process: a folder holding the checkpoints (ours or original names), bad files listed
    from conftest import write_odd_wavs
    from features.audio import load_audio
    wavs = tmp_path / "wavs"
    expected = write_odd_wavs(wavs, load_audio(sorted((corpus / "Audios").glob("*.wav"))[0]))
    models = tmp_path / "dec"
    models.mkdir()
    legacy.rename(models / legacy.name)
    assert prediction_process.main(["--system", "deep-emo-cluster", "--models", str(models), "--normterm",
                                    str(root / "NT"), "--wav-dir", str(wavs), "--out", str(tmp_path / "p.csv"),
                                    "--no-progress"]) == 0
    rows = {r["File_Name"]: r for r in csv.DictReader(open(tmp_path / "p.csv"))}
    assert list(next(iter(rows.values()))) == ["File_Name", "Aro-Score", "Warning"]
    assert sorted(rows) == sorted(k for k, v in expected.items() if v == "ok")
    errors = {r["File_Name"]: r["reason"] for r in csv.DictReader(open(tmp_path / "p_errors.csv"))}
    assert all(errors[f"{k}.wav"].startswith(v) for k, v in expected.items() if v != "ok")
    capsys.readouterr()
    assert prediction_process.main(["--system", "deep-emo-cluster", "--wav-dir", str(wavs)]) == 1
    assert "never published" in capsys.readouterr().err


def test_main_without_deep_emo_cluster_flags_and_bad_flags(mel_setup, capsys):
    import main
    assert main.main(["--root", str(mel_setup[0])]) == 1  # no flags: the audio-text system, which needs its stores
    err = capsys.readouterr().err
    assert err.startswith("error: --audio-store: no feature store at the default") and "Wav2Vec1024" in err, err
    with pytest.raises(SystemExit):
        main.main(train_args(mel_setup, 1, "Temp-Bogus"))
    with pytest.raises(SystemExit):
        main.main(["-ep", "0", *train_args(mel_setup, 1, "Temp-GRU")[2:]])
    assert main.main([*train_args(mel_setup, 1, "Temp-GRU"), "-unlabel", "3"]) == 1
    assert "exactly one pool" in capsys.readouterr().err


def test_torchrun_two_cpu_processes(mel_setup, tmp_path):
    """Embeddings gathered, k-means on rank 0, assignments broadcast; only rank 0 reports and saves."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "main.py"), *train_args(mel_setup, 1, "Temp-GRU", "--out", str(tmp_path))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("best validation CCC") == 1
    run = tmp_path / RUN.format(ep=1, mt="Temp-GRU", u=0)
    assert (run / "model.safetensors").is_file() and len((run / "log.csv").read_text().splitlines()) == 2

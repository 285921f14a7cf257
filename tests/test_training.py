"""The shared training loop through the chunk-LSTM method: learning, exact iteration count, best checkpoint,
bit-exact resume, determinism, and training.py / testing.py under torchrun with two CPU processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.loop import LoopConfig, train
from features.normterm import NormTerm, frame_pooled_stats
from features.store import FeatureStore
from systems.chunk_lstm import ChunkLSTMMethod

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """An 8-dim store whose label is the utterance's mean of column 0: learnable in a few dozen steps."""
    root = tmp_path_factory.mktemp("toy")
    store = FeatureStore.create(root / "store", name="toy", extractor="Toy", params={}, dims=8, frame_rate=62.5)
    rng = np.random.default_rng(0)
    items = []
    with store.writer() as w:
        for i in range(60):
            level = rng.uniform(-1, 1)
            x = rng.normal(size=(int(rng.integers(70, 200)), 8)).astype(np.float32)
            x[:, 0] += 2 * level
            w.add(f"u{i}", x)
            items.append((f"u{i}", 4 + 1.5 * level))
    store = FeatureStore(root / "store")
    mean, std = frame_pooled_stats(store[u] for u, _ in items[:40])
    labels = np.array([v for _, v in items[:40]])
    nt = NormTerm(mean, std, {"act": (float(labels.mean()), float(labels.std()))})
    return store, nt, items[:40], items[40:]


def run(toy, out, iterations, seed=0, atten="NonAtten", lr=3e-3, batch=8, train_items=None, val_items=None,
        resume=True, C=4):
    store, nt, tr, va = toy
    method = ChunkLSTMMethod(store, nt, "act", atten, m=20, C=C)
    cfg = LoopConfig(out_dir=out, iterations=iterations, batch_size=batch, lr=lr, val_every=5, seed=seed,
                     progress=False, resume=resume)
    return train(method, tr if train_items is None else train_items, va if val_items is None else val_items, cfg)


def test_learns_and_keeps_the_best_checkpoint(toy, tmp_path):
    res = run(toy, tmp_path / "r", 40)
    assert res.steps == 40  # exactly, not to the end of an epoch
    assert 1 - res.best_val > 0.5  # validation CCC after 40 small steps
    sd, cfg = load_checkpoint(tmp_path / "r")
    assert cfg["step"] == res.best_step and cfg["system"] == "chunk_lstm" and cfg["attribute"] == "act"
    assert cfg["normterm"]["label_mean"] == pytest.approx(toy[1].labels["act"][0])
    assert cfg["git_commit"] and cfg["chunking"] == {"m": 20, "C": 4, "n": 1}
    log = (tmp_path / "r" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,train_loss,val_loss") and len(log) == 1 + 8
    assert (tmp_path / "r" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_is_bit_exact_and_runs_are_deterministic(toy, tmp_path):
    run(toy, tmp_path / "straight", 20, atten="SelfAttenVec")  # dropout inside: RNG state matters
    run(toy, tmp_path / "again", 20, atten="SelfAttenVec")
    run(toy, tmp_path / "resumed", 10, atten="SelfAttenVec")  # as if killed after iteration 10 ...
    run(toy, tmp_path / "resumed", 20, atten="SelfAttenVec")  # ... and started again with the same command
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)
    for other in ("again", "resumed"):
        b = torch.load(tmp_path / other / "state.pt", weights_only=True)
        assert b["step"] == 20
        for k in a["model"]:
            torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    assert (tmp_path / "straight" / "log.csv").read_text() .split("\n")[0] == (tmp_path / "resumed" / "log.csv").read_text().split("\n")[0]
    other_seed = run(toy, tmp_path / "seed1", 20, seed=1, atten="SelfAttenVec")
    c = torch.load(tmp_path / "seed1" / "state.pt", weights_only=True)
    assert not torch.equal(a["model"]["fc2.weight"], c["model"]["fc2.weight"]) and other_seed.steps == 20


def test_training_and_testing_cli_under_torchrun_two_cpu_processes(mel_setup, tmp_path):
    corpus, root = mel_setup
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["-iter", "4", "-batch", "8", "-emo", "Act", "-atten", "GatedVec", "--root", str(corpus),
            "--store", str(root / "mel"), "--normterm", str(root / "NT"), "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "training.py"), *args, "--out", str(tmp_path / "Models"), "--val-every", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "Models" / "LSTM_iter4_batch8_ChunkSeq2One_GatedVec_Act"
    assert proc.stdout.count("4 iterations in") == 1  # only rank 0 reports
    assert sorted(p.name for p in run_dir.iterdir()) == ["README.md", "config.json", "log.csv", "loss.png",
        "model.safetensors", "resources.json", "run.json", "state.pt"]
    assert json.loads((run_dir / "resources.json").read_text())["world_size"] == 2
    assert len((run_dir / "log.csv").read_text().splitlines()) == 3
    import testing
    csv_out = tmp_path / "res.csv"
    assert testing.main([*args, "--models-dir", str(tmp_path / "Models"), "--csv", str(csv_out)]) == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0] == "utterance,prediction,label" and len(lines) > 1
    inference = json.loads(csv_out.with_suffix(".json").read_text())["inference"]
    assert inference["rtf"] > 0 and inference["utterances"] == len(lines) - 1
    # a checkpoint trained on other features is refused, not silently scored
    shipped = REPO / "trained_models" / "LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act"
    assert testing.main([*args, "--checkpoint", str(shipped), "--csv", str(tmp_path / "x.csv")]) == 1


def test_a_run_folder_resumes_only_its_own_configuration(toy, tmp_path):
    """Re-running with another setting must never silently return the old model."""
    from engine.cli import UserError
    out = tmp_path / "r"
    run(toy, out, 10)
    before = (out / "model.safetensors").read_bytes()
    for change, expected in [({"lr": 1e-3}, "loop.lr: 0.003 -> 0.001"), ({"seed": 3}, "loop.seed: 0 -> 3"),
                             ({"C": 5}, "chunking.C: 4 -> 5"),
                             ({"train_items": toy[2][:-1]}, "data.train.digest"),
                             ({"val_items": toy[3][:-1]}, "data.val.digest")]:
        with pytest.raises(UserError, match="--no-resume") as e:
            run(toy, out, 20, **change)
        assert expected in str(e.value), str(e.value)
    assert (out / "model.safetensors").read_bytes() == before  # the refused runs changed nothing
    res = run(toy, out, 20)  # the same settings resume (a longer run continues the same one)
    assert res.steps == 20 and res.steps_run == 10
    res = run(toy, out, 20, lr=1e-3, resume=False)  # --no-resume starts over with the new settings
    assert res.steps_run == 20
    assert json.loads((out / "run.json").read_text())["identity"]["loop.lr"] == 1e-3
    res = run(toy, out, 20, lr=1e-3)
    assert res.steps_run == 0  # finished: nothing to do, nothing reported as throughput


def test_batch_larger_than_the_training_set_is_recorded_as_used(toy, tmp_path, capsys):
    res = run(toy, tmp_path / "big", 5, batch=64)
    assert res.batch_size == 40 and "using batches of 40" in capsys.readouterr().err
    cfg = json.loads((tmp_path / "big" / "config.json").read_text())
    assert cfg["loop"]["batch_size"] == 40 and cfg["loop"]["requested_batch_size"] == 64


def test_too_few_items_and_a_corrupt_state_are_clear_errors(toy, tmp_path):
    from engine.cli import UserError
    with pytest.raises(UserError, match="1 usable item.*at least 2"):
        run(toy, tmp_path / "one", 5, train_items=toy[2][:1])
    with pytest.raises(UserError, match="validation has no usable item"):
        run(toy, tmp_path / "noval", 5, val_items=[])
    assert not (tmp_path / "noval").exists()  # refused before anything was written
    run(toy, tmp_path / "c", 5)
    (tmp_path / "c" / "state.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match="state.pt: cannot read the resume state.*--no-resume"):
        run(toy, tmp_path / "c", 10)
    assert run(toy, tmp_path / "c", 10, resume=False).steps_run == 10


@pytest.mark.parametrize("flag,value", [("-batch", "1"), ("-batch", "0"), ("-iter", "0"), ("-iter", "-5"),
                                        ("--val-every", "0"), ("--lr", "0")])
def test_nonsense_numbers_are_refused_by_the_command_line(flag, value, capsys, tmp_path):
    import training
    args = {"-iter": "10", "-batch": "8", "--val-every": "5", "--lr": "1e-3", flag: value}
    with pytest.raises(SystemExit) as e:
        training.main([*(x for kv in args.items() for x in kv), "-emo", "Act", "-atten", "NonAtten",
                       "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}" in err and ("too small" in err or "greater than 0" in err), err


def test_cli_errors_name_the_problem(mel_setup, tmp_path, capsys):
    import testing
    import training
    corpus, root = mel_setup
    common = ["-iter", "4", "-batch", "8", "-emo", "Act", "-atten", "NonAtten", "--store", str(root / "mel"),
              "--normterm", str(root / "NT"), "--no-progress"]
    cases = [
        (training, ["--root", str(corpus), "--train-split", "Tarin"], "unknown split 'Tarin'"),
        (testing, ["--root", str(corpus), "--split", "tset", "--checkpoint", str(tmp_path)], "unknown split 'tset'"),
        (training, ["--root", str(tmp_path / "nowhere")], "nowhere: MSP-Podcast root folder not found"),
    ]
    from conftest import unwritable_folders
    for target in unwritable_folders(tmp_path):
        cases.append((training, ["--root", str(corpus), "--out", str(target)], f"{target}"))
        cases.append((testing, ["--root", str(corpus), "--csv", str(target / "r.csv")], f"{target}: cannot write"))
    for script, extra, message in cases:
        assert script.main([*common, *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("**/LSTM_*"))  # nothing half-made


def test_training_and_testing_need_no_audio_folder(mel_setup, tmp_path):
    """Labs share features and labels, not audio: the readers must not ask for it once a store exists."""
    import shutil

    import testing
    import training
    corpus, root = mel_setup
    lab = tmp_path / "MSP-PODCAST-Publish-1.10"
    shutil.copytree(corpus / "Labels", lab / "Labels")
    import norm_para
    assert norm_para.main(["--store", str(root / "mel"), "--root", str(lab), "--out", str(tmp_path / "NT"),
                           "--no-progress"]) == 0
    assert NormTerm.load(tmp_path / "NT").labels == NormTerm.load(root / "NT").labels
    args = ["-iter", "2", "-batch", "4", "-emo", "Dom", "-atten", "NonAtten", "--root", str(lab),
            "--store", str(root / "mel"), "--normterm", str(tmp_path / "NT"), "--no-progress"]
    assert training.main([*args, "--out", str(tmp_path / "M"), "--val-every", "1"]) == 0
    assert testing.main([*args, "--models-dir", str(tmp_path / "M"), "--csv", str(tmp_path / "t.csv")]) == 0


def test_seeded_deterministic_runs_are_identical_when_run_concurrently(mel_setup, tmp_path):
    """Two --deterministic trainings started at once, plus a third process keeping the cores busy, end with
    bit-identical weights (and the same weights as one run alone)."""
    corpus, root = mel_setup
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["-iter", "12", "-batch", "8", "-emo", "Val", "-atten", "RnnAttenVec", "--root", str(corpus),
            "--store", str(root / "mel"), "--normterm", str(root / "NT"), "--no-progress", "--val-every", "6",
            "--deterministic", "--seed", "5"]
    busy = subprocess.Popen([sys.executable, "-c", "import torch\nx=torch.randn(600,600)\nwhile True: x@x"])
    try:
        procs = [subprocess.Popen([sys.executable, str(REPO / "training.py"), *args, "--out", str(tmp_path / f"r{i}")],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
    finally:
        busy.kill()
        busy.wait()
    import training
    assert training.main([*args, "--out", str(tmp_path / "alone")]) == 0
    name = "LSTM_iter12_batch8_ChunkSeq2One_RnnAttenVec_Val"
    weights = [(tmp_path / d / name / "model.safetensors").read_bytes() for d in ("r0", "r1", "alone")]
    assert weights[0] == weights[1] == weights[2]
    assert json.loads((tmp_path / "r0" / name / "config.json").read_text())["loop"]["threads"] == 1


class Killed(Exception):
    """Stands for a kill -9 in the middle of a training round."""


def test_an_unfinished_run_is_refused_by_scoring_and_results_record_the_training(mel_setup, tmp_path, capsys,
                                                                                monkeypatch):
    """A run killed at iteration 3 of 400 keeps its best checkpoint of iteration 2: scoring it must not look like
    scoring a finished model. Refused (naming the folder and the steps), accepted with --allow-unfinished, and
    every result file says how far its checkpoint trained."""
    import testing
    import training
    from engine.cli import UserError
    from engine.loop import load_best
    from systems import cross_corpus
    from systems.chunk_lstm import ChunkLSTMMethod
    corpus, root = mel_setup
    common = ["-batch", "4", "-emo", "Act", "-atten", "NonAtten", "--root", str(corpus), "--store",
              str(root / "mel"), "--normterm", str(root / "NT"), "--no-progress"]
    real_loss, calls = ChunkLSTMMethod.loss, []

    def loss_then_killed(self, model, batch):
        calls.append(1)
        if len(calls) == 3:
            raise Killed()
        return real_loss(self, model, batch)
    monkeypatch.setattr(ChunkLSTMMethod, "loss", loss_then_killed)
    with pytest.raises(Killed):
        training.main(["-iter", "400", *common, "--out", str(tmp_path / "M"), "--val-every", "2"])
    monkeypatch.setattr(ChunkLSTMMethod, "loss", real_loss)
    killed = tmp_path / "M" / "LSTM_iter400_batch4_ChunkSeq2One_NonAtten_Act"
    assert (killed / "model.safetensors").is_file()  # the best checkpoint of iteration 2 is there
    capsys.readouterr()
    score = ["-iter", "400", *common, "--checkpoint", str(killed), "--csv", str(tmp_path / "k.csv")]
    assert testing.main(score) == 1
    err = capsys.readouterr().err
    assert f"{killed}: its training has not finished (iteration 2 of 400" in err and "--allow-unfinished" in err, err
    assert not (tmp_path / "k.csv").exists()
    with pytest.raises(UserError, match="iteration 2 of 400"):
        cross_corpus.read_checkpoint(killed)
    with pytest.raises(UserError, match="has not finished"):
        load_best(ChunkLSTMMethod(FeatureStore(root / "mel"), NormTerm.load(root / "NT"), "act", "NonAtten"),
                  killed, "cpu")
    assert testing.main([*score, "--allow-unfinished"]) == 0
    record = json.loads((tmp_path / "k.json").read_text())["training"]
    assert record == {"unit": "iteration", "done": 2, "planned": 400, "optimizer_steps": 2, "best_at": 2,
                      "stopped_early": False, "finished": False}
    # a finished run is scored as before, and its result says so
    assert training.main(["-iter", "4", *common, "--out", str(tmp_path / "M"), "--val-every", "2"]) == 0
    done = tmp_path / "M" / "LSTM_iter4_batch4_ChunkSeq2One_NonAtten_Act"
    assert testing.main(["-iter", "4", *common, "--checkpoint", str(done), "--csv", str(tmp_path / "d.csv")]) == 0
    record = json.loads((tmp_path / "d.json").read_text())["training"]
    assert record["finished"] is True and (record["done"], record["planned"]) == (4, 4)


class CountingMethod(ChunkLSTMMethod):
    """The chunk-LSTM method with a whole-number column in its log rows (as DeepEmoCluster's empty clusters)."""

    def round_log(self) -> dict:
        return {"restarts": 0}


def test_a_resumed_log_keeps_its_clock_and_its_whole_numbers(toy, tmp_path):
    store, nt, tr, va = toy

    def go(out, iterations):
        cfg = LoopConfig(out_dir=out, iterations=iterations, batch_size=8, lr=3e-3, val_every=5, progress=False)
        return train(CountingMethod(store, nt, "act", "NonAtten", m=20, C=4), tr, va, cfg)
    go(tmp_path / "straight", 15)
    go(tmp_path / "resumed", 10)  # as if killed after iteration 10 ...
    go(tmp_path / "resumed", 15)  # ... and resumed
    import csv
    rows = {d: list(csv.DictReader(open(tmp_path / d / "log.csv"))) for d in ("straight", "resumed")}
    seconds = [float(r["seconds"]) for r in rows["resumed"]]
    assert seconds == sorted(seconds) and seconds[2] >= seconds[1] > 0  # the clock runs on across the resume
    assert [r["restarts"] for r in rows["resumed"]] == ["0", "0", "0"]  # not 0.0 once rewritten
    for a, b in zip(*rows.values()):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}

"""The shared training loop through the chunk-LSTM method: learning, exact iteration count, best checkpoint,
bit-exact resume, determinism, and training.py / testing.py under torchrun with two CPU processes."""
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


def run(toy, out, iterations, seed=0, atten="NonAtten", lr=3e-3):
    store, nt, tr, va = toy
    method = ChunkLSTMMethod(store, nt, "act", atten, m=20, C=4)
    cfg = LoopConfig(out_dir=out, iterations=iterations, batch_size=8, lr=lr, val_every=5, seed=seed, progress=False)
    return train(method, tr, va, cfg)


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


@pytest.fixture(scope="module")
def mel_setup(msp_corpus, tmp_path_factory):
    import feat_mel
    import norm_para
    root = tmp_path_factory.mktemp("melrun")
    assert feat_mel.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--store", str(root / "mel"),
                          "--no-progress"]) == 0
    assert norm_para.main(["--store", str(root / "mel"), "--root", str(msp_corpus), "--out", str(root / "NT"),
                           "--no-progress"]) == 0
    return msp_corpus, root


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
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "log.csv", "loss.png", "model.safetensors",
                                                         "state.pt"]
    assert len((run_dir / "log.csv").read_text().splitlines()) == 3
    import testing
    csv_out = tmp_path / "res.csv"
    assert testing.main([*args, "--models-dir", str(tmp_path / "Models"), "--csv", str(csv_out)]) == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0] == "utterance,prediction,label" and len(lines) > 1
    # a checkpoint trained on other features is refused, not silently scored
    shipped = REPO / "trained_models" / "LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act"
    assert testing.main([*args, "--checkpoint", str(shipped), "--csv", str(tmp_path / "x.csv")]) == 1

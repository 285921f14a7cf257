"""Issue 25's project/pure: the loop reports the time of its training stages apart from validation and saving, and
the benches' pure-compute baseline (bench.common.pure_training) trains on exactly the loop's batches, so the ratio
compares the same work."""
import json

import numpy as np
import torch

from bench.common import pure_training
from engine.loop import LoopConfig, train
from features.normterm import NormTerm
from features.store import FeatureStore
from systems.chunk_lstm import ChunkLSTMMethod


def _method(tmp_path):
    rng = np.random.default_rng(0)
    store = FeatureStore.create(tmp_path / "store", name="lld", extractor="Test", params={}, dims=8, frame_rate=62.5)
    with store.writer() as w:
        for i in range(12):
            w.add(f"u{i}", rng.normal(size=(int(rng.integers(70, 200)), 8)).astype(np.float32))
    store = FeatureStore(tmp_path / "store")
    nt = NormTerm(np.zeros(8), np.ones(8), {"act": (4.0, 1.0)})
    items = [(u, float(rng.uniform(1, 7))) for u in store.keys()]
    return ChunkLSTMMethod(store, nt, "act", "RnnAttenVec"), items


def test_pure_baseline_trains_the_loops_batches_and_the_loop_times_its_steps_apart(tmp_path):
    method, items = _method(tmp_path)
    cfg = LoopConfig(out_dir=tmp_path / "run", iterations=4, batch_size=4, val_every=2, progress=False,
                     deterministic=True, clip_value=1.0)
    res = train(method, items[:10], items[10:], cfg)
    seconds, model = pure_training(method, items[:10], cfg)
    assert len(seconds) == res.steps_run == 4 and all(s > 0 for s in seconds)
    # the same seeded model, optimiser and batches in the same order: the same weights, bit for bit
    # (the resume state holds the loop's last weights; model.safetensors holds its best validation's)
    resume = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert set(resume["model"]) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(v, resume["model"][k]), k
    # the training stages' time excludes validation and saving, and resources.json records it
    assert 0 < res.data_seconds < res.train_seconds < res.seconds
    used = json.loads((tmp_path / "run" / "resources.json").read_text())
    assert used["train_seconds"] == round(res.train_seconds, 3)


def test_loop_and_pure_gives_a_ratio_per_round_and_the_preparation_cost(tmp_path):
    from bench.common import loop_and_pure, project_pure_line
    method, items = _method(tmp_path)
    cfg = LoopConfig(out_dir=tmp_path / "run", iterations=3, batch_size=4, val_every=10**9, progress=False)
    res, pure, ratios = loop_and_pure(method, items[:10], items[10:], cfg, warmup_steps=1, rounds=2)
    assert res.steps_run == 3 and len(pure) == len(pure.prep) == 3 and len(ratios) == 2
    assert all(r > 0 for r in ratios) and all(p > 0 for p in pure.prep)
    line = project_pure_line(res, pure, ratios)
    assert "median of 2 rounds" in line and "CPU-ms per batch" in line

"""What a user relies on from a seeded --deterministic run of the loop, for the settings that carry state across
a resume beyond the model and the optimisers: early stopping (the count of validations without improvement)
and gradient clipping, in iteration mode and in epoch mode (a method with its own RNG). The same seed twice
gives identical weights; a run killed in the middle of a round (not at a boundary, so the steps after the last
saved state are lost) and started again with the same settings ends with the weights, the best checkpoint,
the early stop and the log rows of the run that was never interrupted.

tests/test_training.py covers plain resume and repetition in iteration mode, tests/test_deep_emo_cluster.py in
epoch mode through main.py; this file adds what neither has. Runs use the chunk-LSTM method on test_training's
toy store."""
import csv

import numpy as np
import pytest
import torch

from engine.loop import LoopConfig, Stage, train
from systems.chunk_lstm import ChunkLSTMMethod
from test_training import Killed, toy  # noqa: F401 - toy: the fixture, an 8-dim store with a learnable label


class EpochMethod(ChunkLSTMMethod):
    """The chunk-LSTM method in epoch mode: each epoch trains batches of a permutation drawn from the method's
    own RNG (as DeepEmoCluster's sampler), which a resume must restore through state() / load_state()."""

    def __init__(self, *args, batch_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_size, self.rng = batch_size, np.random.default_rng(11)

    def epoch_stages(self, model, epoch, ctx, train_items):
        perm = self.rng.permutation(len(train_items))
        batches = [perm[i: i + self.batch_size] for i in range(0, len(perm) - self.batch_size + 1, self.batch_size)]
        return [Stage("train", batches, train_items, self.loss, [torch.optim.SGD(model.parameters(), lr=0.5)],
                      total=len(batches))]

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, s: dict) -> None:
        self.rng.bit_generator.state = s["rng"]


def method(toy, epochs: int, kill_at: int = 0):
    """A fresh method; with kill_at, its kill_at-th training step raises Killed."""
    store, nt, _, _ = toy
    m = (EpochMethod(store, nt, "act", "SelfAttenVec", m=20, C=4, batch_size=8) if epochs
         else ChunkLSTMMethod(store, nt, "act", "SelfAttenVec", m=20, C=4))  # dropout inside: RNG state matters
    if kill_at:
        real, calls = m.loss, []

        def loss_then_killed(model, batch):
            calls.append(1)
            if len(calls) == kill_at:
                raise Killed()
            return real(model, batch)
        m.loss = loss_then_killed
    return m


def run(toy, out, epochs: int, kill_at: int = 0):
    _, _, tr, va = toy
    cfg = LoopConfig(out_dir=out, iterations=0 if epochs else 40, epochs=epochs, batch_size=8, lr=0.05,
                     val_every=3, seed=4, progress=False, deterministic=True, patience=2, clip_value=0.05)
    return train(method(toy, epochs, kill_at), tr[:24], va[:10], cfg)  # small: 3 batches of 8 an epoch


def log(folder):
    return [{k: v for k, v in r.items() if k != "seconds" and not k.endswith("_seconds")}
            for r in csv.DictReader(open(folder / "log.csv"))]


@pytest.mark.parametrize("epochs, kill_at", [(0, 11), (12, 20)])  # mid-round: steps 10..12, epoch 7 (19..21)
def test_repeated_and_killed_then_resumed_runs_end_with_identical_weights(toy, tmp_path, epochs, kill_at):
    straight = run(toy, tmp_path / "straight", epochs)
    assert straight.stopped_early and 0 < straight.best_step  # the premise: patience ended it, after a best
    run(toy, tmp_path / "again", epochs)
    with pytest.raises(Killed):
        run(toy, tmp_path / "killed", epochs, kill_at)
    resumed = run(toy, tmp_path / "killed", epochs)
    assert 0 < resumed.steps_run < straight.steps_run  # it resumed from the last round, it did not start over
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)
    for other in ("again", "killed"):
        b = torch.load(tmp_path / other / "state.pt", weights_only=True)
        counters = ("step", "epoch", "best_step", "stale")
        assert [b[k] for k in counters] == [a[k] for k in counters], other
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), (other, k)
        assert (tmp_path / other / "model.safetensors").read_bytes() == \
            (tmp_path / "straight" / "model.safetensors").read_bytes()
        assert log(tmp_path / other) == log(tmp_path / "straight")
    assert (resumed.best_step, resumed.best_val, resumed.stopped_early) == \
        (straight.best_step, straight.best_val, straight.stopped_early)

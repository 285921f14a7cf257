"""Resource records: the monitor's time and peak memory, the inference record's arithmetic, a store's audio
seconds, and the training loop's resources.json (written by a call that trained, untouched by one that did not)."""
import json
import time

import numpy as np
import pytest
import torch

from engine import resources
from engine.loop import LoopConfig, train
from engine.resources import ResourceMonitor, inference_record
from features.store import FeatureStore


def test_monitor_sees_a_held_allocation_and_the_time():
    with ResourceMonitor() as mon:
        block = np.ones(200 * 2**20 // 8)  # 200 MB, every page written
        time.sleep(0.1)
        del block
    d = mon.as_dict()
    assert d["rss_peak_mb"] >= d["rss_start_mb"] + 150
    assert 0.1 <= d["seconds"] < 5
    assert (d["gpu_peak_mb"] is None) == (not (torch.cuda.is_available() and torch.cuda.is_initialized()))


def test_nested_monitors_each_report_their_block():
    with ResourceMonitor() as outer:
        with ResourceMonitor() as inner:
            time.sleep(0.03)
        time.sleep(0.03)
    assert 0.03 <= inner.seconds < outer.seconds
    assert outer.rss_peak_mb >= outer.rss_start_mb > 0 and not resources._active


def test_inference_record_arithmetic():
    rec = inference_record(2.0, 10, 8.0)["inference"]
    assert rec == {"seconds": 2.0, "utterances": 10, "ms_per_utterance": 200.0, "audio_seconds": 8.0, "rtf": 0.25}
    assert inference_record(2.0, 10, None)["inference"]["rtf"] is None
    assert inference_record(0.5, 4, 0)["inference"]["rtf"] is None
    with ResourceMonitor() as mon:
        pass
    rec = inference_record(mon.seconds, 1, 3.0, mon)["inference"]
    assert rec["rss_peak_mb"] == mon.as_dict()["rss_peak_mb"] and "gpu_peak_mb" in rec
    assert rec["rtf"] == pytest.approx(mon.seconds / 3.0, rel=1e-3, abs=1e-9)


def test_store_seconds_are_frames_over_the_frame_rate(tmp_path):
    def store(name, rate):
        s = FeatureStore.create(tmp_path / name, name="toy", extractor="Toy", params={}, dims=2, frame_rate=rate)
        with s.writer() as w:
            w.add("a", np.zeros((100, 2), np.float32))
            w.add("b", np.zeros((25, 2), np.float32))
        return FeatureStore(tmp_path / name)
    timed = store("timed", 50.0)
    assert timed.seconds(["a", "b"]) == pytest.approx(125 / 50) and timed.seconds(["b"]) == pytest.approx(0.5)
    assert store("untimed", None).seconds(["a", "b"]) is None


class Toy:
    """y = 2x from (x, y) items: the smallest method the loop accepts."""

    def build_model(self):
        return torch.nn.Linear(1, 1)

    def collate(self, items):
        return {"x": torch.tensor([[x] for x, _ in items]), "y": torch.tensor([y for _, y in items])}

    def loss(self, model, batch):
        return ((model(batch["x"])[:, 0] - batch["y"]) ** 2).mean()

    def predict(self, model, batch):
        return model(batch["x"])[:, 0].numpy()

    def targets(self, items):
        return np.array([y for _, y in items])

    def val_loss(self, pred, target):
        return float(np.mean((pred - target) ** 2))

    def config(self):
        return {"system": "toy"}


def test_loop_writes_resources_only_when_it_trained(tmp_path):
    items = [(x, 2 * x) for x in np.linspace(-1, 1, 12).tolist()]

    def run(iterations):
        cfg = LoopConfig(out_dir=tmp_path / "run", iterations=iterations, batch_size=4, val_every=3, progress=False)
        return train(Toy(), items[:8], items[8:], cfg)

    res = run(6)
    path = tmp_path / "run" / "resources.json"
    used = json.loads(path.read_text())
    assert used["steps_run"] == res.steps_run == 6 and used["resumed_at_step"] == 0 and used["batch_size"] == 4
    assert used["items_per_second"] == pytest.approx(6 * 4 / used["seconds"], rel=0.01)
    assert used["rss_peak_mb"] >= used["rss_start_mb"] > 0 and used["device"] == "cpu"
    assert used["world_size"] == 1 and used["threads"] >= 1 and "epochs_run" not in used
    before = path.read_bytes()
    assert run(6).steps_run == 0  # already finished: the record of the call that trained stays
    assert path.read_bytes() == before
    run(9)  # resumed: the record is this call's
    used = json.loads(path.read_text())
    assert used["resumed_at_step"] == 6 and used["steps_run"] == 3

"""ONNX export of the IEMOCAP classifiers (systems/onnx_iemocap.py): every MDRE kind (and MDREA's unmasked 2018
attention) and every fusion configuration, on tiny random models over the utterances of
tests/test_batch_invariance_iemocap.py (1 to 800 frames, 0 to 128 words, absent transcripts and mocap).
ONNX and torch posteriors agree within 1e-4 at batch 1 and 16 and on the shortest and longest utterances alone;
ONNX alone equals ONNX in padded batches within 1e-5; the record names the opset and versions."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.checkpoint import save_checkpoint
from engine.cli import UserError
from systems.mdre import KINDS
from systems.onnx_iemocap import OnnxScorer, export_checkpoint, export_method, torch_posteriors
from systems.speech_text_mocap import CONFIGURATIONS
from tests.test_batch_invariance_iemocap import built, corpus, fusion_method, mdre_method

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CASES = [("mdre", k, True) for k in KINDS] + [("mdre", "MDREA", False)] + [("stm", c, None) for c in CONFIGURATIONS]


@pytest.fixture(scope="module")
def data():
    return corpus()


def make(data, system, name, masked):
    method = mdre_method(data, name, masked_attention=masked) if system == "mdre" else fusion_method(data, name)
    return method, built(method)


def extremes(method, items) -> list:
    """The shortest and the longest utterance (by MFCC frames, or speech rows; ties by order)."""
    store = method.mfcc if hasattr(method, "kind") else method.speech
    by_len = sorted(items, key=lambda it: len(store[it[0]]))
    return [by_len[0], by_len[-1]]


@pytest.mark.parametrize("system,name,masked", CASES)
def test_onnx_matches_torch_and_is_batch_invariant(data, tmp_path, system, name, masked):
    method, model = make(data, system, name, masked)
    rec = export_method(method, model.state_dict(), tmp_path / "m.onnx", record={"system": system, "classes": [0, 1, 2, 3]})
    onnx = OnnxScorer(tmp_path / "m.onnx", threads=1)
    items = data["items"]
    ref = torch_posteriors(method, model, items, 1)                             # (n, 4)
    alone = onnx.scores(method, items, batch_size=1)
    for size in (1, 16):
        np.testing.assert_allclose(onnx.scores(method, items, batch_size=size), ref, rtol=0, atol=1e-4)
        np.testing.assert_allclose(torch_posteriors(method, model, items, size), ref, rtol=0, atol=1e-5)
    for size in (2, 5, 16):
        np.testing.assert_allclose(onnx.scores(method, items, batch_size=size), alone, rtol=0, atol=1e-5)
    ends = extremes(method, items)
    for it in ends:
        np.testing.assert_allclose(onnx.scores(method, [it], 1), torch_posteriors(method, model, [it], 1), atol=1e-4)
    np.testing.assert_allclose(onnx.scores(method, ends, 2), torch_posteriors(method, model, ends, 1), atol=1e-4)
    np.testing.assert_allclose(alone.sum(1), 1.0, atol=1e-5)
    assert rec["opset"] == 17 and rec["torch"] == torch.__version__ and rec["onnx"]
    assert onnx.record == rec and onnx.runtime
    assert rec["outputs"] == ["posteriors", "logits"]


def test_every_axis_is_dynamic(data, tmp_path):
    """Lengths and batch sizes the example never had (1 frame, 750 frames, 128 words, batch 17) run."""
    method, model = make(data, "mdre", "MDREA", True)
    export_method(method, model.state_dict(), tmp_path / "m.onnx", record={"classes": [0, 1, 2, 3]})
    items = data["items"]
    batch = method.collate(items)
    assert batch["mfcc"].shape[1] == 750 and batch["tokens"].shape[1] == 128 and len(items) == 17
    got = OnnxScorer(tmp_path / "m.onnx").run(method, batch)
    np.testing.assert_allclose(got["logits"], evaluate_logits(method, model, items), atol=1e-4)


def evaluate_logits(method, model, items):
    from engine.loop import evaluate
    return evaluate(method, model, items, len(items), "cpu")


@pytest.mark.parametrize("system,name", [("mdre", "MDREA"), ("stm", "speech+text+mocap")])
def test_export_checkpoint_from_a_run_folder(data, tmp_path, system, name):
    """From a checkpoint folder: the record carries what the collate needs (vocab / norm / inputs); an unfinished
    run is refused unless allowed."""
    method, model = make(data, system, name, True)
    run = tmp_path / "run"
    save_checkpoint(run, model.state_dict(), method.config())
    rec = export_checkpoint(run, tmp_path / "m.onnx")
    assert rec["system"] == method.config()["system"] and rec["checkpoint"] == str(run)
    assert ("vocab" in rec) if system == "mdre" else ("norm" in rec and "inputs" in rec)
    np.testing.assert_allclose(OnnxScorer(tmp_path / "m.onnx").scores(method, data["items"], 16),
                               torch_posteriors(method, model, data["items"], 16), atol=1e-4)
    (run / "run.json").write_text(json.dumps({"training": {"unit": "iteration", "done": 3, "planned": 9,
                                                           "best_at": 3, "finished": False}}))
    with pytest.raises(UserError, match="has not finished"):
        export_checkpoint(run, tmp_path / "refused.onnx")
    assert not (tmp_path / "refused.onnx").exists()
    export_checkpoint(run, tmp_path / "allowed.onnx", allow_unfinished=True)


def test_other_systems_are_refused(tmp_path):
    from systems.onnx_iemocap import method_of
    with pytest.raises(ValueError, match="chunk-lstm"):
        method_of({"system": "chunk-lstm"})

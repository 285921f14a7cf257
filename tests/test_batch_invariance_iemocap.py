"""Batch = one by one for the two IEMOCAP classifiers (MDRE family, speech + text + mocap fusion).

The scoring path is the one their test and missing-data protocols use: the method's collate + predict through
engine.loop.evaluate (MDREMethod.draw, speech_text_mocap.scored). Utterances of very different lengths (1 to 800
MFCC frames, 0 to 128 words, 1 to 200 speech rows) are scored one at a time and in padded batches of 2, 5 and 16;
the logits must agree within 1e-5, for every kind / configuration, with absent modalities (no transcript, no motion
capture, whole streams absent by condition). Why they can: the MDRE GRUs are one-way and read the state at each
row's last valid step, MDREA's attention masks (or, unmasked, always counts 128 positions), the fusion encoders
use a key padding mask and masked mean pooling, and there is no batch norm.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.loop import evaluate
from features.missing import parse_condition
from features.mocap import MocapStats
from systems.mdre import KINDS, MDREMethod, training_norm
from systems.speech_text_mocap import CONFIGURATIONS, FusionMethod

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# MFCC frames; words = min(frames // 6, 128) (0 words = an empty transcript); speech rows = frames // 4
FRAMES = [3, 800, 40, 260, 9, 120, 700, 18, 55, 430, 1, 95, 300, 27, 610, 5, 77]
BATCHES = (2, 5, 16)


class Store(dict):
    """A feature store in memory: utt -> array, with the few things the methods read besides."""

    def __init__(self, arrays: dict, dims: int):
        super().__init__(arrays)
        self.dims = dims

    def describe(self) -> dict:
        return {"name": "in-memory", "dims": self.dims}

    def times(self, utt):
        return {}


def corpus(seed: int = 0) -> dict:
    """Stores, word ids and labelled items of len(FRAMES) utterances of very different lengths."""
    rng = np.random.default_rng(seed)
    utts = [f"Ses01F_u{i:02d}" for i in range(len(FRAMES))]
    frames = dict(zip(utts, FRAMES))
    words = {u: min(n // 6, 128) for u, n in frames.items()}
    return {
        "items": [(u, i % 4) for i, u in enumerate(utts)],
        "mfcc": Store({u: rng.normal(size=(n, 39)).astype(np.float32) for u, n in frames.items()}, 39),
        "prosody": Store({u: rng.normal(size=(1, 35)).astype(np.float32) for u in utts}, 35),
        "ids": {u: rng.integers(2, 40, size=words[u]).astype(np.int64) for u in utts},
        "vocab": ["_PAD_", "_UNK_"] + [f"w{i}" for i in range(38)],
        "speech": Store({u: rng.normal(size=(max(1, n // 4), 12)).astype(np.float32) for u, n in frames.items()}, 12),
        "text": Store({u: rng.normal(size=(max(1, words[u]), 10)).astype(np.float32) for u in utts}, 10),
        "mocap": Store({u: rng.normal(size=(200, 189)).astype(np.float32) for u in utts[::3]}, 189),  # a third wore markers
        "no_text": frozenset(u for u in utts if words[u] == 0),
    }


def mdre_method(data: dict, kind: str, **kw) -> MDREMethod:
    return MDREMethod(kind, data["mfcc"], data["prosody"], data["ids"], data["vocab"], **kw)


def fusion_method(data: dict, config: str) -> FusionMethod:
    stats = lambda d: (np.zeros(d), np.ones(d))  # noqa: E731 - identity z-norm: the stores are N(0, 1) already
    norm = {"speech": stats(12), "text": stats(10), "mocap": MocapStats(np.zeros(189), np.ones(189))}
    return FusionMethod(CONFIGURATIONS[config], speech=data["speech"], text=data["text"], mocap=data["mocap"],
                        norm=norm, no_text=data["no_text"], speech_pool=2, d_model=16, heads=2, layers=2, ff=32,
                        fusion_hidden=16)


def built(method):
    torch.manual_seed(0)
    return method.build_model().eval()


def assert_batch_invariant(method, model, items) -> None:
    alone = evaluate(method, model, items, 1, "cpu")                             # (n, 4)
    assert alone.shape == (len(items), 4) and np.isfinite(alone).all()
    for size in BATCHES:
        batched = evaluate(method, model, items, size, "cpu")
        np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5, err_msg=f"batch size {size}")


@pytest.fixture(scope="module")
def data():
    return corpus()


@pytest.mark.parametrize("kind,masked", [(k, True) for k in KINDS] + [("MDREA", False)])
def test_mdre_scores_alone_equal_scores_in_padded_batches(data, kind, masked):
    method = mdre_method(data, kind, masked_attention=masked)
    assert_batch_invariant(method, built(method), data["items"])


@pytest.mark.parametrize("kind", ["MDRE", "MDREA"])
@pytest.mark.parametrize("condition", ["audio-absent", "text-absent", "random-missing:0.5"])
def test_mdre_with_absent_modalities(data, kind, condition):
    method = mdre_method(data, kind)
    method.condition = parse_condition(condition)
    assert_batch_invariant(method, built(method), data["items"])


def test_mdre_normalised_inputs(data):
    utts = [u for u, _ in data["items"]]
    method = mdre_method(data, "ARE", norm=training_norm(data["mfcc"], data["prosody"], utts))
    assert_batch_invariant(method, built(method), data["items"])


@pytest.mark.parametrize("config", list(CONFIGURATIONS))
def test_fusion_scores_alone_equal_scores_in_padded_batches(data, config):
    """Every ablation configuration; utterances without motion capture or transcript have those streams absent."""
    method = fusion_method(data, config)
    assert_batch_invariant(method, built(method), data["items"])


@pytest.mark.parametrize("condition", ["audio-absent", "present:text+mocap", "random-missing:0.5"])
def test_fusion_with_absent_modalities(data, condition):
    method = fusion_method(data, "speech+text+mocap")
    method.condition = parse_condition(condition)
    assert_batch_invariant(method, built(method), data["items"])


def test_the_lengths_really_differ_in_a_batch(data):
    """The test means something only if a batch pads: its rows span 1..750 frames and 0..128 words."""
    batch = mdre_method(data, "MDREA").collate(data["items"])
    assert int(batch["mfcc_len"].min()) == 1 and int(batch["mfcc_len"].max()) == 750
    assert int(batch["token_len"].min()) == 1 and int(batch["token_len"].max()) == 128  # empty -> one _UNK_
    fused = fusion_method(data, "speech+text+mocap").collate(data["items"])
    rows = fused["mask"]["speech"].sum(1)
    assert int(rows.min()) == 1 and int(rows.max()) == 100
    assert not bool(fused["present"].all())  # absent text / mocap rows in the batch

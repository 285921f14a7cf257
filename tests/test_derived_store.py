"""features.derived.DerivedStore through its user, speech+text+mocap's speech stream: the batches a derived
store serves are the bytes the loader computes itself (training, evaluation, every condition), a source
utterance extracted again is never served stale, other statistics get another store, and a derivation that
cannot be written falls back to the loader with a note."""
import numpy as np
import pytest
import torch

from features.missing import parse_condition
from features.mocap import MocapStats
from features.store import FeatureStore
from systems.speech_text_mocap import FusionMethod


@pytest.fixture
def stores(tmp_path):
    rng = np.random.default_rng(3)
    out = {}
    for name, dims in (("speech", 32), ("text", 8), ("mocap", 189)):
        out[name] = FeatureStore.create(tmp_path / name, name=name, extractor="Test", params={}, dims=dims,
                                        frame_rate=None)
    with out["speech"].writer() as ws, out["text"].writer() as wt, out["mocap"].writer() as wm:
        for i in range(12):
            # large values too, so the z-norm's clipping happens before the pooling
            ws.add(f"u{i}", (rng.normal(size=(int(rng.integers(3, 60)), 32)) * (1 + 4 * (i % 3))).astype(np.float32))
            wt.add(f"u{i}", rng.normal(size=(int(rng.integers(2, 9)), 8)).astype(np.float32))
            wm.add(f"u{i}", rng.normal(size=(20, 189)).astype(np.float32))
    stores = {k: FeatureStore(tmp_path / k) for k in out}
    norm = {"speech": (rng.normal(size=32), rng.uniform(0.5, 2, 32)), "text": (np.zeros(8), np.ones(8)),
            "mocap": MocapStats(np.zeros(189), np.ones(189))}
    return stores, norm


def method(stores, norm, **kw):
    return FusionMethod(("speech", "text", "mocap"), **stores, norm=norm, speech_pool=5, max_speech=7, seed=2, **kw)


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a["x"][m], b["x"][m]) and torch.equal(a["mask"][m], b["mask"][m]) for m in a["x"]) \
        and torch.equal(a["present"], b["present"])


def test_derived_rows_are_the_loaders_bytes_under_every_condition(stores):
    stores, norm = stores
    items = [(f"u{i}", i % 4) for i in range(12)]
    plain, derived = method(stores, norm, modality_dropout=0.3), method(stores, norm, modality_dropout=0.3)
    derived.derive_speech_rows([u for u, _ in items], progress=False)
    assert derived.speech_rows.get("u0") is not None and len(derived.speech_rows.store) == 12
    for _ in range(3):  # training batches, the modality-dropout draws included
        assert same(plain.train_collate(items), derived.train_collate(items))
    for cond in (None, "audio-absent", "mocap-absent", "present:audio+text", "random-missing:0.5", "frames:0.4", "bursts:0.3"):
        plain.condition = derived.condition = parse_condition(cond) if cond else None
        assert same(plain.collate(items), derived.collate(items)), cond
    # a second method over the same statistics finds the store written, derives nothing again
    again = method(stores, norm)
    again.derive_speech_rows(["u0", "u1"], progress=False)
    assert again.speech_rows.root == derived.speech_rows.root and again.speech_rows.get("u1") is not None


def test_other_statistics_get_another_store_and_reextraction_is_never_served_stale(stores):
    stores, norm = stores
    m = method(stores, norm)
    m.derive_speech_rows(stores["speech"].keys(), progress=False)
    other = method(stores, {**norm, "speech": (norm["speech"][0] + 1, norm["speech"][1])})
    other.derive_speech_rows(["u0"], progress=False)
    assert other.speech_rows.root != m.speech_rows.root
    # u3 extracted again: its derived rows are not served, the loader computes them from the new frames
    with stores["speech"].writer() as w:
        w.add("u3", np.full((11, 32), 2.0, np.float32))
    stores["speech"].refresh()
    assert m.speech_rows.get("u3") is None and m.speech_rows.get("u4") is not None
    fresh = method(stores, norm)
    assert same(m.collate([("u3", 0)]), fresh.collate([("u3", 0)]))
    assert m.collate([("u3", 0)])["x"]["speech"].shape == (1, 3, 32)  # 11 frames pooled by 5
    assert m.speech_rows.ensure(stores["speech"].keys(), progress=False) == 1  # only u3 again
    assert m.speech_rows.get("u3") is not None


def test_a_derivation_that_cannot_be_written_falls_back_with_a_note(stores, monkeypatch, capsys):
    import shutil
    from collections import namedtuple
    stores, norm = stores
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6, 10))
    m = method(stores, norm)
    m.derive_speech_rows(stores["speech"].keys(), progress=False)
    assert "speech-rows not written" in capsys.readouterr().err and m.speech_rows.get("u0") is None
    assert same(m.collate([("u0", 0), ("u5", 1)]), method(stores, norm).collate([("u0", 0), ("u5", 1)]))

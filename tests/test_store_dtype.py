"""float16 feature stores: round trip, metadata, no mixed-dtype reopening, the disk-space refusal before any
extraction, and feat_wav2vec2.py --dtype float16 end to end."""
import shutil
from collections import namedtuple

import numpy as np
import pytest

from features.store import (DISK_MARGIN, FeatureStore, StoreError, estimated_bytes, mean_rows,
                            require_disk_space)


def _store(root, dtype):
    return FeatureStore.create(root, name="w2v", extractor="T", params={}, dims=8, frame_rate=50.0, dtype=dtype)


def test_float16_round_trip_and_metadata(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    store = _store(tmp_path / "s", "float16")
    with store.writer() as w:
        w.add("a", x)
    back = FeatureStore(tmp_path / "s")
    assert back.meta["dtype"] == "float16" and back.dtype == np.float16
    assert back["a"].dtype == np.float16  # readers get the stored dtype (a zero-copy view)
    np.testing.assert_array_equal(back["a"], x.astype(np.float16))
    err = np.abs(back["a"].astype(np.float32) - x) / np.maximum(np.abs(x), 1e-3)
    assert 0 < err.max() <= 2 ** -11  # float16 rounding: half a unit of its 10-bit mantissa, relative


def test_reopening_with_another_dtype_is_refused(tmp_path):
    _store(tmp_path / "s", "float16")
    with pytest.raises(StoreError, match="different dtype"):
        _store(tmp_path / "s", "float32")


def test_znorm_of_float16_features_is_computed_in_float64():
    from features.normterm import NormTerm
    x = np.full((4, 8), 1000.0, np.float16)  # (1000 - 999.9) / 0.01 loses everything in float16 arithmetic
    nt = NormTerm(np.full(8, 999.9), np.full(8, 0.1), {})
    np.testing.assert_allclose(nt.features(x), np.full((4, 8), 1.0, np.float32), rtol=1e-5)


Item = namedtuple("Item", "utt_id audio_path transcript_path transcript")


def _wav_items(folder, n=3, seconds=2.0):
    import soundfile as sf
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        p = folder / f"u{i}.wav"
        sf.write(p, np.random.default_rng(i).normal(scale=0.1, size=int(16000 * seconds)), 16000)
        items.append(Item(f"u{i}", p, None, None))
    return items


def test_estimate_from_wav_headers(tmp_path):
    items = _wav_items(tmp_path / "wavs")
    assert mean_rows(items, frame_rate=50.0, input_kind="audio") == pytest.approx(100.0)
    assert estimated_bytes(utterances=10, mean_rows=100.0, dims=1024, dtype="float16") == \
        int(10 * 100 * 1024 * 2 * DISK_MARGIN)
    text = [Item("t", None, None, "four words right here")]
    assert mean_rows(text, frame_rate=None, input_kind="text") == pytest.approx(1.5 * 4 + 2)


def test_disk_space_refusal_names_estimate_and_free_space(tmp_path, monkeypatch):
    items = _wav_items(tmp_path / "wavs")
    store = _store(tmp_path / "s", "float32")
    need = estimated_bytes(utterances=3, mean_rows=100.0, dims=8, dtype="float32")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=need - 1))
    with pytest.raises(StoreError, match=r"estimated .* of float32 features \(a --dtype float16 store needs half\)"
                                         r", .* free"):
        require_disk_space(store, items, frame_rate=50.0, input_kind="audio")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=need))
    assert require_disk_space(store, items, frame_rate=50.0, input_kind="audio") == need


def test_feat_wav2vec2_dtype_float16_end_to_end(tmp_path):
    import feat_wav2vec2
    from features.wav2vec2 import save_tiny_random
    _wav_items(tmp_path / "wavs", n=2, seconds=1.0)
    model = save_tiny_random(tmp_path / "tiny")
    args = ["--wav-dir", str(tmp_path / "wavs"), "--model", str(model), "--no-progress", "--device", "cpu"]
    assert feat_wav2vec2.main(args + ["--store", str(tmp_path / "f16"), "--dtype", "float16"]) == 0
    assert feat_wav2vec2.main(args + ["--store", str(tmp_path / "f32")]) == 0
    f16, f32 = FeatureStore(tmp_path / "f16"), FeatureStore(tmp_path / "f32")
    assert f16.meta["dtype"] == "float16" and f32.meta["dtype"] == "float32" and sorted(f16.keys()) == ["u0", "u1"]
    for u in f16.keys():
        assert f16[u].dtype == np.float16
        np.testing.assert_array_equal(f16[u], f32[u].astype(np.float16))  # same features, rounded once
    assert feat_wav2vec2.main(args + ["--store", str(tmp_path / "f16")]) == 1  # float32 into it: refused


def test_extraction_is_refused_before_any_work_when_the_disk_is_too_small(tmp_path, monkeypatch, capsys):
    """feat_wav2vec2.py checks the estimate against the free space first: nothing is extracted, the message names
    the estimate and the free space; with room, the same command extracts."""
    import feat_wav2vec2
    from features.wav2vec2 import save_tiny_random
    _wav_items(tmp_path / "wavs", n=2, seconds=1.0)
    model = save_tiny_random(tmp_path / "tiny")
    args = ["--wav-dir", str(tmp_path / "wavs"), "--model", str(model), "--no-progress", "--device", "cpu",
            "--store", str(tmp_path / "s")]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    assert feat_wav2vec2.main(args) == 1
    err = capsys.readouterr().err
    assert "not enough disk space for 2 utterances: estimated" in err and "free" in err
    assert not FeatureStore(tmp_path / "s").keys() if (tmp_path / "s").exists() else True
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage)
    assert feat_wav2vec2.main(args) == 0 and sorted(FeatureStore(tmp_path / "s").keys()) == ["u0", "u1"]

"""NormTerm .mat files (the published folders read back unchanged), z-norm, statistics, norm_para.py, .mat I/O."""
import numpy as np
import pytest
import scipy.io

from conftest import PRETRAINED
from features.normterm import NormTerm, frame_pooled_stats, label_stats, utterance_mean_stats
from features.store import FeatureStore
from utils import znorm

PUBLISHED = {
    "chunk_attention_lstm_v1.6/NormTerm": (130, {"act": (4.3943976787, 0.9359746713),
                                                 "dom": (4.5298738234, 0.7457603454),
                                                 "val": (4.0458438901, 0.8832976170)}),
    "deep_emo_cluster_v1.8": (128, {"act": (4.443360246173043, 0.8783720915821666),
                                    "dom": (4.553541012477997, 0.7215458452192005),
                                    "val": (4.15039338610486, 0.8446607563693561)}),
    "multiscale_chunk_v1.10/NormTerm_Speech": (1024, {"act": (4.328008765156319, 0.9579139928646752)}),
    "multiscale_chunk_v1.10/NormTerm_Text": (768, {"val": (4.021101978311878, 0.8999097205396257)}),
}


@pytest.mark.parametrize("folder", sorted(PUBLISHED))
def test_published_normterm_reads_back_unchanged(folder, tmp_path):
    src = PRETRAINED / folder
    if not src.is_dir():
        pytest.skip(f"{src} absent")
    dims, labels = PUBLISHED[folder]
    nt = NormTerm.load(src)
    assert nt.feat_mean.shape == nt.feat_std.shape == (dims,)
    for a, (m, s) in labels.items():
        assert nt.labels[a] == pytest.approx((m, s), abs=1e-9)
    nt.save(tmp_path / "copy")
    for f in sorted(src.glob("*.mat")):
        orig = scipy.io.loadmat(str(f))["normal_para"]
        ours = scipy.io.loadmat(str(tmp_path / "copy" / f.name))["normal_para"]
        assert ours.dtype == orig.dtype and ours.shape == orig.shape
        np.testing.assert_array_equal(ours, orig)


def test_znorm_nan_inf_and_clip():
    x = np.array([[1.0, np.nan, np.inf, -np.inf, 100.0, 2.0]])
    z = znorm(x, np.zeros(6), np.array([1.0, 1, 1, 1, 1, 0]))
    np.testing.assert_array_equal(z, [[1.0, 0.0, 3.0, -3.0, 3.0, 3.0]])  # 2/0 = inf -> 3
    assert z.dtype == np.float32
    assert znorm(x, 0, 1, dtype=np.float64).dtype == np.float64


def test_frame_pooled_stats_equal_stacked_numpy():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(1e5, 3e4, size=(rng.integers(1, 300), 7)) for _ in range(50)]
    stacked = np.concatenate(arrays)
    m, s = frame_pooled_stats(iter(arrays))
    np.testing.assert_allclose(m, stacked.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s, stacked.std(0), rtol=1e-10)


def test_utterance_mean_stats():
    arrays = [np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[4.0, 5.0]])]
    m, s = utterance_mean_stats(arrays)
    np.testing.assert_allclose(m, [3.0, 5.0])
    np.testing.assert_allclose(s, [1.0, 1e-10])  # means 2 and 4; the constant column's std 0 -> 1e-10


def test_norm_para_cli_end_to_end(msp_corpus, tmp_path):
    import feat_mel
    import norm_para
    from corpora.msp_podcast import read_msp_podcast
    store_dir = tmp_path / "mel"
    assert feat_mel.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--split", "train",
                          "--store", str(store_dir), "--no-progress"]) == 0
    out = tmp_path / "NormTerm"
    assert norm_para.main(["--store", str(store_dir), "--root", str(msp_corpus), "--out", str(out),
                           "--no-progress"]) == 0
    nt = NormTerm.load(out)
    store = FeatureStore(store_dir)
    train = read_msp_podcast(msp_corpus, split="train").records
    stacked = np.concatenate([np.asarray(store[r.utt_id], np.float64) for r in train])
    np.testing.assert_allclose(nt.feat_mean, stacked.mean(0), rtol=1e-10)
    np.testing.assert_allclose(nt.feat_std, stacked.std(0), rtol=1e-10)
    expected = label_stats(train)
    assert set(nt.labels) == set(expected)
    for a, ms in expected.items():
        assert nt.labels[a] == pytest.approx(ms, rel=1e-12)
    y = np.array([r.labels["act"] for r in train])
    np.testing.assert_allclose(nt.denorm(nt.label(y, "act"), "act"), y)
    z = nt.features(store[train[0].utt_id])
    assert z.dtype == np.float32 and np.abs(z).max() <= 3.0


def test_mat_round_trip(tmp_path):
    import mat_io
    src = FeatureStore.create(tmp_path / "s", name="lld", extractor="Toy", params={}, dims=3, frame_rate=62.5,
                              extra={"mat_key": "Audio_data", "mat_time_column": True})
    rng = np.random.default_rng(0)
    data = {f"MSP-PODCAST_0001_000{i}": rng.normal(size=(5 + i, 3)).astype(np.float32) for i in range(4)}
    with src.writer() as w:
        for k, v in data.items():
            w.add(k, v)
    assert mat_io.main(["export", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "feat_mat"),
                        "--float64", "--no-progress"]) == 0
    m = scipy.io.loadmat(str(tmp_path / "feat_mat" / "MSP-PODCAST_0001_0002.mat"))["Audio_data"]
    assert m.shape == (7, 4) and m.dtype == np.float64  # the originals' layout: time column first
    np.testing.assert_allclose(m[:, 0], np.arange(7) * 0.016)
    (tmp_path / "feat_mat" / "broken.mat").write_bytes(b"not a mat file")
    assert mat_io.main(["import", "--mat-dir", str(tmp_path / "feat_mat"), "--store", str(tmp_path / "back"),
                        "--name", "lld", "--dims", "3", "--frame-rate", "62.5", "--time-column", "--no-progress"]) == 0
    back = FeatureStore(tmp_path / "back")
    assert sorted(back.keys()) == sorted(data)
    for k, v in data.items():
        np.testing.assert_allclose(back[k], v)
    assert [e["utterance"] for e in back.errors()] == ["broken"]


def _train_mats(msp_corpus, folder, dims, dtype, n=None, nan_in=None):
    """Per-utterance .mat files of the train split, as the originals' feature scripts leave them."""
    from corpora.msp_podcast import read_msp_podcast
    train = read_msp_podcast(msp_corpus, split="train").records[:n]
    rng = np.random.default_rng(1)
    data = {}
    for i, r in enumerate(train):
        x = rng.normal(loc=i % 3, size=(4 + 3 * i, dims)).astype(dtype)
        if nan_in == r.utt_id:
            x[1, 0] = np.nan
        data[r.utt_id] = x
        folder.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(str(folder / f"{r.utt_id}.mat"), {"Text_data": x})
    return data


def test_imported_originals_keep_dtype_and_pool_as_the_originals(msp_corpus, tmp_path, capsys):
    """RoBERTa768 / Wav2Vec1024 imports are utterance-mean pooled and float64 stays float64; an unknown
    feature set is not guessed."""
    import mat_io
    import norm_para
    data = _train_mats(msp_corpus, tmp_path / "mats", 6, np.float64)
    for name in ("RoBERTa768", "MyText"):
        assert mat_io.main(["import", "--mat-dir", str(tmp_path / "mats"), "--store", str(tmp_path / name),
                            "--name", name, "--dims", "6", "--key", "Text_data", "--no-progress"]) == 0
    store = FeatureStore(tmp_path / "RoBERTa768")
    assert store.dtype == np.float64 and store.meta["norm_pooling"] == "utterance-mean"
    assert norm_para.main(["--store", str(tmp_path / "RoBERTa768"), "--root", str(msp_corpus), "--out",
                           str(tmp_path / "NT"), "--no-progress"]) == 0
    nt = NormTerm.load(tmp_path / "NT")
    means = np.stack([x.mean(0) for x in data.values()])
    assert nt.feat_mean.dtype == np.float64
    np.testing.assert_allclose(nt.feat_mean, means.mean(0), rtol=1e-12)
    np.testing.assert_allclose(nt.feat_std, means.std(0), rtol=1e-12)
    capsys.readouterr()
    assert norm_para.main(["--store", str(tmp_path / "MyText"), "--root", str(msp_corpus), "--out",
                           str(tmp_path / "NT2"), "--no-progress"]) == 1
    assert "does not record how its features are pooled" in capsys.readouterr().err and not (tmp_path / "NT2").exists()
    assert norm_para.main(["--store", str(tmp_path / "MyText"), "--root", str(msp_corpus), "--out",
                           str(tmp_path / "NT2"), "--method", "frames", "--no-progress"]) == 0
    np.testing.assert_allclose(NormTerm.load(tmp_path / "NT2").feat_mean, np.concatenate(list(data.values())).mean(0))
    assert mat_io.main(["import", "--mat-dir", str(tmp_path / "mats"), "--store", str(tmp_path / "f32"),
                        "--name", "RoBERTa768", "--dims", "6", "--key", "Text_data", "--dtype", "float32",
                        "--no-progress"]) == 0
    assert FeatureStore(tmp_path / "f32").dtype == np.float32


def test_imported_non_finite_values_kept_listed_and_repaired_as_the_original(msp_corpus, tmp_path, capsys):
    """Issue 19 item 15: an original .mat with NaN/inf is imported (not refused), listed with its counts; the
    statistics use finite values only; z-normalisation maps NaN -> 0 and +-inf -> +-3 as the original does."""
    import mat_io
    import norm_para
    data = _train_mats(msp_corpus, tmp_path / "mats", 5, np.float32)
    bad = sorted(data)[2]
    x = data[bad].copy()
    x[1, 0], x[2, 1], x[3, 2], x[0, 0] = np.nan, np.inf, -np.inf, np.nan
    scipy.io.savemat(str(tmp_path / "mats" / f"{bad}.mat"), {"Text_data": x})
    data[bad] = x
    capsys.readouterr()
    assert mat_io.main(["import", "--mat-dir", str(tmp_path / "mats"), "--store", str(tmp_path / "s"),
                        "--name", "Mel_Spec128", "--dims", "5", "--key", "Text_data", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"{bad}: 2 NaN, 1 +inf, 1 -inf" in err and "nonfinite-import.csv" in err
    store = FeatureStore(tmp_path / "s")
    assert bad in store and not store.errors()
    assert (tmp_path / "s" / "nonfinite-import.csv").read_text().splitlines() == [
        "utterance,nan,posinf,neginf", f"{bad},2,1,1"]
    assert norm_para.main(["--store", str(tmp_path / "s"), "--root", str(msp_corpus), "--out", str(tmp_path / "NT"),
                           "--no-progress"]) == 0
    assert f"{bad} (4)" in capsys.readouterr().err
    nt = NormTerm.load(tmp_path / "NT")
    stacked = np.ma.masked_invalid(np.concatenate(list(data.values())).astype(np.float64))
    np.testing.assert_allclose(nt.feat_mean, stacked.mean(0).data, rtol=1e-12)
    np.testing.assert_allclose(nt.feat_std, stacked.std(0).data, rtol=1e-10)
    z = nt.features(store[bad])
    assert z[1, 0] == z[0, 0] == 0 and z[2, 1] == 3 and z[3, 2] == -3 and np.isfinite(z).all()
    np.testing.assert_allclose(z[4], np.clip((x[4] - nt.feat_mean) / nt.feat_std, -3, 3), rtol=1e-5)


@pytest.mark.parametrize("extractor, written", [("TokenFeatures", np.float64), ("Wav2Vec2Features", np.float32)])
def test_utterance_mean_statistics_accumulate_in_float64_and_write_the_original_dtype(
        msp_corpus, tmp_path, extractor, written):
    """Issue 19 item 16: a float32 text store (feat_roberta.py) gave a MATLAB-single NormTerm averaged in
    float32; the original's NormTerm_Text is double (NormTerm_Speech single). Values need float64 accumulation:
    1e4 + small offsets lose digits when averaged in float32."""
    import norm_para
    from corpora.msp_podcast import read_msp_podcast
    train = read_msp_podcast(msp_corpus, split="train").records
    store = FeatureStore.create(tmp_path / "s", name="X", extractor=extractor, params={}, dims=3, frame_rate=None,
                                extra={"norm_pooling": "utterance-mean"})
    rng = np.random.default_rng(5)
    data = {r.utt_id: (1e4 + rng.normal(size=(7 + i % 5, 3)) * 1e-3).astype(np.float32) for i, r in enumerate(train)}
    with store.writer() as w:
        for u, v in data.items():
            w.add(u, v)
    assert norm_para.main(["--store", str(tmp_path / "s"), "--root", str(msp_corpus), "--out", str(tmp_path / "NT"),
                           "--no-progress"]) == 0
    means = np.stack([v.astype(np.float64).mean(0) for v in data.values()])
    for name, want in (("feat_norm_means", means.mean(0)), ("feat_norm_stds", means.std(0))):
        got = scipy.io.loadmat(str(tmp_path / "NT" / f"{name}.mat"))["normal_para"]
        assert got.dtype == written and got.shape == (1, 3)
        np.testing.assert_array_equal(got[0], want.astype(written))


def test_znorm_equals_the_written_out_steps_bit_for_bit():
    """znorm works in place for speed (it runs per batch in every loader); its values must stay those of the
    originals' steps: (x - mean) / std in float64, NaN -> 0, clip, cast."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=4, size=(300, 64)).astype(np.float32)
    x[3, :4] = [np.nan, np.inf, -np.inf, 1e30]
    mean, std = rng.normal(size=64), rng.uniform(0.1, 3, 64)
    std[5] = 0.0
    for dtype in (np.float32, np.float64, np.float16):
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = (x.astype(np.float64) - mean) / std
        ref[np.isnan(ref)] = 0.0
        ref = np.clip(ref, -3.0, 3.0).astype(dtype)
        got = znorm(x, mean, std, dtype=dtype)
        assert got.dtype == dtype and got.tobytes() == ref.tobytes()
    # statistics of more dimensions than x broadcast as x - mean does
    assert znorm(x[0], mean[None], std[None]).shape == (1, 64)

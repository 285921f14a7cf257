"""FeatureStore: round trip, zero-copy reads, crash safety and resume, sharded writers, parameter checks."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from features.store import FeatureStore, StoreError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(root, dims=4, dtype="float32", params=None):
    return FeatureStore.create(root, name="toy", extractor="Toy", params=params or {"a": 1}, dims=dims,
                               frame_rate=100.0, dtype=dtype, corpus="test")


def test_round_trip_and_zero_copy(tmp_path):
    store = make(tmp_path / "s")
    rng = np.random.default_rng(0)
    data = {f"u{i}": rng.normal(size=(rng.integers(1, 50), 4)).astype(np.float32) for i in range(30)}
    with store.writer(flush_mb=0.001) as w:  # tiny shards: many files
        for k, v in data.items():
            w.add(k, v, times={"start": [0.0]} if k == "u3" else None)
    reopened = FeatureStore(tmp_path / "s")
    assert len(reopened) == 30 and len(list((tmp_path / "s" / "shards").glob("data-*.npy"))) > 1
    for k, v in data.items():
        got = reopened[k]
        np.testing.assert_array_equal(got, v)
        assert isinstance(got.base, np.memmap) or isinstance(got, np.memmap)  # a view of the mapped shard
        assert not got.flags.writeable
    np.testing.assert_array_equal(reopened.rows("u5", 1, 3), data["u5"][1:3])
    with pytest.raises(IndexError):
        reopened.rows("u5", 0, 10_000)
    assert reopened.times("u3") == {"start": [0.0]} and reopened.times("u4") is None
    assert reopened.meta["corpus"] == "test" and reopened.meta["frame_rate"] == 100.0
    with pytest.raises(KeyError, match="nope"):
        reopened["nope"]


def test_reopen_with_other_parameters_is_refused(tmp_path):
    make(tmp_path / "s", params={"hop": 256})
    make(tmp_path / "s", params={"hop": 256})  # same settings: fine, resumes
    with pytest.raises(StoreError, match="different params"):
        make(tmp_path / "s", params={"hop": 160})
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path)


def test_shape_and_fp16_overflow_are_refused(tmp_path):
    w = make(tmp_path / "a").writer()
    with pytest.raises(StoreError, match=r"u: features of shape \(3, 5\)"):
        w.add("u", np.zeros((3, 5)))
    w16 = make(tmp_path / "b", dtype="float16").writer()
    with pytest.raises(StoreError, match="overflow float16"):
        w16.add("u", np.full((2, 4), 9.5e5))
    w16.add("v", np.full((2, 4), 1.5))
    w16.flush()
    assert FeatureStore(tmp_path / "b")["v"].dtype == np.float16


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    from features.store import FeatureStore
    store = FeatureStore.create({root!r}, name="toy", extractor="Toy", params={{}}, dims=3, frame_rate=None)
    w = store.writer(worker="0of1", flush_seconds=0)  # a shard per utterance
    for i in range(10):
        if i == 6:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a hard kill
        w.add(f"u{{i}}", np.full((i + 1, 3), i, np.float32))
""")


def test_killed_writer_leaves_only_complete_entries_and_resumes(tmp_path):
    root = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN.format(repo=REPO, root=str(root))])
    assert proc.returncode == -9
    store = FeatureStore(root)
    assert sorted(store.keys()) == [f"u{i}" for i in range(6)]
    # an orphan data file, as if killed between the data rename and the index rename
    (root / "shards" / "data-0of1-00099.npy").write_bytes(b"half a shard")
    store = FeatureStore(root)
    assert len(store) == 6
    with store.writer(worker="0of1") as w:  # the resumed run: only what is missing
        for i in range(10):
            if f"u{i}" not in store:
                w.add(f"u{i}", np.full((i + 1, 3), i, np.float32))
    store = FeatureStore(root)
    assert len(store) == 10
    for i in range(10):
        np.testing.assert_array_equal(store[f"u{i}"], np.full((i + 1, 3), i, np.float32))
    # the new shard did not reuse the orphan's number
    assert json.loads((root / "shards" / "index-0of1-00100.json").read_text())["utts"]


def test_two_workers_share_one_store(tmp_path):
    store = make(tmp_path / "s")
    with store.writer(worker="0of2") as a, store.writer(worker="1of2") as b:
        for i in range(6):
            (a if i % 2 == 0 else b).add(f"u{i}", np.full((2, 4), i, np.float32))
    assert sorted(FeatureStore(tmp_path / "s").keys()) == [f"u{i}" for i in range(6)]


def test_errors_are_kept_until_the_input_succeeds(tmp_path):
    store = make(tmp_path / "s")
    with store.writer() as w:
        w.error("bad", "/x/bad.wav", "empty file (0 bytes)")
        w.error("later", "/x/later.wav", "file not found")
    assert {e["utterance"] for e in store.errors()} == {"bad", "later"}
    with store.writer() as w:
        w.add("later", np.zeros((1, 4)))
    assert [e["utterance"] for e in FeatureStore(tmp_path / "s").errors()] == ["bad"]


def test_records_without_features_are_listed_not_dropped_silently(tmp_path, capsys):
    from types import SimpleNamespace
    from features.store import with_features
    store = make(tmp_path / "s")
    with store.writer() as w:
        w.add("a", np.zeros((2, 4)))
    recs = [SimpleNamespace(utt_id=u) for u in ("a", "b", "c")]
    assert [r.utt_id for r in with_features(recs, store, "train")] == ["a"]
    assert "2 train utterance(s) have no features" in capsys.readouterr().err


def test_non_finite_features_never_enter_a_store(tmp_path):
    from features.store import BadFeatures
    w = make(tmp_path / "s").writer()
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros((3, 4), np.float32)
        x[1, 2] = bad
        with pytest.raises(BadFeatures, match="u: non-finite features \\(1 NaN/inf values\\)"):
            w.add("u", x)
    w.flush()
    assert "u" not in FeatureStore(tmp_path / "s")


def test_wav_folder_ids_are_relative_paths_and_never_change(msp_corpus, tmp_path):
    """sub/a.wav extracted first, then a different top-level a.wav: both stored under their own ids, once."""
    import feat_mel
    from features.audio import load_audio, write_wav
    from features.mel import MelSpectrogram
    wavs = sorted((msp_corpus / "Audios").glob("*.wav"))
    folder, store_dir = tmp_path / "w", tmp_path / "mel"
    write_wav(folder / "sub" / "a.wav", load_audio(wavs[0]))
    assert feat_mel.main(["--wav-dir", str(folder), "--store", str(store_dir), "--no-progress"]) == 0
    first = FeatureStore(store_dir)
    assert first.keys() == ["sub/a"]
    write_wav(folder / "a.wav", load_audio(wavs[1]))
    assert feat_mel.main(["--wav-dir", str(folder), "--store", str(store_dir), "--no-progress"]) == 0
    store = FeatureStore(store_dir)
    assert sorted(store.keys()) == ["a", "sub/a"] and len(store) == 2
    mel = MelSpectrogram()
    np.testing.assert_allclose(store["a"], mel.one(load_audio(folder / "a.wav")), rtol=1e-5)
    np.testing.assert_allclose(store["sub/a"], mel.one(load_audio(folder / "sub" / "a.wav")), rtol=1e-5)
    frames = sum(len(np.load(p, mmap_mode="r")) for p in (store_dir / "shards").glob("data-*.npy"))
    assert frames == store.frames("a") + store.frames("sub/a")  # nothing stored twice


def test_a_second_writer_of_the_same_shard_is_refused(tmp_path):
    store = make(tmp_path / "s")
    with store.writer(worker="0of1"):
        with pytest.raises(StoreError, match="already writing to this store as '0of1'"):
            store.writer(worker="0of1")
        with pytest.raises(StoreError, match="writing to this store as '0of1'.*twice"):
            store.writer(worker="0of2")  # a different split of the work would overlap
    with store.writer(worker="0of1") as w:  # released: the next run may write
        w.add("x", np.zeros((1, 4)))


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from features.store import FeatureStore
    with FeatureStore({root!r}).writer(worker="0of1"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_concurrent_extraction_into_one_store_refuses_clearly(msp_corpus, tmp_path, capsys):
    import feat_mel
    args = ["--corpus", "msp-podcast", "--root", str(msp_corpus), "--split", "dev", "--store", str(tmp_path / "m"),
            "--no-progress"]
    assert feat_mel.main([*args, "--shard", "0/2"]) == 0  # creates the store
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(repo=REPO, root=str(tmp_path / "m"))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert feat_mel.main(args) == 1  # the same shard (0/1) as the running process
        assert "another process is already writing to this store as '0of1'" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert feat_mel.main(args) == 0  # the holder is gone: the run goes on


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, mask, mode):
    from utils import atomic_write_text
    old = os.umask(mask)
    try:
        store = make(tmp_path / "s")
        with store.writer() as w:
            w.add("u", np.zeros((2, 4)))
        atomic_write_text(tmp_path / "r.csv", "a,b\n")
    finally:
        os.umask(old)
    files = [tmp_path / "r.csv", tmp_path / "s" / "meta.json", *(tmp_path / "s" / "shards").iterdir()]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(mode)}

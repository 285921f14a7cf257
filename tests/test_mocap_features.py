"""Per-utterance mocap features (features/mocap.py, feat_mocap.py) on a synthetic IEMOCAP corpus."""
import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import feat_mocap
from corpora.iemocap import MOCAP_STREAMS, load_mocap, mocap_path, read_iemocap, resample_mocap
from corpora.synth.iemocap import write_iemocap
from features.mocap import (MocapStats, column_layout, interpolate_nan, speaker_wore_markers, store_arrays,
                            stored_mocap, utterance_mocap)
from features.store import FeatureStore

N, SEED = 40, 11
WIDTHS = {"rotated": 165, "head": 6, "hand": 18}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap_mocap") / "IEMOCAP_full_release"
    write_iemocap(root, n=N, seed=SEED, progress=False)
    return root


@pytest.fixture(scope="module")
def records(root):
    return read_iemocap(root).records


def wearers(records):
    return [r for r in records if speaker_wore_markers(r.utt_id)]


def test_layout_and_marker_rule():
    layout = column_layout()
    assert [(p["stream"], p["first"], p["stop"]) for p in layout] == [
        ("rotated", 0, 165), ("head", 165, 171), ("hand", 171, 189)]
    assert speaker_wore_markers("Ses01F_impro01_F000") and not speaker_wore_markers("Ses01F_impro01_M000")
    assert speaker_wore_markers("Ses05M_script01_1b_M002") and not speaker_wore_markers("Ses05M_script01_1b_F000")
    with pytest.raises(ValueError):
        column_layout(("face",))


def test_shapes_and_streams_in_their_real_width(records):
    ok = wearers(records)
    assert len(ok) >= 10
    for r in ok:
        x, reason = utterance_mocap(r)
        assert reason == "" and x.dtype == np.float32 and x.shape == (200, 189) and np.isfinite(x).all()
        for part in column_layout():
            frames, names = load_mocap(r, part["stream"])
            assert frames.shape[1] == len(names) == WIDTHS[part["stream"]]
            expect = interpolate_nan(resample_mocap(frames, 200))
            np.testing.assert_array_equal(x[:, part["first"]:part["stop"]], expect)
        assert np.abs(x[:, 165:189]).sum() > 0  # head and hand carry data, not zeros
    x, _ = utterance_mocap(ok[0], n=50, streams=("head", "hand"))
    assert x.shape == (50, 24)


def test_listener_utterances_have_no_mocap(records):
    listeners = [r for r in records if not speaker_wore_markers(r.utt_id)]
    assert listeners
    for r in listeners:
        assert len(load_mocap(r, "rotated")[0]) > 0  # the wearer's (listener's) rows exist: not borrowed
        x, reason = utterance_mocap(r)
        assert x is None and "did not wear markers" in reason


def test_odd_dialog_reads_the_renamed_files(records):
    odd = [r for r in wearers(records) if r.dialog == "Ses05M_script01_1b"]
    assert odd, "the synthetic corpus has the _1b dialog"
    assert mocap_path(odd[0], "head").name == "Ses05M_script01_1.txt"
    x, reason = utterance_mocap(odd[0])
    assert reason == "" and x.shape == (200, 189)


def _copy_dialog_mocap(root, record, dest):
    for stream in MOCAP_STREAMS:
        src = mocap_path(record, stream)
        out = mocap_path(record, stream, dest)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, out)
    return mocap_path(record, "rotated", dest)


def _rewrite_with_nan(path, mask_fn):
    lines = path.read_text().splitlines(keepends=True)
    table = np.loadtxt(lines[2:], dtype=np.float64)
    mask_fn(table)
    body = "\n".join(" ".join("NaN" if np.isnan(v) else f"{v:.4f}" for v in row) for row in table) + "\n"
    path.write_text("".join(lines[:2]) + body)


def test_nan_markers_interpolated_whole_missing_columns_left_to_normalisation(records, root, tmp_path):
    r = max(wearers(records), key=lambda u: len(load_mocap(u, "rotated")[0]))  # longest: no empty chunks
    assert len(load_mocap(r, "rotated")[0]) >= 400
    rotated = _copy_dialog_mocap(root, r, tmp_path)
    t = np.loadtxt(rotated.read_text().splitlines()[2:])[:, 1]
    inside = np.flatnonzero((t > r.start) & (t < r.end))

    def damage(table):  # columns 2.. are values: value column j is table column j + 2
        table[inside[len(inside) // 2], 2 + 10] = np.nan  # one sample of marker column 10 lost
        table[inside, 2 + 20] = np.nan  # column 20 lost during the whole utterance
        table[inside[: len(inside) // 4], 2 + 30] = np.nan  # column 30 lost at the start
    _rewrite_with_nan(rotated, damage)
    raw, _ = load_mocap(r, "rotated", tmp_path)
    assert np.isnan(raw[:, 20]).all() and np.isnan(raw[:, 10]).any()

    kept, _ = utterance_mocap(r, tmp_path, interpolate=False)
    assert np.isnan(kept[:, 10]).any() and np.isnan(kept[:, 20]).all() and np.isnan(kept[:, 30]).any()
    x, reason = utterance_mocap(r, tmp_path)
    assert reason == "" and x.shape == (200, 189)
    assert np.isfinite(np.delete(x, 20, axis=1)).all() and np.isnan(x[:, 20]).all()
    # linear over frame index between finite neighbours, held at the start
    # (the synthetic files already lose ~0.5% of face-marker samples, so column 10 has a few NaN chunks)
    lone = [k for k in np.flatnonzero(np.isnan(kept[:, 10]))
            if 0 < k < 199 and np.isfinite(kept[[k - 1, k + 1], 10]).all()]
    assert lone
    for k in lone:
        np.testing.assert_allclose(x[k, 10], (kept[k - 1, 10] + kept[k + 1, 10]) / 2, rtol=1e-5)
    first = np.flatnonzero(np.isfinite(kept[:, 30]))[0]
    np.testing.assert_array_equal(x[:first, 30], kept[first, 30])

    stats = MocapStats.fit([x])
    z = stats.apply(x)
    assert np.isfinite(z).all() and (z[:, 20] == 0).all()
    assert abs(z[:, 5].mean()) < 1e-4 and abs(z[:, 5].std() - 1) < 1e-3
    feats, side = store_arrays(x)
    assert side == {"nan_columns": [20]} and np.isfinite(feats).all()


def _rows_inside(path, record):
    """0-based data-row indices of a mocap file whose Time lies strictly inside the record's span."""
    t = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, usecols=[1]).to_numpy()[:, 0]
    return np.flatnonzero((t > record.start) & (t < record.end))


def test_lost_stream_and_short_rows_mean_no_mocap_never_faked(records, root, tmp_path):
    """Issue 19 item 7: a face stream all NaN for an utterance was stored as present (filled with the training
    mean at normalisation); a row with too few fields was NaN-padded and interpolated. Both are now no mocap,
    with the file and the reason in the store's errors."""
    from features.mocap import extract_mocap, mocap_store
    by_dialog = {}
    for r in wearers(records):
        by_dialog.setdefault(r.dialog, []).append(r)
    lost, short = [rs for rs in by_dialog.values() if len(rs) >= 2][:2]  # two dialogs with two wearer utterances
    for r in (lost[0], short[0]):
        _copy_dialog_mocap(root, r, tmp_path)
    rotated = mocap_path(lost[0], "rotated", tmp_path)
    lines = rotated.read_text().splitlines(keepends=True)
    for i in 2 + _rows_inside(rotated, lost[0]):  # every marker lost during the utterance
        frame, time, *values = lines[i].split()
        lines[i] = " ".join([frame, time] + ["NaN"] * len(values)) + "\n"
    rotated.write_text("".join(lines))

    hand = mocap_path(short[0], "hand", tmp_path)
    lines = hand.read_text().splitlines(keepends=True)
    row = 2 + _rows_inside(hand, short[0])[3]
    lines[row] = " ".join(lines[row].split()[:12]) + "\n"  # Frame#, Time and 10 of 18 values
    hand.write_text("".join(lines))

    x, reason = utterance_mocap(lost[0], tmp_path)
    assert x is None and reason.startswith("MOCAP_rotated holds no finite value between") and str(rotated) in reason
    x, reason = utterance_mocap(short[0], tmp_path)
    assert x is None and f"{hand}: line {row + 1} has 12 fields, expected 20" in reason
    for other in (lost[1], short[1]):  # the rest of the dialog is unaffected
        x, reason = utterance_mocap(other, tmp_path)
        assert reason == "" and np.isfinite(x).all()

    store = mocap_store(tmp_path / "store", corpus="IEMOCAP")
    ok, _, err = extract_mocap([lost[0], lost[1], short[0], short[1]], store, root=tmp_path, progress=False)
    assert (ok, err) == (2, 2) and sorted(store.keys()) == sorted([lost[1].utt_id, short[1].utt_id])
    errors = {e["utterance"]: e["reason"] for e in store.errors()}
    assert "no finite value" in errors[lost[0].utt_id] and "has 12 fields" in errors[short[0].utt_id]


def test_missing_file_and_empty_span(records, root, tmp_path):
    r = wearers(records)[0]
    x, reason = utterance_mocap(r, tmp_path)
    assert x is None and reason == "mocap file missing"
    late = dataclasses.replace(r, start=1e6, end=1e6 + 1)
    x, reason = utterance_mocap(late)
    assert x is None and "no MOCAP_rotated rows" in reason


def test_stats_ignore_nan_and_fill_after_normalisation():
    a = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0]], np.float32)
    b = np.array([[np.nan, np.nan, 5.0]], np.float32)
    s = MocapStats.fit([a, b])
    np.testing.assert_allclose(s.mean, [2.0, 0.0, 5.0])
    np.testing.assert_allclose(s.std, [1.0, 1.0, 1.0])  # all-NaN and constant columns: std 1
    np.testing.assert_allclose(s.apply(b, fill=0.0), [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(s.apply(a)[:, 0], [-1.0, 1.0])


def test_cli_writes_store_lists_missing_and_resumes(records, root, tmp_path, capsys):
    store_dir = tmp_path / "mocap"
    argv = ["--root", str(root), "--store", str(store_dir), "--no-progress"]
    assert feat_mocap.main(argv) == 0
    store = FeatureStore(store_dir)
    ok = wearers(records)
    assert sorted(store.keys()) == sorted(r.utt_id for r in ok)
    assert store.dims == 189 and store.meta["name"] == "Mocap189x200"
    assert [p["stream"] for p in store.meta["column_order"]] == ["rotated", "head", "hand"]
    for r in ok[:3]:
        assert store.frames(r.utt_id) == 200
        np.testing.assert_allclose(stored_mocap(store, r.utt_id), utterance_mocap(r)[0], rtol=1e-6)
    errors = {e["utterance"]: e["reason"] for e in store.errors()}
    assert set(errors) == {r.utt_id for r in records} - set(store.keys())
    assert all("did not wear markers" in why for why in errors.values())
    shards = sorted(p.name for p in (store_dir / "shards").iterdir())
    capsys.readouterr()
    assert feat_mocap.main(argv) == 0
    assert "extracted 0," in capsys.readouterr().out
    assert sorted(p.name for p in (store_dir / "shards").iterdir()) == shards
    assert json.loads((store_dir / "meta.json").read_text())["dims"] == 189
    default = feat_mocap.main(["--root", str(root), "--frames", "20", "--no-progress"])
    assert default == 0 and FeatureStore(root / "Features" / "Mocap189x20").frames(ok[0].utt_id) == 20


def test_motion_energy_follows_arousal(records):
    """Motion energy = mean |frame-to-frame difference| of the resampled features per second of utterance: after
    resampling to a fixed 200 rows one row spans duration/200 s, so the raw per-row difference also grows with
    the utterance length (on this corpus it alone gave rho 0.13..0.53 across seeds); per second it is motion
    speed, which the synthetic corpus makes follow arousal."""
    ok = wearers(records)
    arousal = [r.labels["act"] for r in ok]
    feats = [utterance_mocap(r)[0] for r in ok]
    for part in column_layout():
        energy = [np.abs(np.diff(x[:, part["first"]:part["stop"]], axis=0)).mean() / ((r.end - r.start) / 200)
                  for r, x in zip(ok, feats)]
        rho = spearmanr(energy, arousal)[0]
        assert rho > 0.8, (part["stream"], rho)

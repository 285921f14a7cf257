"""Issue 24: motion capture from a manifest's mocap_path (features.mocap.file_mocap: one file per utterance, the
three IEMOCAP streams side by side) for speech_text_mocap.py's mocap configurations; IEMOCAP records still read
their dialog files; what a file lacks is listed with its reason, never faked."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from corpora.iemocap import resample_mocap
from corpora.records import Utterance
from engine.cli import UserError
from features.mocap import (NO_MOCAP_PATH, file_mocap, interpolate_nan, mocap_way, record_mocap, stored_mocap,
                            utterance_mocap)
from features.store import FeatureStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTH = 189
FAST = ["-iter", "16", "-batch", "8", "--val-every", "8", "--lr", "3e-3", "--no-progress", "--deterministic", "--bootstrap", "50",
        "--d-model", "8", "--heads", "2", "--layers", "1", "--ff", "16", "--fusion-hidden", "8", "--missing", "none"]


def write_mocap(path: Path, values: np.ndarray, header: bool = True) -> Path:
    """IEMOCAP's MOCAP text format: two header lines, then `Frame# Time v1 ... vk` rows (120 fps)."""
    lines = ["Frame# Time " + " ".join(f"M{j}" for j in range(values.shape[1])),
             " ".join(["X", "Y", "Z"] * (values.shape[1] // 3 + 1))] if header else []
    lines += [f"{i + 1} {i / 120:.4f} " + " ".join("NaN" if np.isnan(v) else f"{v:.4f}" for v in row)
              for i, row in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def motion(rng, label: int, rows: int) -> np.ndarray:
    """Class-dependent motion: class 1 moves around +2 on every column, class 0 around 0 (learnable)."""
    return np.round(rng.normal(2.0 * label, 0.5, (rows, WIDTH)), 4).astype(np.float32)


@pytest.fixture(scope="module")
def mocap_manifest(manifest_corpus, tmp_path_factory):
    """A 30-row manifest over the fixture's audio (absolute paths), splits train 14 / dev 6 / test 10, classes
    still / moving, each row a mocap file of 60-300 rows; train row m03 has 188 value columns, train row m05 no
    mocap_path. Returns (manifest path, {utt: the values written})."""
    folder = tmp_path_factory.mktemp("mocap_manifest")
    base = manifest_corpus.parent
    audio = [base / r["path"] for r in csv.DictReader(open(manifest_corpus))][:30]
    rng = np.random.default_rng(3)
    written, rows = {}, []
    (folder / "mocap").mkdir()
    for i, wav in enumerate(audio):
        utt, label = f"m{i:02d}", i % 2
        split = "train" if i < 14 else "dev" if i < 20 else "test"
        values = motion(rng, label, 60 + 8 * i)
        if utt == "m03":
            values = values[:, :WIDTH - 1]
        path = "" if utt == "m05" else write_mocap(folder / "mocap" / f"{utt}.txt", values).name
        if path:
            written[utt] = values
        rows.append({"id": utt, "path": str(wav), "split": split, "speaker": f"spk{i % 6}",
                     "mocap_path": f"mocap/{path}" if path else "", "label": "SM"[label]})
    with open(folder / "corpus.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (folder / "corpus.json").write_text(json.dumps({"name": "MocapManifest", "classes": {"S": "still",
                                                                                         "M": "moving"}}))
    return folder / "corpus.csv", written


def test_mocap_configuration_trains_on_a_manifest_and_lists_rows_without_mocap(mocap_manifest, tmp_path, capsys):
    import speech_text_mocap
    manifest, written = mocap_manifest
    argv = ["--corpus", "manifest", "--root", str(manifest), "--configs", "mocap", *FAST,
            "--out", str(tmp_path / "M"), "--results", str(tmp_path / "R")]
    assert speech_text_mocap.main(argv) == 0
    out, err = capsys.readouterr()
    assert "28 of 30 utterances have motion capture" in out
    assert f"1 utterance(s) have {NO_MOCAP_PATH}" in err and "m05" in err
    assert "1 utterance(s) have no mocap features" in err and "m03" in err
    store = FeatureStore(manifest.parent / "Features" / "Mocap189x200")
    errors = {e["utterance"]: e for e in store.errors()}
    assert set(errors) == {"m03", "m05"}
    assert errors["m03"]["reason"].endswith("has 188 value columns, expected 189 (rotated 165 + head 6 + hand 18, "
                                            "side by side)")
    assert errors["m03"]["file"].endswith("m03.txt") and errors["m05"]["reason"] == NO_MOCAP_PATH
    assert store.meta["corpus"] == "MocapManifest"
    # m01 has 68 rows (< 200 frames: empty chunks interpolated), m29 has 292
    for utt in ("m01", "m29"):
        np.testing.assert_allclose(stored_mocap(store, utt), interpolate_nan(resample_mocap(written[utt], 200)),
                                   rtol=1e-6)
    (res_path,) = (tmp_path / "R").glob("stm_mocap_split*.json")
    res = json.loads(res_path.read_text())
    assert res["classes"] == ["still", "moving"] and res["utterances"] == 10 and res["present"]["mocap"] == 1.0
    assert res["UA"] > 0.7  # class-dependent motion: learnt in 16 steps (1.0 here)


def test_mocap_configurations_are_refused_where_there_is_no_mocap(manifest_corpus, msp_corpus, tmp_path, capsys):
    import speech_text_mocap
    out = ["--out", str(tmp_path / "M"), "--results", str(tmp_path / "R"), *FAST]
    with pytest.raises(UserError, match="motion capture is read from IEMOCAP's .* or a manifest's mocap_path"):
        speech_text_mocap.describe(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--configs", "speech+mocap",
                                    *out])
    with pytest.raises(UserError, match="--only-with-mocap: IEMOCAP only"):
        speech_text_mocap.describe(["--corpus", "manifest", "--root", str(manifest_corpus), "--configs", "head",
                                    "--only-with-mocap", *out])
    speech_text_mocap.describe(["--corpus", "manifest", "--root", str(manifest_corpus), "--configs", "text+mocap",
                                *out])  # flags only: a manifest may have mocap_path
    # the fixture's manifest has no mocap_path column: every mocap input would be absent
    assert speech_text_mocap.main(["--corpus", "manifest", "--root", str(manifest_corpus), "--configs", "face",
                                   *out]) == 1
    assert "no utterance of" in capsys.readouterr().err


def test_file_mocap_checks_like_iemocap_and_records_go_their_way(tmp_path):
    """A manifest record reads its file, one without mocap_path has none, an IEMOCAP record reads its dialog files
    (the marker rule included); a short row or an all-NaN stream in the file is no mocap, with the reason."""
    from corpora.iemocap import read_iemocap
    from corpora.synth.iemocap import write_iemocap
    values = motion(np.random.default_rng(0), 1, 250)
    path = write_mocap(tmp_path / "u.txt", values)
    row = Utterance(utt_id="u", audio_path=tmp_path / "u.wav", speaker="s", corpus="C", mocap_path=path)
    x, reason = record_mocap(row)
    assert mocap_way(row) == "file" and reason == ""
    np.testing.assert_allclose(x, interpolate_nan(resample_mocap(values, 200)), rtol=1e-6)
    head, _ = file_mocap(path, n=50, streams=("head",))
    np.testing.assert_allclose(head, resample_mocap(values[:, 165:171], 50), rtol=1e-6)
    bare = Utterance(utt_id="v", audio_path=tmp_path / "v.wav", speaker="s", corpus="C")
    assert mocap_way(bare) == "none" and record_mocap(bare) == (None, NO_MOCAP_PATH)
    assert record_mocap(Utterance(utt_id="w", audio_path=tmp_path / "w.wav", speaker="s", corpus="C",
                                  mocap_path=tmp_path / "gone.txt")) == (None, "mocap file missing")

    lost = values.copy()
    lost[:, 171:] = np.nan  # every hand marker lost
    assert "MOCAP_hand holds no finite value in the file (250 rows, all NaN)" in file_mocap(
        write_mocap(tmp_path / "lost.txt", lost))[1]
    short = write_mocap(tmp_path / "short.txt", values)
    text = short.read_text().splitlines()
    text[10] = " ".join(text[10].split()[:100])
    short.write_text("\n".join(text) + "\n")
    x, reason = file_mocap(short)
    assert x is None and reason.startswith("damaged mocap rows:") and "line 11 has 100 fields, expected 191" in reason

    root = tmp_path / "IEMOCAP_full_release"
    write_iemocap(root, n=10, seed=1, progress=False)
    records = read_iemocap(root).records
    assert records and all(mocap_way(r) == "iemocap" for r in records)
    for r in records:
        got, expected = record_mocap(r), utterance_mocap(r)
        assert got[1] == expected[1]
        if expected[0] is not None:
            np.testing.assert_array_equal(got[0], expected[0])
    assert any(x is None and "did not wear markers" in why for x, why in map(record_mocap, records))

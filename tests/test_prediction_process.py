"""prediction_process.py as a user runs it: a folder of WAVs in, pred_result.csv out, bad files listed."""
import csv

import numpy as np
from scipy.stats import spearmanr

from conftest import write_odd_wavs
from corpora.synth import rules
from corpora.synth.speech import speak_many
from features.audio import write_wav


def test_published_arousal_model_follows_controlled_arousal_and_bad_files_are_listed(tmp_path, monkeypatch):
    import prediction_process
    levels = np.linspace(-1, 1, 6)
    text = "The meeting was ordinary, and honestly the dinner felt usual and plain."
    jobs = [(text, voice, rules.to_prosody(rules.Controls(a, a, a, a, 0.0)))
            for voice in ("en-us+m1", "en-us+f1") for a in levels]
    wavs = tmp_path / "wavs"
    names = []
    for i, spoken in enumerate(speak_many(jobs)):
        names.append(f"v{i // 6}_level{i % 6}.wav")
        write_wav(wavs / names[-1], spoken.audio)
    expected = write_odd_wavs(wavs / "odd", spoken.audio)
    monkeypatch.chdir(tmp_path)
    assert prediction_process.main(["--wav-dir", str(wavs), "--no-progress"]) == 0
    with open(tmp_path / "pred_result.csv") as f:
        rows = {r["File_Name"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == ["File_Name", "Aro-Score", "Dom-Score", "Val-Score"]
    for v in range(2):  # the published Act model's score rises with the arousal we put into the voice
        aro = [float(rows[f"v{v}_level{k}.wav"]["Aro-Score"]) for k in range(6)]
        assert spearmanr(levels, aro).statistic >= 0.9, aro
        assert aro[-1] - aro[0] > 1.0
    assert all(1.0 <= float(r[c]) <= 7.0 for r in rows.values() for c in ("Aro-Score", "Dom-Score", "Val-Score"))
    for name in ("stereo44k", "eightbit"):  # any rate, depth and channel count is predicted
        assert f"odd/{name}.wav" in rows
    with open(tmp_path / "pred_result_errors.csv") as f:
        errors = {r["File_Name"]: r["reason"] for r in csv.DictReader(f)}
    for name, why in expected.items():
        if why != "ok":
            assert errors[f"odd/{name}.wav"].startswith(why)


def test_no_readable_file_gives_exit_code_1(tmp_path):
    import prediction_process
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "empty.wav").write_bytes(b"")
    assert prediction_process.main(["--wav-dir", str(tmp_path / "w"), "--out", str(tmp_path / "p.csv"),
                                    "--no-progress"]) == 1

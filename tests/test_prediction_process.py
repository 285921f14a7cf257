"""prediction_process.py as a user runs it: a folder of WAVs in, pred_result.csv out, bad files listed."""
import csv

import numpy as np
from scipy.stats import spearmanr

from conftest import unwritable_folders, write_odd_wavs
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
    assert list(next(iter(rows.values()))) == ["File_Name", "Aro-Score", "Dom-Score", "Val-Score", "Warning"]
    for v in range(2):  # the published Act model's score rises with the arousal we put into the voice
        aro = [float(rows[f"v{v}_level{k}"]["Aro-Score"]) for k in range(6)]
        assert spearmanr(levels, aro).statistic >= 0.9, aro
        assert aro[-1] - aro[0] > 1.0
    assert all(1.0 <= float(r[c]) <= 7.0 for r in rows.values() for c in ("Aro-Score", "Dom-Score", "Val-Score"))
    for name in ("stereo44k", "eightbit"):  # any rate, depth and channel count is predicted
        assert rows[f"odd/{name}"]["Warning"] == ""
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


def _speech():
    from corpora.synth.speech import speak_many
    return next(iter(speak_many([("It was a long and ordinary day at the office.", "en-us+m1",
                                  rules.to_prosody(rules.Controls(0, 0, 0, 0, 0.0)))]))).audio


def test_ids_are_relative_paths_and_odd_files_are_marked(tmp_path):
    """sub/a.wav and a.wav both predicted under their own ids; truncated and sub-chunk files get a warning;
    a stale errors file from an earlier run is removed."""
    import soundfile as sf

    import prediction_process
    speech = _speech()
    wavs = tmp_path / "w"
    write_wav(wavs / "sub" / "a.wav", speech)
    write_wav(wavs / "a.wav", speech[: len(speech) // 2])
    write_wav(wavs / "half_second.wav", speech[:8000])
    sf.write(tmp_path / "full.wav", speech, 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (wavs / "cut.wav").write_bytes(data[: len(data) // 2])  # the header still announces the whole recording
    out = tmp_path / "res" / "pred.csv"
    out.parent.mkdir()
    (tmp_path / "res" / "pred_errors.csv").write_text("File_Name,reason\nold.wav,from an earlier run\n")
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(out), "--no-progress"]) == 0
    with open(out) as f:
        rows = {r["File_Name"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["a", "cut", "half_second", "sub/a"]
    assert rows["a"]["Aro-Score"] != rows["sub/a"]["Aro-Score"]  # two different recordings, two scores
    assert rows["cut"]["Warning"].startswith("truncated")
    assert rows["half_second"]["Warning"].startswith("short")
    assert rows["a"]["Warning"] == rows["sub/a"]["Warning"] == ""
    assert not (tmp_path / "res" / "pred_errors.csv").exists()


def test_clear_errors_before_any_work(tmp_path, capsys):
    import prediction_process
    from conftest import PRETRAINED
    wavs = tmp_path / "w"
    write_wav(wavs / "a.wav", _speech())
    from systems.predict import SHIPPED as shipped
    act = shipped / "LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act"
    act2 = shipped / "LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Act"
    out = tmp_path / "o.csv"
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(out), "--models", str(act), str(act2)]) == 1
    assert "one model per attribute" in capsys.readouterr().err and not out.exists()
    for target in unwritable_folders(tmp_path):
        assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(target / "p.csv")]) == 1
        cap = capsys.readouterr()
        assert f"{target}: cannot write" in cap.err and ".tmp" not in cap.err and "predicted" not in cap.out
    legacy = PRETRAINED / "chunk_attention_lstm_v1.6" / "LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Act.pth.tar"
    if legacy.is_file():  # a published .pth.tar is used with its NormTerm, not refused with a foreign flag
        assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(out), "--models", str(legacy),
                                        "--no-progress"]) == 0
        with open(out) as f:
            assert list(csv.DictReader(f))[0].keys() == {"File_Name", "Aro-Score", "Warning"}


def test_a_long_file_says_how_much_of_it_the_model_heard(tmp_path, capsys, monkeypatch):
    """Issue 19, item 11: 11 chunks cannot hear a 30 s file; its Warning and the summary say so, and a
    library warning raised while scoring a file lands in that file's Warning, named."""
    import warnings

    import prediction_process
    from systems.chunk_lstm import Predictor
    speech = _speech()
    wavs = tmp_path / "w"
    write_wav(wavs / "long.wav", np.tile(speech, int(np.ceil(30 * 16000 / len(speech))))[: 30 * 16000])
    write_wav(wavs / "short.wav", speech)
    real = Predictor.predict

    def predict_warning_on_long(self, arrays, batch_size=64):  # a library that warns without naming the file
        if any(len(a) > 1000 for a in arrays):
            warnings.warn("something odd in this batch", UserWarning)
        return real(self, arrays, batch_size)
    monkeypatch.setattr(Predictor, "predict", predict_warning_on_long)
    out = tmp_path / "p.csv"
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(out), "--no-progress"]) == 0
    with open(out) as f:
        rows = {r["File_Name"]: r["Warning"] for r in csv.DictReader(f)}
    import re
    seen = re.match(r"partly seen: 11 chunks of 62 frames cover ([\d.]+) s of 30\.0 s \((\d+)%\)", rows["long"])
    assert seen and float(seen[1]) < 15 and round(100 * float(seen[1]) / 30) == int(seen[2])
    assert "UserWarning: something odd in this batch" in rows["long"]
    assert rows["short"] == ""
    assert "1 not seen whole (truncated or partly seen, see Warning): long" in capsys.readouterr().out

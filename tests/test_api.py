"""The Python API (ser.py): its predictions are prediction_process.py's CSV, row for row; every top-level script
answers --help; one tiny run of each system through its script and through ser.run writes the same result files."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_odd_wavs

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def script_csv(path: Path) -> pd.DataFrame:
    """pred_result.csv as the API gives it: text columns as written, scores as the floats their text reads as."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    scores = [c for c in df.columns if c.endswith("-Score")]
    return df.astype({c: float for c in scores})


def errors_of(path: Path) -> list[tuple[str, str]]:
    return [tuple(r) for r in pd.read_csv(path, dtype=str, keep_default_na=False).itertuples(index=False)]


def same_as_script(predictor, wavs: Path, tmp_path: Path, flags: list[str]) -> pd.DataFrame:
    """predict_folder's DataFrame, asserted equal (every column, every value, the errors) to the script's CSV."""
    import prediction_process
    out = tmp_path / "pred.csv"
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(out), "--no-progress", *flags]) == 0
    df = predictor.predict_folder(wavs)
    pd.testing.assert_frame_equal(df, script_csv(out), check_exact=True)
    errors = out.with_name("pred_errors.csv")
    assert df.attrs["errors"] == (errors_of(errors) if errors.is_file() else [])
    return df


def test_shipped_chunk_lstm_folder_file_and_signal(tmp_path):
    import soundfile as sf

    import ser
    from corpora.synth import rules
    from corpora.synth.speech import speak_many
    from features.audio import write_wav
    speech = next(iter(speak_many([("It was a long and ordinary day at the office.", "en-us+f1",
                                    rules.to_prosody(rules.Controls(0.5, 0, 0, 0, 0.0)))]))).audio
    wavs = tmp_path / "wavs"
    expected = write_odd_wavs(wavs, speech)  # good, 44.1 kHz stereo, 8-bit and unreadable ones
    write_wav(wavs / "sub" / "half.wav", speech[: len(speech) // 2])
    p = ser.load()
    df = same_as_script(p, wavs, tmp_path, [])
    assert list(df.columns) == ["File_Name", "Aro-Score", "Dom-Score", "Val-Score", "Warning"]
    assert sorted(df["File_Name"]) == sorted([*(k for k, v in expected.items() if v == "ok"), "sub/half"])
    assert sorted(f for f, _ in df.attrs["errors"]) == sorted(f"{k}.wav" for k, v in expected.items() if v != "ok")
    row = df.set_index("File_Name").loc[["stereo44k"]].reset_index()
    pd.testing.assert_frame_equal(p.predict_file(wavs / "stereo44k.wav"), row, check_exact=True)
    signal, sr = sf.read(wavs / "stereo44k.wav", dtype="float32")
    pd.testing.assert_frame_equal(p.predict(signal, sr, name="stereo44k"), row, check_exact=True)
    with pytest.raises(ValueError, match="unreadable audio"):
        p.predict_file(wavs / "corrupt.wav")
    with pytest.raises(ValueError, match="silent"):
        p.predict(np.zeros(16000), 16000)


def test_what_load_takes_and_refuses(tmp_path):
    import ser
    from systems.predict import SHIPPED
    act = SHIPPED / "LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Act"
    assert [m.attribute for m in ser.load([act, str(act).replace("_Act", "_Val")]).models] == ["act", "val"]
    assert ser.load(act).header == ["File_Name", "Aro-Score", "Warning"]  # the system read from config.json
    with pytest.raises(ValueError, match="one model per attribute"):
        ser.load(SHIPPED)  # both attentions' models
    mdre = tmp_path / "mdre_run"
    mdre.mkdir()
    (mdre / "config.json").write_text(json.dumps({"system": "mdre"}))
    with pytest.raises(ValueError, match="scored on its corpus with mdre.py"):
        ser.load(mdre)
    with pytest.raises(ValueError, match="speech_text_mocap.py"):
        ser.load(act, system="speech-text-mocap")


@pytest.mark.parametrize("script", sorted(p.name for p in REPO.glob("*.py")
                                           if 'if __name__ == "__main__"' in p.read_text()))
def test_every_script_answers_help(script, capsys):
    import importlib
    with pytest.raises(SystemExit) as e:
        importlib.import_module(script[:-3]).main(["--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage:")


# ------------------------------------------------------------------ one tiny run per system: script and ser.run

# when, where and how fast; "run" / "runs": the run folders' weights stamped by size and write time (the weights
# themselves are compared byte for byte)
PROVENANCE = {"date", "command", "code_version", "machine", "run", "runs", "inference"}


def without_provenance(value):
    if isinstance(value, dict):
        return {k: without_provenance(v) for k, v in value.items() if k not in PROVENANCE}
    if isinstance(value, list):
        return [without_provenance(v) for v in value]
    return value


def assert_same_results(a: Path, b: Path) -> None:
    """Folders a (the script's) and b (the API's) hold the same files: weights byte-equal, per-utterance and
    table CSVs equal and result JSON equal minus provenance, each folder's own path read as <out>."""
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    weights = [n for n in names if n.name == "model.safetensors"]
    assert weights and all((a / n).read_bytes() == (b / n).read_bytes() for n in weights)
    results = [n for n in names if n.parts[0] == "R" and n.suffix in (".csv", ".json")]
    assert results
    for n in results:
        ta, tb = (a / n).read_text().replace(str(a), "<out>"), (b / n).read_text().replace(str(b), "<out>")
        if n.suffix == ".json":
            assert without_provenance(json.loads(ta)) == without_provenance(json.loads(tb)), n
        else:
            assert ta == tb, n


def flags(settings: dict) -> list[str]:
    """The command line of keyword settings, as a user types it (the short and long flags the scripts take)."""
    argv = []
    for k, v in settings.items():
        flag = k if k.startswith("-") else "--" + k
        argv += [flag] if v is True else [flag, str(v)]
    return argv


def through_both(tmp_path_factory, steps) -> tuple[Path, Path]:
    """Run each (script module, API name, settings(out)) step into folder A with the script's main(argv) and into
    folder B with ser.run(name, **keywords); (A, B). settings(out) -> (flags as typed, the same as keywords)."""
    import importlib

    import ser
    a, b = tmp_path_factory.mktemp("script"), tmp_path_factory.mktemp("api")
    for script, name, settings in steps:
        assert importlib.import_module(script).main(flags(settings(a)[0])) == 0
        ser.run(name, **settings(b)[1])
    return a, b


def chunk_lstm_steps(mel):
    corpus, root = mel
    data = {"root": corpus, "store": root / "mel", "normterm": root / "NT"}
    model = {"-iter": 4, "-batch": 8, "-emo": "Act", "-atten": "GatedVec"}
    named = {"iterations": 4, "batch_size": 8, "emo_attr": "Act", "atten_type": "GatedVec"}
    train = {"val-every": 2, "deterministic": True, "no-progress": True}
    return [("training", "chunk-lstm", lambda o: ({**model, **data, **train, "out": o / "M"},
                                                  {**named, **data, **train, "out": o / "M"})),
            ("testing", "chunk-lstm-test", lambda o: ({**model, **data, "models-dir": o / "M", "csv": o / "R" / "t.csv",
                                                       "no-progress": True},
                                                      {**named, **data, "models_dir": o / "M", "csv": o / "R" / "t.csv",
                                                       "no_progress": True}))]


@pytest.fixture(scope="module")
def dec_runs(mel_setup, tmp_path_factory):
    corpus, root = mel_setup
    data = {"root": corpus, "store": root / "mel", "normterm": root / "NT", "no-progress": True}
    model = {"-ep": 1, "-batch": 4, "-emo": "Act", "-nc": 3, "-mt": "Temp-Trans"}
    named = {"epoch": 1, "batch_size": 4, "emo_attr": "Act", "num_clusters": 3, "model_type": "Temp-Trans"}
    return through_both(tmp_path_factory, [
        ("main", "deep-emo-cluster", lambda o: ({**model, **data, "deterministic": True, "out": o / "M"},
                                                {**named, **data, "deterministic": True, "out": o / "M"})),
        ("online_testing", "deep-emo-cluster-test",
         lambda o: ({**model, **data, "models-dir": o / "M", "csv": o / "R" / "t.csv"},
                    {**named, **data, "models_dir": o / "M", "csv": o / "R" / "t.csv"}))])


@pytest.fixture(scope="module")
def at_runs(at_setup, tmp_path_factory):
    corpus, d = at_setup
    settings = {"root": corpus, "audio-store": d / "audio", "text-store": d / "text", "normterm-audio": d / "NT_S",
                "normterm-text": d / "NT_T", "val-every": 2, "no-progress": True, "deterministic": True}
    return through_both(tmp_path_factory, [("main", "audio-text", lambda o: (
        {**settings, "-iter": 4, "-batch": 4, "out": o / "M", "results": o / "R"},
        {**settings, "iterations": 4, "batch_size": 4, "out": o / "M", "results": o / "R"}))])


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    """A tiny IEMOCAP with the stand-ins of wav2vec2 and BERT the speech-text-mocap tests use."""
    from corpora.iemocap import read_iemocap
    from corpora.synth.iemocap import write_iemocap
    from features.text import save_tiny_random_bert
    from features.wav2vec2 import save_tiny_random
    d = tmp_path_factory.mktemp("iemocap")
    root = d / "IEMOCAP_full_release"
    write_iemocap(root, n=80, seed=3, progress=False)
    save_tiny_random(d / "w2v")
    save_tiny_random_bert(d / "bert", texts=[r.transcript or "" for r in read_iemocap(root).records if r.session != 5])
    return root, d


def mdre_steps(iemocap):
    root, _ = iemocap
    settings = {"root": root, "model": "MDREA", "protocol": "loso", "folds": 5, "val-every": 3,
                "missing": "audio-absent", "sim-seeds": 1, "no-progress": True, "deterministic": True}
    return [("mdre", "mdre", lambda o: ({**settings, "-iter": 6, "-batch": 8, "out": o / "M", "results": o / "R"},
                                        {**settings, "iterations": 6, "batch_size": 8, "out": o / "M",
                                         "results": o / "R"}))]


def stm_steps(iemocap):
    root, d = iemocap
    settings = {"root": root, "speech-model": d / "w2v", "text-model": d / "bert", "configs": "speech,text",
                "missing": "none", "d-model": 16, "heads": 2, "layers": 1, "ff": 32, "fusion-hidden": 16,
                "val-every": 2, "no-progress": True, "deterministic": True}
    return [("speech_text_mocap", "speech-text-mocap", lambda o: (
        {**settings, "-iter": 4, "-batch": 8, "out": o / "M", "results": o / "R"},
        {**settings, "iterations": 4, "batch_size": 8, "out": o / "M", "results": o / "R"}))]


def test_chunk_lstm_script_and_api_write_the_same_files(mel_setup, tmp_path_factory):
    assert_same_results(*through_both(tmp_path_factory, chunk_lstm_steps(mel_setup)))


def test_deep_emo_cluster_script_and_api_write_the_same_files_and_predict_alike(dec_runs, mel_setup, tmp_path):
    import ser
    from features.audio import load_audio
    assert_same_results(*dec_runs)
    corpus, _ = mel_setup
    wavs = tmp_path / "wavs"
    expected = write_odd_wavs(wavs, load_audio(sorted((corpus / "Audios").glob("*.wav"))[0]))
    (run,) = (dec_runs[0] / "M").iterdir()
    df = same_as_script(ser.load(run), wavs, tmp_path, ["--system", "deep-emo-cluster", "--models", str(run)])
    assert list(df.columns) == ["File_Name", "Aro-Score", "Warning"]
    assert sorted(f for f, _ in df.attrs["errors"]) == sorted(f"{k}.wav" for k, v in expected.items() if v != "ok")


def test_audio_text_script_and_api_write_the_same_files_and_predict_alike(at_runs, at_setup, tmp_path):
    import shutil

    import ser
    assert_same_results(*at_runs)
    corpus, d = at_setup
    names = sorted(p.stem for p in (corpus / "Audios").glob("*.wav"))[:3]
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for n in names:
        shutil.copy(corpus / "Audios" / f"{n}.wav", wavs)
    shutil.copy(corpus / "Transcripts" / f"{names[0]}.txt", wavs)
    shutil.copy(corpus / "ForceAligned" / f"{names[0]}.TextGrid", wavs)
    shutil.copy(corpus / "Transcripts" / f"{names[1]}.txt", wavs)
    (wavs / "broken.wav").write_bytes(b"")
    (run,) = (at_runs[0] / "M").iterdir()
    p = ser.load(run, audio_model=str(d / "tiny_w2v"))
    df = same_as_script(p, wavs, tmp_path, ["--system", "audio-text", "--models", str(run),
                                            "--audio-model", str(d / "tiny_w2v")])
    assert list(df["Text"]) == ["transcript", "transcript", "absent"] and df.attrs["errors"][0][0] == "broken.wav"
    # a file with its transcript beside it, and its signal with the transcript given, score alike
    row = df.iloc[[1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(p.predict_file(wavs / f"{names[1]}.wav"), row, check_exact=True)
    import soundfile as sf
    signal, sr = sf.read(wavs / f"{names[1]}.wav", dtype="float32")
    text = (wavs / f"{names[1]}.txt").read_text()
    pd.testing.assert_frame_equal(p.predict(signal, sr, transcript=text, name=names[1]), row, check_exact=True)


def test_mdre_script_and_api_write_the_same_files(iemocap, tmp_path_factory):
    assert_same_results(*through_both(tmp_path_factory, mdre_steps(iemocap)))


def test_speech_text_mocap_script_and_api_write_the_same_files(iemocap, tmp_path_factory):
    assert_same_results(*through_both(tmp_path_factory, stm_steps(iemocap)))

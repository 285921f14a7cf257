"""prediction_process.py --system audio-text: WAVs with and without transcript / TextGrid, the same scores as
the stored-feature path, original TransformerCoAtten_*.pth.tar files with the original's NormTerm folders,
the published v1.10 statistics, and clear errors."""
import csv
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import PRETRAINED


@pytest.fixture(scope="module")
def trained(at_setup, tmp_path_factory):
    """A 4-iteration audio-text model, its test-split per-utterance CSV, and the corpus / feature folders."""
    import main
    corpus, d = at_setup
    work = tmp_path_factory.mktemp("atpred")
    args = ["--root", str(corpus), "--audio-store", str(d / "audio"), "--text-store", str(d / "text"),
            "--normterm-audio", str(d / "NT_S"), "--normterm-text", str(d / "NT_T"), "-iter", "4", "-batch", "4",
            "--val-every", "2", "--out", str(work / "M"), "--no-progress"]
    import os
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert main.main(args) == 0
    finally:
        os.chdir(cwd)
    (run,) = (work / "M").iterdir()
    (scores_csv,) = (work / "results").glob("*_test1_act.csv")
    return corpus, d, run, scores_csv


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folder_with_and_without_transcripts(trained, tmp_path, capsys):
    import prediction_process
    corpus, d, run, scores_csv = trained
    stored = {r["utterance"]: float(r["prediction"]) for r in rows_of(scores_csv)}
    names = sorted(stored)[:4]
    wavs = tmp_path / "wavs"
    (wavs / "sub").mkdir(parents=True)
    full, no_grid, no_text, empty_text = names
    for n in names:
        shutil.copy(corpus / "Audios" / f"{n}.wav", wavs / "sub" / f"{n}.wav")
    for n in (full, no_grid):
        shutil.copy(corpus / "Transcripts" / f"{n}.txt", wavs / "sub" / f"{n}.txt")
    shutil.copy(corpus / "ForceAligned" / f"{full}.TextGrid", wavs / "sub" / f"{full}.TextGrid")
    (wavs / "sub" / f"{empty_text}.txt").write_text("\n")
    (wavs / "broken.wav").write_bytes(b"")
    out = tmp_path / "pred.csv"
    assert prediction_process.main(["--system", "audio-text", "--models", str(run), "--wav-dir", str(wavs),
                                    "--audio-model", str(d / "tiny_w2v"), "--out", str(out), "--no-progress"]) == 0
    rows = {r["File_Name"]: r for r in rows_of(out)}
    assert list(rows_of(out)[0]) == ["File_Name", "Aro-Score", "Dom-Score", "Val-Score", "Text", "Warning"]
    assert sorted(rows) == sorted(f"sub/{n}" for n in names)
    # a corpus WAV with its transcript and TextGrid scores as the stored features did in main.py's test
    assert float(rows[f"sub/{full}"]["Aro-Score"]) == pytest.approx(stored[full], abs=2e-4)
    assert rows[f"sub/{full}"]["Text"] == "transcript" and rows[f"sub/{full}"]["Warning"] == ""
    assert rows[f"sub/{no_grid}"]["Text"] == "transcript"
    assert rows[f"sub/{no_text}"]["Text"] == "absent"
    assert "from the duration" in rows[f"sub/{no_text}"]["Warning"]
    assert rows[f"sub/{empty_text}"]["Text"] == "absent" and "is empty" in rows[f"sub/{empty_text}"]["Warning"]
    for r in rows.values():
        assert all(1 <= float(r[c]) <= 7 or np.isfinite(float(r[c])) for c in ("Aro-Score", "Dom-Score", "Val-Score"))
    errors = rows_of(tmp_path / "pred_errors.csv")
    assert [e["File_Name"] for e in errors] == ["broken.wav"] and "empty" in errors[0]["reason"]
    assert "Act, Dom and Val" in capsys.readouterr().out


def test_text_absent_differs_from_with_text(trained, tmp_path):
    """The same WAV predicted with and without its transcript: the text stream matters to the model."""
    from systems.audio_text import Predictor
    corpus, d, run, _ = trained
    pred = Predictor.load(run)
    audio, text = pred.extractors(str(d / "tiny_w2v"))
    from features.audio import load_audio
    from corpora.records import read_transcript_file
    from corpora.textgrid import read_words
    n = sorted(p.stem for p in (corpus / "Audios").glob("*.wav"))[0]
    a = audio([load_audio(corpus / "Audios" / f"{n}.wav")])[0]
    t = text([read_transcript_file(corpus / "Transcripts" / f"{n}.txt")])[0]
    w = read_words(corpus / "ForceAligned" / f"{n}.TextGrid")
    both, absent = pred.predict([(a, t, w), (a, None, w)])
    assert np.isfinite(both).all() and np.isfinite(absent).all()
    assert not np.allclose(both, absent)
    # a word count instead of the alignment gives the same chunks for the even-window strategies
    np.testing.assert_allclose(pred.predict([(a, t, len(w))])[0], both, atol=1e-5)


def save_original(model, path):
    torch.save(model.state_dict(), path)  # a bare state_dict, as the original's main.py saves it
    return path


def test_original_pth_tar_with_its_normterm_folders(at_setup, tmp_path):
    import prediction_process
    from models.audio_text_coatten import AudioTextCoAttention
    from systems.audio_text import Predictor
    corpus, d = at_setup
    torch.manual_seed(3)
    model = AudioTextCoAttention(audio_dim=7 * 32, text_dim=384).eval()
    path = save_original(model, tmp_path / "TransformerCoAtten_iter5000_batch128_AudioText_MultiRslParymidPool_MTL.pth.tar")
    nt = tmp_path / "NormTerms"
    shutil.copytree(d / "NT_S", nt / "NormTerm_Speech")
    shutil.copytree(d / "NT_T", nt / "NormTerm_Text")
    pred = Predictor.load(path, normterm=nt)
    rng = np.random.default_rng(0)
    a, t = rng.normal(size=(180, 32)).astype(np.float32), rng.normal(size=(20, 384)).astype(np.float32)
    got = pred.predict([(a, t, 5)])
    # the original module itself, fed through the same inputs, gives these outputs
    from systems.audio_text import model_inputs
    batch = model_inputs([pred.nt_audio.features(a)], [pred.nt_text.features(t)], [5], "multiscale")
    with torch.no_grad():
        o = model(batch["audio"], batch["text"], batch["mask_audio"], batch["mask_text"])
    want = [pred.nt_audio.denorm(o[k].numpy(), k) for k in ("act", "dom", "val")]
    np.testing.assert_allclose(got[0], np.array(want)[:, 0], rtol=1e-6)
    # and through the command line, with local extractors of the right sizes
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    n = sorted(p.stem for p in (corpus / "Audios").glob("*.wav"))[0]
    shutil.copy(corpus / "Audios" / f"{n}.wav", wavs)
    shutil.copy(corpus / "Transcripts" / f"{n}.txt", wavs)
    out = tmp_path / "p.csv"
    assert prediction_process.main(["--system", "audio-text", "--models", str(path), "--normterm", str(nt),
                                    "--audio-model", str(d / "tiny_w2v"), "--text-model", "minilm",
                                    "--wav-dir", str(wavs), "--out", str(out), "--no-progress"]) == 0
    (row,) = rows_of(out)
    assert row["Text"] == "transcript" and np.isfinite(float(row["Val-Score"]))


@pytest.mark.skipif(not (PRETRAINED / "multiscale_chunk_v1.10").is_dir(), reason="published v1.10 NormTerms absent")
def test_published_v110_normterms_drive_a_paper_size_original_model(tmp_path):
    from models.audio_text_coatten import AudioTextCoAttention
    from systems.audio_text import Predictor
    torch.manual_seed(0)
    model = AudioTextCoAttention().eval()  # the paper's sizes: 7 x 1024 audio, 768 text
    assert sum(p.numel() for p in model.parameters()) == 7_689_731
    path = save_original(model, tmp_path / "TransformerCoAtten_iter5000_batch128_AudioText_MultiRslParymidPool_MTL.pth.tar")
    pred = Predictor.load(path, normterm=PRETRAINED / "multiscale_chunk_v1.10")
    assert pred.config["features"]["audio"]["params"]["model"] == "facebook/wav2vec2-large-robust"
    assert pred.config["features"]["text"]["params"]["model"] == "roberta-base"
    assert pred.nt_audio.labels["act"] == pytest.approx((4.328008765156319, 0.9579139928646752))
    rng = np.random.default_rng(1)
    inputs = [(rng.normal(pred.nt_audio.feat_mean, 1e-6, size=(int(T), 1024)).astype(np.float32),
               rng.normal(pred.nt_text.feat_mean, 0.3, size=(int(N), 768)), k)
              for T, N, k in ((160, 14, 6), (420, 40, 17), (40, 5, 0))]
    out = pred.predict(inputs, batch_size=2)
    assert out.shape == (3, 3) and np.isfinite(out).all()
    # de-normalised with the published label statistics: the spread follows each attribute's std
    z = (out - np.array([4.328008765156319, 4.447731276793075, 4.021101978311878])) / \
        np.array([0.9579139928646752, 0.8670455463193582, 0.8999097205396257])
    assert np.abs(z).max() < 20


def test_clear_errors(trained, tmp_path):
    import prediction_process
    from engine.cli import UserError
    corpus, d, run, _ = trained
    wavs = tmp_path / "w"
    wavs.mkdir()
    shutil.copy(next((corpus / "Audios").glob("*.wav")), wavs)
    base = ["--system", "audio-text", "--wav-dir", str(wavs), "--out", str(tmp_path / "p.csv"), "--no-progress"]
    cases = [([], "never published"),
             (["--models", str(run), str(run)], "predicts all three attributes"),
             (["--models", str(tmp_path / "TransformerCoAtten_x.pth.tar")], "cannot read"),
             (["--models", str(run), "--text-model", str(d / "tiny_w2v")], "cannot load the feature extractors")]
    torch.save({"proj_sph.weight": torch.zeros(1)}, tmp_path / "TransformerCoAtten_x.pth.tar")
    cases[2] = (cases[2][0], "needs --normterm")
    for extra, msg in cases:
        with pytest.raises(UserError, match=msg):
            prediction_process.main.__wrapped__(base + extra)


def test_a_long_input_is_marked_truncated_with_what_was_cut(trained, tmp_path, capsys):
    """Issue 19, item 11: a 60 s WAV with a 175-word transcript overflows both 128-row streams; its Warning and
    the summary say what was kept of what, never silently."""
    import prediction_process
    import soundfile as sf
    corpus, d, run, _ = trained
    wav = next((corpus / "Audios").glob("*.wav"))
    x, sr = sf.read(wav, dtype="float32")
    wavs = tmp_path / "w"
    wavs.mkdir()
    sf.write(wavs / "long.wav", np.tile(x, int(np.ceil(60 * sr / len(x))))[: 60 * sr], sr)
    words = "the meeting was ordinary and honestly the dinner felt usual and plain today".split()
    (wavs / "long.txt").write_text(" ".join((words * 15)[:175]) + "\n")
    out = tmp_path / "p.csv"
    assert prediction_process.main(["--system", "audio-text", "--models", str(run), "--wav-dir", str(wavs),
                                    "--audio-model", str(d / "tiny_w2v"), "--out", str(out), "--no-progress"]) == 0
    (row,) = rows_of(out)
    warning = row["Warning"]
    assert warning.startswith("truncated: audio 128 of 176 rows kept (chunks 1-127 of 175: 0-")
    assert "s of 60.0 s seen)" in warning and "; text 128 of " in warning and "tokens)" in warning
    assert "UserWarning" not in warning  # the raw pad_batch warning is replaced by the named note
    assert "1 not seen whole (truncated or partly seen, see Warning): long" in capsys.readouterr().out

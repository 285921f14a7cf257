"""Per-second tracks (systems/tracks.py, prediction_process.py --track, Predictor.track_file): the chunk outputs
on the time axis for the three chunk-based systems, sliding windows for long files, tracks beside the CSV."""
import csv

import numpy as np
import pandas as pd
import pytest
import torch

from features.audio import write_wav

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXT = "It was a long and ordinary day at the office."


@pytest.fixture(scope="module")
def speech():
    from corpora.synth import rules
    from corpora.synth.speech import speak_many
    return next(iter(speak_many([(TEXT, "en-us+f1", rules.to_prosody(rules.Controls(0.5, 0, 0, 0, 0.0)))]))).audio


def seconds(x, s):
    """`s` seconds of a signal repeated end to end (a long recording made of one utterance)."""
    return np.tile(x, int(np.ceil(s * 16000 / len(x))))[: int(s * 16000)]


def check_track(df: pd.DataFrame, attributes: list[str], duration: float, chunks_per_window: int | None):
    assert list(df.columns) == ["file", "window", "window_start_s", "window_end_s", "chunk", "start_s", "end_s",
                                *attributes, *(f"attention_{a}" for a in attributes),
                                *(f"window_{a}" for a in attributes)]
    assert (df["start_s"] >= 0).all() and (df["end_s"] <= duration + 1e-3).all() and (df["end_s"] > df["start_s"]).all()
    for _, w in df.groupby("window"):
        assert (np.diff(w["start_s"]) >= 0).all() and (w["start_s"] >= w["window_start_s"]).all()
        assert (w["end_s"] <= w["window_end_s"] + 1e-3).all()
        assert np.allclose(w[[f"attention_{a}" for a in attributes]].sum(), 1.0, atol=1e-3)
        if chunks_per_window is not None:
            assert len(w) == chunks_per_window
    assert np.isfinite(df[attributes].to_numpy()).all()


@pytest.mark.parametrize("atten", ["NonAtten", "GatedVec", "RnnAttenVec", "SelfAttenVec", "SelfAttenVecCross"])
def test_chunk_lstm_chunk_outputs(atten):
    """The utterance score is forward's, bit for bit; weights sum to 1; an utterance whose chunks are all alike
    scores what each chunk scores (the definition: the head on the chunk's vector where the pooled one goes);
    RnnAttenVec: a chunk's output is the head at one-hot attention on that chunk."""
    from models.chunk_lstm import ChunkLSTM
    torch.manual_seed(0)
    model = ChunkLSTM(atten=atten, input_dim=8, hidden_dim=8, chunks_per_utt=5).eval()
    x = torch.randn(15, 7, 8)
    with torch.no_grad():
        utt, chunks, weights = model.chunk_outputs(x)
        assert torch.equal(utt, model(x)) and chunks.shape == weights.shape == (3, 5)
        assert torch.allclose(weights.sum(1), torch.ones(3))
        assert chunks.std() > 1e-4
        if atten == "RnnAttenVec":
            z = model.bn(model.lstm(x)[0][:, -1]).reshape(3, 5, 8)
            e, _ = model.attn.attn_rnn(z)
            one_hot = torch.tanh(model.attn.attn_dnn_out(torch.cat([e[:, 2], e[:, -1]], 1)))
            assert torch.allclose(chunks[:, 2], model.head(one_hot), atol=1e-6)
        else:
            same = x[:1].repeat(15, 1, 1)  # every chunk of every utterance the same
            u, c, _ = model.chunk_outputs(same)
            assert torch.allclose(c, u[:, None].expand_as(c), atol=1e-5)


def test_audio_text_chunk_outputs():
    from models.audio_text_coatten import AudioTextCoAttention
    torch.manual_seed(0)
    model = AudioTextCoAttention(audio_dim=14, text_dim=6, hidden=16, heads=2, ffn=32).eval()
    a, t = torch.randn(2, 9, 14), torch.randn(2, 9, 6)
    ma = torch.arange(9)[None] >= torch.tensor([[6], [9]])
    mt = torch.arange(9)[None] >= torch.tensor([[4], [3]])
    with torch.no_grad():
        o, ref = model.chunk_outputs(a, t, ma, mt), model(a, t, ma, mt)
    for k in ("act", "dom", "val"):
        assert torch.equal(o["utterance"][k], ref[k]) and o["chunks"][k].shape == (2, 8)
    assert torch.allclose(o["weights"].sum(1), torch.ones(2)) and (o["weights"][0, 5:] == 0).all()  # pads: no weight


def test_chunk_lstm_track_folder_through_the_script(speech, tmp_path):
    """--track: one CSV + PNG per file below tracks/, a short file's pred_result row unchanged, a long file
    scored as the mean of windows at the right starts, a bad file listed and the rest tracked."""
    import prediction_process
    wavs = tmp_path / "w"
    write_wav(wavs / "short.wav", speech)
    write_wav(wavs / "sub" / "long.wav", seconds(speech, 25.0))
    (wavs / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    plain, tracked = tmp_path / "plain" / "p.csv", tmp_path / "tracked" / "p.csv"
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(plain), "--no-progress"]) == 0
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(tracked), "--no-progress", "--track",
                                    "--window", "10", "--hop", "4"]) == 0
    rows = {r["File_Name"]: r for r in csv.DictReader(open(tracked))}
    before = {r["File_Name"]: r for r in csv.DictReader(open(plain))}
    assert rows["short"] == before["short"]
    assert rows["sub/long"]["Warning"] == "scored as 5 windows of 10 s every 4 s"
    errors = list(csv.DictReader(open(tracked.with_name("p_errors.csv"))))
    assert [e["File_Name"] for e in errors] == ["broken.wav"]
    folder = tracked.parent / "tracks"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        ["short.csv", "short.png", "sub/long.csv", "sub/long.png"]
    attrs = ["Act", "Dom", "Val"]
    short = pd.read_csv(folder / "short.csv")
    check_track(short, attrs, len(speech) / 16000, 11)
    assert short["window"].eq(0).all()
    assert [f"{short[f'window_{a}'][0]:.4f}" for a in attrs] == [rows["short"][c] for c in
                                                                 ("Aro-Score", "Dom-Score", "Val-Score")]
    long = pd.read_csv(folder / "sub" / "long.csv")
    check_track(long, attrs, 25.0, 11)
    starts = long.groupby("window")["window_start_s"].first().tolist()
    assert starts == [0.0, 4.0, 8.0, 12.0, 15.0]  # every hop, the last window ending at the file's end
    means = long.groupby("window")[[f"window_{a}" for a in attrs]].first().mean()
    assert [f"{v:.4f}" for v in means] == [rows["sub/long"][c] for c in ("Aro-Score", "Dom-Score", "Val-Score")]
    assert prediction_process.main(["--wav-dir", str(wavs), "--out", str(plain), "--window", "5"]) == 1  # needs --track


def tiny_dec():
    from features.normterm import NormTerm
    from models.deep_emo_cluster import DeepEmoCluster
    from systems.deep_emo_cluster import Predictor as DEC
    from systems.predict import Predictor
    torch.manual_seed(0)
    nt = NormTerm(np.zeros(128, np.float32), np.ones(128, np.float32), {"act": (4.0, 1.0)})
    return Predictor("deep-emo-cluster", [DEC(DeepEmoCluster(variant="Temp-GRU", num_clusters=4), nt, "act", {})])


def test_deep_emo_cluster_track_mean_of_chunks_is_the_score(speech, tmp_path):
    p = tiny_dec()
    write_wav(tmp_path / "a.wav", speech)
    df = p.track_file(tmp_path / "a.wav", out=tmp_path / "t")
    check_track(df, ["Act"], len(speech) / 16000, 11)
    assert df["Act"].mean() == pytest.approx(df.attrs["scores"]["Act"], abs=1e-6)  # the model's own chunk outputs
    assert df["Act"].std() > 1e-4
    assert f"{df.attrs['scores']['Act']:.4f}" == f"{p.predict_file(tmp_path / 'a.wav')['Aro-Score'][0]:.4f}"
    assert (tmp_path / "t" / "a.csv").is_file() and (tmp_path / "t" / "a.png").stat().st_size > 1000
    long = p.track(seconds(speech, 14.0), 16000, window=6.0)  # default hop: half the window
    assert long.groupby("window")["window_start_s"].first().tolist() == [0.0, 3.0, 6.0, 8.0]
    assert long.attrs["warning"] == "scored as 4 windows of 6 s every 3 s"
    with pytest.raises(ValueError, match="silent"):
        p.track(np.zeros(16000 * 20), 16000)  # no window can be scored: said, not an empty track


def test_audio_text_track(speech, tmp_path):
    from features.normterm import NormTerm
    from features.wav2vec2 import save_tiny_random
    from models.audio_text_coatten import AudioTextCoAttention
    from systems.audio_text import Predictor as AT
    from systems.predict import Predictor
    w2v = save_tiny_random(tmp_path / "w2v")
    torch.manual_seed(0)
    labels = {a: (4.0, 1.0) for a in ("act", "dom", "val")}
    cfg = {"chunking": {"strategy": "fixed"}, "source": "tiny",
           "features": {"audio": {"frame_rate": 50.0, "params": {"model": str(w2v)}, "dims": 32},
                        "text": {"params": {"model": "minilm"}, "dims": 384}}}
    at = AT(AudioTextCoAttention(audio_dim=7 * 32, text_dim=384, hidden=32, heads=2, ffn=64),
            NormTerm(np.zeros(32, np.float32), np.ones(32, np.float32), labels),
            NormTerm(np.zeros(384, np.float32), np.ones(384, np.float32), {}), cfg)
    p = Predictor("audio-text", [at])
    wavs = tmp_path / "w"
    write_wav(wavs / "a.wav", speech)
    (wavs / "a.txt").write_text(TEXT)
    write_wav(wavs / "long.wav", seconds(speech, 16.0))
    (wavs / "long.txt").write_text(" ".join([TEXT] * 5))
    df = p.track_folder(wavs, tmp_path / "tracks", window=8.0)
    assert list(df.columns) == ["File_Name", "Aro-Score", "Dom-Score", "Val-Score", "Text", "Warning"]
    one = pd.read_csv(tmp_path / "tracks" / "a.csv")
    check_track(one, ["Act", "Dom", "Val"], len(speech) / 16000, len(TEXT.split()))  # one chunk per word
    row = df.set_index("File_Name").loc["a"]
    assert row["Text"] == "transcript"
    ref = p.predict_file(wavs / "a.wav")
    assert [row[c] for c in ("Aro-Score", "Dom-Score", "Val-Score")] == \
        [ref[c][0] for c in ("Aro-Score", "Dom-Score", "Val-Score")]
    long = pd.read_csv(tmp_path / "tracks" / "long.csv")
    check_track(long, ["Act", "Dom", "Val"], 16.0, None)
    assert long.groupby("window")["window_start_s"].first().tolist() == [0.0, 4.0, 8.0]
    assert df.set_index("File_Name").loc["long", "Warning"] == "scored as 3 windows of 8 s every 4 s"

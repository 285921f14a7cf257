"""ONNX export (systems/onnx_export.py, export_onnx.py) and onnxruntime prediction (systems/onnx_predict.py) of
the three MSP-Podcast systems (issue 22): the ONNX graph scores what the PyTorch predictor scores (1e-4 on the
label scale, batch 1 and 16, shortest and longest inputs), one by one as in batches, its file records what it is,
and a wrong file is refused by name. Tiny random models, one export per system for the module."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import PRETRAINED
from features.normterm import NormTerm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIPPED = Path(__file__).resolve().parents[1] / "trained_models"
# chunk frames 7 (shorter than one chunk: padded) to 3000 (48 s at 16 ms); 16 of them: one batch of 16
LENGTHS = [7, 40, 61, 62, 63, 64, 80, 100, 150, 250, 400, 500, 700, 900, 1500, 3000]
TOL, BATCH_TOL = 1e-4, 1e-5  # ONNX vs PyTorch; ONNX in batches vs one by one


def random_normterm(dims: int, rng, attrs=("act", "dom", "val")) -> NormTerm:
    """Statistics far from (0, 1), so a z-norm left out or done twice shows."""
    return NormTerm(rng.normal(5.0, 3.0, dims), rng.uniform(0.5, 4.0, dims),
                    {a: (3.0 + i, 0.5 + 0.3 * i) for i, a in enumerate(attrs)})


def raw_arrays(nt: NormTerm, lengths, rng) -> list[np.ndarray]:
    """float32 features as an extractor gives them: around the statistics, some beyond the clip at 3 std."""
    return [(nt.feat_mean + 2.0 * nt.feat_std * rng.normal(size=(t, len(nt.feat_mean)))).astype(np.float32)
            for t in lengths]


def save(folder: Path, model: torch.nn.Module, config: dict) -> Path:
    from engine.checkpoint import save_checkpoint
    save_checkpoint(folder, model.state_dict(), config)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny random checkpoint folder per system, as our training writes them."""
    from models.audio_text_coatten import AudioTextCoAttention
    from models.chunk_lstm import ChunkLSTM
    from models.deep_emo_cluster import DeepEmoCluster
    d, rng = tmp_path_factory.mktemp("onnx_ckpt"), np.random.default_rng(0)
    torch.manual_seed(0)
    lstm_cfg = {"atten": "SelfAttenVec", "input_dim": 12, "hidden_dim": 12, "num_layers": 2, "dropout": 0.5,
                "chunks_per_utt": 11}
    nt = random_normterm(12, rng)
    out = {"chunk-lstm": save(d / "lstm", ChunkLSTM(**lstm_cfg), {
        "system": "chunk_lstm", "model": lstm_cfg, "attribute": "dom", "chunking": {"m": 62, "C": 11, "n": 1},
        "features": {"name": "OpenSmile_lld_IS13ComParE", "dims": 12}, "normterm": nt.to_json("dom")})}
    nt = random_normterm(128, rng)
    dec = DeepEmoCluster(variant="Temp-GRU", num_clusters=5)
    for layer in dec.modules():  # its N(0, 0.01) Linear init scores every input alike (to 1e-3)
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, 0.0, 0.1)
    out["deep-emo-cluster"] = save(d / "dec", dec, {
        "system": "deep_emo_cluster", "model": {"variant": "Temp-GRU", "num_clusters": 5}, "attribute": "val",
        "chunking": {"m": 62, "C": 11, "n": 1}, "features": {"name": "Mel_Spec128", "dims": 128},
        "normterm": nt.to_json("val")})
    at_cfg = {"audio_dim": 7 * 16, "text_dim": 24, "hidden": 32, "heads": 2, "ffn": 64}
    features = {"audio": {"name": "Wav2Vec16", "extractor": "Wav2Vec2Features",
                          "params": {"model": "tiny-random-wav2vec2"}, "dims": 16, "frame_rate": 50.0},
                "text": {"name": "MiniLM24", "extractor": "TokenFeatures", "params": {"model": "minilm"}, "dims": 24}}
    out["audio-text"] = save(d / "at", AudioTextCoAttention(**at_cfg), {
        "system": "audio_text", "model": at_cfg, "attributes": ["act", "dom", "val"],
        "chunking": {"strategy": "multiscale", "m": 50, "max_len": 128}, "features": features,
        "normterm": {"audio": random_normterm(16, rng).to_json_all(),
                     "text": random_normterm(24, rng, attrs=()).to_json_all()}})
    return out


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> dict[str, tuple]:
    """{system: (torch predictor, ONNX predictor, record)}, each exported once with export_checkpoint."""
    from systems.onnx_export import export_checkpoint
    from systems.onnx_predict import load_onnx
    from systems.predict import load_models
    d = tmp_path_factory.mktemp("onnx_out")
    out = {}
    for system, ckpt in checkpoints.items():
        record = export_checkpoint(ckpt, d / f"{system}.onnx")
        got_system, (onnx_model,) = load_onnx([d / f"{system}.onnx"], threads=1)
        assert got_system == system
        out[system] = (load_models([ckpt])[1][0], onnx_model, record)
    return out


def inputs_of(system: str, torch_model, n: int, rng) -> list:
    """n inputs of very different lengths (LENGTHS: the shortest below one chunk) as the predictor takes them."""
    lengths = (LENGTHS * 2)[:n]
    if system != "audio-text":
        return raw_arrays(torch_model.normterm, lengths, rng)
    audio = raw_arrays(torch_model.nt_audio, lengths, rng)
    text = raw_arrays(torch_model.nt_text, [max(1, t // 30) for t in lengths], rng)
    # a word count, or no text (the absent stream) for one input in four; 3000 frames -> 150 chunks: truncated
    return [(a, None if i % 4 == 3 else t, max(2, len(a) // 20)) for i, (a, t) in enumerate(zip(audio, text))]


def test_znorm_in_the_graph_is_normterm_features_to_the_bit(tmp_path):
    """NaN -> 0, +-inf and far values clipped at 3, a zero std: the graph's z-norm equals utils.znorm's."""
    from engine.onnx_io import Session, export
    from systems.onnx_export import ZNorm
    rng = np.random.default_rng(3)
    nt = random_normterm(6, rng)
    nt.feat_std[2] = 0.0  # an all-constant Train column: (x - mean) / 0 is +-inf or NaN, then 0 or +-3
    x = raw_arrays(nt, [40], rng)[0]
    x[0, 0], x[1, 1], x[2, 3], x[3, 2], x[4, 2] = np.nan, np.inf, -np.inf, nt.feat_mean[2], 1e30
    export(ZNorm(normterm=nt), {"x": torch.from_numpy(x[None])}, tmp_path / "z.onnx", outputs=["z"],
           dynamic={"x": {0: "n", 1: "t"}}, record={"system": "test"})
    got = Session(tmp_path / "z.onnx").run(x=x[None])["z"][0]
    want = nt.features(x)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.abs(want).max() == 3.0 and want[0, 0] == 0.0  # the clip and the NaN repair were exercised


@pytest.mark.parametrize("system", ["chunk-lstm", "deep-emo-cluster", "audio-text"])
def test_onnx_scores_equal_pytorch_batch_1_and_16_shortest_and_longest(exported, system):
    torch_model, onnx_model, _ = exported[system]
    inputs = inputs_of(system, torch_model, 16, np.random.default_rng(1))
    want = torch_model.predict(inputs)
    assert np.ptp(want, axis=0).min() > 1e-3  # the inputs give different scores: the comparison can fail
    for batch in (1, 16):
        got = onnx_model.predict(inputs, batch_size=batch)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < TOL, (batch, np.abs(got - want).max())
    for extreme in (0, len(LENGTHS) - 1):  # the shortest (below one chunk) and the longest, alone
        alone = onnx_model.predict([inputs[extreme]], batch_size=1)
        assert np.abs(alone - want[extreme]).max() < TOL


@pytest.mark.parametrize("system", ["chunk-lstm", "deep-emo-cluster", "audio-text"])
def test_onnx_one_by_one_equals_onnx_in_batches(exported, system):
    torch_model, onnx_model, _ = exported[system]
    inputs = inputs_of(system, torch_model, 16, np.random.default_rng(2))
    alone = np.concatenate([onnx_model.predict([x], batch_size=1) for x in inputs])
    for batch in (2, 5, 16):
        assert np.abs(onnx_model.predict(inputs, batch_size=batch) - alone).max() < BATCH_TOL, batch


def test_the_record_says_what_the_file_is(exported, checkpoints):
    import onnx
    import onnxruntime
    from engine.onnx_io import OPSET
    for system, (torch_model, onnx_model, record) in exported.items():
        assert record["opset"] == OPSET == onnx_model.session.record["opset"]
        assert record["torch"] == torch.__version__ and record["onnx"] == onnx.__version__
        assert record["export_check"]["onnxruntime"] == onnxruntime.__version__ == onnx_model.runtime
        assert record["export_check"]["max_abs_diff"] < TOL
        assert record["system"] == system and record["source"] == str(checkpoints[system])
        assert onnx_model.config["model"] == torch_model.config["model"]
        assert record["features"] == torch_model.config["features"]
    assert exported["chunk-lstm"][1].attribute == "dom" and exported["deep-emo-cluster"][1].chunking["C"] == 11
    at = exported["audio-text"][1]
    assert at.attributes == ("act", "dom", "val") and at.strategy == "multiscale"
    # audio-text: everything extractors() needs, from the file alone
    assert at.config["features"]["audio"]["params"]["model"] == "tiny-random-wav2vec2"


def test_audio_text_truncation_note_is_the_torch_predictors(exported):
    torch_model, onnx_model, _ = exported["audio-text"]
    audio, text = np.zeros((3000, 16), np.float32), np.zeros((200, 24), np.float32)
    note = onnx_model.truncation(audio, text, 150)
    assert note.startswith("truncated") and note == torch_model.truncation(audio, text, 150)


def test_load_onnx_orders_attributes_and_refuses_wrong_sets(tmp_path):
    """The shipped v1.6 models exported (Val first on the command line) come back in Act, Dom, Val order; a
    file that is not ONNX, an ONNX file without our record, a mixed or doubled set: a ValueError naming it."""
    import onnx
    from engine.onnx_io import META_KEY
    from systems.onnx_export import export_checkpoint
    from systems.onnx_predict import load_onnx
    paths = {}
    for emo in ("Val", "Act", "Dom"):
        paths[emo] = tmp_path / f"{emo}.onnx"
        export_checkpoint(SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_{emo}", paths[emo])
    system, models = load_onnx(list(paths.values()))
    assert system == "chunk-lstm" and [m.attribute for m in models] == ["act", "dom", "val"]
    assert load_onnx([tmp_path])[1][0].source == models[0].source  # a folder: its .onnx files
    with pytest.raises(ValueError, match="Act is predicted by .*Act.onnx and .*Act.onnx"):
        load_onnx([paths["Act"], paths["Act"]])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "text.onnx").write_text("not a model")
    with pytest.raises(ValueError, match=r"text\.onnx: not an ONNX model"):
        load_onnx([tmp_path / "bad" / "text.onnx"])
    graph = onnx.load(str(paths["Act"]))
    foreign = onnx.ModelProto()
    foreign.CopyFrom(graph)
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "bad" / "foreign.onnx"))
    with pytest.raises(ValueError, match=r"foreign\.onnx: an ONNX model without this toolkit's record"):
        load_onnx([tmp_path / "bad" / "foreign.onnx"])
    for system, name, why in (("deep-emo-cluster", "mixed.onnx", "several systems"),
                              ("mdre", "mdre.onnx", "mdre.onnx: a mdre export, an IEMOCAP emotion classifier")):
        other = onnx.ModelProto()
        other.CopyFrom(graph)
        rec = json.loads(other.metadata_props[0].value)
        assert other.metadata_props[0].key == META_KEY
        other.metadata_props[0].value = json.dumps({**rec, "system": system})
        onnx.save(other, str(tmp_path / "bad" / name))
        with pytest.raises(ValueError, match=why):
            load_onnx([paths["Act"], tmp_path / "bad" / name] if system != "mdre" else [tmp_path / "bad" / name])


def test_export_onnx_cli_on_a_checkpoint_a_shipped_model_and_wrong_input(checkpoints, tmp_path, capsys):
    import export_onnx
    from engine.onnx_io import read_record
    assert export_onnx.main(["--checkpoint", str(checkpoints["deep-emo-cluster"]), "--out",
                             str(tmp_path / "dec.onnx")]) == 0
    shown = capsys.readouterr().out
    assert f"wrote {tmp_path / 'dec.onnx'}: deep-emo-cluster" in shown and "opset 17" in shown
    shipped = SHIPPED / "LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_Act"
    assert export_onnx.main(["--checkpoint", str(shipped), "--out", str(tmp_path / "act.onnx")]) == 0
    rec = read_record(tmp_path / "act.onnx")
    assert rec["attribute"] == "act" and rec["config"]["legacy_file"].endswith("SelfAttenVec_Act.pth.tar")
    assert rec["features"]["extractor"] == "OpenSmileLLD"
    capsys.readouterr()
    assert export_onnx.main(["--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "--checkpoint" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    assert export_onnx.main(["--checkpoint", str(shipped), "--normterm", str(tmp_path), "--out",
                             str(tmp_path / "x.onnx")]) == 1
    assert "holds its own statistics" in capsys.readouterr().err


@pytest.mark.skipif(not (PRETRAINED / "chunk_attention_lstm_v1.6").is_dir(), reason="needs ../shared/pretrained")
def test_export_onnx_cli_on_a_published_pth_tar_matches_its_conversion(tmp_path):
    """The original .pth.tar (with the shipped NormTerm) and our conversion of it in trained_models/ export to
    graphs that score alike."""
    import export_onnx
    from systems.onnx_predict import load_onnx
    name = "LSTM_iter5000_batch128_ChunkSeq2One_RnnAttenVec_Val"
    assert export_onnx.main(["--checkpoint", str(PRETRAINED / "chunk_attention_lstm_v1.6" / f"{name}.pth.tar"),
                             "--out", str(tmp_path / "pth.onnx")]) == 0
    assert export_onnx.main(["--checkpoint", str(SHIPPED / name), "--out", str(tmp_path / "ours.onnx")]) == 0
    (a,), (b,) = load_onnx([tmp_path / "pth.onnx"])[1], load_onnx([tmp_path / "ours.onnx"])[1]
    nt = NormTerm.load(SHIPPED.parent / "NormTerm")
    arrays = raw_arrays(nt, LENGTHS[:6], np.random.default_rng(4))
    assert np.array_equal(a.predict(arrays), b.predict(arrays))


def test_wav_folder_scored_through_onnx_equals_pytorch(exported, tmp_path):
    """The predictors plug into systems.predict.Predictor unchanged: the published models on WAVs (a bad file
    listed with its reason), the same CSV rows as PyTorch's to the 4 decimals written."""
    from corpora.synth import rules
    from corpora.synth.speech import speak_many
    from features.audio import write_wav
    from systems.onnx_export import export_checkpoint
    from systems.onnx_predict import load_onnx
    from systems.predict import Predictor, load_models
    speech = next(iter(speak_many([("It was a long and ordinary day.", "en-us+f1",
                                    rules.to_prosody(rules.Controls(0.5, 0, 0, 0, 0.0)))]))).audio
    write_wav(tmp_path / "w" / "a.wav", speech)
    write_wav(tmp_path / "w" / "short.wav", speech[:12000])  # 0.75 s: fewer frames than one chunk
    (tmp_path / "w" / "empty.wav").write_bytes(b"")
    folders = [SHIPPED / f"LSTM_iter5000_batch128_ChunkSeq2One_SelfAttenVec_{e}" for e in ("Act", "Dom", "Val")]
    for f in folders:
        export_checkpoint(f, tmp_path / f"{f.name}.onnx")
    by_torch = Predictor(*load_models(folders)).predict_folder(tmp_path / "w")
    by_onnx = Predictor(*load_onnx(sorted(tmp_path.glob("*.onnx")), threads=1)).predict_folder(tmp_path / "w")
    scores = ["Aro-Score", "Dom-Score", "Val-Score"]
    assert len(by_onnx) == 2 and by_onnx.drop(columns=scores).equals(by_torch.drop(columns=scores))
    assert "short" in by_onnx.set_index("File_Name").loc["short", "Warning"]
    # written to 4 decimals: a 1e-6 difference may round either way
    assert np.abs(by_onnx[scores].to_numpy() - by_torch[scores].to_numpy()).max() <= 1.5e-4
    assert by_onnx.attrs["errors"] == by_torch.attrs["errors"] and by_onnx.attrs["errors"][0][0] == "empty.wav"
    # the same files through the Python API and prediction_process.py --onnx
    import prediction_process
    import ser
    onnx_files = [str(p) for p in sorted(tmp_path.glob("*.onnx"))]
    assert ser.load(onnx_files, threads=1).predict_folder(tmp_path / "w").equals(by_onnx)
    out = tmp_path / "pred.csv"
    assert prediction_process.main(["--wav-dir", str(tmp_path / "w"), "--onnx", *onnx_files, "--threads", "1",
                                    "--out", str(out), "--no-progress"]) == 0
    written = pd.read_csv(out, keep_default_na=False)
    assert written["File_Name"].tolist() == by_onnx["File_Name"].tolist()
    assert np.array_equal(written[scores].to_numpy(), by_onnx[scores].to_numpy())
    assert (tmp_path / "pred_errors.csv").read_text().splitlines()[1].startswith("empty.wav,")
    for extra in (["--track"], ["--models", folders[0].as_posix()]):
        assert prediction_process.main(["--wav-dir", str(tmp_path / "w"), "--onnx", *onnx_files, *extra,
                                        "--out", str(out)]) == 1
    assert prediction_process.main(["--wav-dir", str(tmp_path / "w"), "--threads", "1", "--out", str(out)]) == 1


def test_tracks_are_refused_by_name(exported):
    """The graph returns utterance scores only: a per-second track asks for the PyTorch checkpoint."""
    for system, (_, onnx_model, _) in exported.items():
        with pytest.raises(ValueError, match=r"\.onnx: an ONNX export returns utterance scores only"):
            onnx_model.track([])

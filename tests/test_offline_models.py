"""Offline use without the demo (issue 19, item 22): the tiny models by keyword from any folder, a checkpoint's
recorded model found from any folder (or refused at once, naming the flag), and the demo's provenance commands
naming the keywords a fresh clone understands rather than a folder only the demo made."""
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_tiny_wav2vec2_keyword_builds_once_and_is_recorded_as_the_keyword(tmp_path, monkeypatch):
    import feat_wav2vec2
    from conftest import write_odd_wavs
    from corpora.synth import rules
    from corpora.synth.speech import speak_many
    monkeypatch.setenv("SER_MODEL_CACHE", str(tmp_path / "cache"))
    speech = next(iter(speak_many([("A short and plain sentence.", "en-us+m1",
                                    rules.to_prosody(rules.Controls(0, 0, 0, 0, 0.0)))]))).audio
    write_odd_wavs(tmp_path / "wavs", speech)
    stores = []
    for where in ("a", "b"):  # two folders, one cached model: the same features
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        assert feat_wav2vec2.main(["--wav-dir", str(tmp_path / "wavs"), "--model", "tiny-random-wav2vec2",
                                   "--store", "S", "--no-progress"]) == 0
        stores.append(tmp_path / where / "S")
    assert (tmp_path / "cache" / "tiny_wav2vec2" / "config.json").is_file()
    from features.store import FeatureStore
    a, b = (FeatureStore(s) for s in stores)
    assert a.meta["params"]["model"] == "tiny-random-wav2vec2" and a.dims == 32
    assert all(np.array_equal(a[u], b[u]) for u in a.keys())


def test_a_recorded_model_is_found_from_any_folder_or_refused_at_once(tmp_path, monkeypatch):
    """An older store recorded `demo_data/tiny_wav2vec2` (relative to where the demo ran): predicting from another
    folder finds it beside the checkpoint; a folder found nowhere names --audio-model, without any hub lookup."""
    from features.wav2vec2 import save_tiny_random
    from systems.audio_text import Predictor
    save_tiny_random(tmp_path / "demo_data" / "tiny_wav2vec2")
    pred = Predictor.__new__(Predictor)
    pred.source = str(tmp_path / "demo_data" / "Models" / "RUN")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert pred.recorded_model("demo_data/tiny_wav2vec2", "--audio-model") == str(
        (tmp_path / "demo_data" / "tiny_wav2vec2").resolve())
    assert pred.recorded_model("tiny-random-wav2vec2", "--audio-model") == "tiny-random-wav2vec2"
    with pytest.raises(OSError, match=r"^--audio-model /gone/tiny_wav2vec2: cannot load this model .*tiny-random"):
        pred.recorded_model("/gone/tiny_wav2vec2", "--audio-model")


def test_a_model_that_cannot_be_loaded_is_one_line_naming_the_flag(tmp_path, capsys):
    import feat_wav2vec2
    (tmp_path / "w").mkdir()
    assert feat_wav2vec2.main(["--wav-dir", str(tmp_path / "w"), "--model", str(tmp_path / "no_such_model"),
                               "--store", str(tmp_path / "S"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: --model {tmp_path / 'no_such_model'}: cannot load this model")


def test_demo_provenance_commands_name_the_keywords_a_fresh_clone_understands():
    from report.config import load_config
    from report.recipes import model_path, plan
    cfg = load_config(REPO / "configs" / "demo.yaml")
    commands = [" ".join(["python", f"{s.script}.py", *(model_path(cfg, a) for a in s.argv)])
                for j in plan(cfg) for s in j.steps]
    stm = [c for c in commands if c.startswith("python speech_text_mocap.py")]
    assert stm and all("--speech-model tiny-random-wav2vec2 --text-model tiny-random-bert" in c for c in stm)
    assert any("feat_wav2vec2.py" in c and "--model tiny-random-wav2vec2" in c for c in commands)
    assert not [c for c in commands if "tiny_wav2vec2" in c or "tiny_bert" in c]
    assert json.dumps(commands)  # plain strings, as the report prints them


def test_tiny_bert_keyword_is_built_from_the_training_words_and_never_mixed_up(tmp_path, monkeypatch):
    from features.text import TokenFeatures, resolve_model
    monkeypatch.setenv("SER_MODEL_CACHE", str(tmp_path))
    with pytest.raises(OSError, match="not built yet"):  # its vocabulary needs the training transcripts
        resolve_model("tiny-random-bert")
    path, key = resolve_model("tiny-random-bert", texts=["Excuse me, where is the market?"])
    assert key == "tiny-random-bert" and resolve_model("tiny-random-bert") == (path, key)
    assert "market" in (Path(path) / "vocab.txt").read_text().split()
    ex = TokenFeatures("tiny-random-bert", device="cpu")
    assert ex.params["model"] == "tiny-random-bert" and ex.dims == 32
    with pytest.raises(OSError, match="built from other transcripts"):
        resolve_model("tiny-random-bert", texts=["A different corpus entirely."])


def test_an_unreachable_hub_fails_at_once_without_retries(tmp_path, monkeypatch, capfd):
    """Offline, a hub id is looked up in the local cache only: one line at once, not five retries."""
    import time

    import feat_wav2vec2
    from features.text import hub_reachable
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what a machine without network amounts to
    hub_reachable.cache_clear()
    (tmp_path / "w").mkdir()
    t0 = time.perf_counter()
    try:
        rc = feat_wav2vec2.main(["--wav-dir", str(tmp_path / "w"), "--model", "no-such-org/no-such-wav2vec2",
                                 "--store", str(tmp_path / "S"), "--no-progress"])
    finally:
        hub_reachable.cache_clear()
    err = capfd.readouterr().err
    assert rc == 1 and time.perf_counter() - t0 < 20 and "Retry" not in err
    assert "error: --model no-such-org/no-such-wav2vec2: cannot load this model" in err

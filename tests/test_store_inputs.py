"""Issue 19, items 5, 14 and 24: a store never serves features of inputs that changed (fingerprints, re-extraction,
read-only warnings), every system refuses a store of the wrong kind before any work, and a full disk is one
clear line with nothing half-written."""
import errno
import json
import os

import numpy as np
import pytest

from features.audio import write_wav
from features.extract import ensure_store, extract_to_store, store_for, wav_folder
from features.store import FeatureStore, StoreError, with_features


class ToyText:
    """A fast text extractor: one row per word (its length, its position)."""
    name, input, dims, frame_rate, params, norm_pooling = "toy_text", "text", 2, None, {"v": 1}, "utterance-mean"

    def __call__(self, batch):
        return [np.array([[len(w), i] for i, w in enumerate(t.split())], np.float32) for t in batch]


class ToyAudio:
    """A fast audio extractor: the mean of each 160-sample frame."""
    name, input, dims, frame_rate, params, norm_pooling = "toy_audio", "audio", 1, 100.0, {"v": 1}, "frames"

    def __call__(self, batch):
        return [x[: len(x) // 160 * 160].reshape(-1, 160).mean(1, keepdims=True) for x in batch]


def speech(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).normal(size=int(16000 * seconds))).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    """Three utterances a, b, c: a WAV and a transcript each."""
    d = tmp_path / "wavs"
    for k, u in enumerate("abc"):
        write_wav(d / f"{u}.wav", speech(0.5 + 0.1 * k, k))
        (d / f"{u}.txt").write_text(" ".join(["word"] * (3 + k)) + "\n")
    return d


def test_an_edited_transcript_is_re_extracted_and_the_others_are_not(folder, tmp_path, capsys):
    items, _ = wav_folder(folder)
    store = ensure_store(ToyText(), items, tmp_path / "s", progress=False)
    assert [store.frames(u) for u in "abc"] == [3, 4, 5]
    before = {u: store.inputs(u) for u in "abc"}
    assert before["b"]["text"]["size"] == (folder / "b.txt").stat().st_size
    (folder / "b.txt").write_text("a longer transcript of b with ten words in it\n")  # content and size change
    capsys.readouterr()
    store = ensure_store(ToyText(), items, tmp_path / "s", progress=False)
    err = capsys.readouterr().err
    assert "1 utterance(s) re-extracted: inputs changed" in err and f"b ({folder / 'b.txt'})" in err
    assert store.frames("b") == 10 and [store.frames(u) for u in "ac"] == [3, 5]
    assert {u: store.inputs(u) for u in "ac"} == {u: before[u] for u in "ac"}  # the others were not re-extracted
    assert FeatureStore(tmp_path / "s").frames("b") == 10  # the newer shard wins when the store is reopened
    capsys.readouterr()
    summary = extract_to_store(ToyText(), items, FeatureStore(tmp_path / "s"), progress=False)
    assert (summary.extracted, summary.skipped_done, summary.reextracted) == (0, 3, 0)  # nothing changed since


def test_a_replaced_wav_is_re_extracted_by_the_extraction_script(folder, tmp_path, capsys):
    import feat_mel
    argv = ["--wav-dir", str(folder), "--store", str(tmp_path / "mel"), "--no-progress"]
    assert feat_mel.main(argv) == 0
    old = FeatureStore(tmp_path / "mel")
    frames = {u: old.frames(u) for u in "abc"}
    write_wav(folder / "c.wav", speech(2.0, 9))  # a longer recording under the same name
    capsys.readouterr()
    assert feat_mel.main(argv) == 0
    out, err = capsys.readouterr()
    assert "extracted 1 (1 re-extracted: inputs changed), already there 2" in out
    assert f"c ({folder / 'c.wav'})" in err
    new = FeatureStore(tmp_path / "mel")
    assert new.frames("c") > 2 * frames["c"] and [new.frames(u) for u in "ab"] == [frames["a"], frames["b"]]


def test_read_only_use_leaves_out_changed_inputs_naming_the_file(folder, tmp_path, capsys):
    items, _ = wav_folder(folder)
    store = ensure_store(ToyAudio(), items, tmp_path / "s", progress=False)
    write_wav(folder / "a.wav", speech(1.5, 5))
    os.utime(folder / "b.wav", ns=(1, 1))  # same size, another mtime: a replaced file, too
    capsys.readouterr()
    kept = with_features(items, FeatureStore(tmp_path / "s"), "test")
    err = capsys.readouterr().err
    assert [it.utt_id for it in kept] == ["c"]
    assert "2 test utterance(s) are left out, their inputs changed since extraction" in err
    assert str(folder / "a.wav") in err and str(folder / "b.wav") in err and str(store.root) in err
    gone = [type(it)(it.utt_id, folder / "elsewhere" / "c.wav") for it in items[2:]]
    assert [it.utt_id for it in with_features(gone, store, "test")] == ["c"]  # audio not here: unknown, kept


def test_an_input_that_now_fails_withdraws_its_old_features(folder, tmp_path):
    items, _ = wav_folder(folder)
    ensure_store(ToyAudio(), items, tmp_path / "s", progress=False)
    (folder / "a.wav").write_bytes(b"RIFF garbage")
    store = ensure_store(ToyAudio(), items, tmp_path / "s", progress=False)
    assert "a" not in store and "a" not in FeatureStore(tmp_path / "s") and {"b", "c"} <= set(store.keys())
    assert [e["utterance"] for e in store.errors()] == ["a"]


def test_stores_without_fingerprints_keep_working_with_one_note(folder, tmp_path, capsys):
    items, _ = wav_folder(folder)
    store = store_for(ToyText(), tmp_path / "s")
    with store.writer() as w:  # as a store written before fingerprints were recorded
        for it in items:
            w.add(it.utt_id, np.zeros((2, 2), np.float32))
    (folder / "a.txt").write_text("changed\n")
    capsys.readouterr()
    store = ensure_store(ToyText(), items, tmp_path / "s", progress=False)
    assert [it.utt_id for it in with_features(items, store, "train")] == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert err.count("extracted before input fingerprints were recorded") == 1 and "re-extracted" not in err
    assert store.frames("a") == 2


# ---------------------------------------------------------------------------------------------- item 14


def make_store(root, utts, *, extractor, dims, rate, pooling):
    store = FeatureStore.create(root, name=f"{extractor}{dims}", extractor=extractor, params={}, dims=dims,
                                frame_rate=rate, extra={"norm_pooling": pooling})
    rng = np.random.default_rng(0)
    with store.writer() as w:
        for u in utts:
            w.add(u, rng.normal(size=(80, dims)).astype(np.float32))
    return FeatureStore(root)


def test_require_judges_known_extractors_and_what_imports_record(tmp_path):
    from systems.common import require_store
    mel_import = make_store(tmp_path / "m", ["u"], extractor="mat-import", dims=128, rate=62.5, pooling="frames")
    require_store(mel_import, "--store", "mel")
    with pytest.raises(StoreError, match=r"^--audio-store .*: expected wav2vec2 frame features .*NormTerm pooling frames"):
        require_store(mel_import, "--audio-store", "wav2vec2")
    w2v = make_store(tmp_path / "w", ["u"], extractor="Wav2Vec2Features", dims=32, rate=50.0, pooling="utterance-mean")
    require_store(w2v, "--speech-store", "wav2vec2")
    with pytest.raises(StoreError, match="made by Wav2Vec2Features, 32-d"):
        require_store(w2v, "--store", "mel")
    with pytest.raises(StoreError, match="not frame-level"):  # a token-level store as the audio stream
        require_store(make_store(tmp_path / "t", ["u"], extractor="Synthetic", dims=8, rate=None,
                                 pooling="utterance-mean"), "--audio-store", "wav2vec2")
    require_store(tmp_path / "not_yet", "--store", "mel")  # no store there: the caller says what is missing


def test_a_mel_store_as_the_audio_text_audio_stream_is_refused_before_any_work(mel_setup, tmp_path, capsys):
    import main
    corpus, root = mel_setup
    out = tmp_path / "M"
    argv = ["--root", str(corpus), "--audio-store", str(root / "mel"), "--text-store", str(root / "mel"),
            "--normterm-audio", str(root / "NT"), "--normterm-text", str(root / "NT"), "-iter", "2", "-batch", "4",
            "--out", str(out), "--results", str(tmp_path / "R"), "--no-progress"]
    assert main.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: --audio-store {root / 'mel'}: expected wav2vec2 frame features")
    assert "made by MelSpectrogram" in err[-1]
    assert not out.exists() and not (tmp_path / "R").exists()


def test_a_wav2vec2_store_given_to_deep_emo_cluster_is_refused_before_any_work(mel_setup, tmp_path, capsys):
    import main
    import norm_para
    corpus, root = mel_setup
    w2v = make_store(tmp_path / "w2v", FeatureStore(root / "mel").keys(), extractor="Wav2Vec2Features", dims=16,
                     rate=50.0, pooling="utterance-mean")
    assert norm_para.main(["--store", str(w2v.root), "--root", str(corpus), "--out", str(tmp_path / "NT"),
                           "--no-progress"]) == 0  # a NormTerm that fits it: only the kind is wrong
    out = tmp_path / "M"
    assert main.main(["-ep", "1", "-batch", "4", "-emo", "Act", "-nc", "3", "-mt", "Temp-GRU", "--root", str(corpus),
                      "--store", str(w2v.root), "--normterm", str(tmp_path / "NT"), "--out", str(out),
                      "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: --store {w2v.root}: expected 128-d mel spectrograms")
    assert not out.exists()  # no run.json, nothing


# ---------------------------------------------------------------------------------------------- item 24


def test_a_full_disk_during_extraction_is_one_line_and_leaves_no_entry(folder, tmp_path, monkeypatch, capsys):
    import feat_mel
    import features.store

    def full(*a, **k):
        raise OSError("Not enough free space to write 24576 bytes")  # what numpy raises on a full disk
    monkeypatch.setattr(features.store.np, "save", full)
    store = tmp_path / "mel"
    assert feat_mel.main(["--wav-dir", str(folder), "--store", str(store), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {store}/shards/data-0of1-00000.npy: disk full, cannot write")
    assert "needs " in err[0] and "free on its disk" in err[0]
    assert sorted(p.name for p in (store / "shards").iterdir()) == []  # no partial entry, no temporary file
    assert len(FeatureStore(store)) == 0


def test_a_full_disk_while_saving_a_checkpoint_names_it(tmp_path, monkeypatch):
    import safetensors
    import torch

    import engine.checkpoint
    from utils import OutputError

    def full(*a, **k):
        raise safetensors.SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                          'message: "No space left on device" })')
    monkeypatch.setattr(engine.checkpoint, "save_file", full)
    with pytest.raises(OutputError, match=r"model\.safetensors: disk full, cannot write it \(needs 4\.0 KiB, "):
        engine.checkpoint.save_checkpoint(tmp_path / "run", {"w": torch.zeros(1024)}, {"system": "x"})
    assert list((tmp_path / "run").iterdir()) == []

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(engine.checkpoint, "save_file", enospc)
    with pytest.raises(OutputError, match="disk full"):
        engine.checkpoint.save_checkpoint(tmp_path / "run", {"w": torch.zeros(4)}, {"system": "x"})
    assert json.dumps(sorted(os.listdir(tmp_path / "run"))) == "[]"

    import utils  # torch.save says only "file write failed": a full disk when nothing is free
    monkeypatch.setattr(engine.checkpoint.torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError(
        "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file write failed")))
    monkeypatch.setattr(utils, "_free_bytes", lambda folder: 0)
    with pytest.raises(OutputError, match=r"state\.pt: disk full, cannot write it \(0 bytes free on its disk\)"):
        engine.checkpoint.save_state(tmp_path / "run", {"step": 1})
    assert os.listdir(tmp_path / "run") == []


def test_a_training_script_on_a_full_disk_exits_1_with_one_line(mel_setup, tmp_path, monkeypatch, capsys):
    """The DeepEmoCluster report's SafetensorError, through the shared checkpoint writer of every training script
    (the chunk LSTM here: its first validation comes after one step)."""
    import safetensors

    import engine.checkpoint
    import training

    def full(*a, **k):
        raise safetensors.SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                          'message: "No space left on device" })')
    monkeypatch.setattr(engine.checkpoint, "save_file", full)
    corpus, root = mel_setup
    out = tmp_path / "M"
    assert training.main(["-iter", "1", "--val-every", "1", "-batch", "4", "-emo", "Act", "-atten", "NonAtten",
                          "--root", str(corpus), "--store", str(root / "mel"), "--normterm", str(root / "NT"),
                          "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    (run,) = out.iterdir()
    assert err[-1].startswith(f"error: {run / 'model.safetensors'}: disk full, cannot write it (needs ")
    assert "Traceback" not in "".join(err)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") or p.name == "model.safetensors"]

"""feat_mel.py: DeepEmoCluster's mel spectrogram equals librosa with the original's parameters; the CLI
extracts a corpus or a WAV folder, lists bad files and resumes."""
import csv

import numpy as np
import pytest

from conftest import write_odd_wavs
from features.audio import load_audio
from features.mel import MelSpectrogram, mel_filterbank
from features.store import FeatureStore


def _speech(msp_corpus, k=0):
    return load_audio(sorted((msp_corpus / "Audios").glob("*.wav"))[k])


def test_equals_librosa_reference(msp_corpus):
    librosa = pytest.importorskip("librosa")
    fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=128, fmin=0.0, fmax=8000.0, htk=False, norm="slaney")
    np.testing.assert_allclose(mel_filterbank(), fb, rtol=1e-5, atol=1e-9)
    mel = MelSpectrogram()
    for k in (0, 1):
        y = _speech(msp_corpus, k)
        ref = librosa.feature.melspectrogram(y=y / np.abs(y).max(), sr=16000, n_fft=512, hop_length=256, n_mels=128,
                                             pad_mode="reflect").T
        ours = mel.one(y)
        assert ours.shape == ref.shape == (1 + len(y) // 256, 128) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * ref.max())


def test_frame_count_and_rate():
    mel = MelSpectrogram()
    rng = np.random.default_rng(0)
    for n in (300, 512, 49_600, 16_000 * 3 + 17):
        assert mel.one(rng.normal(size=n).astype(np.float32)).shape == (1 + n // 256, 128)
    assert mel.frame_rate == 62.5


def test_cli_on_wav_folder_lists_bad_files_and_resumes(msp_corpus, tmp_path):
    import feat_mel
    expected = write_odd_wavs(tmp_path / "wavs", _speech(msp_corpus))
    store_dir = tmp_path / "store"
    assert feat_mel.main(["--wav-dir", str(tmp_path / "wavs"), "--store", str(store_dir), "--no-progress"]) == 0
    store = FeatureStore(store_dir)
    assert sorted(store.keys()) == sorted(k for k, v in expected.items() if v == "ok")
    errors = {e["utterance"]: e for e in store.errors()}
    for name, why in expected.items():
        if why != "ok":
            assert errors[name]["reason"].startswith(why) and errors[name]["file"].endswith(f"{name}.wav")
    # resampled / down-mixed / 8-bit copies of the same speech give nearly the same spectrogram
    good = np.asarray(store["good"])
    for other in ("stereo44k", "eightbit"):
        x = np.asarray(store[other])
        n = min(len(x), len(good))
        assert np.corrcoef(np.log(x[:n].ravel() + 1e-6), np.log(good[:n].ravel() + 1e-6))[0, 1] > 0.9
    shards = sorted((store_dir / "shards").iterdir())
    assert feat_mel.main(["--wav-dir", str(tmp_path / "wavs"), "--store", str(store_dir), "--no-progress"]) == 0
    assert sorted((store_dir / "shards").iterdir()) == shards  # nothing recomputed
    with open(next(store_dir.glob("errors-*.csv"))) as f:
        assert len(list(csv.DictReader(f))) == 4


def test_cli_on_corpus_with_sharding(msp_corpus, tmp_path):
    import feat_mel
    store_dir = tmp_path / "mel"
    for shard in ("0/2", "1/2"):
        assert feat_mel.main(["--corpus", "msp-podcast", "--root", str(msp_corpus), "--split", "dev",
                              "--store", str(store_dir), "--shard", shard, "--no-progress"]) == 0
    store = FeatureStore(store_dir)
    from corpora.msp_podcast import read_msp_podcast
    dev = read_msp_podcast(msp_corpus, split="dev").records
    assert sorted(store.keys()) == sorted(r.utt_id for r in dev)
    np.testing.assert_allclose(store[dev[0].utt_id], MelSpectrogram().one(load_audio(dev[0].audio_path)))

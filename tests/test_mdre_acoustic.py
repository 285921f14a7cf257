"""feat_mdre.py / features/mdre_acoustic.py: the MDRE family's 39-d MFCC frames and 35-d prosody functionals
(reference sheet mdre.md section 4): column names and order, the frame-count formula, column semantics, equality
with an independent NumPy HTK-style MFCC, pitch on synthetic tones, and the CLI (store, errors, resume)."""
import shutil

import numpy as np
import pytest

opensmile = pytest.importorskip("opensmile")

from conftest import write_odd_wavs  # noqa: E402
from features.audio import load_audio, write_wav  # noqa: E402
from features.mdre_acoustic import (  # noqa: E402
    MFCC_NAMES, PROSODY_NAMES, MdreMfcc, MdreProsody, config_file, mfcc_frame_count)
from features.store import FeatureStore  # noqa: E402

SR = 16000
# The sheet's layout (4.1, 4.2), written out independently of the module under test.
SHEET_MFCC = ([f"pcm_fftMag_mfcc[{i}]" for i in range(1, 13)] + ["pcm_LOGenergy"]
              + [f"pcm_fftMag_mfcc_de[{i}]" for i in range(1, 13)] + ["pcm_LOGenergy_de"]
              + [f"pcm_fftMag_mfcc_de_de[{i}]" for i in range(1, 13)] + ["pcm_LOGenergy_de_de"])
SHEET_PROSODY = [f"{c}_sma_{f}" for c in "F0final F0finalLog voicingFinalUnclipped HarmonicsToNoiseRatioACFLogdB "
                 "loudness".split() for f in "stddev amean linregc1 centroid percentile10.0 percentile90.0 "
                 "pctlrange0-1".split()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mdre_cfg")


@pytest.fixture(scope="module")
def mfcc(cache):
    return MdreMfcc(cache_dir=cache)


@pytest.fixture(scope="module")
def prosody(cache):
    return MdreProsody(cache_dir=cache)


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    """A 10-utterance synthetic IEMOCAP release (16 kHz PCM-16 utterance WAVs written with soundfile)."""
    from corpora.synth.iemocap import MIN_UTTERANCES, write_iemocap
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    write_iemocap(root, n=MIN_UTTERANCES, seed=4, progress=False)
    return root


def _wavs(root):
    return sorted(root.glob("Session*/sentences/wav/*/*.wav"))


def _tone(f0, seconds=2.0, amp=0.3, floor=1e-3, harmonics=12):
    """Harmonic complex (1/k amplitudes) at a fixed F0 over a small noise floor."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, harmonics + 1))
    x = amp * x / np.abs(x).max() + floor * np.random.default_rng(1).standard_normal(len(t))
    return x.astype(np.float32)


def _prosody(ex, x):
    return dict(zip(PROSODY_NAMES, ex.one(x)[0].astype(np.float64)))


# ------------------------------------------------------------------------------ layout and framing

def test_columns_attributes_and_config(mfcc, prosody, cache):
    assert MFCC_NAMES == SHEET_MFCC and list(mfcc._smile.feature_names) == SHEET_MFCC
    assert PROSODY_NAMES == SHEET_PROSODY and list(prosody._smile.feature_names) == SHEET_PROSODY
    assert (mfcc.input, mfcc.dims, mfcc.frame_rate, mfcc.min_seconds) == ("audio", 39, 100.0, 0.025)
    assert (prosody.input, prosody.dims, prosody.frame_rate, prosody.min_seconds) == ("audio", 35, None, 0.055)
    assert mfcc.norm_pooling is None and prosody.norm_pooling is None  # never normalised (sheet 4.3)
    text = mfcc.config_path.read_text()
    for line in ("frameSize = 0.025", "frameStep = 0.01", "k = 0.97", "winFunc = ham", "nBands = 26", "hifreq = 8000",
                 "lastMfcc = 12", "cepLifter = 22.0", "deltawin = 2"):
        assert line in text.splitlines(), line
    text = prosody.config_path.read_text()
    for line in ("frameSize = 0.055", "minPitch = 52", "maxPitch = 620", "nHarmonics = 15", "threshold = 0.0008",
                 "compression = 0.33", "smaWin = 3", "nonZeroFuncts = 1"):
        assert line in text.splitlines(), line
    before = mfcc.config_path.stat().st_mtime_ns
    assert config_file("mfcc", cache) == mfcc.config_path and mfcc.config_path.stat().st_mtime_ns == before
    assert len(mfcc.params["config_sha256"]) == 16 and mfcc.params["frames"] == "floor((N - 400) / 160) + 1"


def test_frame_count_formula_and_too_short(mfcc, prosody, iemocap):
    rng = np.random.default_rng(0)
    for n in (400, 401, 559, 560, 561, 16000, 16001, 12345):
        y = mfcc.one((0.1 * rng.standard_normal(n)).astype(np.float32))
        assert y.shape == (mfcc_frame_count(n), 39) == ((n - 400) // 160 + 1, 39) and y.dtype == np.float32
    for p in _wavs(iemocap)[:3]:
        x = load_audio(p)
        assert mfcc.one(x).shape == ((len(x) - 400) // 160 + 1, 39)
        y = prosody.one(x)
        assert y.shape == (1, 35) and y.dtype == np.float32 and np.isfinite(y).all()
    assert mfcc_frame_count(399) == 0
    with pytest.raises(ValueError, match="too short"):
        mfcc.one(np.full(399, 0.1, np.float32))
    assert prosody.one((0.1 * rng.standard_normal(880)).astype(np.float32)).shape == (1, 35)  # one 55 ms frame
    with pytest.raises(ValueError, match="too short"):
        prosody.one((0.1 * rng.standard_normal(879)).astype(np.float32))


# ------------------------------------------------------------------------------ MFCC semantics

def test_log_energy_follows_gain_and_cepstra_do_not(mfcc):
    x = _tone(150)
    loud, quiet = mfcc.one(x), mfcc.one((0.25 * x).astype(np.float32))
    # logE = ln(sum x^2): a gain g adds 2 ln g to every frame (up to 16-bit rounding)
    np.testing.assert_allclose(loud[:, 12] - quiet[:, 12], 2 * np.log(4), atol=2e-3)
    assert np.abs(loud[:, 13:] - quiet[:, 13:])[:, [12, 25]].max() < 2e-3  # its deltas do not move
    assert np.abs(loud[:, :12] - quiet[:, :12]).max() < 0.1 * np.abs(loud[:, :12]).mean()


def test_deltas_of_stationary_and_of_ramping_signals(mfcc):
    # 100 Hz with harmonics up to 7.9 kHz repeats every 160 samples = one hop: every frame is the same
    y = mfcc.one(_tone(100, floor=0, harmonics=79))
    mid = y[5:-5]
    assert np.abs(mid[:, :13] - mid[0, :13]).max() < 1e-3 and np.abs(mid[:, :13]).mean() > 1
    assert np.abs(mid[:, 13:]).max() < 1e-3  # stationary: deltas and delta-deltas 0
    t = np.arange(2 * SR) / SR
    ramp = (_tone(200, floor=0) * np.exp(1.5 * (t - 2))).astype(np.float32)  # amplitude grows e^{1.5 t}
    y = mfcc.one(ramp)[5:-5]
    # logE rises 2 * 1.5 * 0.01 per 10 ms frame: HTK regression of a straight line is its slope; its dd is 0
    np.testing.assert_allclose(y[:, 25], 0.03, atol=1e-3)
    np.testing.assert_allclose(y[:, 38], 0.0, atol=1e-3)


def _htk_mfcc_reference(x):
    """Independent NumPy MFCC_E_D_A with the sheet's parameters (float64), in HTK's formulation."""
    x = np.trunc(np.asarray(x, np.float64) * 32768)  # the 16-bit integer samples openSMILE receives
    n = (len(x) - 400) // 160 + 1
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160][:n]
    log_e = np.log(np.maximum((frames ** 2).sum(1), 1.0))  # raw frame: no pre-emphasis, no window
    pe = frames.copy()
    pe[:, 1:] -= 0.97 * frames[:, :-1]
    pe[:, 0] *= 1 - 0.97
    power = np.abs(np.fft.rfft(pe * np.hamming(400), 512)) ** 2
    mel = lambda f: 1127 * np.log(1 + f / 700)  # noqa: E731
    edges, bins = np.linspace(mel(0), mel(8000), 28), mel(np.arange(257) * SR / 512)
    fb = np.maximum(0, np.minimum((bins - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None]),
                                  (edges[2:, None] - bins) / (edges[2:, None] - edges[1:-1, None])))
    fb[:, 0] = 0  # HTK leaves out the DC bin
    logmel = np.log(np.maximum(power @ fb.T, 1.0))
    i, j = np.arange(1, 13)[:, None], np.arange(1, 27)[None, :]
    cep = np.sqrt(2 / 26) * logmel @ np.cos(np.pi * i * (j - 0.5) / 26).T
    cep *= 1 + 11 * np.sin(np.pi * np.arange(1, 13) / 22)  # lifter L = 22
    static = np.hstack([cep, log_e[:, None]])

    def delta(a):
        p = np.pad(a, ((2, 2), (0, 0)), mode="edge")
        return (p[3:-1] - p[1:-3] + 2 * (p[4:] - p[:-4])) / 10

    plain = np.hstack([static, delta(static), delta(delta(static))])
    # openSMILE's delta level has two end-of-input rows (deltas over the repeated last frame), which the
    # delta-deltas of the last two frames read; the output is cut back to n rows
    d = delta(np.vstack([static, static[-1:], static[-1:]]))
    return np.hstack([static, d[:n], delta(d)[:n]]), plain


def test_equals_independent_numpy_mfcc(mfcc, iemocap):
    """Tolerance: openSMILE computes in float32. Over these utterances the largest difference measured was
    4.6e-4 on statics of magnitude up to ~100 (float32 rounding through FFT, 26-band sums, log, DCT), 1.1e-4 on
    deltas, 5e-5 on delta-deltas; atol 1e-3 + rtol 1e-5 leaves a 2-3x margin and still catches any parameter
    change (e.g. lifter, floor, band edges or pre-emphasis move values by >1e-2)."""
    for p in _wavs(iemocap):
        x = load_audio(p)
        ours = mfcc.one(x).astype(np.float64)
        ref, plain = _htk_mfcc_reference(x)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3, err_msg=p.name)
        np.testing.assert_allclose(ours[:-2], plain[:-2], rtol=1e-5, atol=1e-3)
        assert np.abs(ours[-2:, 26:] - plain[-2:, 26:]).max() > 1e-2  # the end-of-input quirk is real
    # digital silence inside a file: the log floors (mel power and energy floored at 1.0) give exact zeros
    x = (0.1 * np.random.default_rng(3).standard_normal(SR)).astype(np.float32)
    x[4000:8000] = 0
    ours, (ref, _) = mfcc.one(x), _htk_mfcc_reference(x)
    assert not ours[26:48, :13].any()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------------------ prosody semantics

@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_pitch_functionals_report_the_tone_f0(prosody, f0):
    d = _prosody(prosody, _tone(f0))
    for k in ("amean", "percentile10.0", "percentile90.0"):
        assert abs(d[f"F0final_sma_{k}"] / f0 - 1) < 0.02, (k, d[f"F0final_sma_{k}"])
    assert abs(d["F0finalLog_sma_amean"] - 12 * np.log2(f0 / 27.5)) < 0.3  # semitones re 27.5 Hz
    assert d["F0final_sma_stddev"] < 0.02 * f0 and d["voicingFinalUnclipped_sma_amean"] > 0.7
    assert d["HarmonicsToNoiseRatioACFLogdB_sma_amean"] > 3
    assert 0.4 < d["F0final_sma_centroid"] < 0.6  # voiced throughout: centroid mid-segment


def test_noise_is_unvoiced_quiet_pitch_is_gated_and_loudness_follows_gain(prosody):
    tone = _tone(150)
    noise = _prosody(prosody, (0.1 * np.random.default_rng(2).standard_normal(2 * SR)).astype(np.float32))
    voiced = _prosody(prosody, tone)
    assert noise["F0final_sma_amean"] == 0 and noise["HarmonicsToNoiseRatioACFLogdB_sma_amean"] == 0  # no voiced frame
    assert noise["voicingFinalUnclipped_sma_amean"] < voiced["voicingFinalUnclipped_sma_amean"] - 0.2
    quiet = _prosody(prosody, _tone(150, amp=1e-3, floor=0))  # frame RMS below the 0.0008 gate
    assert quiet["F0final_sma_amean"] == 0 and quiet["voicingFinalUnclipped_sma_amean"] == 0
    assert _prosody(prosody, _tone(150, amp=0.02, floor=0))["F0final_sma_amean"] > 140  # above the gate
    for g in (0.25, 2.0):  # loudness = sum of (band power)^0.33: a gain g scales it by g^0.66
        scaled = _prosody(prosody, (g * tone).astype(np.float32))
        assert abs(scaled["loudness_sma_amean"] / voiced["loudness_sma_amean"] - g ** 0.66) < 0.01
        assert abs(scaled["F0final_sma_amean"] - voiced["F0final_sma_amean"]) < 0.5


# ------------------------------------------------------------------------------ CLI

def test_cli_store_errors_and_resume(iemocap, tmp_path, cache, mfcc, prosody, capsys):
    import feat_mdre
    wavs = tmp_path / "wavs"
    first = _wavs(iemocap)
    expected = write_odd_wavs(wavs, load_audio(first[0]))  # good, resampled, 8-bit, empty, corrupt, silent, short
    shutil.copy(first[1], wavs / "second.wav")
    base = ["--wav-dir", str(wavs), "--no-progress", "--config-cache", str(cache)]
    for kind, ex in (("mfcc", mfcc), ("prosody", prosody)):
        store_dir = tmp_path / kind
        assert feat_mdre.main(["--features", kind, "--store", str(store_dir)] + base) == 0
        store = FeatureStore(store_dir)
        ok = sorted([k for k, v in expected.items() if v == "ok"] + ["second"])
        assert sorted(store.keys()) == ok
        assert (store.meta["name"], store.dims, store.dtype, store.meta["frame_rate"]) == (
            ex.name, ex.dims, np.float32, ex.frame_rate)
        assert store.meta["norm_pooling"] is None and store.meta["params"] == ex.params
        errors = {e["utterance"]: e["reason"] for e in store.errors()}
        assert set(errors) == {k for k, v in expected.items() if v != "ok"}
        for name, reason in errors.items():
            assert reason.startswith(expected[name]), (name, reason)
        x = load_audio(wavs / "second.wav")
        np.testing.assert_array_equal(store["second"], ex.one(x))
        assert store.frames("second") == (mfcc_frame_count(len(x)) if kind == "mfcc" else 1)
        shards = sorted(p.name for p in (store_dir / "shards").iterdir())
        capsys.readouterr()
        write_wav(wavs / "third.wav", load_audio(first[2]))  # resume: only the new file is extracted
        assert feat_mdre.main(["--features", kind, "--store", str(store_dir)] + base) == 0
        assert f"extracted 1, already there {len(ok)}, errors" in capsys.readouterr().out
        assert set(shards) < {p.name for p in (store_dir / "shards").iterdir()}
        (wavs / "third.wav").unlink()


def test_cli_on_iemocap_corpus(iemocap, tmp_path, cache):
    import feat_mdre
    from corpora.iemocap import read_iemocap
    assert feat_mdre.main(["--features", "prosody", "--corpus", "iemocap", "--root", str(iemocap), "--no-progress",
                           "--config-cache", str(cache), "--threads", "2"]) == 0
    store = FeatureStore(iemocap / "Features" / "MDRE_Prosody35")
    assert store.meta["corpus"] == "IEMOCAP"
    assert sorted(store.keys()) == sorted(r.utt_id for r in read_iemocap(iemocap).records)
    assert all(store.frames(k) == 1 for k in store.keys())

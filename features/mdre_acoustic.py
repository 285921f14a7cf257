"""The MDRE family's acoustic inputs: 39-d MFCC frames and the 35-d per-utterance prosody vector.

For ARE / MDRE / MDREA (reference sheet `mdre.md` section 4), through the `opensmile` Python package.

MFCC (`MdreMfcc`, (T, 39) float32, 100 frames/s), sheet 4.1 (HTK MFCC_E_D_A with 12 cepstra):
  framing 25 ms window / 10 ms hop (400 / 160 samples), fixed frames from t = 0, no partial frame at the end:
      T = floor((N - 400) / 160) + 1 for N >= 400 samples, else no frame (`min_seconds` = 0.025)
  per frame: pre-emphasis k = 0.97 (HTK style: y[0] = (1 - k) x[0]), Hamming window 0.54 - 0.46 cos(2 pi n / 399),
  512-point FFT magnitude, power spectrum, 26 triangular HTK-mel bands over 0-8000 Hz with HTK sample scaling
  (samples as 16-bit integers), log (floor 1.0), DCT-II c1..c12 with HTK's sqrt(2/26) scaling, liftering
  L = 22; log energy ln(max(sum x^2, 1)) of the raw frame (16-bit integer scale, no window, no pre-emphasis).
  Columns [c1..c12, logE], their deltas, delta-deltas (HTK regression, window 2, sum_k k (x[t+k] - x[t-k]) / 10,
  edge frames repeated), named as openSMILE names them (`MFCC_NAMES`). No cepstral mean normalisation.
  openSMILE quirk kept (measured, tests/test_mdre_acoustic.py): the delta level carries two end-of-input rows
  (deltas of the last frame repeated), and the delta-deltas of the last two frames are computed over them;
  the output is cut back to T rows. Equivalent: dd = delta(delta(statics + 2 copies of the last frame))[:T].
Prosody (`MdreProsody`, (1, 35) float32, one row per utterance), sheet 4.2:
  5 contours at 10 ms, each smoothed by a 3-frame moving average ("_sma"), x 7 functionals over the whole input:
  F0final (Hz), F0finalLog (semitones re 27.5 Hz), voicingFinalUnclipped, HarmonicsToNoiseRatioACFLogdB
  (smoothing and functionals over non-zero values only), then loudness (all frames). "Non-zero" is what
  excludes unvoiced frames: F0 and HNR are 0 where the Viterbi smoother finds no voicing, while the unclipped
  voicing probability stays non-zero there (it is 0 only under the RMS gate below, which zeroes all three).
  Functionals, in openSMILE's output order (its header, read back and checked here): stddev, amean, linregc1,
  centroid (segment-normalised), percentile10, percentile90, pctlrange0-1 (`PROSODY_NAMES`).
  Pitch: 55 ms frames / 10 ms, Gaussian window (sigma 0.4), octave-scale spectrum, SHS 52-620 Hz, 15 harmonics,
  Viterbi smoothing; all pitch outputs zeroed where the RMS of the windowed 55 ms frame is below 0.0008. HNR from
  the ACF at F0 (cHarmonics). Loudness: 20 ms Hamming frames, 26 mel bands 20-8000 Hz on the power spectrum,
  auditory weighting, compression 0.33, L1 sum. Input must hold one 55 ms frame (`min_seconds` = 0.055).
  An utterance with no voiced frame gets 0 for the 21 F0 / log-F0 / HNR functionals (nothing non-zero left).
Parameters the sheet does not state are those of openSMILE's stock prosodyShsViterbiLoudness configuration (as in
the openSMILE 3 source tree), of which the author's `modified_prosodyShsViterbiLoudness.conf` is by its name a
modified copy (every value the sheet does state agrees with it): Gaussian sigma 0.4; SHS 4 candidates,
compression 0.85, voicing cut-off 0.7, octave scale from 25 Hz with spline interpolation, smoothing, enhancement
and auditory weighting; Viterbi buffer 90 frames with its weights (`_VITERBI`); cHarmonics 10 harmonics; loudness
mel bands from 20 Hz; percentiles interpolated; the pitch and loudness framers keep openSMILE's default end of
input (the loudness contour has one row more than its full 20 ms frames; the MFCC framer sets noPostEOIprocessing).

Configuration: the text is written here from these parameters (`mfcc_components`, `prosody_components`), not
copied from any openSMILE file; only the package's input/output includes are referenced (through the package's
own `source` / `sink` options). It is written once into the cache folder of features/opensmile_lld.py
(`$SER_OPENSMILE_CACHE`, else ~/.cache/ser-toolkit/opensmile, else the temp folder) under a name holding the
hash of the text. Deviations from the author's run (openSMILE 2.3 SMILExtract on the WAV files): input arrives
through the package's external audio source as int16(clip(x) * 32768), which for 16-bit 16 kHz files is the
WAV's own samples (other files are mixed down and resampled by features/audio.py first); every prosody level is
a growing buffer (whole utterance in memory) instead of sized ring buffers, which only changes memory use (a ring
buffer too short for the utterance would feed the functionals only its last frames); FFT zero padding at the end
(`zeroPadSymmetric = 0`, the 2.x behaviour; magnitudes do not depend on it).

Values are never normalised (sheet 4.3, quirk 12): `norm_pooling` is None, so norm_para.py refuses to guess.
float32 holds everything openSMILE computes (its data memory is float32); the original's .npy are float64 copies.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from features.opensmile_lld import write_to_cache

SR = 16000
MFCC_FRAME, MFCC_HOP = 0.025, 0.010  # 400 / 160 samples
PITCH_FRAME, LOUDNESS_FRAME = 0.055, 0.020
MFCC_LEVEL, PROSODY_LEVEL = "mfcc_e_d_a", "prosody"
_CONFIG_VERSION = "1"  # bump when the rendering below changes in a way the text hash would not show

_STATIC = [f"pcm_fftMag_mfcc[{i}]" for i in range(1, 13)] + ["pcm_LOGenergy"]
MFCC_NAMES = _STATIC + [n.replace("mfcc[", "mfcc_de[") if "[" in n else n + "_de" for n in _STATIC] \
    + [n.replace("mfcc[", "mfcc_de_de[") if "[" in n else n + "_de_de" for n in _STATIC]
CONTOURS = ("F0final", "F0finalLog", "voicingFinalUnclipped", "HarmonicsToNoiseRatioACFLogdB", "loudness")
FUNCTIONALS = ("stddev", "amean", "linregc1", "centroid", "percentile10.0", "percentile90.0", "pctlrange0-1")
PROSODY_NAMES = [f"{c}_sma_{f}" for c in CONTOURS for f in FUNCTIONALS]
assert len(MFCC_NAMES) == 39 and len(PROSODY_NAMES) == 35


def mfcc_frame_count(n_samples: int) -> int:
    """MFCC rows for `n_samples` at 16 kHz: floor((N - 400) / 160) + 1, 0 below one window."""
    n_win, n_hop = round(MFCC_FRAME * SR), round(MFCC_HOP * SR)
    return (n_samples - n_win) // n_hop + 1 if n_samples >= n_win else 0


# ------------------------------------------------------------------------------------------ configuration
# (instance name, component type, options); options in the order written

def _c(name: str, kind: str, reader: str, writer: str, **opts) -> tuple[str, str, dict]:
    return name, kind, {"reader.dmLevel": reader, "writer.dmLevel": writer, **opts}


def mfcc_components() -> list[tuple[str, str, dict]]:
    return [
        _c("mf_frame", "cFramer", "wave", "mf_frames", frameSize=MFCC_FRAME, frameStep=MFCC_HOP, frameMode="fixed",
           frameCenterSpecial="left", noPostEOIprocessing=1),
        _c("mf_pe", "cVectorPreemphasis", "mf_frames", "mf_pe", k=0.97, de=0),
        _c("mf_win", "cWindower", "mf_pe", "mf_win", winFunc="ham", gain=1.0, offset=0),
        _c("mf_fft", "cTransformFFT", "mf_win", "mf_fft", zeroPadSymmetric=0),
        _c("mf_mag", "cFFTmagphase", "mf_fft", "mf_mag", magnitude=1, phase=0),
        _c("mf_mel", "cMelspec", "mf_mag", "mf_mel", htkcompatible=1, nBands=26, usePower=1, lofreq=0, hifreq=8000,
           specScale="mel"),
        _c("mf_cep", "cMfcc", "mf_mel", "mf_cep", firstMfcc=1, lastMfcc=12, cepLifter=22.0, htkcompatible=1),
        _c("mf_energy", "cEnergy", "mf_frames", "mf_energy", nameAppend="energy", htkcompatible=1, rms=0, log=1),
        _c("mf_static", "cVectorConcat", "mf_cep;mf_energy", "mf_static", includeSingleElementFields=1),
        _c("mf_d", "cDeltaRegression", "mf_static", "mf_d", nameAppend="de", deltawin=2, blocksize=1),
        _c("mf_dd", "cDeltaRegression", "mf_d", "mf_dd", nameAppend="de", deltawin=2, blocksize=1),
        _c("mf_out", "cVectorConcat", "mf_static;mf_d;mf_dd", MFCC_LEVEL, includeSingleElementFields=1),
    ]


_GROW = {"writer.levelconf.growDyn": 1, "writer.levelconf.isRb": 0, "writer.levelconf.nT": 1000}
_VITERBI = dict(bufferLength=90, wTvv=10.0, wTvvd=5.0, wTvuv=10.0, wThr=4.0, wTuu=0.0, wLocal=2.0, wRange=1.0)
_FUNCTIONALS = {
    "frameMode": "full", "frameSize": 0, "frameStep": 0, "functionalsEnabled": "Moments;Regression;Percentiles",
    **{f"Moments.{k}": int(k in ("stddev", "amean")) for k in
       ("variance", "stddev", "skewness", "kurtosis", "amean", "stddevNorm", "doRatioLimit")},
    **{f"Regression.{k}": int(k in ("linregc1", "centroid")) for k in
       ("linregc1", "linregc2", "linregerrA", "linregerrQ", "qregc1", "qregc2", "qregc3", "qregerrA", "qregerrQ",
        "centroid", "oldBuggyQerr", "centroidUseAbsValues", "centroidRatioLimit", "doRatioLimit")},
    "Regression.centroidNorm": "segment",
    "Percentiles.quartiles": 0, "Percentiles.iqr": 0, "Percentiles.percentile[0]": 0.1,
    "Percentiles.percentile[1]": 0.9, "Percentiles.pctlrange[0]": "0-1", "Percentiles.interp": 1,
}


def prosody_components() -> list[tuple[str, str, dict]]:
    comps = [
        # loudness: 20 ms Hamming frames -> 26 mel bands (power) -> auditory weighting, ^0.33 -> L1 sum
        _c("lo_frame", "cFramer", "wave", "lo_frames", frameSize=LOUDNESS_FRAME, frameStep=0.010,
           frameCenterSpecial="left"),
        _c("lo_win", "cWindower", "lo_frames", "lo_win", winFunc="ham"),
        _c("lo_fft", "cTransformFFT", "lo_win", "lo_fft", zeroPadSymmetric=0),
        _c("lo_mag", "cFFTmagphase", "lo_fft", "lo_mag"),
        _c("lo_mel", "cMelspec", "lo_mag", "lo_mel", htkcompatible=0, nBands=26, usePower=1, lofreq=20, hifreq=8000,
           specScale="mel"),
        _c("lo_aud", "cPlp", "lo_mel", "lo_aud", firstCC=0, lpOrder=5, cepLifter=22, compression=0.33,
           htkcompatible=0, doIDFT=0, doLpToCeps=0, doLP=0, doInvLog=0, doAud=1, doLog=0, newRASTA=0, RASTA=0),
        _c("lo_sum", "cVectorOperation", "lo_aud", "lo_loud", nameAppend="loudness", copyInputName=0,
           processArrayFields=0, operation="ll1", nameBase="loudness"),
        # pitch: 55 ms Gaussian frames -> octave-scale spectrum -> SHS -> Viterbi; HNR at the smoothed F0
        _c("pi_frame", "cFramer", "wave", "pi_frames", frameSize=PITCH_FRAME, frameStep=0.010,
           frameCenterSpecial="left"),
        _c("pi_win", "cWindower", "pi_frames", "pi_win", winFunc="gauss", gain=1.0, sigma=0.4),
        _c("pi_fft", "cTransformFFT", "pi_win", "pi_fft", zeroPadSymmetric=0),
        _c("pi_mag", "cFFTmagphase", "pi_fft", "pi_mag"),
        _c("pi_oct", "cSpecScale", "pi_mag", "pi_oct", copyInputName=1, processArrayFields=0, scale="octave",
           sourceScale="lin", interpMethod="spline", minF=25, maxF=-1, nPointsTarget=0, specSmooth=1, specEnhance=1,
           auditoryWeighting=1),
        _c("pi_shs", "cPitchShs", "pi_oct", "pi_shs", copyInputName=1, processArrayFields=0, maxPitch=620,
           minPitch=52, nCandidates=4, scores=1, voicing=1, F0C1=0, voicingC1=0, F0raw=1, voicingClip=0,
           voicingCutoff=0.7, greedyPeakAlgo=1, inputFieldSearch="Mag_octScale", octaveCorrection=0, nHarmonics=15,
           compressionFactor=0.85, lfCut=0),
        _c("pi_vit", "cPitchSmootherViterbi", "pi_shs", "pi_vit", **{"reader2.dmLevel": "pi_shs"}, copyInputName=1,
           F0final=1, F0finalLog=1, F0finalEnv=0, voicingFinalClipped=0, voicingFinalUnclipped=1, F0raw=0,
           voicingC1=0, voicingClip=0, **_VITERBI),
        _c("pi_hnr", "cHarmonics", "pi_mag;pi_vit", "pi_hnr", nHarmonics=10, f0ElementName="F0final",
           magSpecFieldName="pcm_fftMag", computeAcfHnrLogdB=1),
        _c("pi_rms", "cEnergy", "pi_win", "pi_rms", rms=1, log=0),
        _c("pi_gate", "cValbasedSelector", "pi_rms;pi_vit", "pi_gated", idx=0, threshold=0.0008, removeIdx=1,
           zeroVec=1, outputVal=0.0),
        # 3-frame moving average; pitch/HNR over non-zero (voiced) frames only
        _c("sm_all", "cContourSmoother", "lo_loud", "sm_all", nameAppend="sma", copyInputName=1,
           noPostEOIprocessing=0, smaWin=3, noZeroSma=0),
        _c("sm_nz", "cContourSmoother", "pi_gated;pi_hnr", "sm_nz", nameAppend="sma", copyInputName=1,
           noPostEOIprocessing=0, smaWin=3, noZeroSma=1),
    ]
    comps = [(n, k, {**o, **_GROW}) for n, k, o in comps]
    return comps + [
        _c("fu_nz", "cFunctionals", "sm_nz", "fu_nz", nonZeroFuncts=1, **_FUNCTIONALS),
        _c("fu_all", "cFunctionals", "sm_all", "fu_all", nonZeroFuncts=0, **_FUNCTIONALS),
        _c("fu_out", "cVectorConcat", "fu_nz;fu_all", PROSODY_LEVEL, includeSingleElementFields=1),
    ]


def render_config(components: list[tuple[str, str, dict]], title: str) -> str:
    """openSMILE config text: the package's external source, `components`, the package's external sink."""
    out = [f"; {title}", "; generated by features/mdre_acoustic.py from the MDRE reference sheet's parameters", "",
           "[componentInstances:cComponentManager]", "instance[dataMemory].type = cDataMemory", "printLevelStats = 0",
           "", "\\{\\cm[source{?}:include external source]}", "", "[componentInstances:cComponentManager]"]
    out += [f"instance[{name}].type = {kind}" for name, kind, _ in components]
    for name, kind, opts in components:
        out += ["", f"[{name}:{kind}]"] + [f"{k} = {v}" for k, v in opts.items()]
    return "\n".join(out + ["", "\\{\\cm[sink{?}:include external sink]}", ""])


CONFIGS = {"mfcc": ("MDRE_MFCC12_E_D_A", "MFCC 12 + log energy, deltas, delta-deltas (HTK MFCC_E_D_A)",
                    mfcc_components),
           "prosody": ("MDRE_prosodyShsViterbiLoudness", "SHS/Viterbi pitch, voicing, HNR, loudness x 7 functionals",
                       prosody_components)}


def config_file(kind: str, cache_dir: str | Path | None = None) -> Path:
    """Path of the generated config for `kind` ('mfcc' or 'prosody'), written once (atomically) into the cache."""
    stem, title, components = CONFIGS[kind]
    text = render_config(components(), title)
    digest = hashlib.sha256(f"{_CONFIG_VERSION}|{text}".encode()).hexdigest()[:12]
    return write_to_cache(f"{stem}-{digest}", lambda out: {f"{stem}.conf": text}, cache_dir) / f"{stem}.conf"


# ------------------------------------------------------------------------------------------ extractors

class _SmileExtractor:
    input = "audio"
    norm_pooling = None  # the original never normalises (sheet 4.3): no NormTerm pooling is the honest record
    mat_time_column = False
    kind = level = ""
    columns: list[str] = []

    def __init__(self, cache_dir: str | Path | None = None, threads: int = 1):
        """`threads` > 1 runs the waveforms of one call in parallel (openSMILE releases the GIL)."""
        import opensmile

        self.config_path = config_file(self.kind, cache_dir)
        self._smile = opensmile.Smile(feature_set=str(self.config_path), feature_level=self.level, sampling_rate=SR,
                                      loglevel=0)
        names = list(self._smile.feature_names)
        if names != self.columns:
            raise RuntimeError(f"openSMILE config {self.config_path} gives columns {names}, expected {self.columns}")
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        text = self.config_path.read_text(encoding="utf-8")
        self.params = {"config": CONFIGS[self.kind][0], "config_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
                       "opensmile_version": getattr(opensmile, "__version__", "unknown"), "sr": SR,
                       "input_scaling": "int16(clip(x) * 32768)", "columns": self.columns, **self.settings}

    def one(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a mono waveform, got shape {x.shape}")
        if len(x) < round(self.min_seconds * SR):
            raise ValueError(f"too short for one {self.min_seconds * 1000:.0f} ms frame ({len(x)} samples)")
        if x.max(initial=0.0) >= 1.0 or x.min(initial=0.0) < -1.0:
            x = np.clip(x, -1.0, 32767 / 32768)  # the package's int16 conversion would wrap these around
        y = np.ascontiguousarray(self._smile(x, SR)[0].T, dtype=np.float32)  # (frames, features)
        if not np.isfinite(y).all():
            raise ValueError("openSMILE returned no or non-finite features")
        return y

    def __call__(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        if self._pool is None or len(batch) < 2:
            return [self.one(x) for x in batch]
        return list(self._pool.map(self.one, batch))


class MdreMfcc(_SmileExtractor):
    """Extractor (features/extract.py): 16 kHz float32 waveforms -> (T, 39) float32, T = mfcc_frame_count(N)."""

    name, kind, level, columns = "MDRE_MFCC39", "mfcc", MFCC_LEVEL, MFCC_NAMES
    dims, frame_rate, min_seconds = 39, 1 / MFCC_HOP, MFCC_FRAME
    settings = {"frame_size_s": MFCC_FRAME, "frame_step_s": MFCC_HOP, "frames": "floor((N - 400) / 160) + 1",
                "preemphasis": 0.97, "window": "hamming", "fft": 512, "mel_bands": 26, "mel_range_hz": [0, 8000],
                "htk_compatible": True, "cepstra": "1..12", "lifter": 22, "energy": "HTK log energy of the raw frame",
                "delta_window": 2, "cmn": False}


class MdreProsody(_SmileExtractor):
    """Extractor (features/extract.py): 16 kHz float32 waveforms -> (1, 35) float32 prosody functionals."""

    name, kind, level, columns = "MDRE_Prosody35", "prosody", PROSODY_LEVEL, PROSODY_NAMES
    dims, frame_rate, min_seconds = 35, None, PITCH_FRAME
    settings = {"pitch_frame_s": PITCH_FRAME, "pitch_window": "gauss(0.4)", "shs_range_hz": [52, 620],
                "shs_harmonics": 15, "shs_candidates": 4, "viterbi": _VITERBI, "pitch_rms_gate": 0.0008,
                "hnr": "cHarmonics ACF, 10 harmonics", "loudness_frame_s": LOUDNESS_FRAME,
                "loudness": "26 mel bands 20-8000 Hz, auditory weighting, compression 0.33, L1 sum",
                "smoothing": "sma 3 (pitch/HNR non-zero only)", "functionals": list(FUNCTIONALS),
                "nonzero_functionals": list(CONTOURS[:4])}


EXTRACTORS = {"mfcc": MdreMfcc, "prosody": MdreProsody}

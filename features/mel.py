"""DeepEmoCluster's 128-band mel power spectrogram, vectorised NumPy (no librosa at run time, no JIT warm-up).

Parameters as the original: peak-normalised waveform, n_fft 512, hop 256 (16 ms), periodic Hann window,
centred frames with reflect padding (librosa 0.7's default; librosa >= 0.10 pads with zeros), |STFT|^2,
Slaney mel scale with Slaney area normalisation, fmin 0, fmax 8000, no log. T = 1 + floor(N / 256).
Equal to `librosa.feature.melspectrogram(..., pad_mode="reflect")` to ~1e-6 relative (tests/test_mel.py).
"""
from __future__ import annotations

import numpy as np

SR, N_FFT, HOP, N_MELS = 16000, 512, 256, 128


def _hz_to_mel(f):  # Slaney: linear below 1 kHz, logarithmic above
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filterbank(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """(n_mels, 1 + n_fft/2) triangular filters, Slaney mel scale, each scaled to unit area (norm='slaney')."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


class MelSpectrogram:
    name = "Mel_Spec128"
    input = "audio"
    norm_pooling = "frames"  # NormTerm over every Train frame (DeepEmoCluster)
    dims = N_MELS
    frame_rate = SR / HOP  # 62.5 frames/s
    min_seconds = (N_FFT // 2 + 1) / SR  # reflect padding needs more samples than the 256-sample pad
    params = {"sr": SR, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "window": "hann(periodic)",
              "center": True, "pad_mode": "reflect", "power": 2.0, "mel": "slaney", "norm": "slaney",
              "fmin": 0.0, "fmax": 8000.0, "peak_normalise": True, "log": False}

    def __init__(self):
        self._fb = mel_filterbank()
        n = np.arange(N_FFT)
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)  # periodic Hann

    def one(self, y: np.ndarray) -> np.ndarray:
        """(T, 128) float32 for one 16 kHz waveform."""
        y = np.asarray(y, dtype=np.float32)
        peak = np.abs(y).max()
        y = y / peak  # all-zero input gives NaN, as the original; the runner rejects silent files first
        pad = N_FFT // 2
        if len(y) <= pad:  # reflect padding needs more samples than the pad width
            raise ValueError(f"too short for reflect padding ({len(y)} samples <= {pad})")
        y = np.pad(y, pad, mode="reflect")
        n_frames = 1 + (len(y) - N_FFT) // HOP
        frames = np.lib.stride_tricks.as_strided(y, shape=(n_frames, N_FFT), strides=(y.strides[0] * HOP, y.strides[0]))
        spec = np.fft.rfft(frames * self._window, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        return power @ self._fb.T  # (T, 257) @ (257, 128) -> (T, 128)

    def __call__(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        return [self.one(y) for y in batch]

"""Robust WAV reading and writing: any sample rate, bit depth or channel count in, 16 kHz mono float32 out.

`load_audio` raises `AudioError` naming the file and the problem; batch tools catch it, list the file in
their errors CSV and go on with the rest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_SR = 16000


class AudioError(Exception):
    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def resample(x: np.ndarray, sr_in: int, sr_out: int = TARGET_SR) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    return soxr.resample(np.asarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, sr: int = TARGET_SR, min_seconds: float = 0.0,
               segment: tuple[float, float] | None = None) -> np.ndarray:
    """Read `path` (only seconds `segment` = (start, end) of it, when given: a manifest's utterance inside a longer
    recording) as float32 mono at `sr` (channels averaged, resampled with soxr HQ). A segment that ends past the
    file is refused (AudioError), never silently shortened."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        if segment is None:
            x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        else:
            with sf.SoundFile(str(path)) as f:
                file_sr, frames = f.samplerate, f.frames
                first, stop = round(segment[0] * file_sr), round(segment[1] * file_sr)
                if stop > frames + 1:  # one frame of rounding slack
                    raise AudioError(path, f"segment {segment[0]:g}-{segment[1]:g} s ends past the file's "
                                           f"{frames / file_sr:.3f} s")
                f.seek(min(first, frames))
                x = f.read(min(stop, frames) - min(first, frames), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError on corrupt headers
        raise AudioError(path, f"unreadable audio ({type(e).__name__}: {e})") from None
    where = path if segment is None else f"{path} [{segment[0]:g}-{segment[1]:g} s]"
    return mono_at(x, file_sr, where, sr, min_seconds)


def mono_at(x: np.ndarray, file_sr: int, source, sr: int = TARGET_SR, min_seconds: float = 0.0) -> np.ndarray:
    """Samples (n,) or (n, channels) at `file_sr` as float32 mono at `sr` (channels averaged, resampled with soxr
    HQ); AudioError naming `source` (a file, or an in-memory signal's name) when there are no samples, a sample is
    not finite or the audio is shorter than `min_seconds`."""
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise AudioError(source, f"samples of shape {x.shape}: give (n,) or (n, channels)")
    if x.shape[0] == 0:
        raise AudioError(source, "no samples")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if not np.isfinite(x).all():
        raise AudioError(source, "non-finite samples")
    x = resample(x, file_sr, sr)
    if len(x) < min_seconds * sr:
        raise AudioError(source, f"too short ({len(x) / sr:.3f} s < {min_seconds} s)")
    return x


def truncated_wav(path: str | Path) -> str | None:
    """Why a WAV file looks cut short (its data chunk declares more bytes than the file holds), or None.

    libsndfile reads such a file without complaint, returning only the samples that are there; a user should
    still be told, since the end of the recording is missing. Streaming writers' placeholder sizes (0 and
    0xFFFFFFFF) are not taken for truncation."""
    import struct
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            endian = "<" if head[:4] == b"RIFF" else ">"
            size = Path(path).stat().st_size
            while True:
                ck = f.read(8)
                if len(ck) < 8:
                    return None
                cid, n = ck[:4], struct.unpack(endian + "I", ck[4:])[0]
                if cid == b"data":
                    have = size - f.tell()
                    if n in (0, 0xFFFFFFFF) or n <= have:
                        return None
                    return f"truncated: the header announces {n} bytes of samples, the file holds {have}"
                f.seek(n + (n & 1), 1)
    except OSError:
        return None


def write_wav(path: str | Path, x: np.ndarray, sr: int = TARGET_SR, subtype: str = "PCM_16") -> None:
    """Write atomically (temp file + rename), so a killed writer never leaves a truncated WAV."""
    from utils import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(x, -1.0, 1.0), sr, subtype=subtype, format="WAV")

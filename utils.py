"""Small pieces shared by every system: CCC, the dynamic chunker, z-norm, atomic file writes, seeding."""
from __future__ import annotations

import contextlib
import errno
import os
import random
import tempfile
from pathlib import Path

import numpy as np


class OutputError(Exception):
    """An output cannot be written (read-only folder, full disk, ...). Names the target, never the temp file."""


_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask alone must set it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def writable_dir(folder: str | Path) -> Path:
    """Prove that files can be written in `folder` (or, where it does not exist yet, that it can be created)
    without leaving anything behind; OutputError naming the folder otherwise.

    Scripts call this before long work, so an unwritable output fails in a second, not after an hour."""
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    try:
        if not probe_in.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{probe_in} is not a folder")
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=probe_in)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{folder}: cannot write there ({e.strerror or e})") from None
    return folder


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`.

    A run killed half-way leaves at most a `.tmp` file behind, never a truncated `path`. The file gets the
    permissions a plain `open(path, "w")` would (0666 less the umask), not mkstemp's private 0600, so
    colleagues on a shared server can read stores, models and results. Any failure to create, write or
    rename raises OutputError naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # corpus tools run without torch
        pass


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else unchanged."""
    if device == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def znorm(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 3.0,
          dtype: np.dtype | type = np.float32) -> np.ndarray:
    """(x - mean) / std in float64, NaN -> 0, clipped to [-clip, clip] (so +-inf -> +-clip), cast to `dtype`.

    The one feature normalisation of all five systems; the originals do exactly these steps in this order.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero std gives +-inf / NaN, handled next
        z = (np.asarray(x, dtype=np.float64) - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    z[np.isnan(z)] = 0.0
    np.clip(z, -clip, clip, out=z)
    return z.astype(dtype, copy=False)


# ------------------------------------------------------------------------------------------------ metrics

def ccc(pred, true) -> float:
    """Lin's concordance correlation coefficient with population moments (ddof 0), as the originals score:
    2 cov / (var_p + var_t + (mean_p - mean_t)^2)."""
    p, t = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(true, dtype=np.float64).ravel()
    if len(p) != len(t) or len(p) == 0:
        raise ValueError(f"ccc needs two equal, non-empty lengths (got {len(p)} and {len(t)})")
    mp, mt = p.mean(), t.mean()
    cov = ((p - mp) * (t - mt)).mean()
    denom = p.var() + t.var() + (mp - mt) ** 2
    return float(2 * cov / denom) if denom > 0 else 0.0


def ccc_loss(pred, true, *, unbiased_var: bool = True):
    """1 - CCC over a batch of torch tensors, differentiable.

    `unbiased_var=True` is the chunk LSTM's training loss as published: population covariance but
    `torch.var`'s unbiased variances (quirk Q5; a factor (N-1)/N on the variance terms). False gives the
    textbook population CCC. Needs at least two items.
    """
    p, t = pred.reshape(-1), true.reshape(-1)
    if p.numel() < 2:
        raise ValueError("ccc_loss needs a batch of at least two items")
    mp, mt = p.mean(), t.mean()
    cov = ((p - mp) * (t - mt)).mean()
    correction = 0 if not unbiased_var else 1
    vp, vt = p.var(correction=correction), t.var(correction=correction)
    return 1 - 2 * cov / (vp + vt + (mp - mt) ** 2)


# --------------------------------------------------------------------------------------- chunking

def dynamic_chunks(lengths, m: int = 62, C: int = 11, n: int = 1) -> np.ndarray:
    """Start frame of each of the n*C chunks of m frames of every utterance: (len(lengths), n*C) int64.

    The chunk-level systems' rule, for T >= m: S = n*C - 1 shifts, step = floor((T - m) / S), chunk k covers
    [k*step, k*step + m). No padding; up to S-1 trailing frames (more when step > m) are never seen; step 0
    (m <= T < m + S) gives n*C copies of the first m frames. The original crashes for T < m; here such an
    utterance gets step 0 and start 0, and `gather_chunks` pads it at the end with zeros (the z-normalised
    mean) to m frames. Returns index ranges, not copies: gather them from the (memory-mapped) features.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if n < 1 or C < 1 or m < 1:
        raise ValueError(f"need m, C, n >= 1 (got m={m}, C={C}, n={n})")
    shifts = n * C - 1
    step = np.maximum(lengths - m, 0) // max(shifts, 1)
    return step[:, None] * np.arange(n * C, dtype=np.int64)[None, :]


def gather_chunks(arrays, starts: np.ndarray, m: int) -> np.ndarray:
    """(sum of chunks, m, F) float32: chunk k of utterance u is arrays[u][starts[u, k] : starts[u, k] + m],
    utterance-major (rows u*nC ... u*nC + nC - 1), zero-padded at the end for utterances shorter than m."""
    out = np.zeros((starts.size, m, arrays[0].shape[1]), dtype=np.float32)
    offsets = np.arange(m)
    row = 0
    for x, st in zip(arrays, starts):
        if len(x) >= m:
            out[row: row + len(st)] = x[st[:, None] + offsets[None, :]]  # one fancy-index gather per utterance
        else:
            out[row: row + len(st), : len(x)] = x[None, :, :]
        row += len(st)
    return out

"""Small pieces shared by every system: z-norm, atomic file writes, seeding.

(CCC and the dynamic chunker join this module with the first system that needs them.)
"""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`.

    A run killed half-way leaves at most a `.tmp` file behind, never a truncated `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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

"""The originals' per-utterance `.mat` feature layout, in and out of a FeatureStore.

    <Features>/<set>/feat_mat/<utt>.mat     one MATLAB v5 file per utterance
        Audio_data   (T, D) audio features; the openSMILE LLD files carry the frame time as column 0
        Text_data    (T, D) text features

Import lets features made by the original scripts be used here; export lets ours be used there.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from features.store import BadFeatures, FeatureStore
from utils import atomic_path


def export_mat(store: FeatureStore, out_dir: str | Path, *, key: str | None = None,
               time_column: bool | None = None, dtype=None, progress: bool = True) -> int:
    """Write every utterance of `store` as `<out_dir>/<utt>.mat`; existing files are kept (resumable)."""
    out_dir = Path(out_dir)
    key = key or store.meta.get("mat_key", "Audio_data")
    time_column = store.meta.get("mat_time_column", False) if time_column is None else time_column
    if time_column and not store.meta.get("frame_rate"):
        raise ValueError(f"{store.root}: a time column needs a frame rate, and this store has none")
    written = 0
    for utt in tqdm(store.keys(), desc=f"export {store.meta['name']}", unit="utt", disable=not progress):
        path = out_dir / f"{utt}.mat"
        if path.is_file():
            continue
        x = np.asarray(store[utt], dtype=dtype or store.dtype)
        if time_column:  # frame k starts at k / frame_rate seconds, as openSMILE's frameTime
            t = np.arange(len(x), dtype=x.dtype)[:, None] / store.meta["frame_rate"]
            x = np.hstack([t.astype(x.dtype), x])
        with atomic_path(path) as tmp:
            scipy.io.savemat(str(tmp), {key: x})
        written += 1
    return written


def import_mat(mat_dir: str | Path, store: FeatureStore, *, key: str | None = None, drop_time_column: bool = False,
               progress: bool = True) -> tuple[int, list[tuple[str, str]]]:
    """Add every `<mat_dir>/*.mat` not yet in `store`; returns (added, [(file, reason) of files it could not read])."""
    key = key or store.meta.get("mat_key", "Audio_data")
    files = sorted(Path(mat_dir).glob("*.mat"))
    if not files:
        raise FileNotFoundError(f"{mat_dir}: no .mat files")
    added, bad = 0, []
    with store.writer(worker="import") as w:
        for path in tqdm(files, desc=f"import {Path(mat_dir).name}", unit="utt", disable=not progress):
            if path.stem in store:
                continue
            try:
                m = scipy.io.loadmat(str(path))
            except Exception as e:  # noqa: BLE001 - scipy raises several types for corrupt files
                bad.append((str(path), f"unreadable .mat ({e})"))
                w.error(path.stem, path, bad[-1][1])
                continue
            if key not in m:
                bad.append((str(path), f"no variable {key!r} (has {', '.join(k for k in m if not k.startswith('__'))})"))
                w.error(path.stem, path, bad[-1][1])
                continue
            x = np.asarray(m[key])
            if drop_time_column:
                x = x[:, 1:]
            if x.ndim != 2 or x.shape[1] != store.dims:
                bad.append((str(path), f"{key} has shape {x.shape}, store expects (T, {store.dims})"))
                w.error(path.stem, path, bad[-1][1])
                continue
            try:
                w.add(path.stem, x)  # refuses NaN/inf
            except BadFeatures as e:
                bad.append((str(path), e.reason))
                w.error(path.stem, path, e.reason)
                continue
            added += 1
    return added, bad


def source_dtype(mat_dir: str | Path, key: str) -> np.dtype:
    """The float dtype of `key` in the first readable `<mat_dir>/*.mat` (float32 for integer data), so an
    import keeps float64 features float64 as the originals have them."""
    for path in sorted(Path(mat_dir).glob("*.mat")):
        try:
            x = scipy.io.loadmat(str(path), variable_names=[key]).get(key)
        except Exception:  # noqa: BLE001 - unreadable files are reported by import_mat
            continue
        if x is not None:
            return x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
    raise FileNotFoundError(f"{mat_dir}: no readable .mat file with a variable {key!r}")

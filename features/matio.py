"""The originals' per-utterance `.mat` feature layout, in and out of a FeatureStore.

    <Features>/<set>/feat_mat/<utt>.mat     one MATLAB v5 file per utterance
        Audio_data   (T, D) audio features; the openSMILE LLD files carry the frame time as column 0
        Text_data    (T, D) text features

Import lets features made by the original scripts be used here; export lets ours be used there. Imported
NaN/inf values are kept and listed (see `import_mat`), because the originals scored such utterances.
"""
from __future__ import annotations

import csv
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


NONFINITE_CSV = "nonfinite-import.csv"  # per utterance: NaN / +inf / -inf values kept, repaired at z-normalisation


def import_mat(mat_dir: str | Path, store: FeatureStore, *, key: str | None = None, drop_time_column: bool = False,
               progress: bool = True) -> tuple[int, list[tuple[str, str]], list[tuple[str, int, int, int]]]:
    """Add every `<mat_dir>/*.mat` not yet in `store`; returns (added, [(file, reason) of files it could not
    read], [(utterance, NaN, +inf, -inf counts) of the added utterances holding non-finite values]).

    Non-finite values are kept, as the originals kept and scored such utterances: NormTerm statistics leave them
    out and z-normalisation (utils.znorm) maps NaN -> 0 and +-inf -> +-3. Every such utterance is listed in
    `<store>/nonfinite-import.csv` (kept across resumed imports)."""
    key = key or store.meta.get("mat_key", "Audio_data")
    files = sorted(Path(mat_dir).glob("*.mat"))
    if not files:
        raise FileNotFoundError(f"{mat_dir}: no .mat files")
    added, bad, repaired = 0, [], []
    with store.writer(worker="import", allow_nonfinite=True) as w:
        for path in tqdm(files, desc=f"import {Path(mat_dir).name}", unit="utt", disable=not progress):
            if path.stem in store:
                continue
            x, reason = _read_mat(path, key, store.dims, drop_time_column)
            if reason is None:
                try:
                    w.add(path.stem, x)
                except BadFeatures as e:  # float16 overflow
                    reason = e.reason
            if reason is not None:
                bad.append((str(path), reason))
                w.error(path.stem, path, reason)
                continue
            added += 1
            counts = (int(np.isnan(x).sum()), int(np.isposinf(x).sum()), int(np.isneginf(x).sum()))
            if any(counts):
                repaired.append((path.stem, *counts))
    _write_nonfinite_csv(store.root / NONFINITE_CSV, repaired)
    return added, bad, repaired


def _read_mat(path: Path, key: str, dims: int, drop_time_column: bool) -> tuple[np.ndarray | None, str | None]:
    """(the (T, dims) array, None) of one .mat file, or (None, why it cannot be imported)."""
    try:
        m = scipy.io.loadmat(str(path))
    except Exception as e:  # noqa: BLE001 - scipy raises several types for corrupt files
        return None, f"unreadable .mat ({e})"
    if key not in m:
        return None, f"no variable {key!r} (has {', '.join(k for k in m if not k.startswith('__'))})"
    x = np.asarray(m[key])
    if drop_time_column:
        x = x[:, 1:]
    if x.ndim != 2 or x.shape[1] != dims:
        return None, f"{key} has shape {x.shape}, store expects (T, {dims})"
    return x, None


def _write_nonfinite_csv(path: Path, rows: list[tuple[str, int, int, int]]) -> None:
    """Merge `rows` into the CSV of utterances imported with NaN/inf values (earlier imports' rows kept)."""
    old = {}
    if path.is_file():
        with open(path, newline="") as f:
            old = {r["utterance"]: (r["utterance"], int(r["nan"]), int(r["posinf"]), int(r["neginf"]))
                   for r in csv.DictReader(f)}
    if not rows and not old:
        return
    old.update({r[0]: r for r in rows})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["utterance", "nan", "posinf", "neginf"])
        out.writerows(old[u] for u in sorted(old))


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

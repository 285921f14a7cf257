"""Per-utterance IEMOCAP motion-capture features for the speech + text + mocap fusion system.

Output of `utterance_mocap`: an (n, 189) float32 array, n = 200 by default, columns in this order
(`column_layout` gives it programmatically; the store's meta.json records it):

    0   .. 164   MOCAP_rotated  55 face markers x (x, y, z), head motion removed, in the file's marker order
    165 .. 170   MOCAP_head     head pose: pitch, roll, yaw, tra_x, tra_y, tra_z (the file's order)
    171 .. 188   MOCAP_hand     6 hand / wrist markers x (x, y, z), in the file's marker order

Every stream keeps its REAL width (head 6, hand 18) and its values. The transformer system's combined input
swapped the head and hand shapes, so both failed its shape check and became zeros; here a stream whose file
does not have the expected column count is reported as unusable instead.

Each stream's rows with start < Time < end (`corpora.iemocap.load_mocap`) are block-averaged to n frames
(`resample_mocap`). Only the actor named by the gender letter of the dialog (`Ses01F_...` -> F) wore markers;
an utterance whose speaker letter (`..._M003` -> M) differs is the other actor speaking while the rows describe
the listener. The original used that listener motion; here such an utterance has NO mocap (None + reason).
Never faked either: a stream with no finite value in the utterance (every marker lost) and a file row with too
few fields inside the span (which the file reader would pad with NaN) also mean NO mocap, with the reason.

NaN policy (`interpolate`, default True): a marker sample lost in the file is NaN and stays NaN through the
block averaging (a chunk holding a NaN is NaN; an utterance with fewer than n rows gets empty, all-NaN chunks).
Then every column is linearly interpolated over frame index between its finite frames, and held constant
before the first / after the last finite frame. A column with no finite frame at all in the utterance (a
marker lost for the whole utterance) stays NaN: it is not guessed at extraction time. Normalisation decides:
`MocapStats` ignores NaN when fitting, and `apply` maps NaN to `fill` (0 = the training mean) after
z-normalisation. With interpolate=False every NaN is left for `apply` to fill.

The feature store refuses NaN, so `store_arrays` writes whole-NaN columns as 0 and lists them in the
utterance's side information (`{"nan_columns": [...]}`); `stored_mocap` restores the NaN when reading.

Any other corpus: a manifest row's `mocap_path` (`file_mocap`). The file is ONE text file holding that utterance's
own motion capture in IEMOCAP's MOCAP text format: two header lines, then rows `Frame# Time v1 ... v189`, the 189
value columns being the three streams side by side in `column_layout` order (rotated 165, head 6, hand 18), i.e.
what IEMOCAP's three files hold for the utterance's span. The whole file is the utterance: no start/end cut (a
manifest's start/end are for the audio) and no marker-wearer rule (that rule reads IEMOCAP utterance ids). It is
read by IEMOCAP's file reader (`corpora.iemocap._read_mocap_file`: header, short / damaged rows) and goes through
the same checks, reasons, block averaging and NaN policy as `utterance_mocap`. A manifest row without `mocap_path`
has no mocap (reason "no mocap_path"), like an IEMOCAP speaker without markers. `record_mocap` picks the way per
record (what `extract_mocap` calls).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from corpora.iemocap import (MOCAP_STREAMS, DamagedMocapRows, _read_mocap_file, load_mocap, mocap_path,
                             resample_mocap)
from corpora.records import CorpusError, Utterance

# numeric columns per stream after Frame# and Time, as in the release files
STREAM_WIDTHS = {"rotated": 165, "head": 6, "hand": 18}
STREAM_CONTENT = {"rotated": "55 face markers x (x, y, z), head motion removed",
                  "head": "head pose: 3 rotation angles, 3 translations",
                  "hand": "6 hand/wrist markers x (x, y, z)"}


def column_layout(streams=MOCAP_STREAMS) -> list[dict]:
    """[{"stream", "first", "stop", "content"}] in output column order."""
    out, first = [], 0
    for s in streams:
        if s not in STREAM_WIDTHS:
            raise ValueError(f"mocap stream {s!r} not one of {', '.join(STREAM_WIDTHS)}")
        out.append({"stream": s, "first": first, "stop": first + STREAM_WIDTHS[s], "content": STREAM_CONTENT[s]})
        first += STREAM_WIDTHS[s]
    return out


def marker_wearer(utt_id: str) -> str:
    """Gender letter of the actor wearing markers in the utterance's dialog (`Ses01F_impro01_M000` -> F)."""
    return utt_id[5]


def utterance_speaker(utt_id: str) -> str:
    """Gender letter of the actor speaking the utterance (`Ses01F_impro01_M000` -> M)."""
    return utt_id.rsplit("_", 1)[1][0]


def speaker_wore_markers(utt_id: str) -> bool:
    return marker_wearer(utt_id) == utterance_speaker(utt_id)


def interpolate_nan(x: np.ndarray) -> np.ndarray:
    """Per column, NaN frames linearly interpolated between finite frames (held at the edges); a column with
    no finite frame stays all-NaN. Returns a new float32 array."""
    x = np.array(x, dtype=np.float32, copy=True)
    t = np.arange(len(x))
    finite = np.isfinite(x)
    for j in np.flatnonzero(~finite.all(axis=0)):
        ok = finite[:, j]
        if ok.any():
            x[~ok, j] = np.interp(t[~ok], t[ok], x[ok, j])
    return x


NO_MOCAP_PATH = "no mocap_path"  # the reason of a manifest row without a motion-capture file


def mocap_way(record: Utterance) -> str:
    """How the record's mocap is read: "file" (a manifest row's mocap_path), "iemocap" (IEMOCAP's per-dialog
    streams: a record of the IEMOCAP reader, which names its dialog), or "none" (a manifest row without
    mocap_path)."""
    if record.mocap_path is not None:
        return "file"
    return "iemocap" if record.dialog is not None else "none"


def absent_by_design(record: Utterance) -> bool:
    """Whether the record has no mocap by the corpus's design, not by a fault: an IEMOCAP utterance spoken by the
    actor without markers, a manifest row without mocap_path."""
    way = mocap_way(record)
    return way == "none" or (way == "iemocap" and not speaker_wore_markers(record.utt_id))


def record_mocap(record: Utterance, root: str | Path | None = None, n: int = 200, streams=MOCAP_STREAMS,
                 interpolate: bool = True) -> tuple[np.ndarray | None, str]:
    """The record's mocap, as `utterance_mocap` returns it, read the record's way (`mocap_way`): its mocap_path
    (`file_mocap`), IEMOCAP's dialog files (`utterance_mocap`), or none (NO_MOCAP_PATH)."""
    way = mocap_way(record)
    if way == "file":
        return file_mocap(record.mocap_path, n=n, streams=streams, interpolate=interpolate)
    if way == "iemocap":
        return utterance_mocap(record, root, n=n, streams=streams, interpolate=interpolate)
    return None, NO_MOCAP_PATH


def utterance_mocap(record: Utterance, root: str | Path | None = None, n: int = 200,
                    streams=MOCAP_STREAMS, interpolate: bool = True) -> tuple[np.ndarray | None, str]:
    """(n x sum(stream widths) float32 array, "") or (None, reason) when the IEMOCAP utterance has no usable mocap.

    Reasons: the speaker did not wear markers in this dialog; a stream file is missing or unreadable; a file
    has an unexpected column count; no mocap rows fall inside the utterance span; a row inside the span has too
    few fields (the reader would pad it with NaN); a stream holds no finite value inside the span (every marker
    lost). The last two would otherwise be filled in (interpolated, or the training mean): never faked, they
    count as no mocap. NaN: see the module doc.
    """
    layout = column_layout(streams)
    if not speaker_wore_markers(record.utt_id):
        return None, (f"speaker {utterance_speaker(record.utt_id)} did not wear markers in {record.dialog} "
                      f"(the {marker_wearer(record.utt_id)} actor did)")
    parts = []
    for part in layout:
        stream = part["stream"]
        path = mocap_path(record, stream, root)
        try:
            frames, _ = load_mocap(record, stream, root)
        except CorpusError as e:
            return None, unreadable_reason(e, path, f"MOCAP_{stream}")
        reason = stream_fault(stream, frames, f"between {record.start} and {record.end} s", path)
        if reason:
            return None, reason
        parts.append(frames)
    return resampled(parts, n, interpolate), ""


def file_mocap(path: str | Path, n: int = 200, streams=MOCAP_STREAMS,
               interpolate: bool = True) -> tuple[np.ndarray | None, str]:
    """`utterance_mocap`'s output from one utterance's MOCAP file holding all three streams side by side (the
    manifest format: module doc), whole file, `streams` picked by their columns. Reasons: the file is missing or
    unreadable; it has another column count than the three streams' 189; it has a short row (the reader would pad
    it with NaN); a stream holds no finite value (every marker lost)."""
    path = Path(path)
    layout = column_layout(streams)
    full = {part["stream"]: part for part in column_layout(MOCAP_STREAMS)}
    width = full[MOCAP_STREAMS[-1]]["stop"]
    try:
        _, values, _, short = _read_mocap_file(str(path))
    except CorpusError as e:
        return None, unreadable_reason(e, path, "mocap")
    if len(short):  # the whole file is the utterance: any short row would be NaN-padded, then interpolated
        line, _, _, fields = short[0]
        return None, (f"damaged mocap rows: {path}: line {int(line)} has {int(fields)} fields, expected "
                      f"{values.shape[1] + 2} ({len(short)} such row(s))")
    if values.shape[1] != width:
        streams_text = " + ".join(f"{s} {STREAM_WIDTHS[s]}" for s in MOCAP_STREAMS)
        return None, f"{path} has {values.shape[1]} value columns, expected {width} ({streams_text}, side by side)"
    parts = []
    for part in layout:
        cols = full[part["stream"]]
        frames = values[:, cols["first"]:cols["stop"]]
        reason = stream_fault(part["stream"], frames, "in the file", path)
        if reason:
            return None, reason
        parts.append(frames)
    return resampled(parts, n, interpolate), ""


def unreadable_reason(error: CorpusError, path: Path, what: str) -> str:
    """The no-mocap reason of a file (of `what`: "MOCAP_head", ...) the reader refused: missing, damaged rows in
    the span, or unreadable."""
    if isinstance(error, DamagedMocapRows):  # NaN-padded rows would be interpolated: made-up motion
        return f"damaged {what} rows: {error}"
    return "mocap file missing" if not Path(path).is_file() else f"mocap file unreadable: {error}"


def stream_fault(stream: str, frames: np.ndarray, where: str, path: Path) -> str:
    """Why a stream's rows of an utterance are no usable mocap ('' when they are): another column count than the
    stream's, no rows, or no finite value (every marker lost: filling it with the training mean is faking it)."""
    width = STREAM_WIDTHS[stream]
    if frames.shape[1] != width:
        return f"MOCAP_{stream} has {frames.shape[1]} value columns, expected {width}"
    if len(frames) == 0:
        return f"no MOCAP_{stream} rows {where}"
    if not np.isfinite(frames).any():
        return f"MOCAP_{stream} holds no finite value {where} ({len(frames)} rows, all NaN) in {path}"
    return ""


def resampled(parts: list[np.ndarray], n: int, interpolate: bool) -> np.ndarray:
    """The streams' rows, each block-averaged to n frames, side by side; NaN interpolated (module doc)."""
    x = np.concatenate([resample_mocap(frames, n) for frames in parts], axis=1)
    return interpolate_nan(x) if interpolate else x


class MocapStats:
    """Per-column mean / std over training utterances (NaN ignored) and z-normalisation with them."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    @classmethod
    def fit(cls, arrays, min_std: float = 1e-6) -> "MocapStats":
        """Pooled over every frame of every array; a column with no finite value gets mean 0, std 1, and a
        (near-)constant column std 1, so `apply` never divides by zero."""
        arrays = list(arrays)
        if not arrays:
            raise ValueError("MocapStats.fit: no training utterances")
        x = np.concatenate([np.asarray(a, np.float64) for a in arrays])
        count = np.isfinite(x).sum(axis=0)
        safe = np.where(np.isfinite(x), x, 0.0)
        mean = safe.sum(axis=0) / np.maximum(count, 1)
        var = (np.where(np.isfinite(x), x - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
        std = np.sqrt(var)
        std = np.where((count == 0) | (std < min_std), 1.0, std)
        return cls(np.where(count == 0, 0.0, mean), std)

    def apply(self, x: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(x - mean) / std as float32, then NaN -> `fill` (0: the training mean of that column)."""
        z = (np.asarray(x, np.float32) - self.mean) / self.std
        return np.where(np.isnan(z), np.float32(fill), z).astype(np.float32)

    def save(self, path: str | Path) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    @classmethod
    def load(cls, path: str | Path) -> "MocapStats":
        with np.load(path) as f:
            return cls(f["mean"], f["std"])


def store_arrays(x: np.ndarray) -> tuple[np.ndarray, dict | None]:
    """What the (finite-only) feature store keeps: NaN -> 0, and the whole-NaN columns as side information."""
    nan_cols = np.flatnonzero(np.isnan(x).all(axis=0))
    if np.isnan(x).any() and len(nan_cols) < np.isnan(x).any(axis=0).sum():
        raise ValueError("partly NaN columns: store only interpolated mocap (interpolate=True)")
    return np.nan_to_num(x, nan=0.0), ({"nan_columns": nan_cols.tolist()} if len(nan_cols) else None)


def stored_mocap(store, utt: str) -> np.ndarray:
    """One utterance from a mocap FeatureStore, float32, with its whole-NaN columns NaN again."""
    x = np.array(store[utt], dtype=np.float32)
    side = store.times(utt) or {}
    if side.get("nan_columns"):
        x[:, side["nan_columns"]] = np.nan
    return x


def mocap_store(store_dir: str | Path, frames: int = 200, corpus: str | None = None, streams=MOCAP_STREAMS):
    """The mocap FeatureStore at `store_dir` (created, or reopened when made with the same settings)."""
    from features.store import FeatureStore
    dims = sum(STREAM_WIDTHS[s] for s in streams)
    return FeatureStore.create(
        store_dir, name=f"Mocap{dims}x{frames}", extractor="utterance_mocap",
        params={"frames": frames, "streams": list(streams), "interpolate": True},
        dims=dims, frame_rate=None, corpus=corpus,
        extra={"norm_pooling": "frames", "column_order": column_layout(streams),
               "nan_policy": "NaN kept through block averaging, then linear interpolation over frames per column; "
                             "whole-NaN columns stored as 0 and listed in the index side information "
                             "(nan_columns): read with features.mocap.stored_mocap, fill after normalisation",
               "wearer_rule": "IEMOCAP: mocap only for utterances whose speaker letter equals the dialog's marker "
                              "letter",
               "manifest_rule": "a manifest row's mocap_path: one file, the utterance's three streams side by side "
                                "(189 value columns), whole file; a row without mocap_path has no mocap"})


def mocap_source(record: Utterance) -> str:
    """What a record's mocap is read from, for the errors file: its mocap_path, IEMOCAP's dialog files, or none."""
    way = mocap_way(record)
    return {"file": str(record.mocap_path), "iemocap": f"{record.dialog} MOCAP", "none": "mocap_path (empty)"}[way]


def extract_mocap(records, store, *, root=None, n: int = 200, streams=MOCAP_STREAMS,
                  progress: bool = True) -> tuple[int, int, int]:
    """(extracted, already there, without mocap) for `records` into `store`, each read the way `record_mocap`
    picks; the reason of every record without mocap goes to the store's errors file."""
    with store.writer(worker="0of1") as w:
        todo = [r for r in records if r.utt_id not in store]
        ok = err = 0
        for r in tqdm(todo, desc=store.meta["name"], unit="utt", disable=not progress):
            x, reason = record_mocap(r, root, n=n, streams=streams)
            if x is None:
                w.error(r.utt_id, mocap_source(r), reason)
                err += 1
                continue
            feats, side = store_arrays(x)
            w.add(r.utt_id, feats, side)
            ok += 1
    return ok, len(records) - len(todo), err

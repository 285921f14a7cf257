"""FeatureStore: one on-disk format for every feature set (LLDs, mel, wav2vec2, text tokens, words, mocap).

    <store>/meta.json                   extractor, parameters, dims, frame rate, dtype, corpus, code version
    <store>/shards/data-<tag>.npy       frames x dims, all utterances of the shard packed back to back
    <store>/shards/index-<tag>.json     {"utts": [...], "offsets": [...], "frames": [...], "times": {...}}
    <store>/errors-<worker>.csv         inputs that could not be extracted, with the reason

A shard becomes visible only when its index file exists, and the index is renamed into place only after the
data file is complete and fsynced. A killed extraction therefore leaves either a whole shard or nothing
(an orphan data file without index is ignored and later overwritten), and a re-run skips every utterance
already indexed. Reading maps each shard with `np.load(mmap_mode="r")`: `store[utt]` is a zero-copy view,
so stores larger than RAM iterate in constant memory.
"""
from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils import OutputError, atomic_path, atomic_write_text

META = "meta.json"
_SHARD = re.compile(r"index-(?P<tag>.+)\.json$")


class StoreError(Exception):
    pass


class BadFeatures(StoreError):
    """One utterance's features cannot be stored (non-finite values, float16 overflow, wrong shape)."""

    def __init__(self, utt: str, reason: str):
        super().__init__(f"{utt}: {reason}")
        self.utt, self.reason = utt, reason


@dataclass(frozen=True)
class Entry:
    shard: int
    offset: int
    frames: int


def _code_version() -> str:
    head = Path(__file__).resolve().parents[1] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return "unknown"


class FeatureStore:
    """Read access to a store; `FeatureStore.create` makes or reopens one for writing."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / META
        if not meta_path.is_file():
            raise StoreError(f"{self.root}: not a feature store (no {META})")
        self.meta = json.loads(meta_path.read_text())
        self.dims = int(self.meta["dims"])
        self.dtype = np.dtype(self.meta["dtype"])
        self.refresh()

    # -------------------------------------------------------------- creation
    @classmethod
    def create(cls, root: str | Path, *, name: str, extractor: str, params: dict, dims: int,
               frame_rate: float | None, dtype: str = "float32", corpus: str | None = None,
               extra: dict | None = None) -> "FeatureStore":
        """New store, or the existing one at `root` if it was made with the same extractor and parameters."""
        root = Path(root)
        meta = {"name": name, "extractor": extractor, "params": params, "dims": int(dims),
                "frame_rate": frame_rate, "dtype": np.dtype(dtype).name, "corpus": corpus,
                "code_version": _code_version(), **(extra or {})}
        meta = json.loads(json.dumps(meta))  # normalise tuples etc. for the comparison below
        if (root / META).is_file():
            old = json.loads((root / META).read_text())
            same = ("extractor", "params", "dims", "frame_rate", "dtype")
            diff = [k for k in same if old.get(k) != meta.get(k)]
            if diff:
                raise StoreError(f"{root}: existing store was made with different {', '.join(diff)} "
                                 f"(old {[old.get(k) for k in diff]}, new {[meta.get(k) for k in diff]}); "
                                 "use another folder or delete it")
        else:
            try:
                (root / "shards").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"{root}: cannot create the feature store ({e.strerror or e})") from None
            atomic_write_text(root / META, json.dumps(meta, indent=1))
        return cls(root)

    def describe(self) -> dict:
        """What a checkpoint records about the features it was trained on."""
        return {k: self.meta.get(k) for k in ("name", "extractor", "params", "dims", "frame_rate")}

    # -------------------------------------------------------------- reading
    def refresh(self) -> None:
        """(Re)load the index of every complete shard."""
        self._shards: list[Path] = []
        self._maps: dict[int, np.ndarray] = {}
        self._index: dict[str, Entry] = {}
        self._times: dict[str, dict] = {}
        shard_dir = self.root / "shards"
        for idx_path in sorted(shard_dir.glob("index-*.json")) if shard_dir.is_dir() else []:
            tag = _SHARD.search(idx_path.name)["tag"]
            index = json.loads(idx_path.read_text())
            k = len(self._shards)
            self._shards.append(shard_dir / f"data-{tag}.npy")
            for utt, off, n in zip(index["utts"], index["offsets"], index["frames"]):
                self._index[utt] = Entry(k, int(off), int(n))
            self._times.update(index.get("times", {}))

    def _map(self, k: int) -> np.ndarray:
        if k not in self._maps:
            self._maps[k] = np.load(self._shards[k], mmap_mode="r")
        return self._maps[k]

    def __contains__(self, utt: str) -> bool:
        return utt in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[str]:
        return list(self._index)

    def frames(self, utt: str) -> int:
        return self._index[utt].frames

    def seconds(self, utts) -> float | None:
        """Total audio duration of `utts` (their frames over the store's frame rate, e.g. for a real-time
        factor); None when the store has no frame rate (utterance-level or event-based features)."""
        rate = self.meta.get("frame_rate")
        return sum(self.frames(u) for u in utts) / rate if rate else None

    def __getitem__(self, utt: str) -> np.ndarray:
        """(frames, dims) read-only view into the memory-mapped shard: no copy until you compute with it."""
        try:
            e = self._index[utt]
        except KeyError:
            raise KeyError(f"{utt!r} not in feature store {self.root}") from None
        return self._map(e.shard)[e.offset: e.offset + e.frames]

    def rows(self, utt: str, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of one utterance (a view), e.g. one chunk."""
        e = self._index[utt]
        if not 0 <= start <= stop <= e.frames:
            raise IndexError(f"{utt}: rows {start}:{stop} outside 0:{e.frames}")
        return self._map(e.shard)[e.offset + start: e.offset + stop]

    def times(self, utt: str) -> dict | None:
        """Per-row side information stored with the features (e.g. word start/end times), if any."""
        return self._times.get(utt)

    def errors(self) -> list[dict]:
        out = []
        for p in sorted(self.root.glob("errors-*.csv")):
            with open(p, newline="") as f:
                out += list(csv.DictReader(f))
        return out

    # -------------------------------------------------------------- writing
    def writer(self, worker: str = "0", *, flush_mb: float = 256.0, flush_seconds: float = 60.0) -> "StoreWriter":
        return StoreWriter(self, worker, flush_mb=flush_mb, flush_seconds=flush_seconds)


class StoreWriter:
    """Buffers utterances and writes them as one shard when the buffer holds `flush_mb` or every
    `flush_seconds`, so a killed run loses at most that much finished work. Use as a context manager.

    Every value stored is finite: `add` refuses NaN/inf with BadFeatures, so statistics and training never
    meet them. One process at a time writes a given worker tag (an exclusive lock file `.lock-<tag>`); writers
    of tags `<i>of<N>` with the same N split the items and may run together, any other combination (a second
    `0of1`, or `0of1` beside `0of2`, which would extract the same utterances twice) is refused."""

    def __init__(self, store: FeatureStore, worker: str, *, flush_mb: float, flush_seconds: float):
        if not re.fullmatch(r"[\w.]+", worker):
            raise ValueError(f"worker tag {worker!r}: letters, digits, '_' and '.' only")
        self.store, self.worker = store, worker
        self._lock = _lock_worker(store.root, worker)
        store.refresh()  # what a writer that held the lock before us finished
        self.flush_bytes, self.flush_seconds = flush_mb * 2**20, flush_seconds
        self._buf: list[tuple[str, np.ndarray, dict | None]] = []
        self._bytes, self._last = 0, time.monotonic()
        shard_dir = store.root / "shards"
        used = [int(m[1]) for p in shard_dir.glob(f"*-{worker}-*.*")
                if (m := re.search(rf"-{re.escape(worker)}-(\d+)\.", p.name))]
        self._next = max(used, default=-1) + 1
        self._errors: list[tuple[str, str, str]] = []
        self._errors_path = store.root / f"errors-{worker}.csv"
        if self._errors_path.is_file():  # keep earlier runs' errors for inputs still not extracted
            with open(self._errors_path, newline="") as f:
                self._errors = [(r["utterance"], r["file"], r["reason"]) for r in csv.DictReader(f)]

    def add(self, utt: str, features: np.ndarray, times: dict | None = None) -> None:
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.store.dims:
            raise BadFeatures(utt, f"features of shape {x.shape}, store {self.store.root} holds (T, {self.store.dims})")
        bad = int(x.size - np.isfinite(x).sum())
        if bad:
            raise BadFeatures(utt, f"non-finite features ({bad} NaN/inf values)")
        with np.errstate(over="ignore"):  # overflow is detected just below, with a clear message
            y = x.astype(self.store.dtype, copy=False)
        if self.store.dtype == np.float16 and not np.isfinite(y).all():
            raise BadFeatures(utt, f"values overflow float16 (max |x| = {np.abs(x).max():.3g}); use a float32 store")
        self._buf.append((utt, y, times))
        self._bytes += y.nbytes
        if self._bytes >= self.flush_bytes or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def error(self, utt: str, file: str, reason: str) -> None:
        self._errors = [e for e in self._errors if e[0] != utt] + [(utt, str(file), reason)]

    def flush(self) -> None:
        if self._buf:
            tag = f"{self.worker}-{self._next:05d}"
            shard_dir = self.store.root / "shards"
            data = np.concatenate([x for _, x, _ in self._buf]) if len(self._buf) > 1 else self._buf[0][1]
            with atomic_path(shard_dir / f"data-{tag}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(data))
            lengths = [len(x) for _, x, _ in self._buf]
            index = {"utts": [u for u, _, _ in self._buf], "frames": lengths,
                     "offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist(),
                     "times": {u: t for u, _, t in self._buf if t is not None}}
            atomic_write_text(shard_dir / f"index-{tag}.json", json.dumps(index))
            self._next += 1
            self._buf, self._bytes = [], 0
            self.store.refresh()
        done = set(self.store._index)
        self._errors = [e for e in self._errors if e[0] not in done]
        with atomic_path(self._errors_path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["utterance", "file", "reason"])
            w.writerows(self._errors)
        self._last = time.monotonic()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.flush()  # on an exception too: what finished is kept
        finally:
            self._lock.close()  # releases the lock


def _lock_worker(root: Path, worker: str):
    """Hold `<root>/.lock-<worker>` exclusively, then refuse if a conflicting writer holds another tag's lock."""
    import fcntl
    mine = open(root / f".lock-{worker}", "a")
    try:
        fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        mine.close()
        raise StoreError(f"{root}: another process is already writing to this store as {worker!r} (the same "
                         "--shard); wait for it to finish, or split the work with --shard i/N") from None
    n_of = re.fullmatch(r"\d+of(\d+)", worker)
    for other in sorted(root.glob(".lock-*")):
        tag = other.name[len(".lock-"):]
        if tag == worker or (n_of and (m := re.fullmatch(r"\d+of(\d+)", tag)) and m[1] == n_of[1]):
            continue  # ourselves, or a shard of the same split: they cooperate
        with open(other, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                mine.close()
                raise StoreError(f"{root}: another process is writing to this store as {tag!r}; running it beside "
                                 f"{worker!r} would extract the same utterances twice. Wait for it, or run shards "
                                 "of one split (--shard 0/N ... N-1/N) together") from None
    return mine


def dir_size(path: str | Path) -> int:
    return sum(os.path.getsize(p) for p in Path(path).rglob("*") if p.is_file())


def with_features(records: list, store: FeatureStore, what: str) -> list:
    """The records whose utterance is in `store`; the others are listed on stderr, never silently dropped."""
    import sys
    missing = [r.utt_id for r in records if r.utt_id not in store]
    if missing:
        print(f"warning: {len(missing)} {what} utterance(s) have no features in {store.root} and are left out: "
              f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}", file=sys.stderr)
    return [r for r in records if r.utt_id in store]

"""FeatureStore: one on-disk format for every feature set (LLDs, mel, wav2vec2, text tokens, words, mocap).

    <store>/meta.json                   extractor, parameters, dims, frame rate, dtype, corpus, code version
    <store>/shards/data-<tag>.npy       frames x dims, all utterances of the shard packed back to back
    <store>/shards/index-<tag>.json     {"utts": [...], "offsets": [...], "frames": [...], "times": {...},
                                         "inputs": {utt: fingerprint}, "removed": [...], "written_ns": ...}
    <store>/errors-<worker>.csv         inputs that could not be extracted, with the reason

Each utterance records a fingerprint of the inputs its extractor read (size and mtime_ns of the WAV, the
transcript or the TextGrid; a hash of an inline transcript): `changed_inputs` names the utterances whose inputs
differ now, extraction re-extracts them and read-only use leaves them out with a warning, so a store never
serves features of an input that changed. A re-extracted utterance lands in a newer shard, which wins over the
older ones (`written_ns` orders shards; `removed` withdraws an utterance whose re-extraction failed).

A shard becomes visible only when its index file exists, and the index is renamed into place only after the
data file is complete and fsynced. A killed extraction therefore leaves either a whole shard or nothing
(an orphan data file without index is ignored and later overwritten), and a re-run skips every utterance
already indexed. Reading maps each shard with `np.load(mmap_mode="r")`: `store[utt]` is a zero-copy view,
so stores larger than RAM iterate in constant memory.

A store holds float32 (the default) or float16 (`--dtype float16` of the SSL extractors: half the disk and page
cache, rounding error about 5e-4 relative). Readers get the stored dtype back, a zero-copy view: every consumer
z-normalises through utils.znorm (float64) and NormTerm statistics accumulate in float64, so a float16 store is
never computed with in float16; reopening a store with another dtype is refused (no mixed-dtype shards). Before
extraction, `require_disk_space` refuses a disk that cannot hold the store's estimated size.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
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
        self._inputs: dict[str, dict] = {}
        shard_dir = self.root / "shards"
        indexes = []
        for idx_path in sorted(shard_dir.glob("index-*.json")) if shard_dir.is_dir() else []:
            index = json.loads(idx_path.read_text())
            indexes.append((index.get("written_ns", 0), idx_path.name, _SHARD.search(idx_path.name)["tag"], index))
        self._latest_ns = max((t[0] for t in indexes), default=0)
        for _, _, tag, index in sorted(indexes, key=lambda t: t[:2]):  # oldest first: a re-extraction wins
            for utt in index.get("removed", []):
                for table in (self._index, self._times, self._inputs):
                    table.pop(utt, None)
            k = len(self._shards)
            self._shards.append(shard_dir / f"data-{tag}.npy")
            for utt, off, n in zip(index["utts"], index["offsets"], index["frames"]):
                self._index[utt] = Entry(k, int(off), int(n))
                self._times.pop(utt, None)
                self._inputs.pop(utt, None)
            self._times.update(index.get("times", {}))
            self._inputs.update(index.get("inputs", {}))

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

    def entry(self, utt: str) -> list:
        """[shard file, offset, frames] of `utt`'s stored rows: it changes whenever the utterance is written again
        (shards are never rewritten), so rows derived from it can tell they are stale (features.derived)."""
        e = self._index[utt]
        return [self._shards[e.shard].name, e.offset, e.frames]

    def times(self, utt: str) -> dict | None:
        """Per-row side information stored with the features (e.g. word start/end times), if any."""
        return self._times.get(utt)

    def inputs(self, utt: str) -> dict | None:
        """The fingerprint of the inputs `utt` was extracted from; None for stores written before they were
        recorded (and for imports, which have none)."""
        return self._inputs.get(utt)

    def changed_inputs(self, records) -> list[tuple[str, str]]:
        """(utterance, file) of every record held here whose input differs from the one it was extracted from.
        An input that cannot be seen now (audio not copied to this machine) or was never recorded is unknown,
        not changed."""
        out = []
        for r in records:
            recorded = self._inputs.get(r.utt_id) if r.utt_id in self._index else None
            for kind, was in (recorded or {}).items():
                now = input_fingerprint(r, kind)
                if now is not None and _comparable(was, now) and not _same_input(was, now):
                    out.append((r.utt_id, now.get("path", "its inline transcript")))
                    break
        return out

    def without_fingerprints(self, utts) -> list[str]:
        """The utterances of `utts` held here with no recorded input fingerprint (older stores, imports)."""
        return [u for u in utts if u in self._index and u not in self._inputs]

    def require(self, flag: str, *, what: str, extractors: tuple[str, ...], known: tuple[str, ...] = (),
                dims: int | None = None, pooling: str | None = None, frame_level: bool | None = None) -> None:
        """StoreError (one line: the flag, what was expected, what was found) unless this store holds the kind of
        features a system needs: made by one of `extractors`; a store made by another extractor of `known` is
        refused outright, one made elsewhere (an import, a synthetic store) is judged by what it records:
        `dims`, NormTerm `pooling`, and whether it has a frame rate (`frame_level`)."""
        from features.normterm import store_pooling
        made_by, pooled = self.meta.get("extractor"), store_pooling(self.meta)
        rate = self.meta.get("frame_rate")
        problems = []
        if made_by not in extractors and made_by in known:
            problems.append(f"made by {made_by}")
        if dims is not None and self.dims != dims:
            problems.append(f"{self.dims}-d")
        if pooling is not None and pooled not in (None, pooling):
            problems.append(f"NormTerm pooling {pooled}")
        if frame_level is not None and (rate is not None) != frame_level:
            problems.append(f"frame rate {rate}" if rate is not None else "no frame rate (not frame-level)")
        if problems:
            raise StoreError(f"{flag} {self.root}: expected {what}, found a store of {self.meta.get('name')} "
                             f"({', '.join(problems)})")

    def errors(self) -> list[dict]:
        out = []
        for p in sorted(self.root.glob("errors-*.csv")):
            with open(p, newline="") as f:
                out += list(csv.DictReader(f))
        return out

    # -------------------------------------------------------------- writing
    def writer(self, worker: str = "0", *, flush_mb: float = 256.0, flush_seconds: float = 60.0,
               allow_nonfinite: bool = False) -> "StoreWriter":
        w = StoreWriter(self, worker, flush_mb=flush_mb, flush_seconds=flush_seconds)
        w.allow_nonfinite = allow_nonfinite  # only features.matio's import of the originals' files (see there)
        return w


class StoreWriter:
    """Buffers utterances and writes them as one shard when the buffer holds `flush_mb` or every
    `flush_seconds`, so a killed run loses at most that much finished work. Use as a context manager.

    Every value stored is finite: `add` refuses NaN/inf with BadFeatures, so statistics and training never
    meet them (except in imports of the originals' feature files, `allow_nonfinite`: those keep the NaN/inf the
    originals scored, which z-normalisation repairs as there and NormTerm statistics leave out). One process at
    a time writes a given worker tag (an exclusive lock file `.lock-<tag>`); writers of tags `<i>of<N>` with the
    same N split the items and may run together, any other combination (a second `0of1`, or `0of1` beside
    `0of2`, which would extract the same utterances twice) is refused."""

    allow_nonfinite = False  # set by FeatureStore.writer

    def __init__(self, store: FeatureStore, worker: str, *, flush_mb: float, flush_seconds: float):
        if not re.fullmatch(r"[\w.]+", worker):
            raise ValueError(f"worker tag {worker!r}: letters, digits, '_' and '.' only")
        self.store, self.worker = store, worker
        self._lock = _lock_worker(store.root, worker)
        store.refresh()  # what a writer that held the lock before us finished
        self.flush_bytes, self.flush_seconds = flush_mb * 2**20, flush_seconds
        self._buf: list[tuple[str, np.ndarray, dict | None, dict | None]] = []
        self._removed: list[str] = []
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

    def add(self, utt: str, features: np.ndarray, times: dict | None = None, inputs: dict | None = None) -> None:
        """Buffer one utterance; `inputs` is the fingerprint of what it was extracted from (see input_fingerprints),
        so a later change of those inputs is seen. An utterance already stored is replaced."""
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.store.dims:
            raise BadFeatures(utt, f"features of shape {x.shape}, store {self.store.root} holds (T, {self.store.dims})")
        bad = int(x.size - np.isfinite(x).sum())
        if bad and not self.allow_nonfinite:
            raise BadFeatures(utt, f"non-finite features ({bad} NaN/inf values)")
        with np.errstate(over="ignore"):  # overflow is detected just below, with a clear message
            y = x.astype(self.store.dtype, copy=False)
        if self.store.dtype == np.float16 and int(y.size - np.isfinite(y).sum()) > bad:
            raise BadFeatures(utt, f"values overflow float16 (max |x| = {np.abs(x).max():.3g}); use a float32 store")
        self._buf.append((utt, y, times, inputs))
        self._bytes += y.nbytes
        if self._bytes >= self.flush_bytes or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def error(self, utt: str, file: str, reason: str) -> None:
        self._errors = [e for e in self._errors if e[0] != utt] + [(utt, str(file), reason)]

    def drop(self, utt: str) -> None:
        """Withdraw `utt`'s stored features (its inputs changed and could not be extracted again) at the next flush."""
        self._removed.append(utt)

    def flush(self) -> None:
        if self._buf or self._removed:
            tag = f"{self.worker}-{self._next:05d}"
            shard_dir = self.store.root / "shards"
            if self._buf:
                data = np.concatenate([b[1] for b in self._buf]) if len(self._buf) > 1 else self._buf[0][1]
                with atomic_path(shard_dir / f"data-{tag}.npy", need=data.nbytes + 128) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, np.ascontiguousarray(data))
            lengths = [len(b[1]) for b in self._buf]
            index = {"utts": [b[0] for b in self._buf], "frames": lengths,
                     "offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist(),
                     "times": {u: t for u, _, t, _ in self._buf if t is not None},
                     "inputs": {u: i for u, _, _, i in self._buf if i}, "removed": self._removed,
                     "written_ns": max(time.time_ns(), self.store._latest_ns + 1)}  # after all it read
            atomic_write_text(shard_dir / f"index-{tag}.json", json.dumps(index))
            self._next += 1
            self._buf, self._bytes, self._removed = [], 0, []
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

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None or not issubclass(exc_type, OutputError):  # a full disk: no second attempt
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


_INPUT_FILE = {"audio": "audio_path", "text": "transcript_path", "words": "alignment_path"}


def input_fingerprint(record, kind: str) -> dict | None:
    """What identifies the input of `kind` ("audio", "text", "words": what an extractor reads) of a record (a
    corpus Utterance or an extraction Item) now: the size and mtime_ns of its file (cheap: never a hash of audio),
    or a hash of an inline transcript (IEMOCAP); None when the file cannot be seen. An audio input that is a
    segment of its file (a manifest row's start/end) records the segment too, so an edited segment re-extracts."""
    if kind == "text" and getattr(record, "transcript", None) is not None:
        return {"sha1": hashlib.sha1(record.transcript.strip().encode("utf-8", "surrogatepass")).hexdigest()}
    path = getattr(record, _INPUT_FILE.get(kind, ""), None)
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    if not st:
        return None
    segment = getattr(record, "segment", None) if kind == "audio" else None
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            **({"segment": [float(segment[0]), float(segment[1])]} if segment else {})}


def input_fingerprints(record, kind: str) -> dict | None:
    """The fingerprint StoreWriter.add records: {kind: input_fingerprint} (None when the input is not a file)."""
    fp = input_fingerprint(record, kind)
    return {kind: fp} if fp else None


def _comparable(was: dict, now: dict) -> bool:
    return ("sha1" in was) == ("sha1" in now)


def _same_input(was: dict, now: dict) -> bool:
    if "sha1" in was:
        return was["sha1"] == now["sha1"]
    return (was.get("size"), was.get("mtime_ns"), was.get("segment")) == (now["size"], now["mtime_ns"],
                                                                       now.get("segment"))


def without_changed_inputs(records: list, stores, what: str) -> list:
    """`records` less those whose inputs changed since their features in any of `stores` were extracted; those
    are listed on stderr with the changed file (read-only use: re-running the extraction updates them)."""
    changed: dict[str, tuple[str, Path]] = {}
    for store in stores:
        for utt, file in store.changed_inputs(records):
            changed.setdefault(utt, (file, store.root))
        note_unfingerprinted(store, [r.utt_id for r in records])
    if changed:
        shown = "; ".join(f"{u} ({f} changed after {root} was extracted)" for u, (f, root) in list(changed.items())[:5])
        print(f"warning: {len(changed)} {what} utterance(s) are left out, their inputs changed since extraction: "
              f"{shown}{' ...' if len(changed) > 5 else ''}; run the extraction again (feat_*.py) to update them",
              file=sys.stderr)
    return [r for r in records if r.utt_id not in changed]


_NOTED: set[str] = set()


def note_unfingerprinted(store: FeatureStore, utts) -> None:
    """One line, once per store and process, when a store cannot tell whether its inputs changed."""
    old = store.without_fingerprints(utts)
    if old and str(store.root) not in _NOTED:
        _NOTED.add(str(store.root))
        print(f"note: {len(old)} utterance(s) in {store.root} were extracted before input fingerprints were recorded "
              "(or imported): a later change of their inputs cannot be detected", file=sys.stderr)


# ------------------------------------------------------------------------------ disk space, before extraction

DISK_MARGIN = 1.15  # the estimate's slack: utterance lengths of a sample, shard headers, index files
_SAMPLE = 200  # inputs whose length is read to estimate the mean (WAV headers only: cheap on any corpus)


def mean_rows(items: list, *, frame_rate: float | None, input_kind: str, sample: int = _SAMPLE) -> float:
    """Estimated mean stored rows per item from an even sample of `items`: audio length (WAV header) x
    `frame_rate`, or for text / words stores one row per word plus two (sub-word tokens of a BPE model and the
    special tokens; the margin covers the rest). 0 when no sampled input can be read (they fail as errors)."""
    import soundfile as sf
    step = max(1, len(items) // sample)
    rows = []
    for it in items[::step][:sample]:
        try:
            if input_kind == "audio" and frame_rate:
                info = sf.info(str(it.audio_path))
                rows.append(info.frames / info.samplerate * frame_rate)
            elif getattr(it, "transcript", None) is not None:
                rows.append(1.5 * len(it.transcript.split()) + 2)
            elif getattr(it, "transcript_path", None) is not None:
                rows.append(1.5 * len(Path(it.transcript_path).read_text(errors="replace").split()) + 2)
        except (OSError, RuntimeError):  # unreadable inputs are listed as errors by the extraction itself
            continue
    return float(np.mean(rows)) if rows else 0.0


def estimated_bytes(*, utterances: int, mean_rows: float, dims: int, dtype) -> int:
    """Disk a store of `utterances` x `mean_rows` x `dims` values of `dtype` needs, with DISK_MARGIN."""
    return int(utterances * mean_rows * dims * np.dtype(dtype).itemsize * DISK_MARGIN)


def require_disk_space(store: "FeatureStore", items: list, *, frame_rate: float | None, input_kind: str) -> int:
    """StoreError before any extraction when the disk holding `store` has less free space than the estimated size
    of `items`' features (naming the estimate and the free space); the estimate in bytes otherwise."""
    import shutil
    if not items:
        return 0
    need = estimated_bytes(utterances=len(items), dims=store.dims, dtype=store.dtype,
                           mean_rows=mean_rows(items, frame_rate=frame_rate, input_kind=input_kind))
    free = shutil.disk_usage(store.root).free
    if need > free:
        half = " (a --dtype float16 store needs half)" if store.dtype == np.float32 else ""
        raise StoreError(f"{store.root}: not enough disk space for {len(items)} utterances: estimated "
                         f"{_gib(need)} of {store.dtype.name} features{half}, {_gib(free)} free; free space or "
                         "use another folder (--store)")
    return need


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def dir_size(path: str | Path) -> int:
    return sum(os.path.getsize(p) for p in Path(path).rglob("*") if p.is_file())


def with_features(records: list, store: FeatureStore, what: str) -> list:
    """The records whose utterance is in `store` with unchanged inputs; the others are listed on stderr, never
    silently dropped."""
    records = without_changed_inputs(records, [store], what)
    missing = [r.utt_id for r in records if r.utt_id not in store]
    if missing:
        print(f"warning: {len(missing)} {what} utterance(s) have no features in {store.root} and are left out: "
              f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}", file=sys.stderr)
    return [r for r in records if r.utt_id in store]

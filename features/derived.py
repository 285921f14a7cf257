"""Rows derived from a feature store by a fixed function, written once and memory-mapped (`DerivedStore`).

A loader that z-normalises and pools the same stored frames in every epoch (speech+text+mocap's speech stream:
1024-d wav2vec2 frames z-normalised in float64, then averaged 5 by 5) spends CPU beside the training step on two
cores. The result depends only on the source rows and a few parameters (the training part's mean and std, the
pooling), so it is computed once per (source store, parameters) and read back from its own store, bit for bit
the rows the function gives.

Where: `<source store>/derived/<name>-<hash of the parameters>/`, a FeatureStore of its own (deleting the
source store deletes its derivations). Each derived utterance records which source entry it was made from (its
shard file, offset and length); a source utterance extracted again since is not served from here (`get` gives
None, and the caller computes the rows itself) until `ensure` derives it again. A derivation that cannot be
written (read-only folder, too little disk, another process writing it) is skipped with a note: the caller
computes the rows on the fly, as without it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from typing import Callable

import numpy as np

from features.store import DISK_MARGIN, META, FeatureStore, StoreError
from utils import OutputError


def _digest(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def array_digest(*arrays) -> str:
    """A short hash of arrays' dtype, shape and bytes (e.g. z-norm statistics), for a derivation's parameters."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class DerivedStore:
    """`fn(source[utt])` for the utterances `ensure` was given, as a memory-mapped store (see the module's text).
    `fn` must be deterministic and return (rows, dims) arrays; `params` must name everything its output depends
    on besides the source rows (a version of the function included)."""

    def __init__(self, source: FeatureStore, *, name: str, params: dict, fn: Callable[[np.ndarray], np.ndarray],
                 dims: int, dtype: str = "float32", rows_of: Callable[[int], int] = lambda frames: frames):
        self.source, self.fn, self.name, self.rows_of = source, fn, name, rows_of  # rows_of: for the disk estimate
        self.params = {"source": source.describe(), **params}
        self.root = source.root / "derived" / f"{name}-{_digest(self.params)}"
        self.dims, self.dtype = int(dims), np.dtype(dtype)
        self.store: FeatureStore | None = FeatureStore(self.root) if (self.root / META).is_file() else None

    def _current(self, utt: str) -> bool:
        return (self.store is not None and utt in self.store and utt in self.source
                and (self.store.inputs(utt) or {}).get("source") == self.source.entry(utt))

    def get(self, utt: str) -> np.ndarray | None:
        """The derived rows of `utt` (a read-only view), or None when they are not held or their source changed."""
        return self.store[utt] if self._current(utt) else None

    def ensure(self, utts, *, progress: bool = True) -> int:
        """Derive every utterance of `utts` held by the source and not yet derived from its current entry; the
        number derived now. Returns 0, with a note on stderr, when the derivation cannot be written."""
        from tqdm import tqdm
        todo = [u for u in dict.fromkeys(utts) if u in self.source and not self._current(u)]
        if not todo:
            return 0
        try:
            need = sum(self.rows_of(self.source.frames(u)) for u in todo) * self.dims * self.dtype.itemsize * DISK_MARGIN
            self.root.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.root.parent).free
            if need > free:
                raise StoreError(f"{self.root}: about {need / 2**30:.2f} GiB needed, {free / 2**30:.2f} GiB free")
            store = FeatureStore.create(self.root, name=self.name, extractor=f"derived:{self.name}",
                                        params=self.params, dims=self.dims, frame_rate=None, dtype=self.dtype.name)
            with store.writer() as w:
                for utt in tqdm(todo, desc=f"{self.name} (once, then read back)", disable=not progress,
                                unit="utt", file=sys.stderr):
                    w.add(utt, self.fn(self.source[utt]), inputs={"source": self.source.entry(utt)})
        except (StoreError, OutputError, OSError) as e:
            print(f"note: {self.name} not written ({e}); computed in the loader instead", file=sys.stderr)
            return 0
        self.store = FeatureStore(self.root)
        return len(todo)

"""Text features of degraded transcripts (`words:R` removed words, `wer:R` recogniser errors), re-encoded.

The very encoder that made a token-feature store encodes the degraded transcript again.

Blanking rows of contextual features (RoBERTa, BERT) is not removing words: the special tokens and the
neighbouring tokens were computed with the whole sentence in view and still carry it (measured on a demo
audio-text model, Val CCC at 100 % of the words "dropped" by blanking: 0.1421; re-encoded without them:
0.0341; text absent: 0.0312). So a degraded transcript is encoded again, and, because a sweep scores several
models and seeds on the same draws, the re-encoded features are cached in a FeatureStore per condition and
simulation seed under `<text store>/degraded/<condition>_seed<s>/` (each utterance with the sha256 of the text
it was encoded from, so a changed draw, vocabulary or transcript is encoded again, never served stale).

The transcript's words are its whitespace-separated tokens (punctuation stays attached, as the encoder saw
it); the degraded transcript is its words joined by single spaces. A condition that changes nothing (rate 0,
or a draw that edits no word) returns the store's own features, so `words:0` is exactly the complete data.
No word left returns None: the caller's system treats that as its text absent.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from features.missing import Condition, edit_words, parse_condition, utterance_rng
from features.store import FeatureStore

EXTRACTORS = ("TokenFeatures",)  # stores whose rows a transcript re-encoding reproduces


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class DegradedText:
    """Re-encoded degraded transcripts for one token-feature store (see the module docstring).

    `vocabulary`: the words substitutes and insertions of `wer` are drawn from (the training transcripts'
    words). `encoder`: a callable list[str] -> list[(rows, dims) array]; default the store's own
    `features.text.TokenFeatures`, loaded on first need. `encoded` counts the transcripts this object encoded
    (a sweep that finds them cached encodes none)."""

    def __init__(self, store: FeatureStore, vocabulary: Sequence[str] = (), device: str = "cpu",
                 progress: bool = False, encoder=None):
        if store.meta.get("extractor") not in EXTRACTORS:
            raise ValueError(f"{store.root}: {store.meta.get('extractor')} features cannot be re-encoded from a "
                             f"transcript (needs {' or '.join(EXTRACTORS)})")
        self.store, self.vocabulary = store, list(dict.fromkeys(vocabulary))
        self.device, self.progress = device, progress
        self._encoder = encoder
        self._caches: dict[str, FeatureStore] = {}
        self._edits: dict[tuple, tuple[list, dict]] = {}  # prepare's draws, read again by features()
        self.encoded = 0

    # ------------------------------------------------------------------ the degraded words
    def degraded(self, utt: str, transcript: str, cond: Condition | str, sim_seed: int) -> tuple[list, dict]:
        """(the degraded transcript's words, edit info) of one utterance: seeded by (sim_seed, utt, cond); drawn
        once per object (`prepare` then `features` do not edit and measure the WER twice)."""
        cond = parse_condition(cond)
        key = (utt, str(cond), int(sim_seed), transcript)
        if key not in self._edits:
            self._edits[key] = edit_words(transcript.split(), cond, utterance_rng(sim_seed, utt, cond),
                                          self.vocabulary)
        return self._edits[key]

    def features(self, utt: str, transcript: str, cond: Condition | str, sim_seed: int
                 ) -> tuple[np.ndarray | None, dict]:
        """((rows, dims) float32 token features of the degraded transcript, un-normalised, or None when no word
        is left; the edit info). Cached; see `prepare` to encode many at once (faster)."""
        cond = parse_condition(cond)
        words, info = self.degraded(utt, transcript, cond, sim_seed)
        if words == transcript.split():
            return np.asarray(self.store[utt]), info
        if not words:
            return None, info
        text = " ".join(words)
        cache = self._cache(cond, sim_seed)
        if utt not in cache or (cache.inputs(utt) or {}).get("text_sha") != _digest(text):
            self._encode(cache, {utt: text})
        return np.asarray(cache[utt]), info

    def prepare(self, transcripts: dict, cond: Condition | str, sim_seed: int) -> dict:
        """Encode, in batches, every utterance of `transcripts` (utt -> transcript) not yet cached for this
        condition and seed; returns {utt: edit info} (e.g. the realised WER of each draw)."""
        cond = parse_condition(cond)
        infos, todo = {}, {}
        cache = None
        for utt, transcript in transcripts.items():
            words, infos[utt] = self.degraded(utt, transcript, cond, sim_seed)
            if not words or words == transcript.split():
                continue
            text = " ".join(words)
            if cache is None:
                cache = self._cache(cond, sim_seed)
            if utt not in cache or (cache.inputs(utt) or {}).get("text_sha") != _digest(text):
                todo[utt] = text
        if todo:
            self._encode(cache, todo)
        return infos

    # ------------------------------------------------------------------ the cache
    def cache_root(self, cond: Condition | str, sim_seed: int) -> Path:
        name = str(parse_condition(cond)).replace(":", "_").replace("+", "-")
        return self.store.root / "degraded" / f"{name}_seed{int(sim_seed)}"

    def _cache(self, cond: Condition, sim_seed: int) -> FeatureStore:
        key = f"{cond}|{sim_seed}"
        if key not in self._caches:
            root = self.cache_root(cond, sim_seed)
            meta = self.store.meta
            params = {"source": meta.get("params"), "source_code_version": meta.get("code_version"),
                      "condition": str(cond), "sim_seed": int(sim_seed)}
            args = dict(name=f"{meta.get('name')}_{root.name}", extractor="DegradedText", params=params,
                        dims=self.store.dims, frame_rate=None, dtype=meta.get("dtype", "float32"),
                        corpus=meta.get("corpus"))
            try:
                self._caches[key] = FeatureStore.create(root, **args)
            except Exception:  # made from another encoding of the source store: start this cache over
                shutil.rmtree(root, ignore_errors=True)
                self._caches[key] = FeatureStore.create(root, **args)
        return self._caches[key]

    def _encode(self, cache: FeatureStore, texts: dict) -> None:
        if self._encoder is None:
            from features.text import TokenFeatures
            params = self.store.meta.get("params", {})
            layer = params.get("layer", "last_hidden_state")
            self._encoder = TokenFeatures(params["model"], layer=-1 if layer == "last_hidden_state" else int(layer),
                                          device=self.device, precision=params.get("precision", "fp32"))
        utts = list(texts)
        batches = range(0, len(utts), 64)
        if self.progress:
            from tqdm import tqdm
            batches = tqdm(batches, desc=f"re-encoding {cache.root.name}", unit="batch")
        with cache.writer(flush_seconds=30.0) as w:  # a killed run keeps what was flushed
            for k in batches:
                part = utts[k:k + 64]
                for utt, feats in zip(part, self._encoder([texts[u] for u in part])):
                    w.add(utt, np.asarray(feats, np.float32), inputs={"text_sha": _digest(texts[utt])})
                self.encoded += len(part)

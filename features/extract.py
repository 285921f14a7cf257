"""The one extraction runner: inputs -> extractor -> FeatureStore, sharded, resumable, with an errors file.

An extractor is any object with these attributes (see features/mel.py for the smallest one):

    name          default store name, e.g. "Mel_Spec128"
    input         "audio" (16 kHz mono float32 waveform), "text" (transcript string) or
                  "words" (list of corpora.textgrid.Interval from the utterance's TextGrid)
    dims          feature dimension
    frame_rate    rows per second of audio, or None for token-level text
    params        dict of every setting that changes the numbers (stored in meta.json)
    min_seconds   audio shorter than this is listed as an error instead of extracted
    __call__(inputs: list) -> list of (T, dims) arrays, or of (array, times-dict) pairs

The runner loads inputs (robustly: a bad WAV, a missing transcript or TextGrid is listed with the reason and
the batch goes on), calls the extractor on batches, and falls back to one-at-a-time when a batch fails, so one
bad input never costs the others.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from corpora import read_corpus
from corpora.records import CorpusError, Utterance
from features.audio import AudioError, load_audio
from features.store import FeatureStore


class InputError(Exception):
    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass(frozen=True)
class Item:
    utt_id: str
    audio_path: Path | None = None
    transcript_path: Path | None = None
    transcript: str | None = None  # inline text (IEMOCAP)
    alignment_path: Path | None = None

    @classmethod
    def from_record(cls, r: Utterance) -> "Item":
        return cls(r.utt_id, r.audio_path, r.transcript_path, r.transcript, r.alignment_path)


def load_input(item: Item, kind: str, min_seconds: float = 0.0):
    """The extractor's input for one item; raises AudioError / InputError naming the file and the problem."""
    if kind == "audio":
        x = load_audio(item.audio_path, min_seconds=min_seconds)
        if not np.any(x):
            raise AudioError(item.audio_path, "silent (all-zero) audio")
        return x
    if kind == "text":
        if item.transcript is not None:
            text = item.transcript.strip()
            if not text:
                raise InputError(item.utt_id, "empty transcript")
            return text
        path = item.transcript_path
        if path is None or not Path(path).is_file():
            raise InputError(path or item.utt_id, "transcript missing")
        # lines joined with one space, as the original text extractor does
        text = " ".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()).strip()
        if not text:
            raise InputError(path, "empty transcript")
        return text
    if kind == "words":
        from corpora.textgrid import read_words
        path = item.alignment_path
        if path is None or not Path(path).is_file():
            raise InputError(path or item.utt_id, "TextGrid missing")
        try:
            words = read_words(path)
        except CorpusError as e:
            raise InputError(path, str(e).split(": ", 1)[-1]) from None
        if not words:
            raise InputError(path, "TextGrid has no words")
        return words
    raise ValueError(f"unknown extractor input kind {kind!r}")


def resolve_shard(spec: str | None) -> tuple[int, int]:
    """'i/N' from --shard, else torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if spec:
        try:
            i, n = (int(v) for v in spec.split("/"))
        except ValueError:
            raise SystemExit(f"--shard {spec!r}: expected i/N, e.g. 0/4") from None
        if not 0 <= i < n:
            raise SystemExit(f"--shard {spec!r}: need 0 <= i < N")
        return i, n
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@dataclass
class ExtractionSummary:
    extracted: int
    skipped_done: int
    errors: int
    seconds: float
    audio_seconds: float


def extract_to_store(extractor, items: list[Item], store: FeatureStore, *, shard: tuple[int, int] = (0, 1),
                     batch_size: int = 1, progress: bool = True, flush_seconds: float = 60.0) -> ExtractionSummary:
    i, n = shard
    mine = items[i::n]
    todo = [it for it in mine if it.utt_id not in store]
    t0, n_ok, n_err, audio_s = time.time(), 0, 0, 0.0
    with store.writer(worker=f"{i}of{n}", flush_seconds=flush_seconds) as w:
        bar = tqdm(total=len(todo), desc=f"{extractor.name} shard {i}/{n}", unit="utt", disable=not progress)
        for b in range(0, len(todo), batch_size):
            batch, inputs = [], []
            for it in todo[b: b + batch_size]:
                try:
                    inputs.append(load_input(it, extractor.input, getattr(extractor, "min_seconds", 0.0)))
                    batch.append(it)
                except (AudioError, InputError) as e:
                    w.error(it.utt_id, e.path, e.reason)
                    n_err += 1
            outputs = _run_batch(extractor, batch, inputs)
            for it, x, out in zip(batch, inputs, outputs):
                if isinstance(out, Exception):
                    w.error(it.utt_id, it.audio_path or it.transcript_path or "", f"extraction failed: {out}")
                    n_err += 1
                    continue
                feats, times = out if isinstance(out, tuple) else (out, None)
                if not np.isfinite(feats).all():
                    w.error(it.utt_id, it.audio_path or it.transcript_path or "",
                            f"non-finite features ({int((~np.isfinite(feats)).sum())} values)")
                    n_err += 1
                    continue
                w.add(it.utt_id, feats, times)
                n_ok += 1
                if extractor.input == "audio":
                    audio_s += len(x) / 16000
            bar.update(len(todo[b: b + batch_size]))
        bar.close()
    return ExtractionSummary(n_ok, len(mine) - len(todo), n_err, time.time() - t0, audio_s)


def _run_batch(extractor, batch: list[Item], inputs: list) -> list:
    if not inputs:
        return []
    try:
        return list(extractor(inputs))
    except Exception:  # e.g. out of memory on a long batch: retry one by one so only the culprit fails
        if len(inputs) == 1:
            return [sys.exc_info()[1]]
    outs = []
    for x in inputs:
        try:
            outs.append(extractor([x])[0])
        except Exception as e:  # noqa: BLE001 - reported per file in the errors CSV
            outs.append(e)
    return outs


# ------------------------------------------------------------------------------ command-line plumbing

def add_io_args(ap: argparse.ArgumentParser) -> None:
    src = ap.add_argument_group("input (one of)")
    src.add_argument("--corpus", choices=("msp-podcast", "iemocap"), help="read items with a corpus reader")
    src.add_argument("--root", type=Path, help="corpus root for --corpus")
    src.add_argument("--split", help="MSP-Podcast split or alias (default: all)")
    src.add_argument("--wav-dir", type=Path, help="every *.wav below this folder (utterance id = file stem)")
    out = ap.add_argument_group("output")
    out.add_argument("--store", type=Path, help="feature store folder (default: <root>/Features/<name>)")
    out.add_argument("--shard", help="i/N: process every N-th item starting at i (default: torchrun RANK/WORLD_SIZE)")
    out.add_argument("--batch-size", type=int, default=8)
    out.add_argument("--no-progress", action="store_true")


def items_from_args(args) -> tuple[list[Item], str | None, Path | None]:
    """(items, corpus name, default store parent) from --corpus/--root or --wav-dir."""
    if args.wav_dir:
        wavs = sorted(p for p in Path(args.wav_dir).rglob("*") if p.suffix.lower() == ".wav")
        if not wavs:
            raise SystemExit(f"{args.wav_dir}: no .wav files")
        stems = [p.stem for p in wavs]
        ids = stems if len(set(stems)) == len(stems) else [str(p.relative_to(args.wav_dir).with_suffix("")) for p in wavs]
        return [Item(u, p, p.with_suffix(".txt"), None, p.with_suffix(".TextGrid")) for u, p in zip(ids, wavs)], None, Path(args.wav_dir)
    if not (args.corpus and args.root):
        raise SystemExit("give --corpus and --root, or --wav-dir")
    try:
        corpus = read_corpus(args.corpus, args.root, args.split)
    except CorpusError as e:
        raise SystemExit(f"error: {e}") from None
    corpus.report()
    return [Item.from_record(r) for r in corpus.records], corpus.name, Path(args.root) / "Features"


def run_cli(extractor, args, *, dtype: str = "float32", extra_meta: dict | None = None) -> int:
    items, corpus, parent = items_from_args(args)
    store_dir = args.store or parent / extractor.name
    # how `mat_io.py export` writes this feature set in the originals' per-utterance .mat layout
    mat = {"mat_key": getattr(extractor, "mat_key", "Audio_data" if extractor.input == "audio" else "Text_data"),
           "mat_time_column": bool(getattr(extractor, "mat_time_column", False))}
    store = FeatureStore.create(store_dir, name=extractor.name, extractor=type(extractor).__name__,
                                params=extractor.params, dims=extractor.dims, frame_rate=extractor.frame_rate,
                                dtype=dtype, corpus=corpus, extra={**mat, **(extra_meta or {})})
    s = extract_to_store(extractor, items, store, shard=resolve_shard(args.shard), batch_size=args.batch_size,
                         progress=not args.no_progress)
    rtf = f", real-time factor {s.seconds / s.audio_seconds:.4f}" if s.audio_seconds else ""
    print(f"{store_dir}: extracted {s.extracted}, already there {s.skipped_done}, errors {s.errors} "
          f"in {s.seconds:.1f} s{rtf}")
    if s.errors:
        print(f"  inputs that failed are listed in {store_dir}/errors-*.csv", file=sys.stderr)
    return 0 if s.extracted or s.skipped_done else 1

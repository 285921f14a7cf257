"""The one extraction runner: inputs -> extractor -> FeatureStore, sharded, resumable, with an errors file.

An extractor is any object with these attributes (see features/mel.py for the smallest one):

    name          default store name, e.g. "Mel_Spec128"
    input         "audio" (16 kHz mono float32 waveform), "text" (transcript string) or
                  "words" (list of corpora.textgrid.Interval from the utterance's TextGrid)
    dims          feature dimension
    frame_rate    rows per second of audio, or None for token-level text
    params        dict of every setting that changes the numbers (stored in meta.json)
    norm_pooling  how norm_para.py pools it: "frames" (every frame) or "utterance-mean" (stored in meta.json)
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

from corpora import KINDS, read_corpus
from corpora.records import CorpusError, TextDecodeError, Utterance, read_transcript_file
from utils import UserError, int_at_least
from features.audio import AudioError, load_audio
from features.store import (BadFeatures, FeatureStore, input_fingerprints, note_unfingerprinted,
                            require_disk_space)
from utils import writable_dir


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
    segment: tuple[float, float] | None = None  # seconds of audio_path (a manifest's segment); None: the whole file

    @classmethod
    def from_record(cls, r: Utterance) -> "Item":
        return cls(r.utt_id, r.audio_path, r.transcript_path, r.transcript, r.alignment_path, r.segment)


def load_input(item: Item, kind: str, min_seconds: float = 0.0):
    """The extractor's input for one item; raises AudioError / InputError naming the file and the problem."""
    if kind == "audio":
        x = load_audio(item.audio_path, min_seconds=min_seconds, segment=item.segment)
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
        try:
            text = read_transcript_file(path)
        except TextDecodeError as e:  # not valid UTF-8: listed with the line and byte, never used mangled
            raise InputError(path, e.reason) from None
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
            raise UserError(f"--shard {spec!r}: expected i/N, e.g. 0/4") from None
        if not 0 <= i < n:
            raise UserError(f"--shard {spec!r}: need 0 <= i < N")
        return i, n
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@dataclass
class ExtractionSummary:
    extracted: int
    skipped_done: int
    errors: int
    seconds: float
    audio_seconds: float
    reextracted: int = 0  # of `extracted`: utterances whose inputs had changed since their last extraction


def to_extract(items: list, store: FeatureStore) -> tuple[list, list[tuple[str, str]]]:
    """(the items `store` lacks or holds from inputs that changed since, (utterance, changed file) of the latter).
    Prints one note when the store cannot tell (features extracted before fingerprints were recorded)."""
    changed = store.changed_inputs([it for it in items if it.utt_id in store])
    note_unfingerprinted(store, [it.utt_id for it in items])
    stale = {u for u, _ in changed}
    return [it for it in items if it.utt_id not in store or it.utt_id in stale], changed


def _say_reextracted(changed: list[tuple[str, str]], store: FeatureStore) -> None:
    if changed:
        shown = "; ".join(f"{u} ({f})" for u, f in changed[:5])
        print(f"{store.root}: {len(changed)} utterance(s) re-extracted: inputs changed: {shown}"
              f"{' ...' if len(changed) > 5 else ''}", file=sys.stderr)


def extract_to_store(extractor, items: list[Item], store: FeatureStore, *, shard: tuple[int, int] = (0, 1),
                     batch_size: int = 1, progress: bool = True, flush_seconds: float = 60.0) -> ExtractionSummary:
    """Extract every item of this shard that `store` lacks, or holds from inputs that changed since (those are
    re-extracted and listed; where that now fails, their old features are withdrawn and the error listed)."""
    i, n = shard
    mine = items[i::n]
    t0, n_ok, n_err, n_again, audio_s = time.time(), 0, 0, 0, 0.0
    with store.writer(worker=f"{i}of{n}", flush_seconds=flush_seconds) as w:  # locks this shard of the store
        todo, changed = to_extract(mine, store)
        stale = {u for u, _ in changed}
        _say_reextracted(changed, store)
        require_disk_space(store, todo, frame_rate=getattr(extractor, "frame_rate", None),
                           input_kind=getattr(extractor, "input", "audio"))  # refused now, not when the disk is full

        def failed(it: Item, file, reason: str) -> None:
            nonlocal n_err
            w.error(it.utt_id, file, reason)
            n_err += 1
            if it.utt_id in stale:  # its old features came from inputs that are gone: never serve them
                w.drop(it.utt_id)
        bar = tqdm(total=len(todo), desc=f"{extractor.name} shard {i}/{n}", unit="utt", disable=not progress)
        for b in range(0, len(todo), batch_size):
            batch, inputs = [], []
            for it in todo[b: b + batch_size]:
                try:
                    inputs.append(load_input(it, extractor.input, getattr(extractor, "min_seconds", 0.0)))
                    batch.append(it)
                except (AudioError, InputError) as e:
                    failed(it, e.path, e.reason)
            outputs = _run_batch(extractor, batch, inputs)
            for it, x, out in zip(batch, inputs, outputs):
                source = it.audio_path or it.transcript_path or ""
                if isinstance(out, Exception):
                    failed(it, source, f"extraction failed: {out}")
                    continue
                feats, times = out if isinstance(out, tuple) else (out, None)
                try:  # refuses non-finite values, float16 overflow, wrong shapes
                    w.add(it.utt_id, feats, times, inputs=input_fingerprints(it, extractor.input))
                except BadFeatures as e:
                    failed(it, source, e.reason)
                    continue
                n_ok += 1
                n_again += it.utt_id in stale
                if extractor.input == "audio":
                    audio_s += len(x) / 16000
            bar.update(len(todo[b: b + batch_size]))
        bar.close()
    return ExtractionSummary(n_ok, len(mine) - len(todo), n_err, time.time() - t0, audio_s, n_again)


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


# ------------------------------------------------------------------------------ precision of model extractors

from utils import PRECISIONS as EXTRACTION_PRECISIONS  # noqa: E402
from utils import autocast as extraction_autocast  # noqa: E402,F401 - the one autocast (utils.autocast)


def check_extraction_precision(precision: str, device: str) -> str:
    """`precision` when `device` can run it; ValueError for an unknown one and for fp16 off CUDA (CPU autocast
    supports bf16 only in practice; bf16 runs anywhere)."""
    if precision not in EXTRACTION_PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(EXTRACTION_PRECISIONS)}")
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise ValueError(f"precision fp16 needs a CUDA device, not {device}: on the CPU use bf16")
    return precision


def precision_params(precision: str) -> dict:
    """What a store's params record of the precision: {"precision": p} unless fp32, which records nothing, as
    every store made before the flag existed (so those stay valid), while a bf16 or fp16 store can never be
    taken for, or appended to, an fp32 one (FeatureStore.create compares the params)."""
    return {} if precision == "fp32" else {"precision": precision}


def add_precision_arg(group) -> None:
    """--precision of the feature scripts with a model (feat_wav2vec2.py, feat_roberta.py)."""
    group.add_argument("--precision", choices=EXTRACTION_PRECISIONS, default="fp32",
                       help="arithmetic of the model's forward passes: fp32 (default, the reference) or bf16 / fp16 "
                            "under autocast (fp16 needs CUDA; bf16 also works on CPU); recorded in the store's "
                            "params, so stores of different precisions are never mixed")


# ------------------------------------------------------------------------------ command-line plumbing

def add_corpus_args(group, kinds=KINDS, default: str | None = None, what: str = "read items with a corpus reader"
                    ) -> None:
    """--corpus KIND and --fold N, the same flags with the same rules for every script that reads a corpus
    (corpora.read_corpus): `kinds` the --corpus choices, `default` its default."""
    group.add_argument("--corpus", choices=kinds, default=default,
                       help=f"{what} (default: {default or 'none'}); manifest: --root is the manifest file (CSV or "
                            "JSONL, with its sidecar JSON); emobox: --root is EmoBox's data/<corpus> folder")
    group.add_argument("--fold", type=int_at_least(1),
                       help="EmoBox fold N (its fold_N folder; --corpus emobox only; default: none)")


def check_fold(kind: str | None, fold: int | None) -> None:
    """UserError when --fold is given for a corpus without EmoBox folds (before any work)."""
    if fold is not None and kind != "emobox":
        raise UserError(f"--fold {fold}: only --corpus emobox has folds (EmoBox's fold_N folders); "
                        f"--corpus {kind} names its parts with --split")


def corpus_folder(kind: str | None, root: str | Path) -> Path:
    """The folder a corpus's derived files (feature stores, NormTerms) live in: --root itself, or for a manifest
    (--root is the file) the manifest's folder."""
    root = Path(root)
    return root.parent if kind == "manifest" else root


def features_folder(kind: str | None, root: str | Path) -> Path:
    """Where a corpus's feature stores live by default, for the extractors and every training/testing script
    alike: <corpus folder>/Features (corpus_folder)."""
    return corpus_folder(kind, root) / "Features"


def add_io_args(ap: argparse.ArgumentParser) -> None:
    src = ap.add_argument_group("input (one of)")
    add_corpus_args(src, what="read items with a corpus reader; give it or --wav-dir")
    src.add_argument("--root", type=Path, help="corpus root for --corpus (default: none)")
    src.add_argument("--split", help="split or alias of --corpus (default: all)")
    src.add_argument("--wav-dir", type=Path, help="every *.wav below this folder (utterance id = its relative path "
                     "without .wav, e.g. sub/a; default: none)")
    out = ap.add_argument_group("output")
    out.add_argument("--store", type=Path, help="feature store folder (default: <root>/Features/<name>; for a "
                     "manifest <the manifest's folder>/Features/<name>)")
    out.add_argument("--shard", help="i/N: process every N-th item starting at i (default: torchrun RANK/WORLD_SIZE)")
    out.add_argument("--batch-size", type=int_at_least(1), default=8, help="inputs per extractor call")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")


def wav_folder(folder: str | Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Every *.wav below `folder` as an Item whose utterance id is its path relative to `folder` without the
    extension, '/'-separated ("a", "sub/a"): unique, and never changed by files added later. Transcript and
    TextGrid are looked for beside each WAV. Two files that differ only in the case of the extension (a.wav,
    a.WAV) would share an id: the first (sorted) is used and the other is returned in the list of
    (file, reason) it could not use."""
    folder = Path(folder)
    wavs = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    items, clashes, seen = [], [], {}
    for p in wavs:
        utt = p.relative_to(folder).with_suffix("").as_posix()
        if utt in seen:
            clashes.append((p.relative_to(folder).as_posix(), f"same utterance id {utt!r} as {seen[utt]}"))
            continue
        seen[utt] = p.relative_to(folder).as_posix()
        items.append(Item(utt, p, p.with_suffix(".txt"), None, p.with_suffix(".TextGrid")))
    return items, clashes


def items_from_args(args) -> tuple[list[Item], str | None, Path | None]:
    """(items, corpus name, default store parent) from --corpus/--root or --wav-dir."""
    if args.wav_dir:
        items, clashes = wav_folder(args.wav_dir)
        for f, why in clashes:
            print(f"warning: {args.wav_dir / f} not extracted: {why}", file=sys.stderr)
        if not items:
            raise UserError(f"{args.wav_dir}: no .wav files")
        return items, None, Path(args.wav_dir)
    if not (args.corpus and args.root):
        raise UserError("give --corpus and --root, or --wav-dir")
    fold = getattr(args, "fold", None)
    check_fold(args.corpus, fold)
    corpus = read_corpus(args.corpus, args.root, args.split, fold=fold)
    corpus.report()
    return [Item.from_record(r) for r in corpus.records], corpus.name, features_folder(args.corpus, args.root)


def store_for(extractor, store_dir: str | Path, *, dtype: str = "float32", corpus: str | None = None,
              extra_meta: dict | None = None) -> FeatureStore:
    """The store of `extractor`'s features at `store_dir`: created with the extractor's metadata, or reopened when
    it was made by the same extractor with the same parameters (else StoreError naming what differs)."""
    # how `mat_io.py export` writes this feature set in the originals' per-utterance .mat layout
    mat = {"mat_key": getattr(extractor, "mat_key", "Audio_data" if extractor.input == "audio" else "Text_data"),
           "mat_time_column": bool(getattr(extractor, "mat_time_column", False)),
           "norm_pooling": extractor.norm_pooling}
    return FeatureStore.create(store_dir, name=extractor.name, extractor=type(extractor).__name__,
                               params=extractor.params, dims=extractor.dims, frame_rate=extractor.frame_rate,
                               dtype=dtype, corpus=corpus, extra={**mat, **(extra_meta or {})})


def ensure_store(extractor, records, store_dir: str | Path, *, progress: bool = True, corpus: str | None = None,
                 batch_size: int = 1) -> FeatureStore:
    """`store_for(extractor, store_dir)` holding every record it can: what it lacks is extracted now (failures are
    listed in the store's errors-*.csv and tried again on the next call). For the training scripts that extract on
    first use (mdre.py, speech_text_mocap.py)."""
    store = store_for(extractor, store_dir, corpus=corpus)
    todo = [Item.from_record(r) for r in records if r.utt_id not in store]
    if todo or store.changed_inputs(records):  # the runner re-extracts what changed, and says so
        items = [Item.from_record(r) for r in records]
        extract_to_store(extractor, items, store, batch_size=batch_size, progress=progress)
        store.refresh()
    else:
        note_unfingerprinted(store, [r.utt_id for r in records])
    return store


def run_cli(extractor, args, *, dtype: str = "float32", extra_meta: dict | None = None) -> int:
    items, corpus, parent = items_from_args(args)
    store_dir = writable_dir(args.store or parent / extractor.name)
    store = store_for(extractor, store_dir, dtype=dtype, corpus=corpus, extra_meta=extra_meta)
    s = extract_to_store(extractor, items, store, shard=resolve_shard(args.shard), batch_size=args.batch_size,
                         progress=not args.no_progress)
    rtf = f", real-time factor {s.seconds / s.audio_seconds:.4f}" if s.audio_seconds else ""
    again = f" ({s.reextracted} re-extracted: inputs changed)" if s.reextracted else ""
    print(f"{store_dir}: extracted {s.extracted}{again}, already there {s.skipped_done}, errors {s.errors} "
          f"in {s.seconds:.1f} s{rtf}")
    if s.errors:
        print(f"  inputs that failed are listed in {store_dir}/errors-*.csv", file=sys.stderr)
    return 0 if s.extracted or s.skipped_done else 1

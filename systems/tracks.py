"""Per-second emotion tracks: each chunk's output on the time axis, for the chunk-based systems.

A file no longer than the window is one window, scored as prediction scores it (its file-level score is
pred_result.csv's). A longer file is a sliding sequence of windows of `window` seconds every `hop` seconds, the
last one ending at the end of the file; each window is read from the WAV on its own (SoundFile.seek), turned
into features and scored as an utterance, so memory does not grow with the file's length. The file-level score
is the mean of its window scores. Per window, each chunk of the system's chunker gives a row: its start and end
second in the file, the chunk's output per attribute (the model's head on the chunk's own representation: see
docs/tracks.md for what that means per model) and the weight the model's pooling gave it.

    <out>/tracks/<File_Name>.csv   file, window, window_start_s, window_end_s, chunk, start_s, end_s,
                                   Act Dom Val (the attributes predicted), attention_<attr>, window_<attr>
    <out>/tracks/<File_Name>.png   the waveform's envelope, each chunk's outputs as a segment, chunk boundaries
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from features.audio import AudioError, truncated_wav
from features.extract import InputError, Item, wav_folder

TRAINING_SECONDS = 11.0  # no checkpoint records its longest training turn: MSP-Podcast's maximum turn length
ENVELOPE_BIN_S = 0.05    # the plotted envelope: peak |sample| per 50 ms
BLOCK_S = 10.0           # seconds read at a time for the envelope


@dataclass(frozen=True)
class Windows:
    """The sliding-window rule: `window` seconds every `hop` seconds (defaults: TRAINING_SECONDS, half of it)."""
    window: float = TRAINING_SECONDS
    hop: float | None = None

    def __post_init__(self):
        if not self.window > 0:
            raise ValueError(f"--window must be positive (got {self.window})")
        hop = self.window / 2 if self.hop is None else self.hop
        if not 0 < hop <= self.window:
            raise ValueError(f"--hop must be positive and at most --window ({self.window} s) so that every second "
                             f"is heard (got {hop})")
        object.__setattr__(self, "hop", float(hop))

    def starts(self, n_samples: int, sr: int) -> list[int]:
        """The first sample of each window: 0, hop, 2 hop, ... and a last window ending at the file's end."""
        w, h = round(self.window * sr), max(round(self.hop * sr), 1)
        if n_samples <= w:
            return [0]
        return [*range(0, n_samples - w, h), n_samples - w]

    def describe(self, n: int) -> str:
        return f"scored as {n} windows of {self.window:g} s every {self.hop:g} s"


@dataclass
class Track:
    """One file's track: `rows` (the CSV's rows), `scores` (K,) the file-level scores (mean over windows),
    `cells` the extra pred_result cells (audio-text: Text), `notes` its warnings, `envelope` (times, peaks)."""
    name: str
    attributes: list[str]
    rows: list[dict] = field(default_factory=list)
    window_scores: list[np.ndarray] = field(default_factory=list)
    cells: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    envelope: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def scores(self) -> np.ndarray:
        return np.mean(self.window_scores, axis=0)

    def add_window(self, rec: dict, start_s: float, end_s: float, frame_rate: float) -> None:
        """One scored window (a record of a Predictor's track_inputs) as rows, chunk times in the file's seconds."""
        k = len(self.window_scores)
        self.window_scores.append(np.asarray(rec["score"], np.float64))
        times = np.minimum(start_s + rec["frames"] / frame_rate, end_s)  # (C, 2)
        for c, ((a, b), out, w) in enumerate(zip(times, rec["chunks"], rec["weights"])):
            row = {"file": self.name, "window": k, "window_start_s": round(start_s, 4), "window_end_s": round(end_s, 4),
                   "chunk": c, "start_s": round(float(a), 4), "end_s": round(float(b), 4)}
            row.update({a_: float(v) for a_, v in zip(self.attributes, out)})
            row.update({f"attention_{a_}": float(v) for a_, v in zip(self.attributes, w)})
            row.update({f"window_{a_}": float(v) for a_, v in zip(self.attributes, rec["score"])})
            self.rows.append(row)

    def frame(self):
        import pandas as pd
        cols = ["file", "window", "window_start_s", "window_end_s", "chunk", "start_s", "end_s", *self.attributes,
                *(f"{p}_{a}" for p in ("attention", "window") for a in self.attributes)]
        return pd.DataFrame(self.rows, columns=cols)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """<folder>/<name>.csv and .png (atomic; subfolders of the name mirrored)."""
        from engine.plots import track_plot
        from utils import atomic_path
        csv_path, png_path = folder / f"{self.name}.csv", folder / f"{self.name}.png"
        with atomic_path(csv_path) as tmp:
            self.frame().to_csv(tmp, index=False, float_format="%.4f")
        track_plot(self.frame(), self.attributes, self.envelope, png_path, title=self.name)
        return csv_path, png_path


def envelope(it: Item) -> tuple[np.ndarray, np.ndarray]:
    """(bin start seconds, peak |sample| per ENVELOPE_BIN_S) of an input, read BLOCK_S at a time (channels
    averaged, native rate)."""
    if it.audio_path is None:
        return _peaks([np.asarray(it.signal, np.float32)], int(it.sr))
    with sf.SoundFile(str(it.audio_path)) as f:
        sr = f.samplerate
        step = round(ENVELOPE_BIN_S * sr) * max(1, round(BLOCK_S / ENVELOPE_BIN_S))
        return _peaks(f.blocks(blocksize=step, dtype="float32", always_2d=True), sr)


def _peaks(blocks, sr: int) -> tuple[np.ndarray, np.ndarray]:
    size = max(round(ENVELOPE_BIN_S * sr), 1)
    peaks = []
    for x in blocks:  # every block but the last holds whole bins
        x = np.abs(x.mean(axis=1) if x.ndim == 2 else x)
        pad = (-len(x)) % size
        peaks.append(np.pad(x, (0, pad)).reshape(-1, size).max(axis=1))
    p = np.concatenate(peaks) if peaks else np.zeros(0)
    return np.arange(len(p)) * size / sr, p


def file_length(it: Item) -> tuple[int, int] | None:
    """(samples, rate) of an input at its own rate; None when the header cannot be read (scoring says why)."""
    if it.audio_path is None:
        return len(it.signal), int(it.sr)
    try:
        info = sf.info(str(it.audio_path))
    except Exception:  # noqa: BLE001 - an unreadable file is listed by the scoring path with its reason
        return None
    return int(info.frames), int(info.samplerate)


def one_window_track(predictor, it: Item, x) -> Track:
    """The track of an input within one window, from the features `x` prediction computed for it."""
    track = Track(it.utt_id, predictor.attributes)
    n, sr = file_length(it) or (0, 1)
    track.add_window(predictor.track_inputs([x])[0], 0.0, n / sr, predictor.frame_rate)
    track.envelope = envelope(it)
    return track


def window_words(it: Item, start: float, end: float, duration: float) -> dict:
    """audio-text: the transcript and words of one window of a long file. With a TextGrid, the words whose middle
    lies in the window (times shifted to the window); without one, the transcript's words cut in proportion to
    time; without a transcript, none (the chunks are then counted from the window's duration)."""
    from corpora.textgrid import Interval, read_words
    from systems.predict import transcript_of
    grid = it.alignment_path
    if grid is not None and grid.is_file():
        inside = [w for w in read_words(grid) if start <= (w.start + w.end) / 2 < end]
        words = tuple(Interval(max(w.start - start, 0.0), min(w.end, end) - start, w.text) for w in inside)
        return {"transcript": " ".join(w.text for w in inside) or None, "words": words or None}
    text, _ = transcript_of(it)
    if not text:
        return {"transcript": None, "words": None}
    tokens = text.split()
    a, b = (round(len(tokens) * t / duration) for t in (start, end))
    return {"transcript": " ".join(tokens[a:b]) or None, "words": None}


def windowed_track(predictor, it: Item, windows: Windows) -> Track:
    """The track of an input longer than one window: each window read, featurized and scored on its own.
    AudioError when no window could be scored (each window's reason in the message)."""
    from systems.predict import SignalItem
    n, sr = file_length(it)
    starts = windows.starts(n, sr)
    track = Track(it.utt_id, predictor.attributes, notes=[windows.describe(len(starts))])
    if it.audio_path is not None:
        track.notes += [w for w in (truncated_wav(it.audio_path),) if w]
    texts = []
    length = round(windows.window * sr)
    for k, s in enumerate(starts):
        a, b = s / sr, (s + length) / sr
        words = window_words(it, a, b, n / sr) if predictor.system == "audio-text" else {}
        sub = SignalItem(f"{it.utt_id}[{a:.2f}-{b:.2f}s]", signal=read_samples(it, s, length), sr=sr, **words)
        try:
            x, cells, _ = predictor.featurize(sub)
        except (AudioError, InputError) as e:
            track.notes.append(f"window {k} ({a:.1f}-{b:.1f} s) not scored: {e.reason}")
            continue
        texts.append(cells)
        track.add_window(predictor.track_inputs([x])[0], a, b, predictor.frame_rate)
    if not track.window_scores:
        raise AudioError(it.audio_path or it.utt_id, "no window could be scored: " + "; ".join(track.notes[1:]))
    if predictor.system == "audio-text":
        track.cells = ["transcript" if any(c == ["transcript"] for c in texts) else "absent"]
    track.envelope = envelope(it)
    return track


def read_samples(it: Item, start: int, count: int) -> np.ndarray:
    """`count` samples from `start` of an input (n, channels) at its own rate: only these are read from a WAV."""
    if it.audio_path is None:
        return np.asarray(it.signal)[start: start + count]
    with sf.SoundFile(str(it.audio_path)) as f:
        f.seek(start)
        return f.read(count, dtype="float32", always_2d=True)


def track_items(predictor, items: list[Item], windows: Windows, root: Path | None = None, progress: bool = False,
                on_warning=None, on_track=None) -> tuple[list[list], list[tuple[str, str]]]:
    """(rows of pred_result.csv, (file, why) of the inputs that could not be read), like Predictor.score: an input
    within one window is scored by Predictor.score itself (its row unchanged) and tracked from the same features;
    a longer one is scored as the mean of its windows, its Warning saying so. `on_track(track)` gets each Track."""
    on_track = on_track or (lambda t: None)
    lengths = {it.utt_id: file_length(it) for it in items}
    long = {u for u, nl in lengths.items() if nl is not None and nl[0] > round(windows.window * nl[1])}
    short = [it for it in items if it.utt_id not in long]
    rows, errors = predictor.score(short, root, progress, on_warning,
                                   on_features=lambda it, x: on_track(one_window_track(predictor, it, x)))
    by_name = {r[0]: r for r in rows}
    for it in tqdm([it for it in items if it.utt_id in long], desc="track", unit="file", disable=not progress):
        try:
            track = windowed_track(predictor, it, windows)
        except (AudioError, InputError) as e:
            errors.append((it.audio_path.relative_to(root).as_posix() if root and it.audio_path else it.utt_id,
                           e.reason))
            continue
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
            errors.append((it.utt_id, f"tracking failed: {type(e).__name__}: {e}"))
            continue
        note = "; ".join(dict.fromkeys(track.notes))
        if on_warning is not None:
            on_warning(it.utt_id, note)
        by_name[it.utt_id] = [it.utt_id, *(f"{v:.4f}" for v in track.scores), *track.cells, note]
        on_track(track)
    return [by_name[it.utt_id] for it in items if it.utt_id in by_name], errors


def track_folder(predictor, folder: Path, out: Path, windows: Windows, progress: bool = False, on_warning=None):
    """Every WAV below `folder` tracked into <out>/<File_Name>.csv and .png; returns (pred_result rows, errors)
    as prediction_process.py writes them with --track."""
    items, clashes = wav_folder(folder)
    rows, errors = track_items(predictor, items, windows, folder, progress, on_warning,
                               on_track=lambda t: t.write(out))
    return rows, [*clashes, *errors]

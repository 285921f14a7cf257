"""The corpus record every reader returns, and the bookkeeping for rows a reader could not use."""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

ATTRIBUTES = ("act", "dom", "val")  # arousal (activation), dominance, valence
ATTRIBUTE_CODES = {"Act": "act", "Dom": "dom", "Val": "val"}  # the originals' CLI spelling


class CorpusError(Exception):
    """A corpus cannot be read at all (missing folder, file or column, unknown split). Names the file."""


class TextDecodeError(CorpusError):
    """A text file (or one line of it) is not valid UTF-8; `reason` says where, without the path."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def decode_utf8(raw: bytes, path: str | Path, first_line: int = 1) -> str:
    """`raw` decoded as strict UTF-8 (never "replace": a mangled `caf?` would be used as text without a word).
    TextDecodeError (a CorpusError) naming the file, the line (counted from `first_line`) and the offending
    byte otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise TextDecodeError(path, f"line {line}: not valid UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                                    f"{column}); re-save the file as UTF-8") from None


def read_transcript_file(path: str | Path) -> str:
    """A transcript as the original text extractor reads it: the file's lines with their newline characters
    kept, joined with one space, stripped at the two ends only. An inner newline therefore survives (the
    byte-level BPE of RoBERTa makes it a token of its own), so token rows line up with the original's.

    Decoded as strict UTF-8 (`decode_utf8`): a file that is not (Latin-1, binary bytes) raises CorpusError
    naming it, the line and the byte, and callers list it instead of using mangled text."""
    with open(path, "rb") as f:
        text = decode_utf8(f.read(), path)
    # universal newlines, as a text-mode open would read them (\r\n and \r become \n)
    return " ".join(io.StringIO(text, newline=None).readlines()).strip()


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    audio_path: Path
    speaker: str
    corpus: str
    split: str | None = None  # see msp_podcast.SPLITS (and its test/validation); None where folds are computed
    labels: dict[str, float] = field(default_factory=dict)  # subset of ATTRIBUTES -> score on the corpus scale
    category: str | None = None  # MSP-Podcast EmoClass letter or IEMOCAP 3-letter code
    gender: str | None = None
    transcript_path: Path | None = None
    alignment_path: Path | None = None
    transcript: str | None = None  # inline text where the corpus keeps transcripts in a shared file (IEMOCAP)
    session: int | None = None
    dialog: str | None = None
    start: float | None = None  # seconds within the recording: IEMOCAP's dialog file; a manifest's segment
    end: float | None = None
    # the part of `audio_path` this utterance is, in seconds (manifest and EmoBox rows with start/end); None: the
    # whole file. Extractors read only this part. (IEMOCAP's start/end name the dialog recording, not audio_path.)
    segment: tuple[float, float] | None = None
    mocap_path: Path | None = None  # a manifest row's motion-capture file (IEMOCAP finds its own per dialog)


def audio_seconds(r: Utterance) -> float:
    """Seconds of audio of a record: its segment (manifest, EmoBox), else its start/end (IEMOCAP's span in the
    dialog), else the WAV header's duration (soundfile.info, never the samples; RuntimeError/OSError when the
    header cannot be read)."""
    if r.segment is not None:
        return r.segment[1] - r.segment[0]
    if r.start is not None and r.end is not None:
        return r.end - r.start
    import soundfile
    return float(soundfile.info(str(r.audio_path)).duration)


@dataclass(frozen=True)
class Skipped:
    utt_id: str
    file: str  # the file the problem was found in (or that is missing)
    reason: str


@dataclass
class Corpus:
    """What a reader returns: usable records in a stable order, and every row it had to leave out."""

    name: str
    root: Path
    records: list[Utterance]
    skipped: list[Skipped] = field(default_factory=list)
    # the categorical classes the corpus declares, in their declared order (a manifest's class map, EmoBox's
    # label_map.json, MSP-Podcast's eight primary emotions); () when it declares none (corpora.class_labels)
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def by_id(self) -> dict[str, Utterance]:
        return {r.utt_id: r for r in self.records}

    def report(self, stream=sys.stderr, limit: int = 10) -> None:
        """Print a summary of skipped rows (count per reason and the first names) so nothing goes unnoticed."""
        if not self.skipped:
            return
        reasons: dict[str, list[Skipped]] = {}
        for s in self.skipped:
            reasons.setdefault(s.reason.split(":")[0], []).append(s)
        print(f"{self.name} at {self.root}: skipped {len(self.skipped)} row(s)", file=stream)
        for reason, rows in reasons.items():
            names = ", ".join(r.utt_id for r in rows[:limit]) + (" ..." if len(rows) > limit else "")
            print(f"  {len(rows)} x {reason}: {names}", file=stream)

    def write_skipped(self, path: str | Path) -> None:
        from utils import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["utterance", "file", "reason"])
            for s in self.skipped:
                w.writerow([s.utt_id, s.file, s.reason])

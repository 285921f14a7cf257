"""Reader of the raw IEMOCAP release, its motion capture, 4-class label mappings and split conventions.

The release is `IEMOCAP_full_release/Session1..5`; the splits are the three conventions of the systems this
toolkit reproduces.

Record order is the MDRE global order: EmoEvaluation dialog files sorted by path (Session1 -> Session5, dialog
names lexicographic), utterance ids sorted as strings within each file. Fold functions rely on it.

Nothing is dropped silently: an utterance whose summary line is malformed, whose id is listed twice with
different values (a conflict: neither is used; identical repeats use the first line and are listed too), whose
wav or transcript is missing, or whose transcript line is not valid UTF-8 (decoded strictly, never replaced)
lands in `Corpus.skipped` with the file and the reason.
"""
from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from corpora.records import Corpus, CorpusError, Skipped, TextDecodeError, Utterance, decode_utf8

NAME = "IEMOCAP"
SESSIONS = (1, 2, 3, 4, 5)
MOCAP_STREAMS = ("rotated", "head", "hand")
# the one dialog whose mocap files carry another name in the release
MOCAP_NAME_EXCEPTIONS = {"Ses05M_script01_1b": "Ses05M_script01_1"}

_NUMBER = r"(\d+(?:\.\d*)?)"
_TIMES = re.compile(rf"\[{_NUMBER} - {_NUMBER}\]")
_VAD = re.compile(rf"\[{_NUMBER}, {_NUMBER}, {_NUMBER}\]")
_UTT_ID = re.compile(r"Ses0[1-5][FM]_\S+_[FM]\d{3}")
_CODE = re.compile(r"[a-z]{3}")
_ID_GUESS = re.compile(r"Ses\d\d[FM]_\S+")


def _text_lines(path: Path) -> list[tuple[int, str | None, str, bytes]]:
    """(line number, text or None, reason, raw bytes) per line of a text file, each line decoded as strict UTF-8
    (`decode_utf8`): a line that is not gives None and the reason, so only that line is lost, and never silently."""
    out = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            out.append((lineno, decode_utf8(raw, path, lineno), "", raw))
        except TextDecodeError as e:
            out.append((lineno, None, e.reason, raw))
    return out


Summary = tuple[float, float, str, dict[str, float]]  # start, end, code, {val, act, dom}


def _summary_problem(fields: list[str], dialog: str) -> str | None:
    """Why TAB-separated fields are not a summary line of `dialog`, or None."""
    if len(fields) != 4:
        return f"{len(fields)} TAB-separated fields, expected 4"
    times, utt_id, code, vad = (f.strip() for f in fields)
    t = _TIMES.fullmatch(times)
    if not (t and _VAD.fullmatch(vad) and _UTT_ID.fullmatch(utt_id) and _CODE.fullmatch(code)):
        return "fields do not read as [start - end], id, 3-letter code, [V, A, D]"
    if utt_id.rsplit("_", 1)[0] != dialog:
        return f"id does not belong to dialog {dialog}"
    if float(t[1]) >= float(t[2]):
        return "start time not before end time"
    return None


def _parse_summary(fields: list[str]) -> tuple[str, Summary]:
    times, utt_id, code, vad = (f.strip() for f in fields)
    t, v = _TIMES.fullmatch(times), _VAD.fullmatch(vad)
    return utt_id, (float(t[1]), float(t[2]), code, {"val": float(v[1]), "act": float(v[2]), "dom": float(v[3])})


def _parse_evaluation(path: Path) -> tuple[dict[str, Summary], list[Skipped]]:
    """Summary lines of one EmoEvaluation file: id -> (start, end, code, {val, act, dom}), plus bad lines.

    Blocks are `[start - end] TAB id TAB code TAB [V, A, D]` followed by `C-...` and `A-...` evaluator lines;
    every other non-blank, non-comment line must be a summary line, so a damaged one is reported, not lost.
    An id listed twice is never read twice: identical repeats use the first line (the others are listed), and
    repeats that differ (another span, code or V/A/D) are all listed as a conflict and none is used.
    """
    seen: dict[str, list[tuple[int, Summary]]] = {}
    bad = []
    for lineno, line, undecodable, raw in _text_lines(path):
        shown = (line if line is not None else raw.decode("ascii", "replace")).rstrip()  # for the message only
        if not undecodable and (not shown or shown.startswith(("%", "C-", "A-"))):
            continue
        fields = shown.split("\t")
        problem = undecodable or _summary_problem(fields, path.stem)
        if problem:
            guess = _ID_GUESS.search(shown)
            bad.append(Skipped(guess[0] if guess else f"line {lineno}", str(path),
                               f"malformed EmoEvaluation line: {'' if undecodable else f'line {lineno}: '}"
                               f"{problem}: {shown[:120]!r}"))
            continue
        utt_id, summary = _parse_summary(fields)
        seen.setdefault(utt_id, []).append((lineno, summary))
    found = {}
    for utt_id, rows in seen.items():
        lines = ", ".join(str(n) for n, _ in rows)
        if all(summary == rows[0][1] for _, summary in rows):
            found[utt_id] = rows[0][1]
            if len(rows) > 1:
                bad.append(Skipped(utt_id, str(path), f"duplicate id: lines {lines} are identical; line "
                                                      f"{rows[0][0]} is used"))
        else:
            bad.append(Skipped(utt_id, str(path), f"duplicate id with conflicting values: lines {lines} differ "
                                                  f"({_differences([s for _, s in rows])}); none is used"))
    return found, bad


def _differences(summaries: list[Summary]) -> str:
    """What differs between summaries of one id: 'span', 'code' and/or the attributes."""
    first = summaries[0]
    parts = ["span"] if any(s[:2] != first[:2] for s in summaries) else []
    parts += ["code"] if any(s[2] != first[2] for s in summaries) else []
    parts += [a for a in ("val", "act", "dom") if any(s[3][a] != first[3][a] for s in summaries)]
    return ", ".join(parts)


def _parse_transcripts(path: Path) -> tuple[dict[str, str | None], dict[str, str]]:
    """(id -> text of one transcription file, None for an utterance line without the `]: ` separator;
    {line number: reason} of lines that are not valid UTF-8, whose utterances therefore have no text).

    Lines that are not utterances (ids not starting with `Ses`, unsegmented `XX` turns) are skipped. The text
    may itself contain `: `, so only the first `]: ` splits. An undecodable line's id is read from its bytes.
    """
    texts: dict[str, str | None] = {}
    undecodable: dict[str, str] = {}
    for _, line, reason, raw in _text_lines(path):
        if line is None:  # the id (ASCII) is still readable from the raw line; its text is not used
            line = raw.decode("ascii", "replace")
        if not line.startswith("Ses"):
            continue
        utt_id = line.split(" ", 1)[0]
        if utt_id[-3:-1] == "XX":
            continue
        if reason:
            texts[utt_id] = None
            undecodable[utt_id] = reason
            continue
        _, sep, text = line.partition("]: ")
        texts[utt_id] = text.strip() if sep else None
    return texts, undecodable


def read_iemocap(root: str | Path) -> Corpus:
    """All labelled utterances under `root` (the folder holding Session1..Session5; any subset)."""
    root = Path(root)
    session_dirs = [root / f"Session{s}" for s in SESSIONS if (root / f"Session{s}").is_dir()]
    if not session_dirs:
        raise CorpusError(f"{root}: no Session1..Session5 folder (point at the IEMOCAP_full_release folder)")
    evaluation_files = []
    for session_dir in session_dirs:
        emo_dir = session_dir / "dialog" / "EmoEvaluation"
        if not emo_dir.is_dir():
            raise CorpusError(f"{emo_dir}: EmoEvaluation folder missing")
        # top level only: Attribute/, Categorical/ and Self-evaluation/ hold per-evaluator files
        evaluation_files += [p for p in emo_dir.glob("*.txt") if p.is_file()]

    records, skipped = [], []
    for emo_path in sorted(evaluation_files, key=str):
        summaries, bad = _parse_evaluation(emo_path)
        skipped += bad
        session_dir, dialog = emo_path.parents[2], emo_path.stem
        transcript_path = session_dir / "dialog" / "transcriptions" / f"{dialog}.txt"
        texts, undecodable = _parse_transcripts(transcript_path) if transcript_path.is_file() else (None, {})
        for utt_id in sorted(summaries):
            start, end, code, labels = summaries[utt_id]
            audio_path = session_dir / "sentences" / "wav" / dialog / f"{utt_id}.wav"
            if not audio_path.is_file():
                skipped.append(Skipped(utt_id, str(audio_path), "wav missing"))
                continue
            if texts is None:
                skipped.append(Skipped(utt_id, str(transcript_path), "transcript file missing"))
                continue
            if texts.get(utt_id) is None:
                reason = (f"transcript {undecodable[utt_id]}" if utt_id in undecodable else
                          "transcript line malformed (no ']: ')" if utt_id in texts else "no transcript line")
                skipped.append(Skipped(utt_id, str(transcript_path), reason))
                continue
            session, gender = int(utt_id[4]), utt_id[-4]
            records.append(Utterance(
                utt_id=utt_id, audio_path=audio_path, speaker=f"Ses0{session}{gender}", corpus=NAME, split=None,
                labels=labels, category=code, gender=gender, transcript=texts[utt_id], session=session,
                dialog=dialog, start=start, end=end))
    return Corpus(NAME, root, records, skipped)


# --------------------------------------------------------------------------------- cross-corpus testing

# what a split of `iemocap_split` may name: every session, one session, or a comma list of sessions
SPLIT_CHOICES = ("all", *(f"session{s}" for s in SESSIONS))
MSP_LABEL_SCALE = "IEMOCAP 1-5 rescaled to 1-7"


def msp_scale(value: float) -> float:
    """An IEMOCAP attribute score (1-5) on MSP-Podcast's 1-7 scale, for scoring MSP-Podcast-trained models on
    IEMOCAP: the linear map sending 1 -> 1 and 5 -> 7, y7 = 1 + (y5 - 1) * 6 / 4 (so 3 -> 4; NaN stays NaN)."""
    return 1.0 + (float(value) - 1.0) * 6.0 / 4.0


def split_sessions(split: str) -> tuple[int, ...]:
    """Sessions of a cross-corpus split: `all`, `session1` ... `session5`, or a comma list of sessions
    (`session4,session5`), case-insensitive. CorpusError naming the split and the valid choices otherwise."""
    parts = [p.strip().lower() for p in str(split).split(",")]
    if parts == ["all"]:
        return SESSIONS
    sessions = set()
    for part in parts:
        if part not in SPLIT_CHOICES[1:]:
            what = f" ({part!r} is not a session)" if part != str(split).strip().lower() else ""
            raise CorpusError(f"unknown IEMOCAP split {split!r}{what}; use one of {', '.join(SPLIT_CHOICES)}, "
                              "or a comma list of sessions such as session4,session5")
        sessions.add(int(part[len("session"):]))
    return tuple(sorted(sessions))


def iemocap_split(root: str | Path, split: str = "all") -> Corpus:
    """The records of an IEMOCAP split for cross-corpus testing (see `split_sessions`), in read_iemocap's
    order; labels stay on IEMOCAP's 1-5 scale (`msp_scale` converts). The skipped rows kept are those of the
    split's sessions (and those whose session cannot be told). A named session without any utterance under
    `root` is a CorpusError, not an empty result."""
    sessions = split_sessions(split)
    corpus = read_iemocap(root)
    records = [r for r in corpus.records if r.session in sessions]
    if str(split).strip().lower() != "all":  # sessions named one by one must be there
        empty = [s for s in sessions if not any(r.session == s for r in records)]
        if empty:
            raise CorpusError(f"{root}: split {split!r}: no utterance of Session{empty[0]} "
                              f"(sessions with utterances: {sorted({r.session for r in corpus.records})})")

    def wanted(s: Skipped) -> bool:
        m = re.match(r"Ses0(\d)", s.utt_id)
        return m is None or int(m[1]) in sessions
    return Corpus(corpus.name, corpus.root, records, [s for s in corpus.skipped if wanted(s)])


# ---------------------------------------------------------------------------------------------- mocap


def mocap_dialog(dialog: str) -> str:
    """Name of a dialog's mocap files."""
    return MOCAP_NAME_EXCEPTIONS.get(dialog, dialog)


def mocap_path(record: Utterance, stream: str, root: str | Path | None = None) -> Path:
    """`SessionN/dialog/MOCAP_<stream>/<dialog>.txt`; without `root`, the session folder of the record's wav."""
    if stream not in MOCAP_STREAMS:
        raise ValueError(f"mocap stream {stream!r} not one of {', '.join(MOCAP_STREAMS)}")
    session_dir = Path(root) / f"Session{record.session}" if root is not None else Path(record.audio_path).parents[3]
    return session_dir / "dialog" / f"MOCAP_{stream}" / f"{mocap_dialog(record.dialog)}.txt"


def _column_names(header: list[str], axes: list[str], width: int) -> list[str]:
    """Names of the value columns from the two header lines: line 1 names the markers (or the columns
    themselves, e.g. head pose), line 2 the axis of every column (X Y Z per marker)."""
    names = header[2:]  # after Frame# and Time
    if len(names) == width:
        return names
    if names and width % len(names) == 0 and len(axes) >= width:
        per = width // len(names)
        return [f"{m}_{a}" for m, trio in zip(names, np.reshape(axes[-width:], (-1, per))) for a in trio]
    return [f"col{j}" for j in range(width)]


class DamagedMocapRows(CorpusError):
    """Mocap rows inside an utterance's span have fewer fields than the file's other rows. The file reader would
    pad them with NaN, which interpolation then fills: made-up motion, so the utterance has no mocap instead."""


@functools.lru_cache(maxsize=6)  # the three streams of the current and the previous dialog
def _read_mocap_file(path: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """(times, values float32, column names, short rows) of a dialog-level mocap file; arrays are read-only
    (cached). Short rows: (k, 4) float64 of (line number, earliest time, latest time, fields) of every row with
    fewer fields than the widest (their Time, or the times of their neighbours when the Time is lost too)."""
    if not Path(path).is_file():
        raise CorpusError(f"{path}: mocap file missing")
    with open(path, "rb") as f:
        try:
            header, axes = (decode_utf8(f.readline(), path, k).split() for k in (1, 2))
        except TextDecodeError as e:
            raise CorpusError(f"{path}: unreadable mocap header ({e.reason})") from None
    try:  # pandas' C parser: ~10x faster than a Python split loop on files of 10^5 rows x 167 columns
        table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, dtype=np.float64, engine="c").to_numpy()
    except pd.errors.EmptyDataError:
        raise CorpusError(f"{path}: no mocap rows after the two header lines") from None
    except ValueError as e:  # pandas' ParserError and non-numeric fields
        raise CorpusError(f"{path}: unreadable mocap rows ({e})") from None
    if table.shape[1] < 3:
        raise CorpusError(f"{path}: expected Frame#, Time and value columns, found {table.shape[1]} column(s)")
    times, values = table[:, 1].copy(), table[:, 2:].astype(np.float32)
    short = _short_rows(path, table) if np.isnan(table[:, -1]).any() else np.zeros((0, 4))
    for a in (times, values, short):
        a.flags.writeable = False
    return times, values, tuple(_column_names(header, axes, values.shape[1])), short


def _short_rows(path: str, table: np.ndarray) -> np.ndarray:
    """(line number, earliest time, latest time, fields) of the data rows with fewer fields than the table is
    wide. Only rows ending in NaN can be short (pandas pads a short row with NaN; a lost marker is NaN too), so
    only their lines are counted (a full scan costs ~30 % of the parse)."""
    raw = np.fromfile(path, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    starts, ends = np.concatenate([[0], newlines + 1]), np.concatenate([newlines, [len(raw)]])
    is_space = np.zeros(256, bool)
    is_space[[9, 10, 13, 32]] = True
    data_lines = np.flatnonzero(ends[2:] > starts[2:]) + 2  # 0-based indices of the non-empty lines after the header
    if len(data_lines) != len(table):
        return np.zeros((0, 4))  # cannot align lines with rows (whitespace-only lines): leave it to the NaN policy

    def fields(line: int) -> int:
        space = is_space[raw[starts[line]:ends[line]]]
        return int(np.count_nonzero(~space & np.concatenate([[True], space[:-1]])))

    times, out = table[:, 1], []
    for i in np.flatnonzero(np.isnan(table[:, -1])):
        n = fields(data_lines[i])
        if n >= table.shape[1]:
            continue  # a lost marker, not a short row
        before, after = times[:i][np.isfinite(times[:i])], times[i + 1:][np.isfinite(times[i + 1:])]
        lo = times[i] if np.isfinite(times[i]) else (before[-1] if len(before) else -np.inf)
        hi = times[i] if np.isfinite(times[i]) else (after[0] if len(after) else np.inf)
        out.append((data_lines[i] + 1, lo, hi, n))
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def load_mocap(record: Utterance, stream: str, root: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """The dialog-level mocap rows of `stream` with start < Time < end (strict), Frame#/Time dropped.

    Returns (frames x columns float32, NaN kept as in the file; column names). The frames belong to the actor
    wearing markers in that dialog, who may be the listener. Missing file -> CorpusError naming it; a row with
    too few fields inside the span -> DamagedMocapRows naming the file, the line and the field count.
    """
    path = mocap_path(record, stream, root)
    times, values, columns, short = _read_mocap_file(str(path))
    inside = short[(short[:, 1] < record.end) & (short[:, 2] > record.start)]
    if len(inside):
        line, _, _, n = inside[0]
        raise DamagedMocapRows(f"{path}: line {int(line)} has {int(n)} fields, expected {values.shape[1] + 2} "
                               f"({len(inside)} such row(s) between {record.start} and {record.end} s)")
    keep = (times > record.start) & (times < record.end)
    return values[keep], list(columns)  # boolean indexing copies: the cached array stays intact


def resample_mocap(frames: np.ndarray, n: int = 200) -> np.ndarray:
    """Exactly `n` frames by block averaging, the transformer system's mocap length normalisation.

    The rows are cut into `n` consecutive, nearly equal chunks (`np.array_split`: the first len % n chunks
    one row longer) and each chunk is averaged. With fewer than `n` rows some chunks are empty and give NaN
    rows; a NaN sample makes its chunk's mean NaN (plain mean, as the original), so callers decide how to fill.
    """
    frames = np.asarray(frames, dtype=np.float32)
    out = np.full((n, frames.shape[1]), np.nan, dtype=np.float32)
    for i, chunk in enumerate(np.array_split(frames, n, axis=0)):
        if len(chunk):
            out[i] = chunk.mean(axis=0)
    return out


# ------------------------------------------------------------------------------------- labels and folds


@dataclass(frozen=True)
class FourClassScheme:
    classes: tuple[str, ...]  # class names in one-hot / confusion-matrix order
    codes: dict[str, int]  # IEMOCAP consensus code -> class index; every other code is dropped
    full_corpus_size: int  # utterances kept on the real release (a sanity check for real data)


FOUR_CLASS = {
    # MDRE: excited merged into happy
    "mdre": FourClassScheme(classes=("angry", "happy", "sad", "neutral"),
                            codes={"ang": 0, "hap": 1, "exc": 1, "sad": 2, "neu": 3}, full_corpus_size=5531),
    # transformer/mocap system (PRML 2021): label_binarize order, hap dropped
    "prml": FourClassScheme(classes=("ang", "exc", "neu", "sad"),
                            codes={"ang": 0, "exc": 1, "neu": 2, "sad": 3}, full_corpus_size=4936),
}


def four_class(records: Sequence[Utterance], scheme: str) -> list[tuple[Utterance, int]]:
    """(record, class index) for the records whose code the scheme keeps, in the input order."""
    if scheme not in FOUR_CLASS:
        raise ValueError(f"4-class scheme {scheme!r} not one of {', '.join(FOUR_CLASS)}")
    codes = FOUR_CLASS[scheme].codes
    return [(r, codes[r.category]) for r in records if r.category in codes]


# MSP-Podcast's EmoClass letters of the four classes as IEMOCAP codes, per scheme, for scoring IEMOCAP-trained
# four-class models on MSP-Podcast (the reverse cross-corpus direction). MSP's Happy is IEMOCAP's hap (merged
# with exc in MDRE's scheme); the PRML scheme drops hap, and its exc (excited: positive, aroused) is the nearest
# class. Every other letter (U surprise, C contempt, D disgust, F fear, O other, X no agreement) is left out.
MSP_CATEGORY = {"mdre": {"A": "ang", "H": "hap", "N": "neu", "S": "sad"},
                "prml": {"A": "ang", "H": "exc", "N": "neu", "S": "sad"}}


def msp_four_class(records: Sequence[Utterance], scheme: str) -> tuple[list[tuple[Utterance, int]], dict[str, int]]:
    """((record, class index) of the MSP-Podcast records whose EmoClass maps to the scheme's four classes, in the
    input order; {EmoClass letter or 'none': utterances left out}) - see MSP_CATEGORY."""
    if scheme not in MSP_CATEGORY:
        raise ValueError(f"4-class scheme {scheme!r} not one of {', '.join(MSP_CATEGORY)}")
    to_code, codes = MSP_CATEGORY[scheme], FOUR_CLASS[scheme].codes
    kept, left = [], {}
    for r in records:
        letter = (r.category or "").strip().upper()
        if letter in to_code:
            kept.append((r, codes[to_code[letter]]))
        else:
            left[letter or "none"] = left.get(letter or "none", 0) + 1
    return kept, dict(sorted(left.items()))


Item = TypeVar("Item")


def _session(item: Utterance | tuple[Utterance, int]) -> int:
    return (item if isinstance(item, Utterance) else item[0]).session


def _utt_id(item: Utterance | tuple[Utterance, int]) -> str:
    return (item if isinstance(item, Utterance) else item[0]).utt_id


def loso_folds(records: Sequence[Item]) -> list[tuple[list[Item], list[Item]]]:
    """Leave-one-session-out: one (train, test) per session present, sessions ascending, input order kept.

    Items are records or (record, label) pairs as `four_class` returns them.
    """
    sessions = sorted({_session(r) for r in records})
    return [([r for r in records if _session(r) != s], [r for r in records if _session(r) == s]) for s in sessions]


def loso_dev_folds(items: Sequence[Item], dev_share: float = 0.1,
                   seed: int = 3372) -> list[tuple[list[Item], list[Item], list[Item]]]:
    """`loso_folds` with a dev part: (train, dev, test) per held-out session, the dev part a seeded random
    `dev_share` of the training sessions' items (never of the test session), order kept within each part."""
    folds = []
    for train, test in loso_folds(items):
        rng = random.Random(seed)
        dev_idx = set(rng.sample(range(len(train)), max(1, round(dev_share * len(train)))))
        folds.append(([it for i, it in enumerate(train) if i not in dev_idx],
                      [it for i, it in enumerate(train) if i in dev_idx], test))
    return folds


def loso_session_folds(items: Sequence[Item], dev_share: float = 0.1, seed: int = 3372
                       ) -> tuple[dict[int, tuple[list[Item], list[Item], list[Item]]], list[int]]:
    """`loso_dev_folds` numbered by held-out session: ({session: (train, dev, test)}, the sessions of 1-5 that
    have no item). A fold is named after the session it tests, never its position, so with Session 3 absent
    Session 4 is still fold 4 (mdre.py, speech_text_mocap.py); the caller warns about the absent ones."""
    present = sorted({_session(it) for it in items})
    return dict(zip(present, loso_dev_folds(items, dev_share, seed))), [s for s in SESSIONS if s not in present]


def session5_split(records: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    """The transformer system's split: train = Sessions 1-4, test = Session 5, each sorted by utterance id."""
    ordered = sorted(records, key=_utt_id)
    return [r for r in ordered if _session(r) != 5], [r for r in ordered if _session(r) == 5]


def mdre_random_folds(items: Sequence[Item]) -> list[tuple[list[Item], list[Item], list[Item]]]:
    """MDRE's five random utterance-level folds as (train, dev, test), reproduced draw for draw.

    `items` must be the 4-class utterances in the global order (read_iemocap's order, filtered). One draw per
    item after seeding 337 assigns fold 1..5 (r > 0.8, > 0.6, > 0.4, > 0.2, else). For each fold the generator
    is re-seeded with 3372 and drawn once per index over ALL items; fold members with r > 0.70 go to dev, the
    rest of the fold to test, every non-member to train. Private `random.Random` instances give the same
    streams as the original's `random.seed` without touching the global generator. On the real 5,531 this
    yields train/dev/test 4445/313/773, 4374/386/771, 4399/353/779, 4432/343/756, 4474/307/750.
    """
    fold_rng = random.Random(337)
    fold_of = []
    for _ in items:
        r = fold_rng.random()
        fold_of.append(1 if r > 0.8 else 2 if r > 0.6 else 3 if r > 0.4 else 4 if r > 0.2 else 5)
    dev_rng = random.Random(3372)  # re-seeded per fold in the original: the same draws every fold
    dev_draw = [dev_rng.random() for _ in items]
    folds = []
    for k in range(1, 6):
        train = [it for it, f in zip(items, fold_of) if f != k]
        dev = [it for it, f, r in zip(items, fold_of, dev_draw) if f == k and r > 0.70]
        test = [it for it, f, r in zip(items, fold_of, dev_draw) if f == k and r <= 0.70]
        folds.append((train, dev, test))
    return folds

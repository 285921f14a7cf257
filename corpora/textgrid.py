"""Praat TextGrid reading (long and short text formats) and writing (long format).

Reading goes through the `textgrid` PyPI package (pinned in requirements.txt), as the original systems did
(`textgrid.TextGrid.fromFile`): times are rounded to its default 5 decimals and zero-length intervals are
skipped, as there. This wrapper adds what the package (1.6.1) gets wrong on real files:

* encoding: chosen here from the bytes (UTF-16 with either BOM, as Praat writes it; UTF-8 with or without BOM;
  anything that is not valid UTF-8 is read as Latin-1 instead of raising UnicodeDecodeError) and handed to
  the package;
* `tiers? <absent>` (a TextGrid without tiers) makes the package raise IndexError; here it reads as no tiers;
* tier names keep Praat's doubled quotes (`""`) in the package; they are unescaped here;
* every error (bad header, truncated file, bad number, an interval outside its tier) becomes one error type,
  MalformedTextGrid (a CorpusError), naming the file, the problem and its line where known: long-format files
  are checked line by line (`_check_long`) and short-format files token by token (`_read_short`) before the
  package reads them, because the package's own errors are internal ones (`AttributeError: 'NoneType' object
  has no attribute 'groups'`) without a line. A missing or unreadable file stays a plain CorpusError.

One real format the package cannot read at all: the SHORT text format with a TextTier (point tier) holding
points, before or after the interval tiers. The package expects a `points [i]:` line per point, which only the
long format has, and fails. Such files (short format with a `"TextTier"` line) are read by the small
strict token parser `_read_short` below instead; it gives the same results as the package path (same rounding,
zero-length intervals skipped, intervals outside their tier rejected).

MSP-Podcast's `ForceAligned/*.TextGrid` files put the word tier first; `read_words` returns tier index 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import textgrid as _tgpkg
from textgrid.exceptions import TextGridError as _PackageError

from corpora.records import CorpusError

ROUND_DIGITS = 5  # the package's default precision (textgrid.textgrid.DEFAULT_TEXTGRID_PRECISION)
SILENCE_MARKS = frozenset({"sil", "sp", "<sil>", "{sl}"})  # dropped only with read_words(drop_silence_marks=True)


class MalformedTextGrid(CorpusError):
    """A TextGrid file that exists but cannot be used: its `reason` says what is wrong, with the line number
    where it is known (`line`). Every reading problem other than a missing or unreadable file is this type, so
    callers can tell a malformed TextGrid from a missing one."""

    def __init__(self, path, reason: str, line: int | None = None):
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{path}: malformed TextGrid: {where}{reason}")
        self.path, self.reason, self.line = str(path), f"{where}{reason}", line


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class _Tier:
    kind: str  # "interval" or "point"
    name: str
    intervals: list[Interval]  # empty for point tiers (their points are not needed here)


def _decode(path: Path) -> tuple[str, str]:
    """(encoding for codecs.open, decoded text) of a TextGrid file."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read TextGrid ({e.strerror})") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        enc = "utf-16"  # Praat's default for non-ASCII text; the codec reads the BOM and its byte order
    elif raw[:3] == b"\xef\xbb\xbf":
        enc = "utf-8-sig"
    else:
        try:
            raw.decode("utf-8")
            enc = "utf-8"
        except UnicodeDecodeError:
            enc = "latin-1"  # old 8-bit files; never fails, unlike the package's own detection
    try:
        return enc, raw.decode(enc)
    except UnicodeDecodeError as e:
        raise MalformedTextGrid(path, f"bad {enc} text ({e.reason})") from None


def _load(path: str | Path) -> list[_Tier]:
    """All tiers in file order. Raises CorpusError naming a missing or unreadable file, MalformedTextGrid
    (naming the file, the problem and its line where known) for anything else."""
    path = Path(path)
    enc, text = _decode(path)
    lines = text.splitlines()
    if not lines or not re.match(r'\s*File type = "ooTextFile', lines[0]):
        first = lines[0].strip()[:60] if lines else "empty file"
        raise MalformedTextGrid(path, f"not a Praat text-format TextGrid (starts with {first!r})", 1 if lines else None)
    short = len(lines) > 3 and not re.match(r"\s*xmin\s*=", lines[3])
    if len(lines) > 5 and lines[5].strip().endswith("<absent>"):  # xmin, xmax, then the tiers flag
        return []
    try:
        if short:
            tiers = _read_short(text)  # strict: a malformed short file fails here, with its line
            if any(t.kind == "point" for t in tiers):
                return tiers  # the package cannot read these; ours reads them the same way
        else:
            _check_long(lines)  # strict: a malformed long file fails here, with its line
        tg = _tgpkg.TextGrid()
        tg.read(str(path), round_digits=ROUND_DIGITS, encoding=enc)
    except _Malformed as e:
        raise MalformedTextGrid(path, e.reason, e.line) from None
    except (_PackageError, ValueError, TypeError, AttributeError, IndexError, EOFError) as e:
        # what the checks above let through (e.g. an interval outside its tier): the package's own words
        raise MalformedTextGrid(path, f"{str(e).strip()[:120] or type(e).__name__}") from None
    tiers = []
    for t in tg.tiers:
        name = (t.name or "").replace('""', '"')
        if isinstance(t, _tgpkg.IntervalTier):
            tiers.append(_Tier("interval", name, [Interval(iv.minTime, iv.maxTime, _nl(iv.mark)) for iv in t]))
        else:
            tiers.append(_Tier("point", name, []))
    return tiers


class _Malformed(Exception):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason, self.line = reason, line


# ------------------------------------------------------------------------- long format: line-by-line check

_LONG_ENTRY = re.compile(r'\s*([A-Za-z?]+(?:\s*\[\d*\])?)\s*(?::\s*([a-z]+)\s*=|:|=|(?<=\?))\s*(.*?)\s*$')
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _long_entries(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line number, key, value) per entry of a long-format TextGrid: `xmin = 0` -> ('xmin', '0'),
    `intervals: size = 5` -> ('intervals: size', '5'), `item [2]:` -> ('item [2]', ''). A quoted value may
    span lines (a multi-line mark); it is joined back. Blank lines are skipped."""
    out, k = [], 2  # after the two header lines
    while k < len(lines):
        line, lineno = lines[k], k + 1
        k += 1
        if not line.strip():
            continue
        m = _LONG_ENTRY.fullmatch(line)
        if m is None:
            raise _Malformed(f"expected 'name = value' or an item header, found {line.strip()[:60]!r}", lineno)
        key = re.sub(r"\s+", " ", m[1]) + (f": {m[2]}" if m[2] else "")
        value = m[3]
        while value.startswith('"') and not _closed(value):
            if k >= len(lines):
                raise _Malformed(f"the quoted text of {key!r} is not closed before the end of the file", lineno)
            value += "\n" + lines[k]
            k += 1
            value = value.rstrip()
        out.append((lineno, key, value))
    return out


def _closed(value: str) -> bool:
    """Whether a value starting with a quote is one complete quoted string ("" is an escaped quote)."""
    return re.fullmatch(r'"(?:[^"]|"")*"', value) is not None


def _check_long(lines: list[str]) -> None:
    """Walk a long-format TextGrid as Praat writes it; _Malformed naming the first line that is not what the
    format expects there (or what is missing at the end of a truncated file)."""
    entries = iter(_long_entries(lines))
    last = [1]

    def expect(key: str, kind: str, where: str = "") -> str:
        entry = next(entries, None)
        if entry is None:
            raise _Malformed(f"the file ends at line {len(lines)}, expected {key!r}{where} (truncated?)")
        lineno, got_key, value = entry
        last[0] = lineno
        ok = (got_key == key or (key, got_key) == ("number", "time")) and {  # older Praat wrote `time =`
            "number": lambda v: re.fullmatch(_NUMBER, v), "count": lambda v: re.fullmatch(r"\d+", v),
            "text": _closed, "flag": lambda v: v in ("<exists>", "<absent>"), "none": lambda v: v == ""}[kind](value)
        if not ok:
            want = {"number": "a number", "count": "a count", "text": "quoted text", "flag": "<exists> or <absent>",
                    "none": "nothing after it"}[kind]
            raise _Malformed(f"expected {key!r} with {want}{where}, found {f'{got_key} = {value}'[:60]!r}", lineno)
        return value

    expect("xmin", "number")
    expect("xmax", "number")
    if expect("tiers?", "flag") == "<absent>":
        return
    n_tiers = int(expect("size", "count"))
    expect("item []", "none")
    for i in range(1, n_tiers + 1):
        expect(f"item [{i}]", "none")
        klass = expect("class", "text")
        if klass not in ('"IntervalTier"', '"TextTier"'):
            raise _Malformed(f"tier {i}: unknown tier class {klass}", last[0])
        name = expect("name", "text")
        where = f" in tier {i} ({name})"
        expect("xmin", "number", where)
        expect("xmax", "number", where)
        part, fields = ("intervals", ("xmin", "xmax", "text")) if klass == '"IntervalTier"' else \
            ("points", ("number", "mark"))
        n = int(expect(f"{part}: size", "count", where))
        for j in range(1, n + 1):
            at = f" ({part} {j} of {n}{where})"
            expect(f"{part} [{j}]", "none", at)
            for f in fields:
                expect(f, "text" if f in ("text", "mark") else "number", at)
    extra = next(entries, None)
    if extra is not None:
        raise _Malformed(f"unexpected {f'{extra[1]} = {extra[2]}'[:60]!r} after the last of {n_tiers} tier(s)",
                         extra[0])


# The short format is the header, then a stream of numbers, quoted strings ("" escapes a quote; newlines allowed)
# and <flags>, separated by white space. Anything else is an error, so truncated or damaged files are caught.
_SHORT_HEAD = re.compile(r'\s*File type = "ooTextFile(?: short)?"\s*(?:Object class = )?"TextGrid"')
_SHORT_TOKEN = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|<(\w+)>)(?=\s|$)')


class _Flag(str):
    """An unquoted <flag> token (<exists>, <absent>), kept apart from quoted text such as "<unk>"."""


def _short_tokens(text: str) -> list[tuple[object, int]]:
    """(token, line number) of a short-format TextGrid after its header: float, quoted text or _Flag."""
    head = _SHORT_HEAD.match(text)
    if head is None:
        raise _Malformed("not a Praat TextGrid (header)", 1)
    toks: list = []
    pos = head.end()
    while text[pos:].strip():
        m = _SHORT_TOKEN.match(text, pos)
        line = text.count("\n", 0, pos + len(text[pos:]) - len(text[pos:].lstrip())) + 1
        if m is None:
            raise _Malformed(f"unexpected text {text[pos:].strip()[:30]!r}", line)
        s, num, flag = m.groups()
        toks.append((s.replace('""', '"') if s is not None else (float(num) if num is not None else _Flag(flag)),
                     line))
        pos = m.end()
    return toks


class _Cursor:
    """Reads typed tokens in order; _Malformed with the token's line (or the end of the file) otherwise."""

    def __init__(self, toks: list[tuple[object, int]], last_line: int):
        self.toks, self.i, self.last_line = toks, 0, last_line

    def take(self, check, what: str):
        if self.i >= len(self.toks):
            raise _Malformed(f"the file ends at line {self.last_line}, expected {what} (truncated?)")
        tok, line = self.toks[self.i]
        self.i += 1
        try:
            return check(tok)
        except ValueError as e:
            raise _Malformed(f"{what}: {e}", line) from None

    def line(self) -> int:
        return self.toks[min(self.i, len(self.toks)) - 1][1] if self.toks else 1


def _read_short(text: str) -> list[_Tier]:
    """Short-format TextGrid, read strictly (used for every short file: it gives the same values as the
    package, and it alone reads point tiers). Raises _Malformed with the line of the first bad token."""
    toks = _short_tokens(text)
    cur = _Cursor(toks, len(text.splitlines()))
    cur.take(_num, "xmin of the TextGrid")
    xmax = cur.take(_num, "xmax of the TextGrid")
    flag = cur.take(lambda t: t if isinstance(t, _Flag) and t in ("exists", "absent") else _bad("<exists>", t),
                    "the tiers flag")
    if flag == "absent":
        return []
    tiers = []
    n_tiers = cur.take(_count, "the number of tiers")
    for k in range(1, n_tiers + 1):
        klass = cur.take(_text, f"the class of tier {k}")
        name = cur.take(_text, f"the name of tier {k}")
        where = f" of tier {k} ({name!r})"
        tmin, tmax = cur.take(_num, "xmin" + where), cur.take(_num, "xmax" + where)
        if tmax > xmax:
            raise _Malformed(f"tier {k} ({name!r}) ends at {tmax}, after the TextGrid's end {xmax}", cur.line())
        n = cur.take(_count, "the number of items" + where)
        if klass == "TextTier":
            for i in range(1, n + 1):
                cur.take(_num, f"the time of point {i} of {n}{where}"), cur.take(_text, f"the mark of point {i}{where}")
            tiers.append(_Tier("point", name, []))
        elif klass == "IntervalTier":
            ivs = []
            for i in range(1, n + 1):
                at = f" of interval {i} of {n}{where}"
                iv = Interval(cur.take(_num, "xmin" + at), cur.take(_num, "xmax" + at), cur.take(_text, "text" + at))
                if iv.start < tmin or iv.end > tmax:
                    raise _Malformed(f"interval {i} ({iv.start}-{iv.end}) lies outside tier {k} ({name!r}, "
                                     f"{tmin}-{tmax})", cur.line())
                ivs.append(iv)
            tiers.append(_Tier("interval", name, [iv for iv in ivs if iv.start < iv.end]))
        else:
            raise _Malformed(f"tier {k}: unknown tier class {klass!r}", cur.line())
    if cur.i < len(toks):
        raise _Malformed(f"unexpected {toks[cur.i][0]!r} after the last of {n_tiers} tier(s)", toks[cur.i][1])
    return tiers


def _bad(want: str, tok):
    raise ValueError(f"{want} expected, got {tok!r}")


def _num(tok) -> float:
    if not isinstance(tok, float):
        _bad("number", tok)
    return round(tok, ROUND_DIGITS)


def _count(tok) -> int:
    if not isinstance(tok, float) or tok != int(tok) or tok < 0:
        _bad("count", tok)
    return int(tok)


def _text(tok) -> str:
    if not isinstance(tok, str) or isinstance(tok, _Flag):
        _bad("quoted text", tok)
    return _nl(tok)


def _nl(mark: str) -> str:
    """Multi-line marks of CRLF files (read in binary mode by the package) get plain newlines."""
    return mark.replace("\r\n", "\n")


def read_textgrid(path: str | Path) -> dict[str, list[Interval]]:
    """Interval tiers only: tier name -> intervals, in file order (dicts keep it); point tiers are left out.

    A name used by two tiers keeps the first. Raises CorpusError naming the file.
    """
    tiers: dict[str, list[Interval]] = {}
    for t in _load(path):
        if t.kind == "interval":
            tiers.setdefault(t.name, t.intervals)
    return tiers


def read_words(path: str | Path, keep_silence: bool = False, drop_silence_marks: bool = False) -> list[Interval]:
    """The word tier: tier index 0 of the file, as in the original systems.

    Default (the original rule): every interval is a word except those whose mark is empty; any other mark,
    e.g. `sp`, `sil` or `<unk>`, counts as a word. (Whitespace-only marks are taken as empty too; the
    original compared with '' exactly, and Praat/aligners do not write such marks.)
    `drop_silence_marks=True` (opt-in, the former behaviour of this reader) also drops intervals marked
    `sil`, `sp`, `<sil>` or `{sl}` (case-insensitive). `keep_silence=True` returns every interval of the tier.
    Raises CorpusError naming the file when it is missing or cannot be read; MalformedTextGrid (a CorpusError)
    naming the file, the problem and its line where known when it is malformed, has no tiers, or its tier 0 is a
    point tier.
    """
    tiers = _load(path)
    if not tiers:
        raise MalformedTextGrid(path, "no interval tier (no word tier)")
    if tiers[0].kind != "interval":
        raise MalformedTextGrid(path, f"tier 1 ({tiers[0].name!r}) is a point tier, not a word tier")
    words = tiers[0].intervals
    if keep_silence:
        return list(words)
    words = [w for w in words if w.text.strip()]
    if drop_silence_marks:
        words = [w for w in words if w.text.strip().lower() not in SILENCE_MARKS]
    return words


def write_textgrid(path: str | Path, tiers: dict[str, list[Interval]], xmax: float | None = None) -> None:
    """Long-format TextGrid; gaps between intervals are filled with empty intervals, as Praat requires."""
    from utils import atomic_write_text

    end = xmax if xmax is not None else max((iv.end for ivs in tiers.values() for iv in ivs), default=0.0)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {end:.4f}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for t, (name, ivs) in enumerate(tiers.items(), 1):
        filled, cursor = [], 0.0
        for iv in ivs:
            if iv.start > cursor + 1e-6:
                filled.append(Interval(cursor, iv.start, ""))
            filled.append(iv)
            cursor = iv.end
        if end > cursor + 1e-6:
            filled.append(Interval(cursor, end, ""))
        lines += [f"    item [{t}]:", '        class = "IntervalTier"', f'        name = "{name}"',
                  "        xmin = 0", f"        xmax = {end:.4f}", f"        intervals: size = {len(filled)}"]
        for i, iv in enumerate(filled, 1):
            text = iv.text.replace('"', '""')
            lines += [f"        intervals [{i}]:", f"            xmin = {iv.start:.4f}",
                      f"            xmax = {iv.end:.4f}", f'            text = "{text}"']
    atomic_write_text(path, "\n".join(lines) + "\n")

"""Praat TextGrid reading (long and short text formats) and writing (long format).

Reading goes through the `textgrid` PyPI package (pinned in requirements.txt), as the original systems did
(`textgrid.TextGrid.fromFile`): times are rounded to its default 5 decimals and zero-length intervals are
skipped, as there. This wrapper adds what the package (1.6.1) gets wrong on real files:

* encoding: chosen here from the bytes (UTF-16 with either BOM, as Praat writes it; UTF-8 with or without BOM;
  anything that is not valid UTF-8 is read as Latin-1 instead of raising UnicodeDecodeError) and handed to
  the package;
* `tiers? <absent>` (a TextGrid without tiers) makes the package raise IndexError; here it reads as no tiers;
* tier names keep Praat's doubled quotes (`""`) in the package; they are unescaped here;
* every error (bad header, truncated file, bad number, an interval outside its tier) becomes a CorpusError
  naming the file.

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
from textgrid.exceptions import TextGridError

from corpora.records import CorpusError

ROUND_DIGITS = 5  # the package's default precision (textgrid.textgrid.DEFAULT_TEXTGRID_PRECISION)
SILENCE_MARKS = frozenset({"sil", "sp", "<sil>", "{sl}"})  # dropped only with read_words(drop_silence_marks=True)


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
        raise CorpusError(f"{path}: malformed TextGrid (bad {enc} text: {e.reason})") from None


def _load(path: str | Path) -> list[_Tier]:
    """All tiers in file order. Raises CorpusError naming the file."""
    path = Path(path)
    enc, text = _decode(path)
    lines = text.splitlines()
    if not lines or not re.match(r'\s*File type = "ooTextFile', lines[0]):
        first = lines[0].strip()[:60] if lines else "empty file"
        raise CorpusError(f"{path}: malformed TextGrid (not a Praat text-format TextGrid; starts with {first!r})")
    short = len(lines) > 3 and not re.match(r"\s*xmin\s*=", lines[3])
    if len(lines) > 5 and lines[5].strip().endswith("<absent>"):  # xmin, xmax, then the tiers flag
        return []
    try:
        if short and any(line.strip() == '"TextTier"' for line in lines):
            return _read_short(text)
        tg = _tgpkg.TextGrid()
        tg.read(str(path), round_digits=ROUND_DIGITS, encoding=enc)
        tiers = []
        for t in tg.tiers:
            name = (t.name or "").replace('""', '"')
            if isinstance(t, _tgpkg.IntervalTier):
                tiers.append(_Tier("interval", name, [Interval(iv.minTime, iv.maxTime, _nl(iv.mark)) for iv in t]))
            else:
                tiers.append(_Tier("point", name, []))
        return tiers
    except (TextGridError, ValueError, TypeError, AttributeError, IndexError, EOFError) as e:
        raise CorpusError(f"{path}: malformed or truncated TextGrid ({type(e).__name__}: {str(e).strip()[:120]})") from None


# The short format is the header, then a stream of numbers, quoted strings ("" escapes a quote; newlines allowed)
# and <flags>, separated by white space. Anything else is an error, so truncated or damaged files are caught.
_SHORT_HEAD = re.compile(r'\s*File type = "ooTextFile(?: short)?"\s*(?:Object class = )?"TextGrid"')
_SHORT_TOKEN = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|<(\w+)>)(?=\s|$)')


class _Flag(str):
    """An unquoted <flag> token (<exists>, <absent>), kept apart from quoted text such as "<unk>"."""


def _read_short(text: str) -> list[_Tier]:
    """Short-format TextGrid with point tiers (the one case the package cannot read). Raises ValueError/IndexError."""
    head = _SHORT_HEAD.match(text)
    if head is None:
        raise ValueError("not a Praat TextGrid (header)")
    toks: list = ["ooTextFile", "TextGrid"]
    pos = head.end()
    while text[pos:].strip():
        m = _SHORT_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected text {text[pos:].strip()[:30]!r}")
        s, num, flag = m.groups()
        toks.append(s.replace('""', '"') if s is not None else (float(num) if num is not None else _Flag(flag)))
        pos = m.end()
    _num(toks[2])
    xmax = _num(toks[3])
    if not (isinstance(toks[4], _Flag) and toks[4] in ("exists", "absent")):  # file type, class, xmin, xmax, flag
        raise ValueError(f"tiers flag expected, got {toks[4]!r}")
    if toks[4] == "absent":
        return []
    pos, tiers = 6, []
    for _ in range(_count(toks[5])):
        klass, name, tmin, tmax, n = _text(toks[pos]), _text(toks[pos + 1]), _num(toks[pos + 2]), \
            _num(toks[pos + 3]), _count(toks[pos + 4])
        if tmax > xmax:
            raise ValueError(f"tier {name!r} ends after the TextGrid")
        pos += 5
        if klass == "TextTier":
            for i in range(n):
                _num(toks[pos + 2 * i]), _text(toks[pos + 2 * i + 1])
            tiers.append(_Tier("point", name, []))
            pos += 2 * n
        elif klass == "IntervalTier":
            ivs = [Interval(_num(toks[pos + 3 * i]), _num(toks[pos + 3 * i + 1]), _text(toks[pos + 3 * i + 2]))
                   for i in range(n)]
            if any(iv.start < tmin or iv.end > tmax for iv in ivs):
                raise ValueError(f"interval outside tier {name!r}")
            tiers.append(_Tier("interval", name, [iv for iv in ivs if iv.start < iv.end]))
            pos += 3 * n
        else:
            raise ValueError(f"unknown tier class {klass!r}")
    return tiers


def _num(tok) -> float:
    if not isinstance(tok, float):
        raise ValueError(f"number expected, got {tok!r}")
    return round(tok, ROUND_DIGITS)


def _count(tok) -> int:
    if not isinstance(tok, float) or tok != int(tok) or tok < 0:
        raise ValueError(f"count expected, got {tok!r}")
    return int(tok)


def _text(tok) -> str:
    if not isinstance(tok, str) or isinstance(tok, _Flag):
        raise ValueError(f"quoted text expected, got {tok!r}")
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
    Raises CorpusError naming the file when it cannot be read, has no tiers, or its tier 0 is a point tier.
    """
    tiers = _load(path)
    if not tiers:
        raise CorpusError(f"{path}: TextGrid has no interval tier")
    if tiers[0].kind != "interval":
        raise CorpusError(f"{path}: TextGrid tier 1 ({tiers[0].name!r}) is a point tier, not a word tier")
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

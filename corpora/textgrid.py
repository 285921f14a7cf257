"""Praat TextGrid reading (long and short text formats) and writing (long format), interval tiers only.

MSP-Podcast's `ForceAligned/*.TextGrid` files put the word tier first; `read_words` returns that tier.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from corpora.records import CorpusError


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    text: str


# Praat's text format is a stream of numbers, quoted strings and <flags>; everything else (keys such as
# `xmin =`, `item [1]:`) is decoration. Reading only the tokens handles the long and the short format alike.
_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(?<![\w\[])([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w\]])|<(\w+)>')


def read_textgrid(path: str | Path) -> dict[str, list[Interval]]:
    """Tier name -> intervals, in file order (dicts keep it). Raises CorpusError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read TextGrid ({e.strerror})") from None
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8", "replace")
    text = re.sub(r"\[\s*\d+\s*\]", "", text)  # item [1]: / intervals [3]: are labels, not values
    toks = []
    for m in _TOKEN.finditer(text):
        s, num, flag = m.groups()
        toks.append(s.replace('""', '"') if s is not None else (float(num) if num is not None else f"<{flag}>"))
    try:
        if toks[:2] != ["ooTextFile", "TextGrid"]:
            raise ValueError("not a Praat TextGrid (header)")
        pos = 4  # file type, object class, xmin, xmax
        if toks[pos] != "<exists>":
            return {}
        n_tiers = int(toks[pos + 1])
        pos += 2
        tiers: dict[str, list[Interval]] = {}
        for _ in range(n_tiers):
            klass, name = toks[pos], toks[pos + 1]
            n = int(toks[pos + 4])
            pos += 5
            if klass != "IntervalTier":
                pos += 2 * n  # TextTier points: time, mark
                continue
            tiers[name] = [Interval(float(toks[pos + 3 * i]), float(toks[pos + 3 * i + 1]), str(toks[pos + 3 * i + 2]))
                           for i in range(n)]
            pos += 3 * n
        return tiers
    except (IndexError, ValueError, TypeError) as e:
        raise CorpusError(f"{path}: malformed TextGrid ({e})") from None


def read_words(path: str | Path, keep_silence: bool = False) -> list[Interval]:
    """The first (word) tier; empty and silence intervals dropped unless `keep_silence`."""
    tiers = read_textgrid(path)
    if not tiers:
        raise CorpusError(f"{path}: TextGrid has no interval tier")
    words = next(iter(tiers.values()))
    if keep_silence:
        return words
    return [w for w in words if w.text.strip() and w.text.strip().lower() not in {"sil", "sp", "<sil>", "{sl}"}]


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

"""A report as a list of blocks, rendered twice: Markdown and one self-contained HTML page.

Markdown with its figures as files beside it; the HTML page with its figures inlined as base64 PNGs (no script, no
external style, no link that leaves the page: the references [R<k>] point at the page's own provenance entries,
which carry the result files' key numbers). Every table sits in a wrapper that scrolls sideways on a narrow screen
(the page itself never does); a small figure (a confusion matrix) is enlarged in place by a click (its own anchor,
CSS :target)."""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Link:
    text: str
    href: str  # relative to the report's folder


@dataclass(frozen=True)
class MeanSd:
    """Mean ± standard deviation over training seeds, shown as `0.7012 ± 0.0150 (3 seeds)`."""
    mean: float
    sd: float | None
    n: int

    def text(self, digits: int = 4) -> str:
        sd = "" if self.sd is None else f" ± {self.sd:.{digits}f}"
        return f"{self.mean:.{digits}f}{sd} ({self.n} seed{'s' if self.n != 1 else ''})"


@dataclass
class Entry:
    """One reference of the provenance list: its anchor (R<k>), a one-line summary and its facts (name, value)."""
    ref: str
    summary: str
    facts: list[tuple[str, object]]


@dataclass
class Table:
    header: list[str]
    rows: list[list]  # cells: str, float (4 decimals), None (blank), Link, list of Links
    reported: set[int] = field(default_factory=set)  # rows that are published anchors, not re-measured
    note: str = ""
    baseline: set[int] = field(default_factory=set)  # rows that are reference levels (chance, majority class)


@dataclass
class Figure:
    path: Path  # the PNG, inside the report's folder
    caption: str


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | table | figures | details
    text: str = ""
    table: Table | None = None
    figures: list[Figure] = field(default_factory=list)
    body: str = ""  # details: preformatted text
    small: bool = False  # figures: thumbnails in a grid (e.g. confusion matrices), enlarged by a click
    entries: list[Entry] = field(default_factory=list)  # refs: the provenance list


def _scored(v) -> bool:
    """A metric with its interval (metrics.Scored) or a mean over seeds (MeanSd): rendered by its own text()."""
    return hasattr(v, "text") and (hasattr(v, "lo") or isinstance(v, MeanSd))


def _cell(v) -> str:
    if v is None:
        return ""
    if _scored(v):
        number = v.mean if isinstance(v, MeanSd) else v.value
        return "n/a" if number != number else v.text()
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.4f}"
    return str(v)


def cell_text(v) -> str:
    """A cell as text (a metric with its interval, a mean ± sd, a number with 4 decimals, blank for None): what
    the report puts into a line of its own (a provenance entry's key numbers)."""
    return _cell(v)


def _numeric(v) -> bool:
    return isinstance(v, float) or _scored(v)


def _md_cell(v) -> str:
    if isinstance(v, list):  # several links in one cell
        return ", ".join(_md_cell(x) for x in v)
    if isinstance(v, Link):
        return f"[{v.text}]({v.href})"
    return _cell(v).replace("|", "\\|")


def to_markdown(blocks: list[Block], folder: Path) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "table":
            t = b.table
            lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
            for i, r in enumerate(t.rows):
                cells = [_md_cell(c) for c in r]
                if i in t.reported or i in t.baseline:
                    cells = [f"*{c}*" if c else c for c in cells]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines) + (f"\n\n{t.note}" if t.note else ""))
        elif b.kind == "figures":
            out.append("\n\n".join(f"![{f.caption}]({f.path.relative_to(folder).as_posix()})\n*{f.caption}*"
                                   for f in b.figures))
        elif b.kind == "details":
            out.append(f"<details><summary>{b.text}</summary>\n\n```\n{b.body}\n```\n</details>")
        elif b.kind == "refs":
            out.append("\n".join(f"- <a id='{e.ref}'></a>**{e.ref}** {e.summary}\n" + "\n".join(
                f"  - {k}: {_md_fact(v)}" for k, v in e.facts if v not in (None, "", [])) for e in b.entries))
    return "\n\n".join(out) + "\n"


def _md_fact(v) -> str:
    return f"`{v}`" if isinstance(v, str) and (" " in v and v.startswith("python ")) else _md_cell(v)


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
color:#1d2530;line-height:1.45;overflow-wrap:break-word}
h1{font-size:1.6em;border-bottom:2px solid #3b6ea5;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #ccd5df}
.scroll{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ccd5df;padding:.3em .6em;text-align:left;vertical-align:top}
td{max-width:28em;overflow-wrap:break-word}td.long{min-width:16em}
th{background:#eef3f8}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.reported td{font-style:italic;background:#fbf6e9;color:#6b5518}
tr.baseline td{font-style:italic;background:#f3f5f7;color:#4a5663}
.note{font-size:.85em;color:#4a5663}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0;max-width:100%}
.figs img{max-width:100%;border:1px solid #e2e8ef}.figs.small figure{width:420px}
.figs.small figure:target{width:100%}.figs.small figure:target img{width:auto;max-width:100%}
figcaption{font-size:.82em;color:#4a5663}
pre{background:#f5f7fa;padding:.8em;overflow:auto;font-size:.85em;white-space:pre-wrap;overflow-wrap:anywhere}
.legend{display:inline-block;padding:.1em .5em;background:#fbf6e9;font-style:italic;color:#6b5518}
details.ref{border-bottom:1px solid #e2e8ef;padding:.25em 0}details.ref summary{cursor:pointer}
details.ref dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.1em 1em;margin:.4em 0 .6em 1em;
font-size:.85em}details.ref dt{color:#4a5663}details.ref dd{margin:0;overflow-wrap:anywhere}
details.ref code{white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:600px){details.ref dl{grid-template-columns:1fr}details.ref dd{margin-left:.8em}
td,th{min-width:7em}}  /* a narrow screen: wider columns, the table scrolls sideways in its wrapper */
"""


def _html_cell(v) -> str:
    if isinstance(v, list):
        return ", ".join(_html_cell(x) for x in v)
    if isinstance(v, Link):
        return f'<a href="{html.escape(v.href)}">{html.escape(v.text)}</a>'
    return html.escape(_cell(v))


def to_html(blocks: list[Block], title: str) -> str:
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head><body>"]
    figure_ids = iter(range(1, 1 << 30))
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            anchor = "".join(ch if ch.isalnum() else "-" for ch in b.text.lower()).strip("-")
            out.append(f"<{b.kind} id='{anchor}'>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            out.append(_html_table(b.table))
        elif b.kind == "figures":
            out.append(_html_figures(b, figure_ids))
        elif b.kind == "details":
            out.append(f"<details><summary>{html.escape(b.text)}</summary><pre>{html.escape(b.body)}</pre></details>")
        elif b.kind == "refs":
            out.append("".join(_html_entry(e) for e in b.entries))
    out.append("</body></html>")
    return "\n".join(out)


def _html_table(t: Table) -> str:
    """The table inside a sideways-scrolling wrapper (a wide table scrolls, the page does not)."""
    rows = []
    for i, r in enumerate(t.rows):
        cls = " class='reported'" if i in t.reported else " class='baseline'" if i in t.baseline else ""
        tds = "".join(f"<td{_td_class(c)}>{_html_cell(c)}</td>" for c in r)
        rows.append(f"<tr{cls}>{tds}</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + (f"<p class='note'>{html.escape(t.note)}</p>" if t.note else ""))


def _td_class(c) -> str:
    """Numbers right-aligned on one line; a long text (an anchor's note) gets a readable width instead of a
    column one word wide on a phone."""
    if _numeric(c) or (isinstance(c, str) and _NUMBER_TEXT.match(c)):
        return " class=num"
    return " class=long" if isinstance(c, str) and len(c) > 60 else ""


# a number already written as text: a difference with its interval (+0.0105 [-0.01, +0.04]), a value with its
# spread over simulation draws
_NUMBER_TEXT = re.compile(r"^(< )?[+-]?\d+\.\d+( \[[^\]]*\])?( \(sd [^)]*\))?$")


def _html_figures(b: Block, ids) -> str:
    """Figures inlined as data: URIs. Small ones (a grid of confusion matrices) link to their own anchor: a
    click shows that one at full width (CSS :target), with no copy of the image and no link out of the page."""
    figs = []
    for f in b.figures:
        data = base64.b64encode(Path(f.path).read_bytes()).decode()
        img = f"<img alt='{html.escape(f.caption)}' src='data:image/png;base64,{data}'>"
        if b.small:
            fid = f"fig{next(ids)}"
            figs.append(f"<figure id='{fid}'><a href='#{fid}' title='click to enlarge'>{img}</a>"
                        f"<figcaption>{html.escape(f.caption)} (click to enlarge)</figcaption></figure>")
        else:
            figs.append(f"<figure>{img}<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    return f"<div class='figs{' small' if b.small else ''}'>{''.join(figs)}</div>"


def _html_entry(e: Entry) -> str:
    """One provenance reference: its summary line, then its facts (a command or path wraps, never widens)."""
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{_html_fact(v)}</dd>" for k, v in e.facts if v not in (None, "", []))
    return (f"<details class='ref' id='{html.escape(e.ref)}'><summary><b>{html.escape(e.ref)}</b> "
            f"{html.escape(e.summary)}</summary><dl>{facts}</dl></details>")


def _html_fact(v) -> str:
    if isinstance(v, str) and v.startswith("python "):
        return f"<code>{html.escape(v)}</code>"
    return _html_cell(v)

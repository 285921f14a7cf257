"""A report as a list of blocks, rendered twice: Markdown (figures as files beside it) and one self-contained
HTML page (figures inlined as base64 PNGs, no script, no external style)."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Link:
    text: str
    href: str  # relative to the report's folder


@dataclass
class Table:
    header: list[str]
    rows: list[list]  # cells: str, float (4 decimals), None (blank), Link, list of Links
    reported: set[int] = field(default_factory=set)  # rows that are published anchors, not re-measured
    note: str = ""


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
    small: bool = False  # figures: thumbnails in a grid (e.g. confusion matrices)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.4f}"
    return str(v)


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
                if i in t.reported:
                    cells = [f"*{c}*" if c else c for c in cells]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines) + (f"\n\n{t.note}" if t.note else ""))
        elif b.kind == "figures":
            out.append("\n\n".join(f"![{f.caption}]({f.path.relative_to(folder).as_posix()})\n*{f.caption}*"
                                   for f in b.figures))
        elif b.kind == "details":
            out.append(f"<details><summary>{b.text}</summary>\n\n```\n{b.body}\n```\n</details>")
    return "\n\n".join(out) + "\n"


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
color:#1d2530;line-height:1.45}
h1{border-bottom:2px solid #3b6ea5;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #ccd5df}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ccd5df;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef3f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.reported td{font-style:italic;background:#fbf6e9;color:#6b5518}
.note{font-size:.85em;color:#4a5663}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0;max-width:100%}
.figs img{max-width:100%;border:1px solid #e2e8ef}.figs.small figure{width:270px}figcaption{font-size:.82em;color:#4a5663}
pre{background:#f5f7fa;padding:.8em;overflow:auto;font-size:.85em}
.legend{display:inline-block;padding:.1em .5em;background:#fbf6e9;font-style:italic;color:#6b5518}
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
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            anchor = "".join(ch if ch.isalnum() else "-" for ch in b.text.lower()).strip("-")
            out.append(f"<{b.kind} id='{anchor}'>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            t = b.table
            rows = []
            for i, r in enumerate(t.rows):
                cls = " class='reported'" if i in t.reported else ""
                tds = "".join(f"<td{' class=num' if isinstance(c, float) else ''}>{_html_cell(c)}</td>" for c in r)
                rows.append(f"<tr{cls}>{tds}</tr>")
            head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
                       + (f"<p class='note'>{html.escape(t.note)}</p>" if t.note else ""))
        elif b.kind == "figures":
            figs = []
            for f in b.figures:
                data = base64.b64encode(Path(f.path).read_bytes()).decode()
                figs.append(f"<figure><img alt='{html.escape(f.caption)}' src='data:image/png;base64,{data}'>"
                            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
            out.append(f"<div class='figs{' small' if b.small else ''}'>{''.join(figs)}</div>")
        elif b.kind == "details":
            out.append(f"<details><summary>{html.escape(b.text)}</summary><pre>{html.escape(b.body)}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)

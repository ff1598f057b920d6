"""A small Markdown -> HTML converter for the reports GeoEmbed writes itself (headings, lists, pipe tables, images,
bold, code). Not a general Markdown implementation: the input is always our own generated text."""

from __future__ import annotations

import html
import re

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:1em auto;line-height:1.4}"
         "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.25em .6em}"
         "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#eee}img{max-width:100%}")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(rows: list[str]) -> list[str]:
    header, align, body = _cells(rows[0]), _cells(rows[1]), [_cells(r) for r in rows[2:]]
    numeric = [a.endswith(":") for a in align]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"]
    for row in body:
        out.append("<tr>" + "".join(f'<td{" class=num" if num else ""}>{_inline(c)}</td>'
                                    for c, num in zip(row, numeric)) + "</tr>")
    return out + ["</table>"]


def markdown_to_html(text: str, title: str) -> str:
    """A complete HTML page for ``text``."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out += _table(lines[i:j])
            i = j
            continue
        if line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    body = "\n".join(out)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")

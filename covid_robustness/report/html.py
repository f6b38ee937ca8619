"""report.html: one self-contained page, the figures embedded as base64 PNGs, so it can be mailed or archived."""

import base64
from html import escape

from .blocks import Figure, Link, Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; position: sticky; top: 0; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow: auto; max-height: 85vh; }  /* a wide, long table scrolls in the window, both ways */
img { max-width: 100%; } .note { color: #555; font-size: 0.85em; margin: 0.2em 0; }
"""


def table(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns) if any(t.columns) else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in t.notes)
    header = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f'<h2>{escape(t.title)}</h2><div class="scroll"><table>{header}<tbody>{body}</tbody></table></div>{notes}'


def figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (
        f'<h2>{escape(f.title)}</h2><figure><img alt="{escape(f.title)}" src="data:image/png;base64,{data}">'
        f'<figcaption class="note">{escape(f.caption)}</figcaption></figure>'
    )


def link(k: Link) -> str:
    return f'<h2>{escape(k.title)}</h2><p><a href="{escape(k.href)}">{escape(k.text)}</a></p>'


def render(title: str, sections: list[Table | Figure | Link]) -> str:
    kinds = {Table: table, Figure: figure, Link: link}
    body = "\n".join(kinds[type(s)](s) for s in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )

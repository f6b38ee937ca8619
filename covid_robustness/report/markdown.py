"""report.md: the tables as Markdown tables, the figures as links to the PNGs beside it."""

from .blocks import Figure, Link, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def grid(t: Table) -> str:
    """The table and its notes, without its title."""
    lines = [
        "| " + " | ".join(map(_cell, t.columns)) + " |",
        "|" + "|".join("---" for _ in t.columns) + "|",
    ]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in t.rows]
    return "\n".join(lines + [""] + [f"- {note}" for note in t.notes])


def table(t: Table) -> str:
    return f"## {t.title}\n\n{grid(t)}"


def figure(f: Figure) -> str:
    return f"## {f.title}\n\n![{f.title}]({f.file})\n\n{f.caption}"


def link(k: Link) -> str:
    return f"## {k.title}\n\n[{k.text}]({k.href.replace('.html', '.md')})"


def render(title: str, sections: list[Table | Figure | Link]) -> str:
    kinds = {Table: table, Figure: figure, Link: link}
    parts = [f"# {title}"] + [kinds[type(s)](s) for s in sections]
    return "\n\n".join(parts) + "\n"

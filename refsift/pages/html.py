"""Building blocks for self-contained report pages: no scripts, fonts or requests.

Every piece of model-generated or data text goes through `esc`, which also shows control
characters (NUL, ESC, C1) and bidirectional controls (U+202E and its kin) as visible
marks, so stored text can neither hide nor reorder what is around it; text from users
shown inline (ids, sources, file names) goes through `user`, which isolates it in a
`<bdi>` so that right-to-left text does not move the numbers beside it. The page carries a
Content-Security-Policy that forbids scripts and any network access, so even a missed
escape could not run code or phone home. A page names refsift as its generator, which is
how refsift recognises a file it may write over (`refsift.rundir.claim_file`).
"""

from __future__ import annotations

import html
import math
import re

import refsift

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .6em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.sample { border: 1px solid #e3e3e3; border-radius: 6px; padding: .6em .8em; margin: .6em 0; }
.meta { color: #666; font-size: .9em; margin-bottom: .3em; }
.tokens { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap; word-break: break-word; }
.tokens span { border-radius: 2px; }
.legend span { padding: 0 .4em; font-family: ui-monospace, monospace; }
code { background: #f4f4f4; padding: 0 .2em; }
.row { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
"""


GENERATOR = "refsift"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match) -> str:
    c = ord(match.group())
    if c < 0x20:
        return chr(0x2400 + c)  # the Control Pictures block: U+241B for ESC, U+2400 for NUL
    return "\u2421" if c == 0x7F else f"\u27e8U+{c:04X}\u27e9"


def esc(text) -> str:
    """`text` escaped for HTML (content or attribute), control characters made visible."""
    return html.escape(_CONTROL.sub(_visible, str(text)), quote=True)


def user(text) -> str:
    """Inline text from data (an id, a source, a path): escaped, and isolated from the
    direction of what is around it."""
    return f"<bdi>{esc(text)}</bdi>"


def page(title: str, body: str, style: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='generator' content='{GENERATOR} {esc(refsift.__version__)}'>"
        f"<title>{esc(title)}</title><style>{STYLE}{style}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def shade(score: float, scale: float) -> str:
    """Background colour for a score: red for positive, blue for negative, by |score|/scale."""
    if score is None or math.isnan(score):
        return "transparent"
    strength = min(1.0, abs(score) / scale) if scale > 0 else 0.0
    rgb = "220,50,47" if score > 0 else "38,139,210"
    return f"rgba({rgb},{0.75 * strength:.3f})"


def shaded_tokens(tokens: list[tuple[str, float | None, str]], scale: float) -> str:
    """Spans of token text shaded by score, with `hover` text as the title attribute."""
    spans = [
        f"<span style='background:{shade(score, scale)}' title='{esc(hover)}'>{esc(text)}</span>"
        for text, score, hover in tokens
    ]
    return f"<div class='tokens'>{''.join(spans)}</div>"


def legend(scale: float, label: str) -> str:
    steps = [-scale, -scale / 2, 0, scale / 2, scale]
    cells = "".join(f"<span style='background:{shade(s, scale)}'>{s:+.1f}</span>" for s in steps)
    return f"<p class='legend'>{esc(label)}: {cells}</p>"


def row(*parts: str) -> str:
    """Blocks side by side (wrapping on narrow screens)."""
    return "<div class='row'>" + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def table(columns: list[str], rows: list[list]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"<td class='num'>{value:.4g}</td>"
        if isinstance(value, int):
            return f"<td class='num'>{value}</td>"
        return f"<td>{user(value)}</td>"

    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _axis_range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def line_chart(points: list[tuple[float, float]], *, x_label: str, y_label: str, width=560, height=220) -> str:
    """An inline SVG line chart with dots and min/max labels."""
    if not points:
        return "<p>(no data)</p>"
    pad = 40
    (x0, x1), (y0, y1) = _axis_range([p[0] for p in points]), _axis_range([p[1] for p in points])

    def xy(x, y):
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad), height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    coords = [xy(x, y) for x, y in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#268bd2'/>" for x, y in coords)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<rect width='100%' height='100%' fill='#fcfcfc' stroke='#ddd'/>"
        f"<polyline points='{line}' fill='none' stroke='#268bd2' stroke-width='2'/>{dots}"
        f"<text x='{pad}' y='{height - 8}' font-size='12'>{esc(x_label)} {x0:g} .. {x1:g}</text>"
        f"<text x='4' y='14' font-size='12'>{esc(y_label)} {y0:.3g} .. {y1:.3g}</text></svg>"
    )


def histogram(values: list[float], *, bins: int = 20, width=360, height=140, lo=None, hi=None) -> str:
    """An inline SVG histogram."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "<p>(no data)</p>"
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    hi = hi if hi > lo else lo + 1
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / (hi - lo) * bins)))] += 1
    top, bar = max(counts), (width - 20) / bins
    rects = "".join(
        f"<rect x='{10 + i * bar:.1f}' y='{height - 20 - c / top * (height - 30):.1f}' width='{bar - 1:.1f}' "
        f"height='{c / top * (height - 30):.1f}' fill='#268bd2'><title>{c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<rect width='100%' height='100%' fill='#fcfcfc' stroke='#ddd'/>{rects}"
        f"<text x='10' y='{height - 5}' font-size='11'>{lo:.3g}</text>"
        f"<text x='{width - 50}' y='{height - 5}' font-size='11'>{hi:.3g}</text></svg>"
    )


def scatter(
    points: list[tuple[float, float]],
    *,
    x_label: str,
    y_label: str,
    colors: list[str] | None = None,
    width=420,
    height=420,
) -> str:
    """An inline SVG scatter plot with the diagonal y = x; one colour per point if given."""
    if not points:
        return "<p>(no data)</p>"
    pad = 40
    lo, hi = _axis_range([v for p in points for v in p])

    def xy(x, y):
        return pad + (x - lo) / (hi - lo) * (width - 2 * pad), height - pad - (y - lo) / (hi - lo) * (height - 2 * pad)

    colors = colors or ["#268bd2"] * len(points)
    dots = "".join(
        f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='2.5' fill='{c}' fill-opacity='.6'/>"
        for (cx, cy), c in zip((xy(x, y) for x, y in points), colors)
    )
    (ax, ay), (bx, by) = xy(lo, lo), xy(hi, hi)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<rect width='100%' height='100%' fill='#fcfcfc' stroke='#ddd'/>"
        f"<line x1='{ax:.1f}' y1='{ay:.1f}' x2='{bx:.1f}' y2='{by:.1f}' stroke='#aaa' stroke-dasharray='4'/>{dots}"
        f"<text x='{pad}' y='{height - 8}' font-size='12'>{esc(x_label)} ({lo:.3g} .. {hi:.3g})</text>"
        f"<text x='4' y='14' font-size='12'>{esc(y_label)}</text></svg>"
    )


SHOWN_CHARACTERS = 4000  # of one document on a page; a report's size must not follow the corpus's


def covering_pieces(text: str, tokens: list[tuple], limit: int | None = SHOWN_CHARACTERS) -> list[tuple]:
    """(text, *values) pieces that show `text` once, in order, up to `limit` characters.

    `tokens` are (char_start, char_end, *values) of scored tokens in position order. A
    character that a byte-level tokenizer split into several tokens has every one of them
    span it; such overlapping tokens become one piece, with their values summed (log-probs
    of the pieces of one character add up to the character's). Text between scored tokens
    (a prompt, an unscored first token) is a piece with None values. A cut text ends with a
    piece saying how much was left out.
    """
    spans: list[list] = []  # [start, end, values]
    for start, end, *values in tokens:
        if limit is not None and start >= limit:
            break
        if spans and start < spans[-1][1]:  # the same character(s) as the piece before
            last = spans[-1]
            last[1] = max(last[1], end)
            last[2] = [None if a is None or b is None else a + b for a, b in zip(last[2], values)]
            continue
        spans.append([start, end, list(values)])
    width = len(tokens[0]) - 2 if tokens else 0
    pieces, at = [], 0
    for start, end, values in spans:
        if start > at:
            pieces.append((text[at:start], *[None] * width))
        pieces.append((text[start:end], *values))
        at = max(at, end)
    end = len(text) if limit is None else min(len(text), max(limit, at))
    if at < end:
        pieces.append((text[at:end], *[None] * width))
    if end < len(text):
        pieces.append((f" … ({len(text) - end:,} more characters not shown)", *[None] * width))
    return pieces


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()#+-.!|~>"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md(text) -> str:
    """Text made inert in Markdown: no HTML, no emphasis, links, code spans or tables."""
    return " ".join(str(text).split()).translate(_MARKDOWN)


def bars(items: list[tuple[str, float]], *, label: str, width=560, bar=18) -> str:
    """An inline SVG of horizontal bars, one per (name, value), drawn from a zero line so
    that negative values point left."""
    if not items:
        return "<p>(no data)</p>"
    lo, hi = min(0.0, *(v for _, v in items)), max(0.0, *(v for _, v in items))
    span = (hi - lo) or 1.0
    left, right = 170, 70
    scale = (width - left - right) / span
    zero = left + (0 - lo) * scale
    height = bar * len(items) + 30
    rows = []
    for i, (name, value) in enumerate(items):
        y = 8 + i * bar
        x, w = (zero, value * scale) if value >= 0 else (zero + value * scale, -value * scale)
        colour = "#dc322f" if value >= 0 else "#268bd2"
        rows.append(
            f"<text x='{left - 6}' y='{y + bar * 0.7:.1f}' font-size='12' text-anchor='end'>{esc(name[:28])}</text>"
            f"<rect x='{x:.1f}' y='{y}' width='{max(w, 0.5):.1f}' height='{bar - 4}' fill='{colour}'>"
            f"<title>{esc(name)}: {value:.4g}</title></rect>"
            f"<text x='{max(x + w, zero) + 4:.1f}' y='{y + bar * 0.7:.1f}' font-size='11'>{value:+.3g}</text>"
        )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<rect width='100%' height='100%' fill='#fcfcfc' stroke='#ddd'/>{''.join(rows)}"
        f"<line x1='{zero:.1f}' y1='4' x2='{zero:.1f}' y2='{height - 20}' stroke='#888'/>"
        f"<text x='{left}' y='{height - 6}' font-size='12'>{esc(label)}</text></svg>"
    )

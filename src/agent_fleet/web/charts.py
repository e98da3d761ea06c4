"""Server-rendered SVG charts: no script, no CDN, readable offline.

Every piece is built with `Markup(template).format(...)`, which escapes each value it
fills in: repository names, agent types, hosts and failure reasons come from outside.
Each mark carries `data-key` and `data-value` (the number it draws), so tests and
curious people can read a chart back, and a `<title>` that browsers show on hover.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
ROW_HEIGHT = 22
#: Fill classes (colours live in the page's CSS), cycled for rows without their own.
PALETTE = ("c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8")
EMPTY = "No data in this window"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str


def _frame(title: str, chart: str, body: Markup, height: float = HEIGHT) -> Markup:
    return Markup(
        '<svg class="chart" data-chart="{}" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="xMidYMid meet"><title>{}</title>{}</svg>'
    ).format(chart, WIDTH, f"{height:.0f}", title, title, body)


def empty(title: str, chart: str) -> Markup:
    text = Markup('<text class="empty-chart" x="{}" y="{}" text-anchor="middle">{}</text>')
    return _frame(title, chart, text.format(WIDTH // 2, HEIGHT // 2, EMPTY))


def _axes(top_value: float, labels: Sequence[str], unit: str) -> Markup:
    """A zero line, the top value, and up to six x labels spread evenly."""
    base = HEIGHT - BOTTOM
    tick = Markup('<text class="tick" x="{}" y="{}" text-anchor="{}">{}</text>')
    parts = [
        Markup('<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>').format(
            LEFT, base, WIDTH - RIGHT, base
        ),
        tick.format(LEFT - 6, TOP + 8, "end", f"{_short(top_value)}{unit}"),
        tick.format(LEFT - 6, base, "end", "0"),
    ]
    step = max(1, len(labels) // 6)
    for n in range(0, len(labels), step):
        x = LEFT + (n + 0.5) * _slot(len(labels))
        parts.append(tick.format(f"{x:.1f}", HEIGHT - 8, "middle", labels[n]))
    return Markup("").join(parts)


def _slot(count: int) -> float:
    return (WIDTH - LEFT - RIGHT) / max(count, 1)


def _y(value: float, top_value: float) -> float:
    span = HEIGHT - TOP - BOTTOM
    return HEIGHT - BOTTOM - (value / top_value) * span if top_value > 0 else HEIGHT - BOTTOM


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.3g}"


def lines(
    title: str,
    chart: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    keys: Sequence[str] | None = None,
) -> Markup:
    """One polyline per series over the buckets, with a gap where a value is None.
    `labels` are shown; `keys` (default: the labels) name each bucket in `data-key`."""
    keys = keys or labels
    known = [v for s in series for v in s.values if v is not None]
    if not known or max(known) <= 0:
        return empty(title, chart)
    top_value, slot = max(known), _slot(len(labels))
    dot = Markup(
        '<circle class="{}" cx="{}" cy="{}" r="2.5" data-series="{}" data-key="{}" '
        'data-value="{}"><title>{} at {}: {}</title></circle>'
    )
    polylines, dots = [], []
    for s in series:
        points = []
        for n, value in enumerate(s.values):
            if value is None:
                continue
            x, y = f"{LEFT + (n + 0.5) * slot:.1f}", f"{_y(value, top_value):.1f}"
            points.append(f"{x},{y}")
            shown = f"{_short(value)}{unit}"
            dots.append(
                dot.format(s.css, x, y, s.name, keys[n], repr(value), s.name, labels[n], shown)
            )
        polyline = Markup('<polyline class="line {}" points="{}"/>')
        polylines.append(polyline.format(s.css, " ".join(points)))
    body = Markup("").join([_axes(top_value, labels, unit), *polylines, *dots])
    return _frame(title, chart, body)


def stacked(
    title: str,
    chart: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    keys: Sequence[str] | None = None,
) -> Markup:
    """Bars per bucket, one segment per series, stacked from zero (`keys` as in `lines`)."""
    keys = keys or labels
    totals = [sum(s.values[n] or 0 for s in series) for n in range(len(labels))]
    if not totals or max(totals) <= 0:
        return empty(title, chart)
    top_value, slot = max(totals), _slot(len(labels))
    width = max(slot * 0.7, 1.0)
    rect = Markup(
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}" data-series="{}" data-key="{}" '
        'data-value="{}"><title>{} at {}: {}</title></rect>'
    )
    parts = [_axes(top_value, labels, unit)]
    for n, label in enumerate(labels):
        below, x = 0.0, f"{LEFT + n * slot + (slot - width) / 2:.1f}"
        for s in series:
            value = s.values[n] or 0
            if value <= 0:
                continue
            y_top, y_bottom = _y(below + value, top_value), _y(below, top_value)
            height = f"{max(y_bottom - y_top, 0.5):.1f}"
            shown = f"{_short(value)}{unit}"
            parts.append(
                rect.format(
                    s.css,
                    x,
                    f"{y_top:.1f}",
                    f"{width:.1f}",
                    height,
                    s.name,
                    keys[n],
                    repr(value),
                    s.name,
                    label,
                    shown,
                )
            )
            below += value
    return _frame(title, chart, Markup("").join(parts))


def bars(title: str, chart: str, rows: Sequence[tuple[str, float, str]]) -> Markup:
    """Horizontal bars, one row each: (name, value, the text shown beside the bar)."""
    if not rows or max(value for _, value, _ in rows) <= 0:
        return empty(title, chart)
    top_value = max(value for _, value, _ in rows)
    label_w, text_w = 170, 130
    span = WIDTH - label_w - text_w - RIGHT
    row = Markup(
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}" data-key="{}" data-value="{}">'
        '<title>{}: {}</title></rect><text class="tick" x="{}" y="{}">{}</text>'
    )
    parts = []
    for n, (name, value, text) in enumerate(rows):
        y = TOP + n * ROW_HEIGHT
        length = max(span * value / top_value, 1.0) if value > 0 else 0.0
        baseline = f"{y + ROW_HEIGHT * 0.65:.1f}"
        parts.append(
            row.format(
                label_w - 8,
                baseline,
                _clip(name),
                PALETTE[n % len(PALETTE)],
                label_w,
                f"{y + 2:.1f}",
                f"{length:.1f}",
                ROW_HEIGHT - 4,
                name,
                repr(value),
                name,
                text,
                f"{label_w + length + 6:.1f}",
                baseline,
                text,
            )
        )
    height = TOP + ROW_HEIGHT * len(rows) + 8
    return _frame(title, chart, Markup("").join(parts), height)


def _clip(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"

"""Small plots as inline SVG strings: scatter (with optional connecting line), bars, and
stacked panels as a standalone file (``panels_svg``).

No plotting library and no script: a report must open from ``file://`` with no network,
so each plot is plain SVG markup. Hover text uses SVG ``<title>`` elements, which every
browser shows as a tooltip without JavaScript. Every string that reaches the markup
(labels, tooltips, legend entries) is escaped here, so callers may pass user text as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Colour-blind-safe palette (Okabe & Ito), then a few extra distinct hues.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000", "#8C564B", "#7F7F7F")

FONT_PX = 12
CHAR_W_PX = 6.6  # average glyph width of the sans-serif font at FONT_PX, for layout only
FONT_FAMILY = "system-ui,-apple-system,Segoe UI,Roboto,sans-serif"


@dataclass(frozen=True)
class Series:
    """One group of points in a scatter/line plot."""

    name: str  # legend entry ("" hides it from the legend)
    xs: Sequence[float]
    ys: Sequence[float]
    color: str = PALETTE[0]
    marker: str = "circle"  # circle | diamond | square | cross | star | none
    size: float = 3.5  # marker radius, px
    hollow: bool = False
    opacity: float = 1.0
    line: str | None = None  # None | "line" | "step" (step: horizontal then vertical)
    line_width: float = 1.5
    dashed: bool = False
    labels: Sequence[str] | None = None  # text drawn next to each point
    tips: Sequence[str] | None = None  # hover text of each point


@dataclass(frozen=True)
class Rule:
    """A labelled vertical (axis="x") or horizontal (axis="y") reference line."""

    axis: str
    value: float
    label: str
    color: str = "#B00020"


@dataclass(frozen=True)
class Bars:
    """One group of horizontal bars (one value per category)."""

    name: str
    values: Sequence[float | None]  # None: not available for that category
    color: str = PALETTE[0]


@dataclass(frozen=True)
class View:
    """A plot's size in px and, optionally, the data ranges it is cut to (None: fit the data)."""

    width: int = 640
    height: int = 420
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None


@dataclass
class _Frame:
    """Pixel geometry of a plot area and its data ranges."""

    left: float
    top: float
    width: float
    height: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    placed: list[tuple[float, float, float, float]] = field(default_factory=list)

    def px(self, x: float) -> float:
        return self.left + (x - self.x_lo) / (self.x_hi - self.x_lo) * self.width

    def py(self, y: float) -> float:
        return self.top + self.height - (y - self.y_lo) / (self.y_hi - self.y_lo) * self.height


def nice_ticks(lo: float, hi: float, target: int = 8) -> list[float]:
    """Round tick positions (1, 2, 2.5, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(target - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    t = math.floor(lo / step + 1e-9) * step
    ticks = [round(t, 12)]
    while t < hi - step * 1e-9:  # up to the first tick at or past hi, so the ticks do cover it
        t += step
        ticks.append(round(t, 12))
    return ticks


def format_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.3g}"
    return f"{v:.6g}"


def _finite_pairs(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[int, float, float]]:
    out = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        try:
            fx, fy = float(x), float(y)
        except (TypeError, ValueError):
            continue
        if math.isfinite(fx) and math.isfinite(fy):
            out.append((i, fx, fy))
    return out


def _padded_range(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi == lo:
        span = abs(lo) * 0.1 or 1.0
        return lo - span, hi + span
    return lo - (hi - lo) * pad, hi + (hi - lo) * pad


def _marker(shape: str, x: float, y: float, r: float, color: str, hollow: bool, opacity: float,
            tip: str = "") -> str:
    """One point marker; ``tip`` becomes its hover text."""
    fill = "none" if hollow else color
    paint = (f"fill='{fill}' stroke='{color}' fill-opacity='{opacity:.2f}' "
             f"stroke-opacity='{min(1.0, opacity + 0.2):.2f}' stroke-width='1.2'")
    if shape == "diamond":
        d = r * 1.5
        tag, geom = "path", f"d='M{x:.1f} {y - d:.1f}L{x + d:.1f} {y:.1f}L{x:.1f} {y + d:.1f}L{x - d:.1f} {y:.1f}Z'"
    elif shape == "square":
        tag, geom = "rect", f"x='{x - r:.1f}' y='{y - r:.1f}' width='{2 * r:.1f}' height='{2 * r:.1f}'"
    elif shape == "cross":
        tag = "path"
        geom = f"d='M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}M{x - r:.1f} {y + r:.1f}L{x + r:.1f} {y - r:.1f}'"
        paint = f"fill='none' stroke='{color}' stroke-opacity='{opacity:.2f}' stroke-width='1.6'"
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r * 1.9 if k % 2 == 0 else r * 0.8
            a = math.pi / 2 + k * math.pi / 5
            pts.append(f"{x + rad * math.cos(a):.1f},{y - rad * math.sin(a):.1f}")
        tag, geom = "polygon", f"points='{' '.join(pts)}'"
    else:
        tag, geom = "circle", f"cx='{x:.1f}' cy='{y:.1f}' r='{r:.1f}'"
    if tip:
        return f"<{tag} {geom} {paint}><title>{escape(tip)}</title></{tag}>"
    return f"<{tag} {geom} {paint}/>"


def _text_box(x: float, y: float, text: str, anchor: str) -> tuple[float, float, float, float]:
    w = len(text) * CHAR_W_PX
    x0 = x if anchor == "start" else x - w
    return x0, y - FONT_PX, x0 + w, y + 3


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _place_label(frame: _Frame, x: float, y: float, text: str) -> str:
    """Put a point's label where it overlaps no label placed before (first fit, else default)."""
    right_edge = frame.left + frame.width
    options = [(7, 4, "start"), (7, -8, "start"), (7, 16, "start"), (-7, 4, "end"), (-7, -8, "end"),
               (-7, 16, "end"), (7, -20, "start"), (7, 28, "start")]
    chosen = None
    for dx, dy, anchor in options:
        box = _text_box(x + dx, y + dy, text, anchor)
        if box[0] < frame.left - 60 or box[2] > right_edge + 16 or box[1] < frame.top - 10:
            continue
        if not any(_overlaps(box, p) for p in frame.placed):
            chosen = (dx, dy, anchor, box)
            break
    if chosen is None:
        dx, dy, anchor = (-7, 4, "end") if x + len(text) * CHAR_W_PX > right_edge else (7, 4, "start")
        chosen = (dx, dy, anchor, _text_box(x + dx, y + dy, text, anchor))
    dx, dy, anchor, box = chosen
    frame.placed.append(box)
    return (f"<text x='{x + dx:.1f}' y='{y + dy:.1f}' text-anchor='{anchor}' class='lbl'>{escape(text)}</text>")


def _legend(entries: list[tuple[str, str, str, bool]], x0: float, y0: float, max_w: float) -> tuple[str, float]:
    """Legend items laid out left to right, wrapping; returns markup and height used."""
    parts = []
    x, y = x0, y0
    for name, color, marker, hollow in entries:
        w = 22 + len(name) * CHAR_W_PX + 14
        if x + w > x0 + max_w and x > x0:
            x, y = x0, y + 18
        shape = "circle" if marker == "none" else marker
        if marker == "none":
            parts.append(f"<path d='M{x:.1f} {y:.1f}h14' stroke='{color}' stroke-width='2'/>")
        else:
            parts.append(_marker(shape, x + 7, y, 4, color, hollow, 0.9))
        parts.append(f"<text x='{x + 18:.1f}' y='{y + 4:.1f}' class='leg'>{escape(name)}</text>")
        x += w
    return "".join(parts), (y - y0) + 18


def _axes(frame: _Frame, x_label: str, y_label: str) -> str:
    parts = [f"<rect x='{frame.left:.1f}' y='{frame.top:.1f}' width='{frame.width:.1f}' height='{frame.height:.1f}' "
             "fill='#fff' stroke='#bbb'/>"]
    for t in nice_ticks(frame.x_lo, frame.x_hi):
        if frame.x_lo <= t <= frame.x_hi:
            x = frame.px(t)
            parts.append(f"<path d='M{x:.1f} {frame.top:.1f}V{frame.top + frame.height:.1f}' class='grid'/>"
                         f"<text x='{x:.1f}' y='{frame.top + frame.height + 16:.1f}' text-anchor='middle' class='tick'>"
                         f"{format_tick(t)}</text>")
    for t in nice_ticks(frame.y_lo, frame.y_hi):
        if frame.y_lo <= t <= frame.y_hi:
            y = frame.py(t)
            parts.append(f"<path d='M{frame.left:.1f} {y:.1f}H{frame.left + frame.width:.1f}' class='grid'/>"
                         f"<text x='{frame.left - 6:.1f}' y='{y + 4:.1f}' text-anchor='end' class='tick'>"
                         f"{format_tick(t)}</text>")
    cx = frame.left + frame.width / 2
    cy = frame.top + frame.height / 2
    parts.append(f"<text x='{cx:.1f}' y='{frame.top + frame.height + 36:.1f}' text-anchor='middle' class='axl'>"
                 f"{escape(x_label)}</text>")
    parts.append(f"<text transform='translate({frame.left - 48:.1f},{cy:.1f}) rotate(-90)' text-anchor='middle' "
                 f"class='axl'>{escape(y_label)}</text>")
    return "".join(parts)


def _series_marks(frame: _Frame, s: Series) -> tuple[str, int]:
    pts = [p for p in _finite_pairs(s.xs, s.ys)
           if frame.x_lo <= p[1] <= frame.x_hi and frame.y_lo <= p[2] <= frame.y_hi]
    parts = []
    if s.line and len(pts) >= 2:
        coords = []
        for k, (_, x, y) in enumerate(pts):
            px, py = frame.px(x), frame.py(y)
            if k == 0:
                coords.append(f"M{px:.1f} {py:.1f}")
            elif s.line == "step":
                coords.append(f"H{px:.1f}V{py:.1f}")
            else:
                coords.append(f"L{px:.1f} {py:.1f}")
        dash = " stroke-dasharray='5 4'" if s.dashed else ""
        parts.append(f"<path d='{''.join(coords)}' fill='none' stroke='{s.color}' stroke-width='{s.line_width}'"
                     f" stroke-opacity='{max(s.opacity, 0.6):.2f}'{dash}/>")
    marks = 0
    if s.marker != "none":
        for i, x, y in pts:
            tip = s.tips[i] if s.tips is not None and i < len(s.tips) else ""
            parts.append(_marker(s.marker, frame.px(x), frame.py(y), s.size, s.color, s.hollow, s.opacity, tip))
            marks += 1
    if s.labels is not None:
        for i, x, y in pts:
            if i < len(s.labels) and s.labels[i]:
                parts.append(_place_label(frame, frame.px(x), frame.py(y), str(s.labels[i])))
    return "".join(parts), marks + (1 if s.line and len(pts) >= 2 else 0)


def _rule(frame: _Frame, rule: Rule) -> str:
    if rule.axis == "x":
        if not frame.x_lo <= rule.value <= frame.x_hi:
            return ""
        x = frame.px(rule.value)
        return (f"<path d='M{x:.1f} {frame.top:.1f}V{frame.top + frame.height:.1f}' stroke='{rule.color}' "
                f"stroke-dasharray='6 4' stroke-width='1.3'/>"
                f"<text x='{x - 4:.1f}' y='{frame.top + 14:.1f}' text-anchor='end' class='rule' fill='{rule.color}'>"
                f"{escape(rule.label)}</text>")
    if not frame.y_lo <= rule.value <= frame.y_hi:
        return ""
    y = frame.py(rule.value)
    return (f"<path d='M{frame.left:.1f} {y:.1f}H{frame.left + frame.width:.1f}' stroke='{rule.color}' "
            f"stroke-dasharray='6 4' stroke-width='1.3'/>"
            f"<text x='{frame.left + frame.width - 4:.1f}' y='{y - 5:.1f}' text-anchor='end' class='rule' "
            f"fill='{rule.color}'>{escape(rule.label)}</text>")


SVG_STYLE = (
    f".tick{{font-size:{FONT_PX - 1}px;fill:#555}}.axl{{font-size:{FONT_PX + 1}px;fill:#222}}"
    f".lbl{{font-size:{FONT_PX - 1}px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px}}"
    f".leg{{font-size:{FONT_PX}px;fill:#222}}.rule{{font-size:{FONT_PX - 1}px;paint-order:stroke;stroke:#fff;"
    f"stroke-width:3px}}.grid{{stroke:#eee;stroke-width:1}}.empty{{font-size:{FONT_PX + 2}px;fill:#777}}"
)


def scatter_svg(series: Sequence[Series], *, x_label: str, y_label: str, plot_id: str, title: str = "",
                view: View = View(), rules: Sequence[Rule] = (), empty_text: str = "no data to plot") -> str:
    """A scatter plot (points, optional connecting lines, labels, reference lines) as SVG.

    With ``view.x_range`` the view is cut to it: points outside are not drawn and the y range
    fits only the points inside (callers say what was left out in the caption).
    """
    width, height, x_range, y_range = view.width, view.height, view.x_range, view.y_range
    pairs = [p for s in series for p in _finite_pairs(s.xs, s.ys)
             if x_range is None or x_range[0] <= p[1] <= x_range[1]]
    all_x = [x for _, x, _ in pairs]
    all_y = [y for _, _, y in pairs]
    all_x += [r.value for r in rules if r.axis == "x"]
    all_y += [r.value for r in rules if r.axis == "y"]
    # A legend entry for every series visible in the view (or drawn only as a legend key).
    visible = [s for s in series if s.name and (not _finite_pairs(s.xs, s.ys) or any(
        x_range is None or x_range[0] <= x <= x_range[1] for _, x, _ in _finite_pairs(s.xs, s.ys)))]
    legend_entries = [(s.name, s.color, s.marker, s.hollow) for s in visible]
    legend, legend_h = _legend(legend_entries, 70, 16, width - 90)
    frame = _Frame(left=70, top=16 + legend_h + 4, width=width - 90, height=height - (16 + legend_h + 4) - 50,
                   x_lo=0, x_hi=1, y_lo=0, y_hi=1)
    frame.x_lo, frame.x_hi = x_range or _padded_range(all_x)
    frame.y_lo, frame.y_hi = y_range or _padded_range(all_y, pad=0.08)
    body = [_axes(frame, x_label, y_label)]
    marks = 0
    if not all_x:
        body.append(f"<text x='{frame.left + frame.width / 2:.1f}' y='{frame.top + frame.height / 2:.1f}' "
                    f"text-anchor='middle' class='empty'>{escape(empty_text)}</text>")
    else:
        for rule in rules:
            body.append(_rule(frame, rule))
        for s in series:
            markup, n = _series_marks(frame, s)
            body.append(markup)
            marks += n
    return _wrap(plot_id, title, width, height, marks, legend + "".join(body))


def bars_svg(categories: Sequence[str], groups: Sequence[Bars], *, x_label: str, plot_id: str, title: str = "",
             width: int = 640, value_fmt: str = "{:.2f}", x_max: float | None = None) -> str:
    """Horizontal grouped bars: one row per category, one bar per group."""
    bar_h, gap = 13, 9
    label_w = min(260, max((len(c) for c in categories), default=4) * CHAR_W_PX + 16)
    legend, legend_h = _legend([(g.name, g.color, "square", False) for g in groups], label_w, 16, width - label_w - 20)
    top = 16 + legend_h + 2
    row_h = bar_h * max(len(groups), 1) + gap
    height = int(top + row_h * max(len(categories), 1) + 46)
    values = [v for g in groups for v in g.values if v is not None and math.isfinite(v)]
    hi = x_max if x_max is not None else max(values + [0.0]) or 1.0
    frame = _Frame(left=label_w, top=top, width=width - label_w - 60, height=row_h * max(len(categories), 1),
                   x_lo=0.0, x_hi=hi * 1.05, y_lo=0.0, y_hi=1.0)
    parts = [legend]
    for t in nice_ticks(0.0, frame.x_hi):
        if t <= frame.x_hi:
            x = frame.px(t)
            parts.append(f"<path d='M{x:.1f} {frame.top:.1f}V{frame.top + frame.height:.1f}' class='grid'/>"
                         f"<text x='{x:.1f}' y='{frame.top + frame.height + 15:.1f}' text-anchor='middle' class='tick'>"
                         f"{format_tick(t)}</text>")
    marks = 0
    for row, cat in enumerate(categories):
        y0 = frame.top + row * row_h + gap / 2
        parts.append(f"<text x='{label_w - 8:.1f}' y='{y0 + row_h / 2:.1f}' text-anchor='end' class='leg'>"
                     f"{escape(cat)}</text>")
        for k, g in enumerate(groups):
            v = g.values[row] if row < len(g.values) else None
            y = y0 + k * bar_h
            if v is None or not math.isfinite(v):
                parts.append(f"<text x='{frame.left + 4:.1f}' y='{y + bar_h - 3:.1f}' class='tick'>n/a</text>")
                continue
            w = max(frame.px(v) - frame.left, 1.0)
            parts.append(f"<rect x='{frame.left:.1f}' y='{y:.1f}' width='{w:.1f}' height='{bar_h - 2}' "
                         f"fill='{g.color}'>"
                         f"<title>{escape(f'{g.name}: {cat} = {value_fmt.format(v)}')}</title></rect>"
                         f"<text x='{frame.left + w + 4:.1f}' y='{y + bar_h - 3:.1f}' class='tick'>"
                         f"{value_fmt.format(v)}</text>")
            marks += 1
    parts.append(f"<path d='M{frame.left:.1f} {frame.top:.1f}V{frame.top + frame.height:.1f}' stroke='#888'/>")
    parts.append(f"<text x='{frame.left + frame.width / 2:.1f}' y='{frame.top + frame.height + 34:.1f}' "
                 f"text-anchor='middle' class='axl'>{escape(x_label)}</text>")
    return _wrap(plot_id, title, width, height, marks, "".join(parts))


@dataclass(frozen=True)
class Panel:
    """One plot of a stacked figure (``panels_svg``)."""

    series: Sequence[Series]
    y_label: str
    plot_id: str
    height: int = 260


# Title, note and warning lines above stacked panels.
HEAD_STYLE = (f".ttl{{font-size:{FONT_PX + 3}px;font-weight:bold;fill:#222}}.note{{font-size:{FONT_PX}px;fill:#555}}"
              f".warn{{font-size:{FONT_PX}px;font-weight:bold;fill:#B00020}}")


def panels_svg(panels: Sequence[Panel], *, x_label: str, title: str, notes: Sequence[str] = (), warning: str = "",
               width: int = 760, x_range: tuple[float, float] | None = None) -> str:
    """A standalone SVG file: a title, note lines, an optional warning, then one scatter
    plot per panel, stacked, all cut to ``x_range`` so their x axes line up.

    No page stylesheet surrounds a file opened on its own, so it carries SVG_STYLE itself.
    """
    head = [(title, "ttl"), *((note, "note") for note in notes), *([(warning, "warn")] if warning else [])]
    body = [f"<text x='70' y='{22 + 19 * i}' class='{kind}'>{escape(text)}</text>"
            for i, (text, kind) in enumerate(head)]
    top = 19 * len(head) + 8
    for panel in panels:
        plot = scatter_svg(panel.series, x_label=x_label, y_label=panel.y_label, plot_id=panel.plot_id,
                           title=f"{panel.y_label} by {x_label}", view=View(width, panel.height, x_range))
        body.append(f"<g transform='translate(0,{top})'>{plot}</g>")
        top += panel.height
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {top}' width='{width}' height='{top}' "
            f"font-family='{FONT_FAMILY}'><style>{SVG_STYLE}{HEAD_STYLE}</style>"
            f"<rect width='{width}' height='{top}' fill='#fff'/>" + "\n".join(body) + "</svg>\n")


def _wrap(plot_id: str, title: str, width: int, height: int, marks: int, body: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' class='plot' id='{escape(plot_id)}' data-marks='{marks}' "
            f"viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' "
            f"aria-label='{escape(title)}' font-family='{FONT_FAMILY}'>"
            f"<title>{escape(title)}</title>{body}</svg>")

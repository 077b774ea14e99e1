"""The report's timeline: accepted deliveries over time, cumulative, one step line per channel, as inline SVG.

No script, no external font or stylesheet: the chart is drawn once, from numbers,
and every label (a channel id is configuration, so still data) is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Final

WIDTH: Final = 640
HEIGHT: Final = 240
PAD_LEFT: Final = 56
PAD_RIGHT: Final = 150  # the legend
PAD_TOP: Final = 14
PAD_BOTTOM: Final = 34
COLOURS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22")


def timeline_svg(timeline: dict[str, list[tuple[float, int]]], *, title: str, x_label: str, y_label: str,
                 empty: str) -> str:
    """An ``<svg>`` element (left to right whatever the page direction) of ``channel -> [(seconds, n)]``."""
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" direction="ltr" class="timeline">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             'stroke="#999"/>']
    points = [p for series in timeline.values() for p in series]
    if not points:
        parts.append(f'<text x="{PAD_LEFT + plot_w / 2}" y="{PAD_TOP + plot_h / 2}" text-anchor="middle" '
                     f'font-size="13">{escape(empty)}</text></svg>')
        return "".join(parts)
    max_t = max(t for t, _ in points) or 1.0
    max_n = max(n for _, n in points) or 1

    def x(t: float) -> float:
        return round(PAD_LEFT + t / max_t * plot_w, 1)

    def y(n: int) -> float:
        return round(PAD_TOP + plot_h - n / max_n * plot_h, 1)

    base = PAD_TOP + plot_h
    parts += [
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 10}" text-anchor="end" font-size="11">{max_n}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{base}" text-anchor="end" font-size="11">0</text>',
        f'<text x="{PAD_LEFT}" y="{base + 14}" font-size="11">0</text>',
        f'<text x="{PAD_LEFT + plot_w}" y="{base + 14}" text-anchor="end" font-size="11">{_seconds(max_t)}</text>',
        f'<text x="{PAD_LEFT + plot_w / 2}" y="{base + 28}" text-anchor="middle" font-size="11">'
        f"{escape(x_label)}</text>",
        f'<text x="12" y="{PAD_TOP + plot_h / 2}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 12 {PAD_TOP + plot_h / 2})">{escape(y_label)}</text>',
    ]
    for i, (channel, series) in enumerate(timeline.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = [f"{x(0)},{y(0)}"]
        previous = 0
        for t, n in series:
            path += [f"{x(t)},{y(previous)}", f"{x(t)},{y(n)}"]
            previous = n
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(path)}"/>')
        legend_y = PAD_TOP + 12 + i * 16
        parts.append(f'<rect x="{WIDTH - PAD_RIGHT + 10}" y="{legend_y - 9}" width="10" height="10" '
                     f'fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - PAD_RIGHT + 24}" y="{legend_y}" font-size="11">{escape(channel)} '
                     f"({previous})</text>")
    parts.append("</svg>")
    return "".join(parts)


def _seconds(value: float) -> str:
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"

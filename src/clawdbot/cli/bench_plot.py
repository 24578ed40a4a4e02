"""`clawdbot bench --plot FILE`: latency histograms and throughput per second of each target.

`.html`: one self-contained file, inline SVG drawn here (no script, nothing fetched), so it needs
no extra. `.png`: matplotlib (the `plot` extra), imported only here."""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

from clawdbot.cli.bench_stats import Samples, pct

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
BINS = 30
W, H = 760, 260
MIN_SPAN = 0.25  # a last second of load shorter than this is too short to plot as a rate
HIST_TITLE = "Latency of successful requests (the slowest 1% in the last bar)"
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44
Series = list[tuple[str, Samples]]


def check(path: str) -> str | None:
    """Why FILE cannot be written (before the run, not after it), or None."""
    suffix = Path(path).suffix.lower()
    if not Path(path).resolve().parent.is_dir():
        return f"--plot {path}: no such directory"
    if suffix in (".html", ".htm"):
        return None
    if suffix != ".png":
        return f"--plot {path}: give a file ending in .html (no extra needed) or .png (matplotlib)"
    if importlib.util.find_spec("matplotlib") is None:
        return (f"--plot {path} needs matplotlib: pip install 'clawdbot[plot]' (or write an .html plot, "
                f"which needs nothing)")
    return None


def write(path: str, series: Series, title: str) -> None:
    if Path(path).suffix.lower() == ".png":
        _png(path, series, title)
    else:
        Path(path).write_text(_html(series, title), encoding="utf-8")


def histogram(values: list[float], lo: float, hi: float, bins: int = BINS) -> list[int]:
    counts = [0] * bins
    width = (hi - lo) / bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / width)))] += 1
    return counts


def _range(series: Series) -> tuple[float, float]:
    """From the fastest to the p99 over all targets: a few outliers must not squeeze the rest."""
    values = sorted(v for _, s in series for v in s.latency)
    lo, hi = (values[0], pct(values, 99)) if values else (0.0, 1.0)
    return lo, hi if hi > lo else lo + 1.0


def rates(s: Samples, field: str) -> list[tuple[float, float]]:
    """(second, per-second rate) over the seconds of load, a partial last second scaled to a rate."""
    return [(p["second"], p[field] / p["span_s"]) for p in s.timeline() if p["span_s"] >= MIN_SPAN]


# -- HTML with inline SVG -----------------------------------------------------------------------------


def _svg(title: str, x_label: str, y_label: str, x_max: float, y_max: float, x0: float, body: list[str]) -> str:
    y_max = y_max or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#333"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#333"/>']
    for i in range(5):
        x = LEFT + i * (W - LEFT - RIGHT) / 4
        y = H - BOTTOM - i * (H - TOP - BOTTOM) / 4
        parts.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                     f'{x0 + i * (x_max - x0) / 4:.4g}</text>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{i * y_max / 4:.4g}</text>')
    parts.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{html.escape(y_label)}</text>')
    return "\n".join([*parts, *body, "</svg>"])


def _histogram_svg(series: Series) -> str:
    lo, hi = _range(series)
    counts = [histogram(s.latency, lo, hi) for _, s in series]
    y_max = max((c for row in counts for c in row), default=1)
    bar_w = (W - LEFT - RIGHT) / BINS
    body = []
    for k, row in enumerate(counts):
        for i, c in enumerate(row):
            if c:
                h = c / y_max * (H - TOP - BOTTOM)
                body.append(f'<rect x="{LEFT + i * bar_w:.1f}" y="{H - BOTTOM - h:.1f}" width="{bar_w:.1f}" '
                            f'height="{h:.1f}" fill="{COLOURS[k % len(COLOURS)]}" fill-opacity="0.55"/>')
    return _svg(HIST_TITLE, "latency (ms)", "requests", hi, y_max, lo, body)


def _timeline_svg(series: Series, field: str, label: str) -> str:
    lines = [rates(s, field) for _, s in series]
    x_max = max((x for line in lines for x, _ in line), default=0) + 1
    y_max = max((y for line in lines for _, y in line), default=1)
    body = []
    for k, line in enumerate(lines):
        pts = [(LEFT + (x + 0.5) / x_max * (W - LEFT - RIGHT), H - BOTTOM - y / (y_max or 1) * (H - TOP - BOTTOM))
               for x, y in line]
        colour = COLOURS[k % len(COLOURS)]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        body.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
    return _svg(label, "second of load", label, x_max, y_max, 0.0, body)


def _html(series: Series, title: str) -> str:
    legend = " ".join(f'<span style="color:{COLOURS[k % len(COLOURS)]}">&#9632; {html.escape(name)}</span>'
                      for k, (name, _) in enumerate(series))
    charts = [(HIST_TITLE, _histogram_svg(series)),
              ("Requests completed per second", _timeline_svg(series, "requests", "requests/s")),
              ("Completion tokens per second", _timeline_svg(series, "tokens", "tokens/s"))]
    sections = "\n".join(f"<h2>{h}</h2>\n{svg}" for h, svg in charts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px sans-serif;margin:24px}} svg text{{font:11px sans-serif}} h2{{font-size:15px}}</style>
</head><body>
<h1 style="font-size:18px">{html.escape(title)}</h1>
<p>{legend}</p>
{sections}
</body></html>
"""


# -- PNG with matplotlib ------------------------------------------------------------------------------


def _png(path: str, series: Series, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, (hist, reqs, toks) = plt.subplots(3, 1, figsize=(9, 10))
    lo, hi = _range(series)
    for k, (name, s) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        hist.hist([min(v, hi) for v in s.latency], bins=BINS, range=(lo, hi), alpha=0.55, color=colour, label=name)
        for ax, field in ((reqs, "requests"), (toks, "tokens")):
            points = rates(s, field)
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", color=colour, label=name)
    hist.set(title=HIST_TITLE, xlabel="latency (ms)", ylabel="requests")
    reqs.set(title="Requests completed per second", xlabel="second of load", ylabel="requests/s", ylim=(0, None))
    toks.set(title="Completion tokens per second", xlabel="second of load", ylabel="tokens/s", ylim=(0, None))
    for ax in (hist, reqs, toks):
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

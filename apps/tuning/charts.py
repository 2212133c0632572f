"""Inline SVG for the study page: optimisation history, parameter importances, parallel coordinates.

Pure functions of the selectors' data; every piece of text is escaped.
"""
import math

from django.utils.html import escape
from django.utils.safestring import mark_safe

BLUE, RED, GREY = "#2563eb", "#dc2626", "#9ca3af"
FONT = 'font-family="sans-serif"'


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tuning-chart" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" role="img" aria-label="{escape(title)}" {FONT}>',
        f'<text x="8" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]


def history_svg(history: list[dict], *, metric: str, width: int = 560, height: int = 240) -> str:
    """Trial value (dots) and best value so far (red steps) by trial number."""
    done = [h for h in history if h["value"] is not None]
    if not done:
        return ""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 24, 30
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    x0, x1 = 1, max(max(item["number"] for item in history), 2)
    ys = [item["value"] for item in done]
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def sx(x):
        return pad_l + (x - x0) / (x1 - x0) * w

    def sy(y):
        return pad_t + (1 - (y - y0) / (y1 - y0)) * h

    parts = _open(width, height, f"Optimisation history ({metric})")
    parts += [
        f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#999"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 4}" font-size="10" text-anchor="end">{_fmt(y1)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + h}" font-size="10" text-anchor="end">{_fmt(y0)}</text>',
        f'<text x="{pad_l}" y="{height - 8}" font-size="10">trial {x0}</text>',
        f'<text x="{pad_l + w}" y="{height - 8}" font-size="10" text-anchor="end">{x1}</text>',
    ]
    steps, previous = [], None
    for item in history:
        if item["best_value"] is None:
            continue
        x, y = sx(item["number"]), sy(item["best_value"])
        if previous is not None:
            steps.append(f"{x:.1f},{previous:.1f}")
        steps.append(f"{x:.1f},{y:.1f}")
        previous = y
    parts.append(f'<polyline fill="none" stroke="{RED}" stroke-width="2" points="{" ".join(steps)}"/>')
    for item in history:
        if item["value"] is not None:
            parts.append(f'<circle cx="{sx(item["number"]):.1f}" cy="{sy(item["value"]):.1f}" r="3.5" fill="{BLUE}">'
                         f'<title>trial #{item["number"]}: {escape(_fmt(item["value"]))}</title></circle>')
        elif item["status"] in ("pruned", "failed"):
            x = sx(item["number"])
            parts.append(f'<text x="{x:.1f}" y="{pad_t + h - 3}" font-size="10" fill="{GREY}" text-anchor="middle">'
                         f'×<title>trial #{item["number"]} {escape(item["status"])}</title></text>')
    parts.append(f'<text x="{pad_l + w}" y="14" font-size="10" text-anchor="end" fill="{RED}">best so far</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def importances_svg(importances: dict, *, width: int = 560) -> str:
    """Horizontal bars, most important parameter first."""
    rows = importances.get("importances") or []
    if not rows:
        return ""
    bar_h, pad_t, label_w = 18, 24, 150
    height = pad_t + bar_h * len(rows) + 8
    w = width - label_w - 60
    parts = _open(width, height, f"Parameter importance ({importances['n_trials']} completed trials)")
    for i, row in enumerate(rows):
        y = pad_t + i * bar_h
        length = max(row["importance"], 0.0) * w
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end">'
                     f'{escape(row["param"])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{bar_h - 6}" fill="{BLUE}"/>')
        parts.append(f'<text x="{label_w + length + 4:.1f}" y="{y + 13}" font-size="10">{row["importance"]:.2f}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _axis_position(axis: dict, value) -> float | None:
    """Where `value` sits on the axis, 0 (bottom) to 1 (top)."""
    if axis["type"] == "categorical":
        choices = axis["choices"]
        matches = [i for i, c in enumerate(choices) if repr(c) == repr(value)]
        if not matches:
            return None
        return 0.5 if len(choices) == 1 else matches[0] / (len(choices) - 1)
    low, high = axis.get("low"), axis.get("high")
    if value is None or low is None or high is None:
        return None
    if axis.get("log") and low > 0 and value > 0:
        low, high, value = math.log10(low), math.log10(high), math.log10(value)
    if high == low:
        return 0.5
    return min(max((value - low) / (high - low), 0.0), 1.0)


def _color(rank: float) -> str:
    """Best trials green, worst red (rank 0 = best)."""
    r = int(22 + (220 - 22) * rank)
    g = int(163 + (38 - 163) * rank)
    b = int(74 + (38 - 74) * rank)
    return f"#{r:02x}{g:02x}{b:02x}"


def parallel_coordinates_svg(data: dict, *, width: int = 640, height: int = 260) -> str:
    """One vertical axis per parameter and the objective; one line per completed trial."""
    axes, trials = data["dimensions"], data["trials"]
    if not trials:
        return ""
    pad_l, pad_r, pad_t, pad_b = 40, 40, 40, 24
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    step = w / max(len(axes) - 1, 1)
    objective = axes[-1]
    maximize = objective.get("direction") == "maximize"
    ordered = sorted(trials, key=lambda t: -t["value"] if maximize else t["value"])
    rank = {t["number"]: (i / max(len(ordered) - 1, 1)) for i, t in enumerate(ordered)}

    parts = _open(width, height, "Parallel coordinates (green: best, red: worst)")
    for i, axis in enumerate(axes):
        x = pad_l + i * step
        parts.append(f'<line x1="{x:.1f}" y1="{pad_t}" x2="{x:.1f}" y2="{pad_t + h}" stroke="#555"/>')
        parts.append(f'<text x="{x:.1f}" y="{pad_t - 18}" font-size="11" text-anchor="middle" font-weight="bold">'
                     f'{escape(axis["name"])}</text>')
        if axis["type"] == "categorical":
            top, bottom = axis["choices"][-1], axis["choices"][0]
        else:
            top, bottom = axis.get("high"), axis.get("low")
        parts.append(f'<text x="{x:.1f}" y="{pad_t - 5}" font-size="9" text-anchor="middle">{escape(_fmt(top))}</text>')
        parts.append(f'<text x="{x:.1f}" y="{pad_t + h + 12}" font-size="9" text-anchor="middle">'
                     f'{escape(_fmt(bottom))}</text>')
    for trial in sorted(trials, key=lambda t: -rank[t["number"]]):  # best drawn last, on top
        points = []
        for i, axis in enumerate(axes):
            value = trial["value"] if axis["type"] == "objective" else trial["params"].get(axis["name"])
            position = _axis_position(axis, value)
            if position is None:
                continue
            points.append(f"{pad_l + i * step:.1f},{pad_t + (1 - position) * h:.1f}")
        parts.append(f'<polyline fill="none" stroke="{_color(rank[trial["number"]])}" stroke-width="1.5" '
                     f'stroke-opacity="0.8" points="{" ".join(points)}"><title>trial #{trial["number"]}: '
                     f'{escape(_fmt(trial["value"]))}</title></polyline>')
    parts.append("</svg>")
    return mark_safe("".join(parts))

"""Tiny inline-SVG line charts for admin pages (no JavaScript, no chart library)."""
from django.utils.html import escape
from django.utils.safestring import mark_safe

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def svg_line_chart(series: dict[str, list[tuple[float, float]]], *, title: str = "", width: int = 420,
                   height: int = 200) -> str:
    """One chart with a line per series; x = epoch. Returns safe HTML (names are escaped)."""
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    pad_l, pad_r, pad_t, pad_b = 48, 12, 22, 28
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x):
        return pad_l + (x - x0) / (x1 - x0) * w

    def sy(y):
        return pad_t + (1 - (y - y0) / (y1 - y0)) * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" role="img" aria-label="{escape(title)}">',
        f'<text x="{pad_l}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#999"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 4}" font-size="10" text-anchor="end">{_fmt(y1)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + h}" font-size="10" text-anchor="end">{_fmt(y0)}</text>',
        f'<text x="{pad_l}" y="{height - 8}" font-size="10">epoch {_fmt(x0)}</text>',
        f'<text x="{pad_l + w}" y="{height - 8}" font-size="10" text-anchor="end">{_fmt(x1)}</text>',
    ]
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for x, y in values[-1:]:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>')
        parts.append(f'<text x="{pad_l + 8 + i * 110}" y="{pad_t + 12}" font-size="10" fill="{color}">'
                     f'{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def metric_charts(curves: dict[str, list[tuple[int, float]]]) -> list[str]:
    """One chart per metric family: train_x and val_x share a chart."""
    families: dict[str, dict[str, list]] = {}
    for name, values in curves.items():
        base = name.split("_", 1)[1] if name.startswith(("train_", "val_")) else name
        families.setdefault(base, {})[name] = values
    ordered = sorted(families, key=lambda b: (b != "loss", b))
    return [svg_line_chart(families[b], title=b) for b in ordered]

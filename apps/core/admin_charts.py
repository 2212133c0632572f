"""Small server-rendered SVG charts for admin pages that are static by nature (a comparison of
finished runs, a stored evaluation): no script to load, legible at 360 px, colours that keep ≥ 3:1
against white so each line can be told apart by colour and by its legend entry."""

from django.utils.html import format_html, format_html_join

# Tableau-like hues darkened to ≥ 3:1 on white (non-text contrast for lines and markers).
SERIES_COLOURS = ["#1d4ed8", "#b91c1c", "#166534", "#92400e", "#6b21a8", "#0e7490", "#be185d", "#4b5563"]

DASHES = ["none", "6 4", "2 3", "10 3 2 3"]
# A narrow drawing scaled to the box: text stays ≥ 9 px on a 360 px phone and ~15 px at the
# 560 px the figure is capped at on a desktop.
WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 36


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high == low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def line_chart(series: list[tuple[str, list[tuple[float, float]]]], *, x_label: str, y_label: str, chart_id: str = ""):
    """Lines of (x, y) points on shared axes, with a legend below. `series` is [(label, points)];
    series without points are left out of the plot but named in the legend as "no data"."""
    plotted = [(label, points) for label, points in series if points]
    if not plotted:
        return format_html('<p class="portal-quiet">No {} recorded.</p>', y_label)
    xs = [x for _, points in plotted for x, _ in points]
    ys = [y for _, points in plotted for _, y in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    if y_low == y_high:  # a flat line still needs a visible band
        y_low, y_high = y_low - 0.5, y_high + 0.5
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x):
        return LEFT + (0 if x_high == x_low else (x - x_low) / (x_high - x_low) * plot_w)

    def sy(y):
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    # format_html escapes its arguments into strings first, so numbers are formatted before.
    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#d1d5db"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="13" fill="#374151">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, f"{sy(t):.1f}", f"{sy(t):.1f}", LEFT - 6, f"{sy(t) + 4:.1f}", f"{t:.3g}")
            for t in _ticks(y_low, y_high)
        ),
    )
    x_values = _ticks(x_low, x_high)
    if all(float(x).is_integer() for x in xs):  # epochs: whole-number ticks, not "1.75"
        x_values = sorted({round(t) for t in x_values})
    x_ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#374151">{}</text>',
        ((f"{sx(t):.1f}", HEIGHT - BOTTOM + 16, f"{t:.4g}") for t in x_values),
    )
    # Each line after the first is dashed differently: two runs with equal curves overlap exactly,
    # and a solid line under a dashed one still shows that both are there.
    lines = format_html_join(
        "",
        '<polyline fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}" points="{}">'
        "<title>{}</title></polyline>",
        (
            (
                SERIES_COLOURS[i % len(SERIES_COLOURS)],
                DASHES[i % len(DASHES)],
                " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points),
                label,
            )
            for i, (label, points) in enumerate(plotted)
        ),
    )
    legend = format_html_join(
        "",
        '<li><svg class="portal-swatch" viewBox="0 0 24 4" aria-hidden="true"><line x1="0" x2="24" '
        'y1="2" y2="2" stroke="{}" stroke-width="3" stroke-dasharray="{}"/></svg>{}</li>',
        (
            (SERIES_COLOURS[i % len(SERIES_COLOURS)], DASHES[i % len(DASHES)], label)
            for i, (label, _) in enumerate(plotted)
        ),
    )
    missing = [label for label, points in series if not points]
    if missing:
        legend = format_html("{}{}", legend, format_html_join("", "<li>{}: no data</li>", ((m,) for m in missing)))
    return format_html(
        '<figure class="portal-chart"{}><svg viewBox="0 0 {} {}" role="img" aria-label="{} by {}">{}{}{}'
        '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#374151">{}</text></svg>'
        '<figcaption><ul class="portal-legend-list">{}</ul></figcaption></figure>',
        format_html(' id="{}"', chart_id) if chart_id else "",
        WIDTH,
        HEIGHT,
        y_label,
        x_label,
        grid,
        x_ticks,
        lines,
        f"{LEFT + plot_w / 2:.0f}",
        HEIGHT - 4,
        x_label,
        legend,
    )


def scatter_chart(
    points: list[tuple[float, float]], *, x_label: str, y_label: str, chart_id: str = "", zero_line: bool = True
):
    """Dots of (x, y), with a dashed y = 0 line (a residual plot: dots should straddle it evenly)."""
    if not points:
        return format_html('<p class="portal-quiet">No {} recorded.</p>', y_label)
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x_low, x_high, y_low, y_high = min(xs), max(xs), min(min(ys), 0.0), max(max(ys), 0.0)
    if y_low == y_high:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    if x_low == x_high:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x):
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y):
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#d1d5db"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="13" fill="#374151">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, f"{sy(t):.1f}", f"{sy(t):.1f}", LEFT - 6, f"{sy(t) + 4:.1f}", f"{t:.3g}")
            for t in _ticks(y_low, y_high)
        ),
    )
    x_ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#374151">{}</text>',
        ((f"{sx(t):.1f}", HEIGHT - BOTTOM + 16, f"{t:.3g}") for t in _ticks(x_low, x_high)),
    )
    zero = (
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#374151" stroke-dasharray="4 3"/>',
            LEFT,
            WIDTH - RIGHT,
            f"{sy(0):.1f}",
            f"{sy(0):.1f}",
        )
        if zero_line
        else ""
    )
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2.5" fill="{}" fill-opacity="0.7"/>',
        ((f"{sx(x):.1f}", f"{sy(y):.1f}", SERIES_COLOURS[0]) for x, y in points),
    )
    return format_html(
        '<figure class="portal-chart"{}><svg viewBox="0 0 {} {}" role="img" aria-label="{} by {}">{}{}{}{}'
        '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#374151">{}</text></svg></figure>',
        format_html(' id="{}"', chart_id) if chart_id else "",
        WIDTH,
        HEIGHT,
        y_label,
        x_label,
        grid,
        x_ticks,
        zero,
        dots,
        f"{LEFT + plot_w / 2:.0f}",
        HEIGHT - 4,
        x_label,
    )


def _shade(count: int, most: int) -> str:
    """White to light blue by share of the largest cell; dark text stays ≥ 7:1 on every shade."""
    share = 0.0 if most == 0 else count / most
    low, high = (255, 255, 255), (147, 197, 253)  # #93c5fd
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in zip(low, high))


def evaluation_panel(evaluation: dict | None):
    """A run's stored evaluation (apps.training.evaluation): confusion matrix with ROC and PR curves
    for a classifier, residual summary and residual plot for a regressor."""
    from .admin_display import format_metric

    if not evaluation:
        return format_html(
            '<p class="portal-quiet-text">{}</p>',
            "No stored evaluation yet: it is computed on the test split when a run succeeds "
            "(runs trained before evaluation plots were kept have none).",
        )
    caption = format_html("On the {} split ({} rows).", evaluation.get("split", "test"), evaluation.get("rows", "?"))
    if "confusion_matrix" in evaluation:
        matrix = evaluation["confusion_matrix"]
        labels, counts = matrix["labels"], matrix["counts"]
        most = max((c for row in counts for c in row), default=0)
        head = format_html_join("", '<th scope="col">{}</th>', ((label,) for label in labels))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (
                    format_html(
                        '<th scope="row">{}</th>{}',
                        label,
                        format_html_join(
                            "",
                            '<td class="num" style="background:{};color:#111827">{}</td>',
                            ((_shade(c, most), c) for c in row),
                        ),
                    ),
                )
                for label, row in zip(labels, counts)
            ),
        )
        table = format_html(
            # A paragraph, not a <caption>: admin styles captions as teal module headers.
            '<h3>Confusion matrix</h3><p class="portal-quiet-text">Rows are the true class, columns the predicted one.</p>'
            '<table id="confusion-matrix" class="portal-table portal-confusion" aria-label="Confusion matrix">'
            '<tr><th scope="col">true \\ predicted</th>{}</tr>{}</table>',
            head,
            body,
        )
        roc = line_chart(
            [
                (f"{c['label']} (AUC {format_metric(c['auc'], 3)})", list(zip(c["fpr"], c["tpr"])))
                for c in evaluation.get("roc", [])
            ],
            x_label="false positive rate",
            y_label="true positive rate",
            chart_id="roc-curve",
        )
        pr = line_chart(
            [
                (
                    f"{c['label']} (AP {format_metric(c['average_precision'], 3)}, base rate "
                    f"{format_metric(c['base_rate'], 3)})",
                    list(zip(c["recall"], c["precision"])),
                )
                for c in evaluation.get("pr", [])
            ],
            x_label="recall",
            y_label="precision",
            chart_id="pr-curve",
        )
        return format_html(
            '<div class="portal-evaluation"><p>{}</p>{}<h3>ROC curve</h3>{}<h3>Precision–recall curve</h3>{}</div>',
            caption,
            table,
            roc,
            pr,
        )
    residuals = evaluation.get("residuals") or {}
    quantiles = residuals.get("quantiles", {})
    summary = format_html_join(
        "",
        '<tr><th scope="row">{}</th><td class="num">{}</td></tr>',
        (
            (name, format_metric(value))
            for name, value in [
                ("mean (true − predicted)", residuals.get("mean")),
                ("std", residuals.get("std")),
                ("MAE", residuals.get("mae")),
                # In a fixed order: PostgreSQL's jsonb does not keep the order the keys were written in.
                *((name, quantiles.get(name)) for name in ("min", "p5", "p25", "median", "p75", "p95", "max")),
            ]
        ),
    )
    points = residuals.get("points", {})
    plot = scatter_chart(
        list(zip(points.get("predicted", []), points.get("residual", []))),
        x_label="predicted",
        y_label="residual (true − predicted)",
        chart_id="residual-plot",
    )
    return format_html(
        '<div class="portal-evaluation"><p>{}</p><table id="residual-summary" class="portal-table">{}</table>'
        "<h3>Residuals by prediction</h3>{}</div>",
        caption,
        summary,
        plot,
    )

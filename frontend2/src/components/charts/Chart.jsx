import { useId } from "react";
import { extent, formatNumber, linear, niceTicks } from "./scale";
import { useWidth } from "./useWidth";

export const PALETTE = ["#2563eb", "#ea580c", "#059669", "#9333ea", "#dc2626", "#0891b2", "#ca8a04"];

/**
 * A line / bar chart in plain SVG that measures its container, so text stays legible at any width.
 *
 * series: [{name, points: [{x, y}], color?, dash?, type?: "line" | "bar", legend?}]
 * A point with y null is a gap: the line breaks there instead of joining its neighbours. `legend`
 * replaces the last value shown next to the series name (e.g. a total for bars).
 */
export function Chart({
  title,
  series,
  height = 180,
  xFormat = formatNumber,
  yFormat = formatNumber,
  yMin,
  yMax,
  xIntegers = false,
  emptyText = "No data yet.",
}) {
  const [ref, width] = useWidth();
  const titleId = useId();
  const drawn = series.filter((s) => s.points.some((p) => p.y != null));
  const allX = drawn.flatMap((s) => s.points.filter((p) => p.y != null).map((p) => p.x));
  const allY = drawn.flatMap((s) => s.points.filter((p) => p.y != null).map((p) => p.y));
  const xe = extent(allX);
  const ye = extent(allY);

  return (
    <figure className="mlops-chart" ref={ref}>
      <figcaption id={titleId} className="mlops-chart__title">{title}</figcaption>
      {!xe || !ye ? (
        <p className="mlops-empty mlops-chart__empty">{emptyText}</p>
      ) : (
        <Plot
          {...{ drawn, width, height, xFormat, yFormat, titleId, title, xIntegers }}
          xDomain={xe}
          yDomain={[yMin ?? ye[0], yMax ?? ye[1]]}
          hasBars={drawn.some((s) => s.type === "bar")}
        />
      )}
      {drawn.length > 0 && (
        <ul className="mlops-legend" aria-label={`${title} legend`}>
          {drawn.map((s, i) => (
            <li key={s.name}>
              <svg width="18" height="10" aria-hidden="true">
                <line x1="0" y1="5" x2="18" y2="5" stroke={s.color || PALETTE[i % PALETTE.length]} strokeWidth="3" strokeDasharray={s.dash} />
              </svg>
              {s.name}
              <span className="mlops-legend__last"> {s.legend ?? yFormat(s.points.filter((p) => p.y != null).at(-1).y)}</span>
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}

function Plot({ drawn, width, height, xFormat, yFormat, xDomain, yDomain, hasBars, titleId, title, xIntegers }) {
  const margin = { top: 8, right: 12, bottom: 24, left: 44 };
  const innerW = Math.max(40, width - margin.left - margin.right);
  const innerH = height - margin.top - margin.bottom;
  const yTicks = niceTicks(Math.min(yDomain[0], hasBars ? 0 : yDomain[0]), yDomain[1], height < 150 ? 3 : 4);
  const y = linear([yTicks[0], yTicks[yTicks.length - 1]], [innerH, 0]);
  const [x0, x1] = xDomain;
  const barSlots = hasBars ? new Set(drawn.flatMap((s) => s.points.map((p) => p.x))).size : 0;
  const pad = hasBars && x1 > x0 ? (x1 - x0) / Math.max(1, barSlots - 1) / 2 : 0;
  const x = linear(x0 === x1 ? [x0 - 1, x1 + 1] : [x0 - pad, x1 + pad], [0, innerW]);
  const xTickCount = Math.max(2, Math.min(6, Math.floor(innerW / 90)));
  let xTicks = x0 === x1 ? [x0] : Array.from({ length: xTickCount }, (_, i) => x0 + ((x1 - x0) * i) / (xTickCount - 1));
  // Epochs are whole numbers: no repeated "1 1 2 2" labels on a short run.
  if (xIntegers) xTicks = [...new Set(xTicks.map((t) => Math.round(t)))];
  const bars = drawn.filter((s) => s.type === "bar");
  const barW = bars.length ? Math.max(2, (innerW / Math.max(1, barSlots)) * 0.8 / bars.length) : 0;

  return (
    <svg width={width} height={height} role="img" aria-labelledby={titleId} className="mlops-chart__svg">
      <title>{title}</title>
      <g transform={`translate(${margin.left},${margin.top})`}>
        {yTicks.map((t) => (
          <g key={t} transform={`translate(0,${y(t)})`}>
            <line x1="0" x2={innerW} className="mlops-chart__grid" />
            <text x="-6" dy="0.32em" textAnchor="end" className="mlops-chart__tick">{yFormat(t)}</text>
          </g>
        ))}
        {xTicks.map((t, i) => (
          <text
            key={i}
            x={x(t)}
            y={innerH + 16}
            textAnchor={i === 0 && xTicks.length > 1 ? "start" : i === xTicks.length - 1 && xTicks.length > 1 ? "end" : "middle"}
            className="mlops-chart__tick mlops-chart__tick--x"
          >
            {xFormat(t, x1 - x0)}
          </text>
        ))}
        {drawn.map((s, i) => {
          const color = s.color || PALETTE[i % PALETTE.length];
          if (s.type === "bar") {
            const slot = bars.indexOf(s);
            return (
              <g key={s.name} fill={color}>
                {s.points.filter((p) => p.y != null).map((p) => (
                  <rect
                    key={p.x}
                    x={x(p.x) - (barW * bars.length) / 2 + slot * barW}
                    y={Math.min(y(p.y), y(0))}
                    width={barW}
                    height={Math.abs(y(0) - y(p.y))}
                  />
                ))}
              </g>
            );
          }
          let d = "";
          let pen = "M";
          const lonely = [];
          s.points.forEach((p, j) => {
            if (p.y == null) {
              pen = "M";
              return;
            }
            d += `${pen}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`;
            // A point with gaps on both sides has no segment: it gets a dot so it is not lost.
            if (pen === "M" && (s.points[j + 1]?.y == null)) lonely.push(p);
            pen = "L";
          });
          const last = s.points.filter((p) => p.y != null).at(-1);
          return (
            <g key={s.name}>
              <path d={d} fill="none" stroke={color} strokeWidth="2" strokeDasharray={s.dash} data-series={s.name} />
              {lonely.map((p) => (
                <circle key={p.x} cx={x(p.x)} cy={y(p.y)} r="2.5" fill={color} />
              ))}
              <circle cx={x(last.x)} cy={y(last.y)} r="3" fill={color} />
            </g>
          );
        })}
      </g>
    </svg>
  );
}

import { useId } from "react";
import { formatNumber, formatPercent } from "../../../components/charts/scale";

const SIZE = 200;
// Room for "100%" on the left and for the axis title below the tick labels.
const MARGIN = { top: 8, right: 12, bottom: 36, left: 42 };
const TICKS = [0, 0.5, 1];

const binLabel = (b) => `${Math.round(b.lower * 100)}–${Math.round(b.upper * 100)}%`;

function ReliabilityDiagram({ versions, title }) {
  const titleId = useId();
  const inner = SIZE - MARGIN.left - MARGIN.right;
  const innerH = SIZE - MARGIN.top - MARGIN.bottom;
  const x = (v) => v * inner;
  const y = (v) => innerH - v * innerH;
  const largest = Math.max(1, ...versions.flatMap((v) => v.bins.map((b) => b.count)));
  return (
    <svg viewBox={`0 0 ${SIZE} ${SIZE}`} width={SIZE} height={SIZE} role="img" aria-labelledby={titleId} className="mlops-chart__svg mlops-calibration__plot">
      <title id={titleId}>{title}</title>
      <g transform={`translate(${MARGIN.left},${MARGIN.top})`}>
        {TICKS.map((t) => (
          <g key={t}>
            <line x1="0" x2={inner} y1={y(t)} y2={y(t)} className="mlops-chart__grid" />
            <text x="-6" y={y(t)} dy="0.32em" textAnchor="end" className="mlops-chart__tick">{`${t * 100}%`}</text>
            <text x={x(t)} y={innerH + 14} textAnchor={t === 0 ? "start" : t === 1 ? "end" : "middle"} className="mlops-chart__tick">
              {`${t * 100}%`}
            </text>
          </g>
        ))}
        <line x1={x(0)} y1={y(0)} x2={x(1)} y2={y(1)} className="mlops-calibration__ideal" data-testid="perfect-calibration" />
        {versions.map((v) => (
          <g key={v.key} stroke={v.color} fill={v.color}>
            <polyline fill="none" strokeWidth="2" points={v.bins.map((b) => `${x(b.confidence)},${y(b.accuracy)}`).join(" ")} />
            {v.bins.map((b) => (
              <circle key={b.lower} cx={x(b.confidence)} cy={y(b.accuracy)} r={2.5 + 4 * Math.sqrt(b.count / largest)} fillOpacity="0.75">
                <title>{`${v.label}, confidence ${binLabel(b)}: predicted ${formatPercent(b.confidence)}, observed ${formatPercent(b.accuracy)}, ${b.count} rows`}</title>
              </circle>
            ))}
          </g>
        ))}
        <text x={inner / 2} y={innerH + 31} textAnchor="middle" className="mlops-chart__tick">predicted confidence</text>
      </g>
    </svg>
  );
}

/**
 * Calibration per model version: for the confidence the model gave its predicted class, binned in
 * tenths, the mean predicted confidence against the share that was right (from feedback). A
 * calibrated model sits on the diagonal. `versions`: [{key, label, color, bins: [{lower, upper,
 * count, confidence, accuracy}]}] (from normalizeTimeseries' totals.calibration); versions without
 * bins are left out.
 */
export function CalibrationView({ versions }) {
  const ids = useId();
  const shown = versions.filter((v) => v.bins?.length);
  if (!shown.length) return <p className="mlops-empty">No labelled answers with class probabilities in this window yet.</p>;
  return (
    <section className="mlops-calibration" aria-labelledby={`${ids}-title`}>
      <h3 id={`${ids}-title`} className="mlops-chart__title">Calibration (predicted confidence vs observed accuracy)</h3>
      <div className="mlops-calibration__body">
        <figure className="mlops-chart">
          <ReliabilityDiagram versions={shown} title="Reliability diagram: the diagonal is perfect calibration" />
        </figure>
        {shown.map((v) => (
          <div className="mlops-table-wrap" key={v.key}>
            <table className="mlops-table mlops-calibration__table">
              <caption>
                <span className="mlops-swatch" style={{ background: v.color }} aria-hidden="true" />
                Calibration of {v.label}
              </caption>
              <thead>
                <tr>
                  <th scope="col" title="Confidence bin of the predicted class">Bin</th>
                  <th scope="col">Predicted</th>
                  <th scope="col">Observed</th>
                  <th scope="col">Rows</th>
                </tr>
              </thead>
              <tbody>
                {v.bins.map((b) => (
                  <tr key={b.lower}>
                    <th scope="row">{binLabel(b)}</th>
                    <td>{formatPercent(b.confidence)}</td>
                    <td>{formatPercent(b.accuracy)}</td>
                    <td>{formatNumber(b.count)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      </div>
    </section>
  );
}

export default CalibrationView;

"""Per-minute sums of what each model version served and learned, and how they merge.

`Sums` is one version's figures over any span: request counts by status, the latency bins of the OK
answers (apps.monitoring.histogram), feedback sums and calibration bins. Sums of minutes add up to
the sums of their union, which is what makes a rollup row (apps.monitoring.models.PredictionRollup,
RollupBin) a stand-in for its raw rows; the writers (apps.monitoring.services.rollups) and the
readers (apps.monitoring.selectors) share this one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .calibration import BINS as CALIBRATION_BINS
from .choices import PredictionStatus
from .histogram import latency_bin

ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # the lifetime row's minute (/metrics counters)
MINUTE = timedelta(minutes=1)
MINUTE_SPAN, QUARTER_SPAN = 60, 900  # PredictionRollup.span: a minute's row, a quarter hour's
LATENCY = "latency"
CALIBRATION = "calibration"

SCALARS = (
    "requests",
    "ok",
    "client_errors",
    "server_errors",
    "latency_ms_sum",
    "feedback_rows",
    "feedback_correct",
    "sq_error_sum",
    "sq_error_sq_sum",
    "scored_rows",
    "log_loss_sum",
)
REQUEST_SCALARS = SCALARS[:5]
FEEDBACK_SCALARS = SCALARS[5:]
STATUS_FIELD = {
    PredictionStatus.OK: "ok",
    PredictionStatus.CLIENT_ERROR: "client_errors",
    PredictionStatus.SERVER_ERROR: "server_errors",
}


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def minute_ceil(moment: datetime) -> datetime:
    floor = minute_of(moment)
    return floor if floor == moment else floor + MINUTE


def quarter_of(moment: datetime) -> datetime:
    minute = minute_of(moment)
    return minute.replace(minute=minute.minute - minute.minute % 15)


def quarter_ceil(moment: datetime) -> datetime:
    floor = quarter_of(moment)
    return floor if floor == moment else floor + timedelta(minutes=15)


def span_ranges(start: datetime, end: datetime | None) -> list[tuple[int, datetime, datetime | None]]:
    """[start, end) (whole minutes; end None: up to now) as (span, from, to) ranges of rollup rows
    that cover it once: quarter-hour rows for the whole quarters, minute rows for the rest."""
    first_quarter = quarter_ceil(start)
    if end is not None and first_quarter >= quarter_of(end):
        return [(MINUTE_SPAN, start, end)]
    ranges = []
    if start < first_quarter:
        ranges.append((MINUTE_SPAN, start, first_quarter))
    last_quarter = quarter_of(end) if end is not None else None
    ranges.append((QUARTER_SPAN, first_quarter, last_quarter))
    if end is not None and last_quarter < end:
        ranges.append((MINUTE_SPAN, last_quarter, end))
    return ranges


@dataclass
class Sums:
    values: dict = field(default_factory=lambda: dict.fromkeys(SCALARS, 0))
    # (kind, bin) -> [count, correct, value sum]
    bins: dict = field(default_factory=dict)

    def add_bin(self, kind: str, k: int, count=1, correct=0, value=0.0) -> None:
        slot = self.bins.get((kind, k))
        if slot is None:
            self.bins[(kind, k)] = [count, correct, value]
        else:
            slot[0] += count
            slot[1] += correct
            slot[2] += value

    def add_request(self, status: str, latency_ms: float) -> None:
        v = self.values
        v["requests"] += 1
        v[STATUS_FIELD.get(status, "server_errors")] += 1
        if status == PredictionStatus.OK:
            v["latency_ms_sum"] += float(latency_ms)
            self.add_bin(LATENCY, latency_bin(float(latency_ms)))

    def add_feedback(self, *, n, n_correct, sq_error_sum, sq_error_sq_sum, log_loss_sum, calibration) -> None:
        v = self.values
        v["feedback_rows"] += int(n or 0)
        v["feedback_correct"] += int(n_correct or 0)
        v["sq_error_sum"] += float(sq_error_sum or 0.0)
        v["sq_error_sq_sum"] += float(sq_error_sq_sum or 0.0)
        if log_loss_sum is not None:
            v["scored_rows"] += int(n or 0)
            v["log_loss_sum"] += float(log_loss_sum)
        if calibration:
            for k in range(CALIBRATION_BINS):
                count = int(calibration["count"][k] or 0)
                if count:
                    self.add_bin(
                        CALIBRATION,
                        k,
                        count,
                        int(calibration["correct"][k] or 0),
                        float(calibration["confidence"][k] or 0.0),
                    )

    def merge(self, other: Sums) -> None:
        for key, value in other.values.items():
            self.values[key] += value
        for (kind, k), (count, correct, value) in other.bins.items():
            self.add_bin(kind, k, count, correct, value)

    def minus(self, other: Sums) -> Sums:
        out = Sums(values={key: self.values[key] - other.values[key] for key in SCALARS})
        for key in set(self.bins) | set(other.bins):
            mine, theirs = self.bins.get(key, [0, 0, 0.0]), other.bins.get(key, [0, 0, 0.0])
            out.bins[key] = [a - b for a, b in zip(mine, theirs)]
        return out

    def latency_bins(self) -> dict[int, int]:
        return {k: slot[0] for (kind, k), slot in self.bins.items() if kind == LATENCY and slot[0]}

    def calibration_sums(self) -> dict:
        sums = {
            "count": [0] * CALIBRATION_BINS,
            "correct": [0] * CALIBRATION_BINS,
            "confidence": [0.0] * CALIBRATION_BINS,
        }
        for (kind, k), (count, correct, value) in self.bins.items():
            if kind == CALIBRATION and 0 <= k < CALIBRATION_BINS:
                sums["count"][k] += count
                sums["correct"][k] += correct
                sums["confidence"][k] += value
        return sums

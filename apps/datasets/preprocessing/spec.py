"""The feature spec: a JSON document, validated here, that lists the pipeline's steps.

```
{
  "version": 1,
  "steps": [
    {"op": "log_returns", "columns": ["close"], "periods": [1]},
    {"op": "lags", "columns": ["close_logret1"], "lags": [1, 2, 3]},
    {"op": "rolling", "columns": ["close_logret1"], "windows": [5, 20], "stats": ["mean", "std"]},
    {"op": "rsi", "column": "close", "window": 14},
    {"op": "macd", "column": "close", "fast": 12, "slow": 26, "signal": 9},
    {"op": "bollinger", "column": "close", "window": 20, "num_std": 2},
    {"op": "calendar", "features": ["dayofweek", "month"]},
    {"op": "impute", "columns": "*", "strategy": "median"},
    {"op": "scale", "columns": "*", "method": "standard"}
  ],
  "target": {"horizon": 1, "kind": "direction", "name": "direction"},
  "exclude": ["open", "high", "low", "close", "volume"],
  "features": null
}
```

Steps run in order; each may read raw columns and the columns earlier steps made. Features are the
numeric columns left at the end (minus time, entity, a same-row target and `exclude`), or exactly
`features` when given. `target` (optional) derives the label from the dataset's target column
`horizon` rows ahead: `direction` (classes "down"/"up": is the forward return > 0), `return`,
`log_return` or `value`. Without it the label is the target column itself, on the same row.
"""

from dataclasses import dataclass

from .errors import SpecError
from .frame import DATETIME, NUMERIC
from .params import Param, clean_params
from .indicators import Bollinger, Calendar, Macd, Rsi
from .steps import Impute, Lags, LogReturns, OneHot, Returns, Rolling, Scale, State, Step

OPS: dict[str, type[Step]] = {
    cls.op: cls for cls in (Impute, Scale, OneHot, Lags, Returns, LogReturns, Rolling, Rsi, Macd, Bollinger, Calendar)
}
SPEC_FORMAT_VERSION = 1
MAX_STEPS = 100
TARGET_KINDS = ("direction", "return", "log_return", "value")
TARGET_PARAMS = {
    "horizon": Param("int", required=True, low=1, high=1000),
    "kind": Param("enum", required=True, choices=TARGET_KINDS),
    "name": Param("name"),
}
TOP_LEVEL_KEYS = ("version", "steps", "target", "features", "exclude", "description")


@dataclass(frozen=True)
class DatasetInfo:
    """What the pipeline needs to know about a dataset (a Dataset model instance has these fields)."""

    task: str
    target_column: str
    time_column: str = ""
    entity_column: str = ""

    @classmethod
    def of(cls, dataset) -> "DatasetInfo":
        if isinstance(dataset, DatasetInfo):
            return dataset
        if isinstance(dataset, dict):
            return cls(**{k: dataset.get(k) or "" for k in ("task", "target_column", "time_column", "entity_column")})
        return cls(
            task=dataset.task,
            target_column=dataset.target_column,
            time_column=dataset.time_column or "",
            entity_column=dataset.entity_column or "",
        )


def target_name(spec: dict, info: DatasetInfo) -> str:
    target = spec.get("target")
    if not target:
        return info.target_column
    if target.get("name"):
        return target["name"]
    if target["kind"] == "direction":
        return "direction"
    suffix = {"return": "fwd_ret", "log_return": "fwd_logret", "value": "fwd"}[target["kind"]]
    return f"{info.target_column}_{suffix}{target['horizon']}"


def normalize_spec(spec) -> dict:
    """Checks the document's shape and types (no data needed); returns it with defaults filled in.

    Raises SpecError naming the step index and key."""
    if not isinstance(spec, dict):
        raise SpecError("the spec must be a JSON object")
    unknown = sorted(set(spec) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise SpecError(f"unknown top-level key (allowed: {', '.join(TOP_LEVEL_KEYS)})", key=unknown[0])
    version = spec.get("version", SPEC_FORMAT_VERSION)
    if version != SPEC_FORMAT_VERSION:
        raise SpecError(
            f"unsupported spec format {version!r}; this portal reads version {SPEC_FORMAT_VERSION}", key="version"
        )
    raw_steps = spec.get("steps", [])
    if not isinstance(raw_steps, list):
        raise SpecError("must be a list of steps", key="steps")
    if len(raw_steps) > MAX_STEPS:
        raise SpecError(f"at most {MAX_STEPS} steps", key="steps")
    steps = [step.to_spec() for step in build_steps(raw_steps)]
    target = spec.get("target")
    if target is not None:
        if not isinstance(target, dict):
            raise SpecError("must be an object with horizon and kind", key="target")
        unknown = sorted(set(target) - set(TARGET_PARAMS))
        if unknown:
            raise SpecError(f"unknown key (allowed: {', '.join(TARGET_PARAMS)})", key=f"target.{unknown[0]}")
        try:
            target = clean_params(TARGET_PARAMS, target, step=None, allowed_extra=())
        except SpecError as exc:
            raise SpecError(exc.message, key=f"target.{exc.key}") from None
    out = {"version": SPEC_FORMAT_VERSION, "steps": steps, "target": target}
    for key in ("features", "exclude"):
        value = spec.get(key)
        if value is None or (key == "exclude" and value == []):
            out[key] = None if key == "features" else []
            continue
        out[key] = Param("columns", max_items=10_000).clean(value, step=None, key=key)
    if spec.get("description"):
        out["description"] = str(spec["description"])
    return out


def build_steps(raw_steps: list) -> list[Step]:
    steps = []
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            raise SpecError("each step must be an object with an 'op'", step=index)
        op = raw.get("op")
        if op not in OPS:
            raise SpecError(f"unknown op {op!r} (one of: {', '.join(OPS)})", step=index, key="op")
        steps.append(OPS[op].from_spec(index, raw))
    return steps


def new_state(spec: dict, info: DatasetInfo, kinds: dict[str, str]) -> State:
    reserved = {c for c in (info.time_column, info.entity_column) if c}
    direct = "" if spec.get("target") else info.target_column
    if direct:
        reserved.add(direct)
    return State(
        kinds=dict(kinds),
        reserved=reserved,
        exclude=set(spec.get("exclude") or ()),
        time_column=info.time_column,
        direct_target=direct,
    )


@dataclass
class Plan:
    """The spec checked against a dataset's columns."""

    spec: dict
    steps: list[Step]
    state: State
    features: list[str] | None  # None: decided after the run (one-hot columns depend on the data)
    history_rows: int
    needed_columns: set[str]  # raw columns the pipeline reads (target included)


def plan(spec: dict, info: DatasetInfo, kinds: dict[str, str]) -> Plan:
    """Validates `spec` (normalized) against raw column kinds; raises SpecError naming step and key."""
    for key, column in (
        ("target_column", info.target_column),
        ("time_column", info.time_column),
        ("entity_column", info.entity_column),
    ):
        if column and column not in kinds:
            raise SpecError(f"the dataset's {key.replace('_', ' ')} {column!r} is not in the data", key=key)
    if info.time_column and kinds[info.time_column] not in (DATETIME, "text"):
        raise SpecError(f"time column {info.time_column!r} must hold dates", key="time_column")
    target = spec.get("target")
    if target:
        wanted = "classification" if target["kind"] == "direction" else "regression"
        if info.task != wanted:
            raise SpecError(
                f"a {target['kind']!r} target makes a {wanted} task but the dataset is {info.task}", key="target.kind"
            )
        if kinds[info.target_column] != NUMERIC:
            raise SpecError(
                f"a horizon target needs a numeric target column; {info.target_column!r} is not", key="target.kind"
            )
        if target_name(spec, info) in kinds:
            raise SpecError(f"target name {target_name(spec, info)!r} is already a column", key="target.name")
    state = new_state(spec, info, kinds)
    steps = build_steps(spec["steps"])
    for step in steps:
        step.declare(state)
    raw = set(kinds)
    features = spec.get("features")
    if features is not None:
        one_hot_sources = {c for c in state.consumed}
        for name in features:
            dynamic = "=" in name and name.split("=", 1)[0] in one_hot_sources
            if not dynamic:
                state.require(name, step=None, key="features")
            if name in state.reserved:
                raise SpecError(f"{name!r} is the time, entity or target column", key="features")
        listed = [f for f in features if f in state.kinds]
    else:
        listed = state.candidates()
        if not listed and not state.consumed:
            raise SpecError("the spec leaves no numeric feature column", key="steps")
    lookback = max([state.lookback.get(f, 0) for f in listed] or [0])
    needed = set()
    for name in list(listed) + sorted(state.read) + sorted(state.consumed):
        needed |= set(state.sources.get(name, {name})) & raw
    needed.add(info.target_column)
    return Plan(
        spec=spec, steps=steps, state=state, features=features, history_rows=1 + lookback, needed_columns=needed
    )


def validate_spec(spec, *, dataset=None, kinds: dict[str, str] | None = None) -> dict:
    """Public check used by the API and admin: the normalized spec, or SpecError (step index, key).

    With `dataset` and `kinds` (raw column -> numeric | text | datetime, e.g. from a version's schema)
    column references, the target and the features are checked too."""
    normalized = normalize_spec(spec)
    if dataset is not None and kinds is not None:
        plan(normalized, DatasetInfo.of(dataset), kinds)
    return normalized


def spec_history_rows(spec: dict, *, dataset, kinds: dict[str, str]) -> int:
    return plan(normalize_spec(spec), DatasetInfo.of(dataset), kinds).history_rows

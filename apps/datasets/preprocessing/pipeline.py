"""Runs a spec's steps over a Frame: the one code path behind training and serving."""

import numpy as np

from .frame import Frame
from .spec import DatasetInfo, build_steps, new_state
from .steps import State


def run_steps(
    frame: Frame, *, spec: dict, info: DatasetInfo, fitted: list | None = None, fit_rows: np.ndarray | None = None
) -> tuple[State, list]:
    """Applies every step in order. Without `fitted`, stateful steps fit on `fit_rows` (indices of the
    training rows) as they go, so each sees the columns exactly as the steps before it left them. Returns the
    final column state and the fitted parameters of every step (None for stateless ones)."""
    kinds = dict(frame.kinds)
    for column in (info.time_column, info.entity_column):
        if column and column not in kinds:
            kinds[column] = "datetime" if column == info.time_column else "text"
    state = new_state(spec, info, kinds)
    steps = build_steps(spec["steps"])
    out = []
    for step in steps:
        step.declare(state)
        out.append(step.run(frame, state, None if fitted is None else fitted[step.index], fit_rows))
    return state, out

"""Run progress pushed to dashboards from the worker's epoch signal, at a bounded rate."""

from apps.dashboard.live import PROGRESS_MIN_INTERVAL_S, progress_due


def test_fast_epochs_are_pushed_at_most_a_few_times_a_second_but_the_last_one_always():
    run_id = 10_001
    assert progress_due(run_id, final=False, now=100.0)
    assert not progress_due(run_id, final=False, now=100.0 + PROGRESS_MIN_INTERVAL_S / 2)
    assert progress_due(run_id, final=False, now=100.0 + PROGRESS_MIN_INTERVAL_S)
    assert progress_due(run_id, final=True, now=100.0 + PROGRESS_MIN_INTERVAL_S + 0.01)


def test_runs_are_throttled_independently_and_a_finished_run_is_forgotten():
    assert progress_due(20_001, final=False, now=5.0)
    assert progress_due(20_002, final=False, now=5.0)
    assert progress_due(20_001, final=True, now=5.01)
    # A retry of the same run (new attempt) starts fresh after its final epoch.
    assert progress_due(20_001, final=False, now=5.02)

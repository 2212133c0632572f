"""Signals other apps hook into (tuning records intermediate values and prunes through these).

Both are sent in the process that executes the run (the Celery worker, or seed_demo in-process),
except run_finished for a run cancelled while still QUEUED, which is sent where it was cancelled.
"""

from django.dispatch import Signal

# kwargs: run (TrainingRun), epoch (int, 1-based), metrics (dict of floats)
run_epoch_completed = Signal()

# kwargs: run (TrainingRun, already in a terminal status); sent after the status change committed
run_finished = Signal()

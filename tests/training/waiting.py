import time

from apps.training.choices import RUN_TERMINAL


def wait_for(predicate, *, timeout: float = 120, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def process_exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet: either way it runs no code any more (no heartbeat)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_for_run(run, *, statuses=RUN_TERMINAL, timeout: float = 120):
    from apps.training.models import TrainingRun

    def done():
        fresh = TrainingRun.objects.get(pk=run.pk)
        return fresh if fresh.status in statuses else None

    return wait_for(done, timeout=timeout, what=f"run {run.pk} to reach {sorted(statuses)}")


def wait_for_epoch(run, epoch: int, *, timeout: float = 60):
    from apps.training.models import TrainingRun

    return wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, current_epoch__gte=epoch).first(),
        timeout=timeout,
        interval=0.05,
        what=f"run {run.pk} to finish epoch {epoch}",
    )

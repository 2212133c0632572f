from celery import shared_task


@shared_task(name="monitoring.flush_prediction_logs", ignore_result=True)
def flush_prediction_logs() -> int:
    """Beat task: web processes store their prediction logs themselves (their writer threads), so
    this waits for nothing; it drains lines an older web process left in the Redis list and
    anything this process logged. Returns how many lines it stored."""
    from .services.logbuffer import prediction_logs_flush

    return prediction_logs_flush(wait_s=0)


@shared_task(name="monitoring.prune_old_rows", ignore_result=True)
def prune_old_rows() -> dict:
    """Beat task (hourly): deletes raw prediction logs and feedback past MONITORING_RAW_RETENTION_DAYS
    and rollups past MONITORING_ROLLUP_RETENTION_DAYS, in bounded batches."""
    from .services.retention import monitoring_prune

    return monitoring_prune().as_dict()

from celery import shared_task


@shared_task(name="monitoring.flush_prediction_logs", ignore_result=True)
def flush_prediction_logs() -> int:
    """Beat task: move buffered prediction logs into PostgreSQL. Returns immediately when another
    flush is already running (the next tick continues)."""
    from .services.logbuffer import prediction_logs_flush

    return prediction_logs_flush(wait_s=0)

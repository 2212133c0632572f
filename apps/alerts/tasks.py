from celery import shared_task


@shared_task(name="alerts.evaluate_rules", ignore_result=True)
def evaluate_rules() -> dict:
    """Beat (housekeeping queue, every minute): every enabled alert rule checked once."""
    from .services import alert_rules_evaluate

    return alert_rules_evaluate()


@shared_task(name="alerts.deliver", bind=True, ignore_result=True, max_retries=None)
def deliver_alert(self, delivery_id: int) -> None:
    """POSTs one alert event to one webhook; on failure the task is retried after the webhook's
    backoff (doubling each time) until its max_attempts, counted on the delivery row rather than by
    Celery so a message redelivered after a worker restart does not get extra attempts."""
    from .services import alert_delivery_attempt

    _, wait = alert_delivery_attempt(delivery_id=delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)

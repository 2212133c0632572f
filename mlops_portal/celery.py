"""Celery app: queues `housekeeping` (short and periodic tasks, routed by CELERY_TASK_ROUTES),
`default` (anything without a route; the housekeeping worker reads it too), `cpu` and `gpu` (training).

Training tasks are declared with `acks_late=True, reject_on_worker_lost=True` so a worker killed
mid-run hands the message back to the broker; the task itself counts attempts in the database and
gives up after CELERY_TASK_MAX_ATTEMPTS.
"""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")

app = Celery("mlops_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")

from django.conf import settings  # noqa: E402  (after DJANGO_SETTINGS_MODULE is set)

from . import kombu_patches  # noqa: E402

kombu_patches.apply()

app.conf.update(
    task_queues=(
        Queue("housekeeping", Exchange("housekeeping"), routing_key="housekeeping"),
        Queue("default", Exchange("default"), routing_key="default"),
        Queue("cpu", Exchange("cpu"), routing_key="cpu"),
        Queue("gpu", Exchange("gpu"), routing_key="gpu"),
    ),
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    # One long job at a time per process: a prefetched second job would wait behind the first.
    worker_prefetch_multiplier=1,
    # A killed worker's unacknowledged message comes back after this long (Redis transport).
    broker_transport_options={"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT},
    result_backend_transport_options={"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT},
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=24 * 3600,
    task_track_started=True,
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    worker_send_task_events=True,
    timezone="UTC",
)
app.autodiscover_tasks()

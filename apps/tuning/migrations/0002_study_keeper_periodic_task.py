"""The beat task that keeps studies going (see apps.tuning.services.trials.studies_keep)."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("tuning", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="tuning: keep studies going",
            task="tuning.keep_studies",
            every=30,
            queue="default",
            description="Record finished trials, launch missing ones, end studies whose budget is spent.",
        ),
    ]

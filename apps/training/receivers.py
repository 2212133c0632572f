from django.dispatch import receiver

from apps.datasets.signals import dataset_version_created


@receiver(dataset_version_created, dispatch_uid="training.retrain_on_new_dataset_version")
def retrain_on_new_dataset_version(sender, version, **kwargs):
    from apps.training.services.schedules import experiments_retrain_on_new_version

    experiments_retrain_on_new_version(version=version)

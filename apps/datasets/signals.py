from django.dispatch import Signal

# Sent on commit when a new (not deduplicated) DatasetVersion exists; kwargs: version.
dataset_version_created = Signal()

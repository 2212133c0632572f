from rest_framework import serializers

from apps.core.limits import BIGINT_MAX, INT32_MAX

from .choices import Device, Framework, RunStatus
from .models import Experiment, RunEpoch, RunEvent, RunLogLine, TrainingRun


class ExperimentOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    dataset_id = serializers.IntegerField(read_only=True)
    feature_spec = serializers.StringRelatedField(read_only=True, allow_null=True)
    feature_spec_id = serializers.IntegerField(read_only=True, allow_null=True)
    registered_model = serializers.CharField(source="model_name", read_only=True)
    # Plain strings: the same choice sets appear as framework/device elsewhere in the schema.
    default_framework = serializers.CharField(read_only=True)
    default_device = serializers.CharField(read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "description",
            "dataset",
            "dataset_id",
            "feature_spec",
            "feature_spec_id",
            "target",
            "task",
            "primary_metric",
            "metric_direction",
            "default_framework",
            "default_model_type",
            "default_params",
            "default_device",
            "seed",
            "retrain_on_new_data",
            "registered_model",
            "created_at",
            "updated_at",
        ]


class ExperimentInputSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")
    dataset = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    feature_spec = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    target = serializers.CharField(required=False, allow_blank=True, default="")
    primary_metric = serializers.CharField(required=False, allow_blank=True, default="")
    metric_direction = serializers.CharField(required=False, allow_blank=True, default="")
    default_framework = serializers.CharField(
        required=False, default=Framework.SKLEARN, help_text="torch, keras, sklearn, xgboost or lightgbm"
    )
    default_model_type = serializers.CharField(required=False, allow_blank=True, default="")
    default_params = serializers.DictField(required=False, default=dict)
    default_device = serializers.CharField(required=False, default=Device.CPU, help_text="cpu or gpu")
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=INT32_MAX)
    retrain_on_new_data = serializers.BooleanField(required=False, default=False)
    registered_model_name = serializers.CharField(required=False, allow_blank=True, default="")


class ExperimentUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    primary_metric = serializers.CharField(required=False)
    metric_direction = serializers.CharField(required=False)
    default_framework = serializers.CharField(required=False, help_text="torch, keras, sklearn, xgboost or lightgbm")
    default_model_type = serializers.CharField(required=False)
    default_params = serializers.DictField(required=False)
    default_device = serializers.CharField(required=False, help_text="cpu or gpu")
    seed = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX)
    retrain_on_new_data = serializers.BooleanField(required=False)
    registered_model_name = serializers.CharField(required=False, allow_blank=True)


class RunStartSerializer(serializers.Serializer):
    """Blank fields take the experiment's defaults."""

    experiment = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    framework = serializers.ChoiceField(choices=Framework.choices, required=False)
    model_type = serializers.CharField(required=False)
    params = serializers.DictField(required=False)
    device = serializers.ChoiceField(choices=Device.choices, required=False)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX)
    register_model = serializers.BooleanField(required=False, default=True)


class TrainSerializer(RunStartSerializer):
    experiment = None


class RunOutputSerializer(serializers.ModelSerializer):
    experiment_name = serializers.CharField(source="experiment.name", read_only=True)
    dataset_version = serializers.StringRelatedField(read_only=True)
    dataset_version_id = serializers.IntegerField(read_only=True)
    model_versions = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "experiment",
            "experiment_name",
            "dataset_version",
            "dataset_version_id",
            "dataset_sha256",
            "framework",
            "model_type",
            "params",
            "device",
            "queue",
            "seed",
            "origin",
            "register_model",
            "trial_id",
            "retry_of",
            "status",
            "celery_task_id",
            "attempts",
            "max_attempts",
            "stop_requested",
            "stop_reason",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "worker_host",
            "cpu_seconds",
            "current_epoch",
            "total_epochs",
            "progress",
            "eta_seconds",
            "log_seq",
            "val_metrics",
            "test_metrics",
            "primary_metric_value",
            "error_message",
            "code_version",
            "library_versions",
            "plugin",
            "artifact_uri",
            "artifact_sha256",
            "signature",
            "model_versions",
        ]

    def get_model_versions(self, run) -> list[dict]:
        return [
            {"model": v.registered_model.name, "version": v.version}
            for v in run.model_versions.select_related("registered_model").all()
        ]


class RunCancelSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=["cancelled", "pruned"], required=False, default="cancelled")


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunLogLine
        fields = ["seq", "attempt", "level", "message", "ts"]


class LogPageSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    last_seq = serializers.IntegerField(help_text="Ask again with after=last_seq for newer lines.")
    lines = LogLineSerializer(many=True)


class EpochSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEpoch
        fields = ["attempt", "epoch", "total_epochs", "metrics", "created_at"]


class RunEventSerializer(serializers.ModelSerializer):
    actor = serializers.StringRelatedField()

    class Meta:
        model = RunEvent
        fields = ["from_status", "to_status", "attempt", "reason", "actor", "created_at"]


class RunDetailSerializer(RunOutputSerializer):
    events = serializers.SerializerMethodField()

    class Meta(RunOutputSerializer.Meta):
        fields = RunOutputSerializer.Meta.fields + ["traceback", "events"]

    def get_events(self, run) -> list[dict]:
        return RunEventSerializer(run.events.select_related("actor").all(), many=True).data


class FrameworkSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    supports_gpu = serializers.BooleanField()
    model_types = serializers.DictField()


class RegisterInputSerializer(serializers.Serializer):
    run = serializers.IntegerField(min_value=1)
    tags = serializers.DictField(required=False, default=dict)
    description = serializers.CharField(required=False, allow_blank=True, default="")

from rest_framework import serializers

from apps.core.limits import BIGINT_MAX, INT32_MAX, SMALLINT_MAX

from .choices import Device, Direction, PrunerKind, Strategy
from .models import Trial, TuningEvent, TuningStudy


class StudyCreateSerializer(serializers.Serializer):
    """Blank framework, model type, metric, direction, budget and seed come from the experiment."""

    name = serializers.CharField(max_length=120)
    experiment = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, help_text="Experiment id")
    search_space = serializers.JSONField(
        help_text='List of {"name", "type": "int"|"float"|"categorical", "low", "high", "log", "grid_points"} '
        'or {"name", "type": "categorical", "choices": [...]}'
    )
    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.RANDOM)
    strategy_options = serializers.JSONField(required=False, default=dict)
    framework = serializers.CharField(required=False, allow_blank=True, default="")
    model_type = serializers.CharField(required=False, allow_blank=True, default="")
    fixed_params = serializers.JSONField(required=False, default=dict)
    objective_metric = serializers.CharField(required=False, allow_blank=True, default="")
    direction = serializers.ChoiceField(choices=Direction.choices, required=False, allow_blank=True, default="")
    max_trials = serializers.IntegerField(required=False, allow_null=True, default=None, max_value=INT32_MAX)
    max_wall_seconds = serializers.IntegerField(required=False, allow_null=True, default=None, max_value=INT32_MAX)
    parallelism = serializers.IntegerField(required=False, default=1, max_value=SMALLINT_MAX)
    pruner = serializers.ChoiceField(choices=PrunerKind.choices, default=PrunerKind.NONE)
    pruner_options = serializers.JSONField(required=False, default=dict)
    device = serializers.ChoiceField(choices=Device.choices, default=Device.CPU)
    seed = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=INT32_MAX)
    start = serializers.BooleanField(required=False, default=False, help_text="Start right away")


class TrialSerializer(serializers.ModelSerializer):
    intermediate_values = serializers.SerializerMethodField()

    class Meta:
        model = Trial
        fields = [
            "id",
            "number",
            "status",
            "params",
            "value",
            "intermediate_values",
            "prune_requested_at_epoch",
            "run",
            "error",
            "started_at",
            "finished_at",
        ]

    def get_intermediate_values(self, obj) -> dict[str, float]:
        return {str(epoch): value for epoch, value in sorted(obj.intermediate_series().items())}


class EventSerializer(serializers.ModelSerializer):
    trial = serializers.IntegerField(source="trial.number", allow_null=True, default=None)
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)

    class Meta:
        model = TuningEvent
        fields = ["created_at", "trial", "from_status", "to_status", "reason", "actor"]


class StudySerializer(serializers.ModelSerializer):
    experiment_name = serializers.CharField(source="experiment.name", read_only=True)
    n_trials = serializers.IntegerField(read_only=True)
    n_finished = serializers.IntegerField(read_only=True)
    n_running = serializers.IntegerField(read_only=True)
    elapsed_seconds = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = TuningStudy
        fields = [
            "id",
            "name",
            "experiment",
            "experiment_name",
            "framework",
            "model_type",
            "search_space",
            "fixed_params",
            "strategy",
            "strategy_options",
            "objective_metric",
            "direction",
            "max_trials",
            "max_wall_seconds",
            "parallelism",
            "pruner",
            "pruner_options",
            "device",
            "seed",
            "status",
            "n_trials",
            "n_finished",
            "n_running",
            "elapsed_seconds",
            "started_at",
            "finished_at",
            "model_version",
            "created_at",
        ]

    def get_elapsed_seconds(self, obj) -> float:
        return round(obj.elapsed_seconds(), 3)

    def get_model_version(self, obj) -> dict | None:
        version = obj.model_version
        if version is None:
            return None
        return {"id": version.pk, "model": version.registered_model.name, "version": version.version}


class StudyDetailSerializer(StudySerializer):
    best_trial = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta(StudySerializer.Meta):
        fields = [*StudySerializer.Meta.fields, "best_trial", "events"]

    def get_best_trial(self, obj) -> dict | None:
        best = self.context.get("best_trial")
        return TrialSerializer(best).data if best else None

    def get_events(self, obj) -> list[dict]:
        return EventSerializer(self.context.get("events", []), many=True).data


class HistoryItemSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    best_value = serializers.FloatField(allow_null=True)
    last_intermediate = serializers.FloatField(allow_null=True)
    params = serializers.JSONField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ImportanceItemSerializer(serializers.Serializer):
    param = serializers.CharField()
    importance = serializers.FloatField()


class ImportancesSerializer(serializers.Serializer):
    method = serializers.CharField()
    n_trials = serializers.IntegerField()
    importances = ImportanceItemSerializer(many=True)
    note = serializers.CharField(required=False)


class ParallelCoordinatesSerializer(serializers.Serializer):
    dimensions = serializers.ListField(child=serializers.JSONField())
    trials = serializers.ListField(child=serializers.JSONField())

"""Shapes of the dashboard summary (documentation for the OpenAPI schema and the output contract)."""

from rest_framework import serializers


class VersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_version_id = serializers.IntegerField()
    label = serializers.CharField()
    version = serializers.IntegerField()
    role = serializers.CharField()
    weight = serializers.FloatField(help_text="Percent of the traffic, 0-100.")
    shadow = serializers.BooleanField()
    framework = serializers.CharField()
    model_type = serializers.CharField()
    task = serializers.CharField()


class GateSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField(
        help_text='What the gate counts, in plain words (e.g. "Labelled challenger rows in this stage").'
    )
    # Plain strings, not choice fields: their enums would collide in the schema with other apps' "state".
    state = serializers.CharField(
        help_text="pass (passing) | fail (failing) | pending (not decided yet: too little "
        "time, traffic or feedback; the stage holds)"
    )
    value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)


class RolloutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    stage_index = serializers.IntegerField()
    stage = serializers.FloatField(allow_null=True, help_text="Challenger's percent in the current stage.")
    stages = serializers.ListField(child=serializers.FloatField())
    champion = serializers.CharField()
    challenger = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    stage_started_at = serializers.DateTimeField(allow_null=True)
    evaluated_at = serializers.DateTimeField(allow_null=True)
    decision = serializers.CharField(allow_null=True)
    decision_reason = serializers.CharField(allow_blank=True)
    gates = GateSerializer(many=True)


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    label = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    actor = serializers.CharField()
    from_status = serializers.CharField(allow_blank=True)
    to_status = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class ActionsSerializer(serializers.Serializer):
    promote = serializers.BooleanField()
    pause = serializers.BooleanField()
    resume = serializers.BooleanField()
    rollback = serializers.BooleanField()


class DeploymentSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    registered_model = serializers.CharField()
    active = serializers.BooleanField()
    status = serializers.CharField(help_text="serving | rolling_out | paused | draft_rollout")
    generation = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
    versions = VersionSerializer(many=True)
    rollout = RolloutSerializer(allow_null=True)
    events = EventSerializer(many=True)
    actions = ActionsSerializer(help_text="Which rollout actions the current state allows (staff only may use them).")


class RunSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    experiment = serializers.CharField()
    experiment_id = serializers.IntegerField()
    framework = serializers.CharField()
    model_type = serializers.CharField()
    device = serializers.CharField()
    status = serializers.CharField()
    origin = serializers.CharField()
    trial_id = serializers.IntegerField(allow_null=True)
    attempt = serializers.IntegerField()
    epoch = serializers.IntegerField(allow_null=True)
    total_epochs = serializers.IntegerField(allow_null=True)
    percent = serializers.FloatField()
    eta_seconds = serializers.FloatField(allow_null=True)
    metrics = serializers.DictField(child=serializers.JSONField())
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class StudySummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    framework = serializers.CharField()
    model_type = serializers.CharField()
    strategy = serializers.CharField()
    status = serializers.CharField()
    metric = serializers.CharField()
    direction = serializers.CharField()
    n_trials = serializers.IntegerField()
    completed_trials = serializers.IntegerField()
    running_trials = serializers.IntegerField()
    best_value = serializers.FloatField(allow_null=True)
    best_trial = serializers.IntegerField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)


class DashboardSummarySerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    deployments = DeploymentSummarySerializer(many=True)
    runs = RunSummarySerializer(many=True, help_text="Queued and running training runs.")
    recent_runs = RunSummarySerializer(many=True, help_text="The latest runs of any status.")
    studies = StudySummarySerializer(many=True, help_text="Running and paused tuning studies.")

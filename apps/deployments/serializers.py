"""API shapes of deployments, rollouts, events and the prediction protocols."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from apps.core.limits import BIGINT_MAX, INT32_MAX, SMALLINT_MAX
from apps.core.schema import V2ErrorSerializer  # noqa: F401  (the V2 views' error, shared with the middleware)

from .choices import RolloutAction
from .models import MAX_BATCH_SIZE_LIMIT, MAX_BATCH_WAIT_MS_LIMIT
from .selectors import deployment_open_rollout, deployment_signature


class DeploymentVersionSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    version = serializers.IntegerField(source="model_version.version")
    framework = serializers.CharField(source="model_version.framework")
    model_type = serializers.CharField(source="model_version.model_type")
    role = serializers.CharField()
    weight = serializers.FloatField(help_text="Percent of live traffic.")
    shadow = serializers.BooleanField()


class DeploymentRolloutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    stage_index = serializers.IntegerField()
    stage_count = serializers.SerializerMethodField()
    percent = serializers.FloatField(source="current_percent", help_text="Challenger's share of traffic now.")
    champion_version = serializers.IntegerField(source="champion.version")
    challenger_version = serializers.IntegerField(source="challenger.version")
    champion_id = serializers.IntegerField()
    challenger_id = serializers.IntegerField()
    stages = serializers.JSONField()
    gates = serializers.JSONField()
    gate_status = serializers.JSONField()
    started_at = serializers.DateTimeField(allow_null=True)
    stage_started_at = serializers.DateTimeField(allow_null=True)
    evaluated_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)

    def get_stage_count(self, obj) -> int:
        return len(obj.stages)


class DeploymentEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    rollout_id = serializers.IntegerField(allow_null=True)
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    stage_index = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(source="actor_label")
    reason = serializers.CharField()
    traffic = serializers.JSONField()
    metrics = serializers.JSONField()
    created_at = serializers.DateTimeField()


class DeploymentSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    registered_model = serializers.CharField(source="registered_model.name")
    generation = serializers.IntegerField()
    max_batch_size = serializers.IntegerField(help_text="Most prediction requests one model call serves.")
    max_batch_wait_ms = serializers.FloatField(help_text="How long a batch waits for more requests (0: not at all).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    versions = serializers.SerializerMethodField()
    rollout = serializers.SerializerMethodField()

    def get_versions(self, obj) -> DeploymentVersionSerializer(many=True):
        rows = [r for r in obj.versions.all() if r.weight > 0 or r.shadow]
        return DeploymentVersionSerializer(rows, many=True).data

    def get_rollout(self, obj) -> DeploymentRolloutSerializer(allow_null=True):
        rollout = deployment_open_rollout(deployment=obj)
        return DeploymentRolloutSerializer(rollout).data if rollout else None


class SignatureInputSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField(help_text="numeric, text or datetime")
    v2_datatype = serializers.CharField()


class SignatureSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    task = serializers.CharField()
    inputs = SignatureInputSerializer(many=True)
    history_rows = serializers.IntegerField(help_text="Raw rows per entity one prediction needs, oldest first.")
    entity_column = serializers.CharField(allow_null=True)
    time_column = serializers.CharField(allow_null=True)
    classes = serializers.ListField(child=serializers.JSONField(), allow_null=True)


class RoutingLaggingSerializer(serializers.Serializer):
    process = serializers.CharField(help_text="host:pid of the web process")
    generation = serializers.IntegerField(allow_null=True, help_text="The generation it still serves.")
    refusing = serializers.BooleanField(help_text="Past the propagation bound: it answers 503 until it switches.")


class RoutingAcknowledgementSerializer(serializers.Serializer):
    generation = serializers.IntegerField(help_text="The deployment's current routing generation.")
    acknowledged = serializers.IntegerField(help_text="Live web processes that serve it (k).")
    processes = serializers.IntegerField(help_text="Live web processes serving this deployment (n).")
    complete = serializers.BooleanField(help_text="k == n: no process answers with an older routing any more.")
    bound_s = serializers.FloatField(
        help_text="Seconds after a change within which every process serves it or refuses."
    )
    lagging = RoutingLaggingSerializer(many=True)


class DeploymentDetailSerializer(DeploymentSerializer):
    signature = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    last_rollout = serializers.SerializerMethodField()
    routing = serializers.SerializerMethodField(
        help_text="Which web processes acknowledged the current routing generation; null when Redis cannot be read."
    )

    def get_signature(self, obj) -> SignatureSerializer:
        return deployment_signature(deployment=obj)

    def get_events(self, obj) -> DeploymentEventSerializer(many=True):
        return DeploymentEventSerializer(self.context.get("events", []), many=True).data

    def get_last_rollout(self, obj) -> DeploymentRolloutSerializer(allow_null=True):
        rollout = self.context.get("last_rollout")
        return DeploymentRolloutSerializer(rollout).data if rollout else None

    def get_routing(self, obj) -> RoutingAcknowledgementSerializer(allow_null=True):
        import redis

        from .notify import deployment_stamp, routing_acknowledgement

        try:
            return routing_acknowledgement(
                name=obj.name, stamp=deployment_stamp(obj.created_at), generation=obj.generation
            )
        except redis.RedisError:
            return None


class DeploymentBatchingSerializer(serializers.Serializer):
    """Micro-batching of a deployment's requests (PATCH /api/v1/deployments/<name>); omitted keeps a value."""

    max_batch_size = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_BATCH_SIZE_LIMIT,
        help_text="Most prediction requests one model call serves (1: no batching).",
    )
    max_batch_wait_ms = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=MAX_BATCH_WAIT_MS_LIMIT,
        help_text="Milliseconds a batch waits for more requests before its model call (0: none).",
    )

    def validate_max_batch_wait_ms(self, value):
        if value != value or value in (float("inf"), float("-inf")):  # "nan" passes FloatField and both bounds
            raise serializers.ValidationError("send a finite number of milliseconds")
        return value

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError({"max_batch_size": "send max_batch_size and/or max_batch_wait_ms"})
        return attrs


class DeploymentCreateSerializer(DeploymentBatchingSerializer):
    name = serializers.SlugField(max_length=100)
    model_version_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    description = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs):
        return attrs  # the batching settings are optional here: the settings' defaults apply


class TrafficItemSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    weight = serializers.FloatField(min_value=0, max_value=100)
    shadow = serializers.BooleanField(required=False, default=False)


class TrafficSerializer(serializers.Serializer):
    traffic = TrafficItemSerializer(many=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class RollbackSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=INT32_MAX, help_text="Version number of the deployment's model."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if ("model_version_id" in attrs) == ("version" in attrs):
            raise serializers.ValidationError({"version": "give exactly one of version or model_version_id"})
        return attrs


class RolloutCreateSerializer(serializers.Serializer):
    challenger_version_id = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    challenger_version = serializers.IntegerField(
        required=False, min_value=1, max_value=INT32_MAX, help_text="Version number of the deployment's model."
    )
    stages = serializers.JSONField(
        required=False, help_text="[{percent, min_duration_s, min_predictions, min_feedback}]"
    )
    gates = serializers.JSONField(required=False, help_text="{max_error_rate, max_p99_ms, alpha, tau, ...}")
    start = serializers.BooleanField(required=False, default=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if ("challenger_version_id" in attrs) == ("challenger_version" in attrs):
            raise serializers.ValidationError(
                {"challenger_version": "give exactly one of challenger_version or challenger_version_id"}
            )
        return attrs


class RolloutActionSerializer(serializers.Serializer):
    stage = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=SMALLINT_MAX,
        help_text="The stage index you saw (required for promote and rollback): if the rollout moved "
        "meanwhile the request is refused with 409 instead of acting twice.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


ROLLOUT_ACTIONS = [a.value for a in RolloutAction]


@extend_schema_serializer(component_name="PredictionError")
class ErrorSerializer(serializers.Serializer):
    """A refused prediction or feedback: MLflow's scoring-server error (error_code, message), the
    generic Error (detail: the same text, field), plus what the model needs."""

    error_code = serializers.CharField(
        required=False,
        help_text="MLflow's error code: BAD_REQUEST, INVALID_PARAMETER_VALUE (params), UNAUTHENTICATED, "
        "PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, RESOURCE_CONFLICT, REQUEST_LIMIT_EXCEEDED, "
        "INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE.",
    )
    message = serializers.CharField(required=False, help_text="MLflow's name for `detail` (the same text).")
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    needed_rows = serializers.IntegerField(required=False)
    model_version = serializers.CharField(required=False, help_text="The version number that refused the input.")


class DataframeSplitSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    data = serializers.ListField(child=serializers.ListField(child=serializers.JSONField()))


class PredictParamsSerializer(serializers.Serializer):
    probabilities = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Classifiers only (a regression model answers 400): also answer each class's probability.",
    )


class PredictRequestSerializer(serializers.Serializer):
    """Exactly one of the four MLflow scoring formats, plus an optional sticky routing key and params."""

    dataframe_split = DataframeSplitSerializer(required=False)
    dataframe_records = serializers.ListField(child=serializers.DictField(), required=False)
    instances = serializers.JSONField(required=False, help_text="Records, or rows in signature order.")
    inputs = serializers.JSONField(required=False, help_text="Columns {name: [values]}, or rows in signature order.")
    routing_key = serializers.CharField(required=False, help_text="Or header X-Routing-Key: same key, same version.")
    params = PredictParamsSerializer(required=False, help_text="MLflow's params; unknown keys are a 400 naming them.")


class PredictResponseSerializer(serializers.Serializer):
    predictions = serializers.ListField(child=serializers.JSONField())
    probabilities = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        required=False,
        help_text="With params.probabilities: per prediction, the probability of each class in the order of "
        "`classes` (each row sums to 1; the prediction is its most probable class).",
    )
    classes = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        help_text="With params.probabilities: the class labels of the model's signature (class indices when it "
        "names none).",
    )
    model_version = serializers.CharField()
    model_name = serializers.CharField()
    request_id = serializers.UUIDField()
    rows = serializers.ListField(
        child=serializers.JSONField(), help_text="What each prediction is for (entity, time or row)."
    )


class FeedbackItemSerializer(serializers.Serializer):
    request_id = serializers.UUIDField()
    ground_truth = serializers.JSONField(help_text="A value, or a list with one value per prediction of the request.")


class FeedbackRequestSerializer(serializers.Serializer):
    feedback = FeedbackItemSerializer(many=True)


class FeedbackResponseSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    answers_scored = serializers.IntegerField()


class V2TensorSerializer(serializers.Serializer):
    name = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())
    datatype = serializers.CharField()
    data = serializers.ListField(child=serializers.JSONField(), help_text="Row-major, flattened.")
    parameters = serializers.DictField(
        required=False, help_text='The "probabilities" output: {"classes": [labels, one per column]}.'
    )


class V2RequestedOutputSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text='"predictions" (alias "predict"), "rows" or, for classifiers, "probabilities".'
    )
    parameters = serializers.DictField(required=False)


class V2InferRequestSerializer(serializers.Serializer):
    id = serializers.CharField(required=False)
    parameters = serializers.DictField(required=False, help_text='{"routing_key": "..."} for sticky routing.')
    inputs = V2TensorSerializer(many=True)
    outputs = V2RequestedOutputSerializer(
        many=True,
        required=False,
        help_text="Which output tensors to answer, in this order (default: predictions and rows); an unknown name "
        "is a 400.",
    )


class V2InferResponseSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    id = serializers.CharField()
    parameters = serializers.DictField()
    outputs = V2TensorSerializer(many=True)


class V2MetadataTensorSerializer(serializers.Serializer):
    name = serializers.CharField()
    datatype = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())


class V2ModelMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    versions = serializers.ListField(child=serializers.CharField())
    platform = serializers.CharField()
    inputs = V2MetadataTensorSerializer(many=True)
    outputs = V2MetadataTensorSerializer(
        many=True, help_text="predictions, rows and, for classifiers, probabilities of shape [-1, n_classes]."
    )
    parameters = serializers.DictField(
        help_text="task, history_rows, entity_column, time_column, classes (the labels of the probability columns), "
        "model_version."
    )


class MlflowPingSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    ready = serializers.BooleanField()
    unavailable = serializers.ListField(
        child=serializers.DictField(),
        help_text="Routed versions this process cannot load ({version, reason}): their share of the traffic answers "
        "503 while the others serve.",
    )


class MlflowServedVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    model_version_id = serializers.IntegerField()
    role = serializers.CharField()
    weight = serializers.FloatField(help_text="Percent of the traffic.")
    shadow = serializers.BooleanField()
    framework = serializers.CharField()
    model_type = serializers.CharField()


class MlflowVersionSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    model_name = serializers.CharField()
    generation = serializers.IntegerField(
        help_text="Routing generation: it grows with every change of versions or weights."
    )
    versions = MlflowServedVersionSerializer(many=True)


class V2LiveSerializer(serializers.Serializer):
    live = serializers.BooleanField()


class V2ReadySerializer(serializers.Serializer):
    ready = serializers.BooleanField()


class V2ModelReadySerializer(serializers.Serializer):
    name = serializers.CharField()
    ready = serializers.BooleanField()


class V2ServerMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    extensions = serializers.ListField(
        child=serializers.CharField(),
        help_text='"binary_tensor_data": tensors after the JSON header (Inference-Header-Content-Length).',
    )

"""One role sweep over the whole API: every operation in the OpenAPI schema (REST and /v2) is tried as
anonymous, as a user without a portal role, as an analyst, as a prediction client and as staff. A new endpoint is covered the
moment it is in the schema, so it cannot ship unguarded.

Expected, by role:
- anonymous: 401, except the health probes (no security in the schema);
- outsider (logged in, no portal role): 403;
- analyst: reads are allowed (any answer but 401/403; the path ids are made up, so 404 is common);
  writes are 403, except the prediction-side operations a client with any portal role may call
  (ANALYST_MAY_POST, each with its reason);
- prediction client (the product's service account): only the serving protocols (every /v2 operation,
  the MLflow scoring reads) and ground truth (CLIENT_MAY_CALL); everything else, reads included, is 403;
- staff: every operation is allowed past the permission check.
"""

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

WRITE_METHODS = {"post", "put", "patch", "delete"}
PATH_VALUES = {"id": "999999", "name": "no-such-thing", "version": "1", "action": "start"}

# Writes an analyst may make: asking for predictions is what a REST client with a read role does (the
# prediction token scheme), and previews compute without storing. Feedback is staff's: it moves gates.
ANALYST_MAY_POST = {
    "/api/v1/deployments/{name}/predict": "prediction",
    "/api/v1/deployments/{name}/invocations": "prediction (MLflow scoring path)",
    "/v2/models/{name}/infer": "prediction (Open Inference Protocol)",
    "/v2/models/{name}/versions/{version}/infer": "prediction (Open Inference Protocol)",
    "/api/v1/feature-specs/preview/": "computes a preview, stores nothing",
    "/api/v1/feature-specs/validate/": "validates a spec, stores nothing",
}
PREDICTIONS = {path for path, why in ANALYST_MAY_POST.items() if why.startswith("prediction")}
CLIENT_MAY_CALL = PREDICTIONS | {
    "/api/v1/deployments/{name}/feedback",
    "/api/v1/deployments/{name}/ping",
    "/api/v1/deployments/{name}/version",
}


def client_may_call(path: str) -> bool:
    return path in CLIENT_MAY_CALL or path == "/v2" or path.startswith("/v2/")


def operations() -> list[tuple[str, str, bool]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", *WRITE_METHODS}:
                public = operation.get("security") == [{}]
                found.append((path, method, public))
    return found


OPERATIONS = operations()


def concrete(path: str) -> str:
    for key, value in PATH_VALUES.items():
        path = path.replace("{" + key + "}", value)
    assert "{" not in path, f"add a value for the path parameter in {path} to PATH_VALUES"
    return path


def call(client, path: str, method: str):
    return getattr(client, method)(concrete(path), data={}, format="json")


def test_the_sweep_sees_every_part_of_the_api():
    paths = {path for path, _, _ in OPERATIONS}
    for prefix in (
        "/api/v1/datasets/",
        "/api/v1/runs/",
        "/api/v1/studies/",
        "/api/v1/models/",
        "/api/v1/deployments/",
        "/api/v1/monitoring/",
        "/v2/models/",
    ):
        assert any(path.startswith(prefix) for path in paths), prefix
    assert set(ANALYST_MAY_POST) | CLIENT_MAY_CALL <= paths, (set(ANALYST_MAY_POST) | CLIENT_MAY_CALL) - paths


def test_every_operation_enforces_its_roles(anon_api, outsider_api, analyst_api, client_api, staff_api):
    # One test over all operations: the four users and their tokens are made once (password hashing
    # per operation would cost minutes), and the failure lists every unguarded operation at once.
    wrong = []
    for path, method, public in OPERATIONS:
        operation = f"{method.upper()} {path}"
        anonymous = call(anon_api, path, method).status_code
        if public:
            if anonymous in (401, 403):
                wrong.append(f"{operation}: a public probe answered {anonymous}")
            continue
        if anonymous != 401:
            wrong.append(f"{operation}: anonymous answered {anonymous}, not 401")
        outsider = call(outsider_api, path, method).status_code
        if outsider != 403:
            wrong.append(f"{operation}: a user without a role answered {outsider}, not 403")
        analyst = call(analyst_api, path, method).status_code
        if method in WRITE_METHODS and path not in ANALYST_MAY_POST:
            if analyst != 403:
                wrong.append(f"{operation}: an analyst's write answered {analyst}, not 403")
        elif analyst in (401, 403):
            wrong.append(f"{operation}: an analyst was refused ({analyst})")
        client = call(client_api, path, method).status_code
        if client_may_call(path):
            if client in (401, 403):
                wrong.append(f"{operation}: a prediction client was refused ({client})")
        elif client != 403:
            wrong.append(f"{operation}: a prediction client answered {client}, not 403")
        staff = call(staff_api, path, method).status_code
        if staff in (401, 403):
            wrong.append(f"{operation}: staff was refused ({staff})")
    assert not wrong, "\n".join(wrong)

"""Schemathesis over the OpenAPI spec: generated requests never get a 5xx, every answer matches
what the spec documents (status codes, content types, schemas), and schema-invalid requests are
refused.

Not checked: that every schema-valid request is accepted. Some rules cannot be written in JSON
Schema (a bbox whose minimum exceeds its maximum, an as_of before any boundary version, a cursor
that decodes to nothing), and those are rightly answered 422 or 404."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

# schemathesis.pytest.from_fixture does not work with pytest 9 yet, so each operation's
# strategy is driven with Hypothesis directly.
MAX_EXAMPLES = 60


# Read-only operations run on the shared database; the rest on a database of their own.
READS = {("POST", "/api/v1/locate"), ("POST", "/login"), ("POST", "/logout")}


def _changes(op) -> bool:  # type: ignore[no-untyped-def]
    return op.method.upper() != "GET" and (op.method.upper(), op.path) not in READS


def _fuzz(client: TestClient, operations: list) -> None:  # type: ignore[type-arg]
    auth = {"Authorization": client.headers["authorization"]}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=auth, excluded_checks=[checks.positive_data_acceptance])

        check()


def _operations(client: TestClient) -> list:  # type: ignore[type-arg]
    auth = {"Authorization": client.headers["authorization"]}
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, headers=auth)
    return [result.ok() for result in schema.get_all_operations()]


def test_changes_never_error_and_match_the_spec(demo_db: str, client_for) -> None:  # type: ignore[no-untyped-def]
    """The operations that write, on a database of their own."""
    client = client_for(demo_db)
    operations = [op for op in _operations(client) if _changes(op)]
    assert {op.path for op in operations} >= {
        "/api/v1/grids/{code}/members/{name}",
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}/actions",
    }
    _fuzz(client, operations)


def test_no_server_errors_and_answers_match_the_spec(shared_client: TestClient) -> None:
    # The POSTs here change nothing shared: locate reads, /login records an attempt.
    operations = [op for op in _operations(shared_client) if not _changes(op)]
    assert {op.path for op in operations} >= {
        "/api/v1/regions",
        "/api/v1/regions/{code}",
        "/api/v1/regions/{code}/children",
        "/api/v1/regions/{code}/ancestors",
        "/api/v1/regions/{code}/geometry",
        "/api/v1/boundary-versions",
        "/regions/{code}/map",
        "/health",
    }
    _fuzz(shared_client, operations)

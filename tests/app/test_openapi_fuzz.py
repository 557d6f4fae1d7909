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


def test_no_server_errors_and_answers_match_the_spec(shared_client: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", shared_client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
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
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(excluded_checks=[checks.positive_data_acceptance])

        check()

"""Schemathesis against the running API's own /openapi.json: no 500s, answers match the schema.

Examples are bounded for `make test` (TALLY_API_FUZZ_EXAMPLES, default 25 per operation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.harness import Tally, token

pytestmark = pytest.mark.e2e
EXAMPLES = int(os.environ.get("TALLY_API_FUZZ_EXAMPLES", "25"))


# The document the API serves (the e2e tests check it is the committed one), loaded here so
# the cases exist when pytest collects them; the requests go to the running API.
schema = schemathesis.openapi.from_path(str(Path(__file__).parents[3] / "docs" / "openapi.json"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_the_api_fail_or_break_its_own_schema(case: Any, tally: Tally) -> None:
    case.call_and_validate(
        base_url=tally.api_url,
        headers={"Authorization": f"Bearer {token()}"},
        checks=[
            schemathesis.checks.not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=40,
    )

"""Schemathesis against the served OpenAPI document of a running itsmd: no 5xx, answers as documented.

Cases per operation: 60 times ITSMD_FUZZ_SCALE (tests/fuzz_budget.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from tests.e2e.stack import free_ports, itsmd_process, wait_serving
from tests.fuzz_budget import examples

# Not positive_data_acceptance: some rules cannot be said in a schema (a webhook fingerprint must be the hash
# of its labels), so schema-valid bodies may be refused, with a reason; everything else is checked.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = examples(60)
CASES: dict[str, int] = {}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("openapi")
    (port,) = free_ports(1)
    config = tmp / "itsmd.yaml"
    config.write_text("{}\n")
    daemon = itsmd_process(config, port, tmp / "data", tmp / "itsmd.log")
    base = f"http://127.0.0.1:{port}"
    daemon.start()
    try:
        wait_serving(daemon, base)
        yield base
        daemon.check_alive()  # no request made it die
    finally:
        daemon.stop()
        print(f"\nschemathesis cases run: {sum(CASES.values())} ({CASES})")


@pytest.mark.e2e
def test_api_answers_as_documented(base_url: str) -> None:
    # schemathesis's own pytest plugin does not run under pytest 9 ('Function' has no '_nodeid'), so each
    # operation's hypothesis strategy is driven here directly.
    api = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), f"the served document has an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert len(operations) >= 6

    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            CASES[case.operation.label] = CASES.get(case.operation.label, 0) + 1
            response = case.call(base_url=base_url)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )
            case.validate_response(response, checks=CHECKS)

        check()
    assert all(CASES.get(op.label, 0) > 0 for op in operations), CASES

"""Property-based tests of every operation in /openapi.json (schemathesis) against a real
``rag serve``: no server error, and every response conforms to the documented status codes,
content types, headers and schemas. Runs with the admin token, so writes are exercised too,
on a server of its own (the rate limit raised so that /ask is exercised, not refused)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from test_api_support import ADMIN_TOKEN, LiveServer, prepare_dirs
from test_reliability_support import record_figures

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 20  # x 9 operations x 2 modes: about 300 requests in all


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("api-fuzz")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={"RAG_ADMIN_TOKEN": ADMIN_TOKEN, "RAG_ASK_RATE_LIMIT": "100000/minute"},
    )
    srv.start()
    yield srv
    srv.stop()


#: Every operation of the API; a test below checks this list against /openapi.json.
OPERATIONS = [
    ("POST", "/ask"),
    ("GET", "/documents"),
    ("GET", "/documents/{doc_id}"),
    ("PUT", "/documents/{doc_id}"),
    ("DELETE", "/documents/{doc_id}"),
    ("GET", "/speakers"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


@pytest.fixture(scope="module")
def api_schema(fuzz_server):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")


def test_operation_list_is_complete(api_schema):  # type: ignore[no-untyped-def]
    found = {
        (op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations())
    }
    assert found == set(OPERATIONS)


#: Operations with inputs, so with invalid requests to generate.
WITH_INPUT = [op for op in OPERATIONS if op[0] != "GET" or "{" in op[1]]


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [(*op, GenerationMode.POSITIVE) for op in OPERATIONS]
    + [(*op, GenerationMode.NEGATIVE) for op in WITH_INPUT],
)
def test_openapi_conformance(api_schema, fuzz_server, method, path, mode):  # type: ignore[no-untyped-def]
    """Generated requests (valid ones, then invalid ones) for one operation. (schemathesis's
    own pytest plugin does not run under this pytest, so its Hypothesis strategy is used
    directly.)"""
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=fuzz_server.base_url, headers=headers, checks=CHECKS)

    run()


def test_fuzzing_left_no_trace_of_errors(fuzz_server):  # type: ignore[no-untyped-def]
    """After the fuzzing, the server is still ready and logged no unhandled error."""
    with fuzz_server.client() as client:
        assert client.get("/readyz").status_code == 200
    lines = fuzz_server.access_log()
    # The requests schemathesis made: after start-up's /readyz polling, but the schema fetch.
    ready = next(n for n, e in enumerate(lines) if e["route"] == "/readyz" and e["status"] == 200)
    fuzzed = [e for e in lines[ready + 1 :] if e["route"] != "/openapi.json"]
    record_figures(
        "schemathesis",
        {
            "requests": len(fuzzed),
            "server_errors": sum((e["status"] or 500) >= 500 for e in fuzzed),
        },
    )
    assert len(lines) >= 100  # hypothesis sends fewer cases for operations without inputs
    assert any(e["method"] == "PUT" and e["status"] in (200, 201) for e in lines)
    logs = fuzz_server.logs()
    assert "unhandled error" not in logs and "Traceback" not in logs
    assert ADMIN_TOKEN not in logs

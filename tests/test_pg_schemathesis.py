"""Schemathesis with every check (``st run --checks all``, all four phases: examples, coverage,
fuzzing, stateful) against a replica backed by PostgreSQL: at least 2,000 generated cases, no
failure, no server error, nothing unhandled in the server's log.

Real processes throughout: the session's embedded PostgreSQL (``pg_server``), a ``rag serve``
replica with the real model and cross-encoder, and schemathesis's own command line, as an
operator would run it against a deployment. The replica answers in fast mode unless a request
asks for accurate (so the generated questions cost milliseconds), and runs with the admin
token and no rate limit so that writes and /ask are exercised rather than refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_support import ADMIN_TOKEN, REPO_DATA, LiveServer, server_env
from test_reliability_support import record_figures

from rag.load import load_data_dir

#: Cases generated per operation and phase; with the cases of the coverage and stateful
#: phases this comes to a little over 2,000 in all (the operations without inputs have only a
#: few cases each).
MAX_EXAMPLES = 600
MIN_CASES = 2000
SEED = 17  # reproducible: the same cases on every run (`st run --seed`)


@pytest.fixture(scope="module")
def replica(pg_server, tmp_path_factory) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("pg-fuzz")
    # The database starts empty: the replica imports the seed article from its data folder.
    data = root / "data"
    shutil.copytree(REPO_DATA, data)
    server = LiveServer(
        root=root,
        data_dir=data,
        index_dir=root / "index",
        settings={
            "RAG_DATABASE_URL": pg_server.create_database("fuzz"),
            "RAG_ADMIN_TOKEN": ADMIN_TOKEN,
            "RAG_ASK_RATE_LIMIT": "",
            "RAG_ANSWER_MODE": "fast",  # the default; a request may still ask for accurate
        },
    )
    server.start()
    with server.client() as client:
        stored = {d["id"] for d in client.get("/documents").json()["documents"]}
    assert stored == {d.id for d in load_data_dir(REPO_DATA)}
    try:
        yield server
    finally:
        server.stop()


def run_schemathesis(server: LiveServer, report: Path) -> subprocess.CompletedProcess[str]:
    """``st run --checks all`` against ``server``, writing its JSON report to ``report``."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--suppress-health-check",
        "all",  # a busy machine makes `too_slow` a matter of luck
        "--request-timeout",
        "120",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
        "--output-truncate",
        "true",
    ]
    return subprocess.run(
        command,
        cwd=report.parent,
        env=server_env({}),
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_schemathesis_all_checks_against_a_postgres_replica(replica: LiveServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report_path = tmp_path / "schemathesis.json"
    done = run_schemathesis(replica, report_path)
    output = done.stdout[-6000:] + done.stderr[-2000:]
    assert report_path.is_file(), output
    report: dict[str, Any] = json.loads(report_path.read_text("utf-8"))
    cases = report["test_cases"]
    operations = report["operations"]
    phases = {name: phase["status"] for name, phase in report["phases"].items()}

    lines = replica.access_log()
    # The requests schemathesis made: after start-up's /readyz polling, but the schema fetch.
    ready = next(n for n, e in enumerate(lines) if e["route"] == "/readyz" and e["status"] == 200)
    fuzzed = [e for e in lines[ready + 1 :] if e["route"] != "/openapi.json"]
    server_errors = [e for e in fuzzed if (e["status"] or 500) >= 500]
    record_figures(
        "schemathesis_pg",
        {
            "cases": cases["generated"],
            "failures": cases["with_failures"],
            "errored": cases["errored"],
            "requests": len(fuzzed),
            "server_errors": len(server_errors),
            "seconds": round(report["running_time"], 1),
            "phases": phases,
        },
    )
    print(
        f"schemathesis --checks all: {cases['generated']} cases, {cases['with_failures']} "
        f"with failures, {len(fuzzed)} requests in {report['running_time']:.1f} s"
    )

    assert done.returncode == 0 and report["exit_code"] == 0, output
    assert report["failures"] == [] and report["errors"] == [], output
    assert cases["with_failures"] == 0 and cases["errored"] == 0, output
    assert cases["generated"] >= MIN_CASES, cases
    assert operations["tested"] == operations["total"] == 9, operations
    assert phases == dict.fromkeys(("examples", "coverage", "fuzzing", "stateful"), "success")
    assert server_errors == []
    # Every operation was exercised, writes included.
    seen = {(e["method"], e["route"], e["status"]) for e in fuzzed}
    for expected in [
        ("POST", "/ask", 200),
        ("POST", "/ask", 404),  # a filter naming no document
        ("PUT", "/documents/{doc_id}", 201),
        ("PUT", "/documents/{doc_id}", 200),
        ("DELETE", "/documents/{doc_id}", 204),
        ("GET", "/documents/{doc_id}", 200),
        ("OPTIONS", "/documents/{doc_id}", 405),
    ]:
        assert expected in seen, expected
    logs = replica.logs()
    assert "unhandled error" not in logs and "Traceback" not in logs
    assert ADMIN_TOKEN not in logs
    with replica.client() as client:
        assert client.get("/readyz").status_code == 200

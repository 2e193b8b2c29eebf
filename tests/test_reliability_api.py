"""Access and input, through a real ``rag serve``: every route times {no token, wrong token,
admin token} (the table is checked against the app's routes, so a new route must be added to
it), the admin token never in the logs, CORS preflight from an origin not on the allow-list,
hostile document ids, and a 10 MB body refused quickly without the server's memory growing by
its size."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from test_api_support import ADMIN_TOKEN, LiveServer, assert_error_shape, prepare_dirs
from test_reliability_support import record_figures

from api.app import create_app
from api.config import ApiSettings
from api.deps import require_admin
from rag.settings import Settings

ALLOWED_ORIGIN = "http://allowed.example"
WRONG_TOKEN = "not-the-admin-token-5b9e"
TOKENS: dict[str, dict[str, str]] = {
    "none": {},
    "wrong": {"Authorization": f"Bearer {WRONG_TOKEN}"},
    "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
}
DOC = "squad2-Normans"
PROBE = "access-probe"
PROBE_TEXT = "The probe document exists only to test access. It has two sentences."


@pytest.fixture(scope="module")
def server(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):
    root = tmp_path_factory.mktemp("reliability-api")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={
            "RAG_ADMIN_TOKEN": ADMIN_TOKEN,
            "RAG_ASK_RATE_LIMIT": "",
            "RAG_CORS_ORIGINS": f'["{ALLOWED_ORIGIN}"]',
            "RAG_LOG_LEVEL": "debug",  # the most the server ever logs
        },
    )
    srv.start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- access


@dataclass(frozen=True)
class Call:
    """One request per route, and its status with each token."""

    path: str
    expected: dict[str, int]  # token kind -> status
    json: Any = None


PUBLIC_200 = {"none": 200, "wrong": 200, "admin": 200}
#: Every (method, route) of the app. Admin routes: 401 without a token, 403 with a wrong one.
ACCESS: dict[tuple[str, str], Call] = {
    ("POST", "/ask"): Call("/ask", PUBLIC_200, {"question": "Who were the Normans?"}),
    ("GET", "/documents"): Call("/documents", PUBLIC_200),
    ("GET", "/documents/{doc_id:path}"): Call(f"/documents/{DOC}", PUBLIC_200),
    ("GET", "/speakers"): Call("/speakers", PUBLIC_200),
    ("PUT", "/documents/{doc_id:path}"): Call(
        f"/documents/{PROBE}", {"none": 401, "wrong": 403, "admin": 201}, {"text": PROBE_TEXT}
    ),
    ("DELETE", "/documents/{doc_id:path}"): Call(
        f"/documents/{PROBE}", {"none": 401, "wrong": 403, "admin": 204}
    ),
    ("GET", "/healthz"): Call("/healthz", PUBLIC_200),
    ("GET", "/readyz"): Call("/readyz", PUBLIC_200),
    ("GET", "/metrics"): Call("/metrics", PUBLIC_200),
    ("GET", "/openapi.json"): Call("/openapi.json", PUBLIC_200),
    ("GET", "/docs"): Call("/docs", PUBLIC_200),
    ("GET", "/docs/oauth2-redirect"): Call("/docs/oauth2-redirect", PUBLIC_200),
    ("GET", "/redoc"): Call("/redoc", PUBLIC_200),
    ("GET", "/"): Call("/", PUBLIC_200),
    ("GET", "/widget.js"): Call("/widget.js", PUBLIC_200),
    ("GET", "/static/demo.js"): Call("/static/demo.js", PUBLIC_200),
    ("GET", "/static/demo.css"): Call("/static/demo.css", PUBLIC_200),
    ("GET", "/static/favicon.svg"): Call("/static/favicon.svg", PUBLIC_200),
}


def _dependencies(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependencies(sub)


def app_routes() -> dict[tuple[str, str], bool]:
    """Every (method, path) the app routes (HEAD aside), and whether it requires the admin."""
    app = create_app(Settings(), ApiSettings())  # cheap: no model, no index, no I/O
    out: dict[tuple[str, str], bool] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        admin = dependant is not None and require_admin in set(_dependencies(dependant))
        for method in sorted(set(route.methods or ()) - {"HEAD"}):
            out[(method, str(route.path))] = admin
    return out


def test_access_table_covers_every_route() -> None:
    routes = app_routes()
    assert set(routes) == set(ACCESS), "add the new route to ACCESS with its expected statuses"
    for key, admin in routes.items():
        call = ACCESS[key]
        if admin:
            assert call.expected["none"] == 401 and call.expected["wrong"] == 403, key
        else:
            assert len(set(call.expected.values())) == 1, f"{key}: a token changes nothing"


@pytest.mark.parametrize("token", list(TOKENS))
def test_every_route_with_each_token(server: LiveServer, token: str) -> None:
    seen = []
    with server.client(headers=TOKENS[token]) as client:
        for (method, _route), call in ACCESS.items():  # PUT before DELETE: the probe exists
            response = client.request(method, call.path, json=call.json)
            seen.append((method, call.path, response.status_code))
            assert response.status_code == call.expected[token], (method, call.path, token)
            if response.status_code >= 400:
                assert_error_shape(response, response.status_code)
        # Refused writes changed nothing; the admin's PUT and DELETE left no probe behind.
        assert client.get(f"/documents/{PROBE}").status_code == 404
    assert len(seen) == len(ACCESS)


def test_admin_token_never_logged(server: LiveServer) -> None:
    """After every kind of request (with the token, refused, failing), no log line holds the
    admin token, nor the wrong one a client sent."""
    with server.client(headers=TOKENS["admin"]) as client:
        client.put(f"/documents/{PROBE}", content=b"{not json", headers={"X-Request-ID": "x"})
        client.put("/documents/bad..id", json={"text": PROBE_TEXT})
        client.post("/ask", json={"question": ""})
    for headers in TOKENS.values():
        httpx.get(f"{server.base_url}/nowhere", headers=headers)
    for _ in range(2):
        test_every_route_with_each_token(server, "admin")
    logs = server.logs()
    assert server.access_log(), "the access log is written"
    assert ADMIN_TOKEN not in logs and WRONG_TOKEN not in logs
    assert "Bearer" not in logs


def test_cors_preflight_only_for_allowed_origins(server: LiveServer) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    with server.client() as client:
        allowed = client.options("/ask", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        for origin in ("http://evil.example", "null", "http://allowed.example.evil.example"):
            refused = client.options("/ask", headers={"Origin": origin, **preflight})
            assert refused.status_code == 400
            assert not any(h.startswith("access-control-allow") for h in refused.headers)
            assert_error_shape(refused, 400, "cors_rejected")
            # A simple request from there is answered, but without the header a browser needs.
            simple = client.get("/healthz", headers={"Origin": origin})
            assert "access-control-allow-origin" not in simple.headers


# --------------------------------------------------------------------------- input


def raw_request(
    port: int, head: bytes, body: Iterable[bytes] = (), timeout: float = 10.0
) -> tuple[int, bytes]:
    """Send a request byte for byte (no client normalises its path) and return the status
    and body; stops sending the body as soon as the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        received = b""
        for chunk in body:
            with contextlib.suppress(BlockingIOError):
                received += sock.recv(65536)
            if received:
                break
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            finally:
                sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(timeout)
        while not _complete(received):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


BAD_IDS = [
    "../x",
    "..",
    "/etc/passwd",
    "%2e%2e",
    "%2e%2e%2fx",
    "..%2Fx",
    "%2Fetc%2Fpasswd",
    "a%00b",
    "%00",
    "a%0Ab",
    "x/../../etc/passwd",
    "%C0%AE%C0%AE",
    "a%20b",
    "C:%5Cwindows",
    "x" * 129,
]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_hostile_document_ids_are_422(server: LiveServer, method: str) -> None:
    body = b'{"text": "Some text."}'
    for doc_id in BAD_IDS:
        head = (
            f"{method} /documents/{doc_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        status, rest = raw_request(server.port, head + body)
        assert status == 422, (method, doc_id, rest[-300:])
        assert b"invalid_document_id" in rest or b"invalid_request" in rest, rest[-300:]
    # Nothing was written outside (or inside) the data folder.
    assert sorted(p.name for p in server.data_dir.iterdir()) == sorted(
        p.name for p in server.data_dir.iterdir() if p.stem.startswith("squad2-")
    )
    assert not (server.root / "x.txt").exists()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


MB = 1024 * 1024
TEN_MB = 10 * MB
QUICKLY = 1.0  # seconds: generous; a refusal takes milliseconds


def test_ten_megabyte_body_refused_quickly_without_memory_growth(server: LiveServer) -> None:
    assert server.proc is not None
    with server.client() as client:  # warm up the routes before measuring memory
        client.post("/ask", json={"question": "Who were the Normans?"})
    rss = {"start": rss_bytes(server.proc.pid)}
    timings = {}
    for route in ("/ask", f"/documents/{PROBE}"):
        method = "POST" if route == "/ask" else "PUT"
        auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        # Declared: refused from the headers, before any byte of the body.
        head = (
            f"{method} {route} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {TEN_MB}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        status, rest = raw_request(server.port, head)
        timings[f"{method} declared"] = time.perf_counter() - started
        assert status == 413 and b"payload_too_large" in rest, rest[-300:]
        # Streamed (chunked, no length): counted as it arrives, refused past the limit.
        head = (
            f"{method} {route} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        piece = b"x" * 65536
        chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(TEN_MB // len(piece)))
        started = time.perf_counter()
        status, rest = raw_request(server.port, head, chunks)
        timings[f"{method} streamed"] = time.perf_counter() - started
        assert status == 413 and b"payload_too_large" in rest, (method, status, rest[-300:])
        rss[method] = rss_bytes(server.proc.pid)
    record_figures("body_limit", {"seconds": timings, "rss_bytes": rss})
    assert all(t < QUICKLY for t in timings.values()), timings
    # At most the route's limit is ever buffered (1 MB for /ask, 5 MB for a document), so
    # the process never grows by the body's 10 MB.
    assert rss["POST"] - rss["start"] < 2 * MB, rss
    assert rss["PUT"] - rss["start"] < ApiSettings().max_document_bytes + 2 * MB, rss
    assert rss["PUT"] - rss["start"] < TEN_MB, rss
    with server.client() as client:
        assert client.get("/readyz").status_code == 200


def test_no_unhandled_errors(server: LiveServer) -> None:
    logs = server.logs()
    assert "unhandled error" not in logs and "Traceback" not in logs
    assert os.path.isdir(server.index_dir)

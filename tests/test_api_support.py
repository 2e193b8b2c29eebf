"""Helpers for the HTTP API tests (no tests here): run the real server, ``rag serve``, as a
subprocess on 127.0.0.1, wait for it, read its logs, stop it.

The servers get their own copies of the data and index folders, and only the ``RAG_*``
settings a test gives them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from eval.squad import SquadArticle, SquadQuestion

REPO = Path(__file__).resolve().parent.parent
REPO_DATA = REPO / "data"
START_TIMEOUT = 180.0  # a loaded 2-CPU machine can take a while to import torch and build
ADMIN_TOKEN = "test-admin-token-8f1c2d"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without its RAG_* settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(settings)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def prepare_dirs(root: Path, data_dir: Path, index_dir: Path | None) -> tuple[Path, Path]:
    """Copy the articles (and a built index, if given) under ``root``."""
    data = root / "data"
    index = root / "index"
    shutil.copytree(data_dir, data)
    if index_dir is not None:
        shutil.copytree(index_dir, index)
    return data, index


@dataclass
class LiveServer:
    """``rag serve`` in a subprocess; ``readyz_seen`` records /readyz answers while starting."""

    root: Path
    data_dir: Path
    index_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    readyz_seen: list[tuple[int, Any]] = field(default_factory=list)
    starts: int = 0
    keep_port: bool = False  # restart on the same port, as a real restarted server would

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30.0, **kwargs)

    def start(self, *, wait_ready: bool = True) -> LiveServer:
        if not (self.keep_port and self.port):
            self.port = free_port()
        self.readyz_seen = []
        env = server_env(
            {
                "RAG_DATA_DIR": str(self.data_dir),
                "RAG_INDEX_DIR": str(self.index_dir),
                **self.settings,
            }
        )
        cmd = [
            sys.executable,
            "-m",
            "cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it open)
        log.write(f"\n===== start {self.starts + 1}: {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        self.wait_listening()
        if wait_ready:
            self.wait_ready()
        return self

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
            )

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Until the port answers; then record the first /readyz answer."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=5.0)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not listening; log:\n{self.log_tail()}") from None
                time.sleep(0.05)
                continue
            self.readyz_seen.append((response.status_code, response.json()))
            return

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            response = httpx.get(f"{self.base_url}/readyz", timeout=5.0)
            self.readyz_seen.append((response.status_code, response.json()))
            if response.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready: {response.text}\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL of the process group if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def access_log(self) -> list[dict[str, Any]]:
        """The structured access-log lines written so far."""
        out = []
        for line in self.logs().split("\n"):
            if line.startswith("{") and '"request_id"' in line:
                out.append(json.loads(line))
        return out


def find_question(articles: Iterable[SquadArticle], text: str) -> SquadQuestion:
    """The SQuAD 2.0 record (real question, gold paragraph and spans) with this text."""
    for article in articles:
        for question in article.questions:
            if question.question == text:
                return question
    raise LookupError(f"no SQuAD question {text!r}")


def assert_error_shape(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The response is an error in the one shape, with a request id; returns its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("x-request-id"), "every response carries X-Request-ID"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


def ask_load(base_url: str, seconds: float, concurrency: int, questions: list[str]) -> None:
    """Keep ``concurrency`` POST /ask requests in flight for ``seconds`` (run in a process of
    its own, so that its work does not slow the process that measures); a refused client
    waits for its ``Retry-After``. Prints "started" once every client has had a response, and
    a JSON summary at the end (the counts, and the fastest answer in ms); the ``seconds``
    count from "started"."""
    import asyncio

    async def run() -> dict[str, float]:
        counts: dict[str, float] = {"answered": 0, "refused": 0, "failed": 0}
        answer_times: list[float] = []
        first = asyncio.Event()
        waiting = concurrency
        deadline = math.inf  # set once every client has had an answer
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

            async def asker(n: int) -> None:
                nonlocal waiting, deadline
                seen = False
                while time.monotonic() < deadline:
                    question = questions[n % len(questions)]
                    started = time.perf_counter()
                    response = await client.post("/ask", json={"question": question, "top_k": 10})
                    if response.status_code == 200:
                        answer_times.append(time.perf_counter() - started)
                    status = response.status_code
                    # 503 "overloaded" and 429 are the service's deliberate, fast refusals.
                    outcome = {200: "answered", 503: "refused", 429: "refused"}.get(status)
                    counts[outcome or "failed"] += 1
                    if outcome == "refused":
                        # A well-behaved client waits as told; retrying at once would turn
                        # this into a flood of refusals rather than asks being answered.
                        await asyncio.sleep(float(response.headers.get("retry-after", 1)))
                    n += concurrency
                    if not seen:
                        seen = True
                        waiting -= 1
                        if waiting == 0:
                            deadline = time.monotonic() + seconds
                            first.set()

            tasks = [asyncio.create_task(asker(i)) for i in range(concurrency)]
            await first.wait()
            print("started", flush=True)
            await asyncio.gather(*tasks)
        counts["fastest_answer_ms"] = round(min(answer_times, default=math.inf) * 1000, 1)
        return counts

    print(json.dumps(asyncio.run(run())), flush=True)


def start_ask_load(
    base_url: str, seconds: float, concurrency: int, questions: list[str]
) -> subprocess.Popen[str]:
    """:func:`ask_load` in a subprocess, returned once its requests are flowing."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from test_api_support import ask_load;"
        " ask_load(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))"
    )
    args = [str(Path(__file__).parent), base_url, str(seconds), str(concurrency)]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, json.dumps(questions)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "started":
        proc.kill()
        raise RuntimeError(f"ask load did not start: {line!r}")
    return proc

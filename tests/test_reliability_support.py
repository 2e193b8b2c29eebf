"""Helpers for the reliability tests (no tests here): real article text to write, a check
that a persisted index agrees with itself and with a running server, and the figures that
``docs/reliability.md`` quotes.

Figures are written only when ``RAG_RELIABILITY_FIGURES`` names a folder (``python -m
bench.reliability`` sets it); each test writes one JSON file there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from test_api_support import REPO, LiveServer, free_port, server_env

from eval.squad import DEFAULT_PATH as SQUAD2_PATH
from eval.squad import load_squad2
from index.persist import IndexSnapshot, load_snapshot, writer_lock
from index.store import chunk_key

FIGURES_ENV = "RAG_RELIABILITY_FIGURES"
#: Articles the test servers do not index: their paragraphs are the documents tests write.
WRITE_TITLES = ["Steam_engine", "Warsaw", "Immune_system", "Force", "Yuan_dynasty", "Huguenot"]


def record_figures(name: str, figures: dict[str, Any]) -> None:
    folder = os.environ.get(FIGURES_ENV)
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def real_paragraphs(min_chars: int = 200) -> list[str]:
    """Paragraphs of real SQuAD 2.0 articles that the test corpus does not hold."""
    out: list[str] = []
    for article in load_squad2(SQUAD2_PATH, titles=WRITE_TITLES):
        out.extend(p for p in article.document.text.split("\n\n") if len(p) >= min_chars)
    return out


def leading_sentences(text: str, n: int = 2) -> str:
    """The first ``n`` sentences of ``text`` (short documents embed quickly)."""
    end = -1
    for _ in range(n):
        found = text.find(". ", end + 1)
        if found < 0:
            return text
        end = found
    return text[: end + 1]


def first_sentence(text: str) -> str:
    end = text.find(". ")
    return text[: end + 1] if end > 0 else text[:200]


def check_index(index_dir: Path) -> IndexSnapshot:
    """Load the live generation (its checksums verified) and check, independently of the
    loader's own checks, that the FAISS index, the chunk table and the manifest agree."""
    with writer_lock(index_dir, exclusive=False):
        snapshot = load_snapshot(index_dir)
    m = snapshot.manifest
    chunk_keys = {chunk_key(c.id) for c in snapshot.chunks}
    vector_ids = set(snapshot.index.ids().tolist())
    doc_ids = {d.id for d in snapshot.documents}
    assert len(snapshot.index) == len(snapshot.chunks) == m.counts["vectors"] == m.counts["chunks"]
    assert vector_ids == chunk_keys, "every vector is a chunk's and every chunk has a vector"
    assert {c.doc_id for c in snapshot.chunks} <= doc_ids
    assert set(m.documents) == doc_ids and m.counts["documents"] == len(doc_ids)
    assert all(m.documents[d.id] == d.sha256 for d in snapshot.documents)
    texts = {d.id: d.text for d in snapshot.documents}
    assert all(texts[c.doc_id][c.start : c.end] == c.text for c in snapshot.chunks)
    return snapshot


def check_server_agrees(client: httpx.Client, snapshot: IndexSnapshot) -> dict[str, str]:
    """/readyz and GET /documents describe exactly ``snapshot``; returns id -> sha256."""
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["documents"] == len(snapshot.documents)
    assert body["chunks"] == len(snapshot.chunks)
    assert body["generation"] == snapshot.manifest.generation
    listed = client.get("/documents").json()["documents"]
    served = {d["id"]: d["sha256"] for d in listed}
    assert served == {d.id: d.sha256 for d in snapshot.documents}
    return served


# --------------------------------------------------------------------------- forked servers

#: Runs in a process of its own: imports what ``rag serve`` imports (torch and
#: sentence-transformers take about 5 s of CPU), starts no thread, then for each request line
#: forks a child that runs exactly ``rag serve``'s code, ``rag.cli.main(["serve", ...])``.
_ZYGOTE = r"""
import gc, json, os, signal, sys
import torch, sentence_transformers, transformers, uvicorn, faiss
import api.app, api.state, rag.cli, rag.pipeline, eval.cli
gc.collect(); gc.freeze()  # the children's full collections skip the libraries
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
out = sys.stdout
print("ready", file=out, flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        os.chdir(job["cwd"])
        log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ.clear()
        os.environ.update(job["env"])
        sys.argv = ["rag", *job["argv"]]
        code = 1
        try:
            code = rag.cli.main(job["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, file=out, flush=True)
"""


class ForkedProcess:
    """The few ``Popen`` methods LiveServer uses, for a process the zygote forked (not our
    child: it is reaped by the kernel, and gone once ``os.kill(pid, 0)`` fails)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1  # the status went to the kernel
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


class Zygote:
    """One process that forks ``rag serve`` children on request (see ``_ZYGOTE``)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=server_env({}),
        )
        self._lock = threading.Lock()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the zygote did not start: {line!r}")

    def fork(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
        job = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            return ForkedProcess(int(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class ForkedServer(LiveServer):
    """A LiveServer whose ``rag serve`` is forked by a :class:`Zygote`: the same code, the
    same settings and folders, without paying the library imports on every restart."""

    zygote: Zygote | None = None

    def start(self, *, wait_ready: bool = True) -> LiveServer:
        assert self.zygote is not None
        self.port = free_port()
        self.readyz_seen = []
        env = server_env(
            {"RAG_DATA_DIR": str(self.data_dir), "RAG_INDEX_DIR": str(self.index_dir)}
            | self.settings
        )
        argv = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts + 1} (forked): rag {' '.join(argv)}\n".encode())
        self.proc = self.zygote.fork(argv, env, self.root, self.log_path)  # type: ignore[assignment]
        self.starts += 1
        self.wait_listening()
        if wait_ready:
            self.wait_ready()
        return self

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

"""Shared pieces of the benchmarks: the served corpus, the questions, timing and memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "var" / "bench"
RESULTS = WORK / "results"
DOCS = REPO / "docs"
SHARED = REPO.parent / "shared" / "benchmarks"
RETRIEVAL_BENCH = SHARED / "retrieval_bench"
SQUAD2 = SHARED / "squad2_dev" / "dev-v2.0.json"


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max of latencies in milliseconds (nearest-rank percentiles)."""
    arr = np.sort(np.asarray(samples_ms, dtype=np.float64))
    if arr.size == 0:
        return {"n": 0}

    def rank(p: float) -> float:
        return float(arr[min(arr.size - 1, max(0, int(np.ceil(p / 100 * arr.size)) - 1))])

    return {
        "n": int(arr.size),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "mean": float(arr.mean()),
        "max": float(arr[-1]),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine() -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def require_shared() -> None:
    if not SQUAD2.is_file():
        sys.exit(f"the external benchmarks are missing ({SHARED}); they ship beside the repo")


# ---------------------------------------------------------------------------- served corpus


def eval_questions() -> list[str]:
    """The stand-in evaluation set's questions (eval/questions-squad.jsonl), in file order."""
    from eval.dataset import SQUAD_QUESTIONS, parse_questions

    return [q.question for q in parse_questions(SQUAD_QUESTIONS)]


def prepare_corpus(root: Path = WORK / "corpus") -> tuple[Path, Path]:
    """The corpus the benchmarks serve: the SQuAD 2.0 stand-in articles that the evaluation
    questions are about (the seed article is not in the repository). Returns (data_dir,
    index_dir); the index is built by the caller's encoder when missing."""
    from eval.dataset import SQUAD_QUESTIONS, parse_questions, resolve_documents
    from rag.load import write_article

    require_shared()
    data_dir, index_dir = root / "data", root / "index"
    if not data_dir.is_dir():
        ids = [q.doc_id for q in parse_questions(SQUAD_QUESTIONS) if q.doc_id]
        docs = resolve_documents(ids, squad_path=SQUAD2, data_dir=None)
        tmp = root / "data.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for doc in docs.values():
            write_article(tmp, doc)
        tmp.rename(data_dir)
    return data_dir, index_dir


def corpus_settings(**overrides: Any) -> Any:
    """Settings for the served benchmark corpus (index built if missing)."""
    from rag.settings import Settings

    data_dir, index_dir = prepare_corpus()
    return Settings(data_dir=data_dir, index_dir=index_dir, **overrides)


# ---------------------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_json(url: str, body: dict[str, Any], timeout: float = 30.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def server_env(settings: Any, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RAG_DATA_DIR": str(settings.data_dir),
            "RAG_INDEX_DIR": str(settings.index_dir),
            "RAG_ASK_RATE_LIMIT": "",  # the load generator is one client: no per-client limit
            "RAG_LOG_LEVEL": "warning",
        }
    )
    env.update(extra)
    return env


class Server:
    """``rag serve`` in a child process on a free port; ``ready()`` waits for a first answer."""

    def __init__(self, settings: Any, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "rag"), "serve", "--port", str(self.port)],
            env=server_env(settings, **env),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def first_answer(self, question: str = "Who were the Normans?", timeout: float = 120) -> float:
        """Seconds from the start of the process to the first 200 from POST /ask."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"rag serve exited with {self.proc.returncode}: {err[-2000:]}")
            status, _ = post_json(f"{self.url}/ask", {"question": question, "mode": "fast"}, 5)
            if status == 200:
                return time.perf_counter() - self.started
            time.sleep(0.02)
        raise TimeoutError("rag serve did not answer in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def report_command(module: str, argv: Sequence[str] | None = None) -> str:
    """How a bench command was run (``python -m bench.x --flag``), for its report section."""
    return " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)])


def publish(text: str, section: str, write: bool) -> None:
    """Print a report section, and with ``write`` put it into ``eval/report.md``."""
    from eval.render import update_report_file

    print(text)
    if write:
        update_report_file(REPO / "eval" / "report.md", {section: text})


def load_models(settings: Any) -> tuple[Any, Any]:
    """The loaded question encoder and cross-encoder of ``settings`` (accurate mode's), from
    the façade (:class:`rag.engine.Engine`)."""
    from rag.engine import Engine

    if not settings.reranker:
        raise SystemExit("this benchmark needs the cross-encoder, but RAG_RERANKER is empty")
    models = Engine(settings, use_reranker="required").load_models()
    return models.encoder, models.reranker

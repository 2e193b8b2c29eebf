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
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

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


#: The CPU flags that change how fast (and, for int8, how exactly) the encoders run.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni")


def cpu() -> dict[str, Any]:
    """The CPU's model name and which of :data:`CPU_FLAGS` it has (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return {"model": model, "cores": cores, "flags": {f: f in flags for f in CPU_FLAGS}}


def cpu_flags(info: dict[str, Any] | None = None) -> str:
    """``avx2 avx512f avx512_vnni``, or ``avx2 -avx512f -avx512_vnni`` for those missing."""
    info = info or cpu()
    return " ".join(k if v else f"-{k}" for k, v in info["flags"].items())


def cpu_summary(info: dict[str, Any] | None = None) -> str:
    """One line for a report: ``AMD EPYC, 2 cores, avx2 avx512f avx512_vnni``."""
    info = info or cpu()
    return f"{info['model']}, {info.get('cores', '?')} cores, {cpu_flags(info)}"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": cpu(),
        "load_average": load_average(),
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

#: The seed article (``data/``): the corpus the HTTP, latency, cold-start and profile
#: benchmarks serve, with its own questions (``eval/questions.jsonl``).
SEED_DATA = REPO / "data"


def eval_questions() -> list[str]:
    """The seed article's evaluation questions (eval/questions.jsonl), in file order."""
    from eval.dataset import DEFAULT_QUESTIONS, load_question_set

    qset = load_question_set(DEFAULT_QUESTIONS, squad_path=SQUAD2, data_dir=SEED_DATA)
    return [q.question for q in qset.questions]


def prepare_corpus(root: Path = WORK / "seed") -> tuple[Path, Path]:
    """The corpus the benchmarks serve: the seed article, read from ``data/`` as it is; its
    index is kept apart from the project's (``var/bench/seed/index``). Returns (data_dir,
    index_dir); the index is built by the caller's encoder when missing."""
    index_dir = root / "index"
    drop_stale_index(index_dir)
    return SEED_DATA, index_dir


def drop_stale_index(index_dir: Path) -> bool:
    """Remove a benchmark's own index when it was built by another chunker, attribution or
    FAISS version (it would refuse to load, asking for ``rag index --rebuild``): it is scratch,
    rebuilt from its data folder on first use. The project's index is never touched."""
    import shutil

    import faiss

    from index.persist import read_manifest
    from rag.build import chunk_format

    if not (index_dir / "CURRENT").is_file():
        return False
    try:
        manifest = read_manifest(index_dir)
        stale = (
            manifest.chunker_version != chunk_format()
            or manifest.faiss_version != faiss.__version__
        )
    except Exception:  # an unreadable scratch index is rebuilt too
        stale = True
    if stale:
        print(f"rebuilding {index_dir}: built by another version", file=sys.stderr)
        shutil.rmtree(index_dir)
    return stale


def corpus_settings(**overrides: Any) -> Any:
    """Settings for the served benchmark corpus, the seed article (index built if missing)."""
    from rag.settings import Settings

    data_dir, index_dir = prepare_corpus()
    return Settings(data_dir=data_dir, index_dir=index_dir, **overrides)


def _many_sample(paragraphs: int, seed: int = 0) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (RETRIEVAL_BENCH / "corpus.jsonl").open()]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(rows), size=min(paragraphs, len(rows)), replace=False))
    return [rows[i] for i in picked]


def prepare_many_corpus(paragraphs: int = 2000, per_article: int = 10) -> tuple[Path, Path]:
    """A corpus of many commentary-length paragraphs: ``paragraphs`` drawn at random (seed 0)
    from ``../shared/benchmarks/retrieval_bench`` (Wikipedia, Reddit comments and Amazon
    reviews of about 110-130 words each), ``per_article`` to an article, written to
    ``var/bench/many-<paragraphs>/data`` (never into the repository). Returns (data_dir,
    index_dir)."""
    from rag.load import make_document, write_article

    if not (RETRIEVAL_BENCH / "corpus.jsonl").is_file():
        sys.exit(f"the external benchmarks are missing ({SHARED}); they ship beside the repo")
    root = WORK / f"many-{paragraphs}"
    data_dir, index_dir = root / "data", root / "index"
    drop_stale_index(index_dir)
    if not data_dir.is_dir():
        rows = _many_sample(paragraphs)
        tmp = root / "data.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for n, start in enumerate(range(0, len(rows), per_article)):
            part = rows[start : start + per_article]
            text = "\n\n".join(" ".join(r["text"].split()) for r in part) + "\n"
            write_article(tmp, make_document(f"bench-{n:04d}", text))
        tmp.rename(data_dir)
    return data_dir, index_dir


def many_corpus_settings(paragraphs: int = 2000, **overrides: Any) -> Any:
    """Settings for :func:`prepare_many_corpus` (index built if missing)."""
    from rag.settings import Settings

    data_dir, index_dir = prepare_many_corpus(paragraphs)
    return Settings(data_dir=data_dir, index_dir=index_dir, **overrides)


def many_questions(paragraphs: int = 2000) -> list[str]:
    """Distinct benchmark questions about the paragraphs of :func:`prepare_many_corpus`, in
    a fixed shuffled order (so the sources interleave)."""
    ids = {r["_id"] for r in _many_sample(paragraphs)}
    seen: set[str] = set()
    questions = []
    for line in (RETRIEVAL_BENCH / "queries.jsonl").open():
        q = json.loads(line)
        text = " ".join(q["text"].split())
        if q["gold_pid"] in ids and text and text not in seen:
            seen.add(text)
            questions.append(text)
    order = np.random.default_rng(1).permutation(len(questions))
    return [questions[i] for i in order]


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
    """The environment of a benchmark ``rag serve``: the served corpus, and the per-client
    rate limit lifted (``RAG_ASK_RATE_LIMIT=""``): a load generator is one client, and the
    default 60/minute would refuse it with 429s."""
    env = dict(os.environ)
    env.update(
        {
            "RAG_DATA_DIR": str(settings.data_dir),
            "RAG_INDEX_DIR": str(settings.index_dir),
            "RAG_ASK_RATE_LIMIT": "",
            "RAG_LOG_LEVEL": "warning",
        }
    )
    env.update(extra)
    return env


class ChildServer:
    """An HTTP server in a child process on a free port; ``first_answer()`` waits for its
    first 200 from POST /ask. Its stderr goes to a temporary file (a pipe nobody reads
    could fill up and stall it), shown if it exits early."""

    name = "server"

    def __init__(self, cmd: Sequence[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            list(cmd), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.stderr
        )

    def first_answer(
        self, question: str = "What is the article about?", timeout: float = 180
    ) -> float:
        """Seconds from the start of the process to the first 200 from POST /ask."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                err = self.stderr.read().decode(errors="replace")
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {err[-2000:]}")
            status, _ = post_json(f"{self.url}/ask", {"question": question, "mode": "fast"}, 5)
            if status == 200:
                return time.perf_counter() - self.started
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} did not answer in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Server(ChildServer):
    """``rag serve`` in a child process on a free port, with :func:`server_env`."""

    name = "rag serve"

    def __init__(self, settings: Any, **env: str) -> None:
        port = free_port()
        rag = str(Path(sys.executable).parent / "rag")
        super().__init__([rag, "serve", "--port", str(port)], server_env(settings, **env), port)


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

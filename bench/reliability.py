"""The figures of docs/reliability.md, measured: ``python -m bench.reliability``.

1. Runs the reliability tests (and the schemathesis test) with ``RAG_RELIABILITY_FIGURES``
   set, so each writes what it measured (kill cycles, documents lost, corruptions detected,
   schemathesis requests, overload refusals, ...), and reads pytest's JUnit report for the
   failures.
2. Serves the SQuAD 2.0 articles the tests use with a real ``rag serve`` (default settings,
   except no per-client rate limit: every client here is 127.0.0.1) and keeps 64 clients
   asking real SQuAD questions for 60 s; a client refused with 503 waits its Retry-After, as
   a well-behaved client does.
3. Writes everything to ``var/reliability/figures.json`` and rewrites the figures block of
   ``docs/reliability.md``.

``--skip-tests`` reuses the test figures of the last run; ``--seconds``/``--clients`` change
the load. Nothing here runs at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "var" / "reliability"
FIGURES = WORK / "figures"
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
TITLES = ["Islamism", "Normans", "Scottish_Parliament"]  # as tests/conftest.py
TEST_FILES = [
    "tests/test_reliability_crash.py",
    "tests/test_reliability_corruption.py",
    "tests/test_reliability_concurrency.py",
    "tests/test_reliability_disk.py",
    "tests/test_reliability_input.py",
    "tests/test_reliability_api.py",
    "tests/test_reliability_overload.py",
    "tests/test_persist.py",
    "tests/test_api_schemathesis.py",
]


# --------------------------------------------------------------------------- the tests


def run_tests() -> dict[str, Any]:
    """Run the tests, collecting their figures and their failures per file."""
    shutil.rmtree(FIGURES, ignore_errors=True)
    FIGURES.mkdir(parents=True)
    report = WORK / "junit.xml"
    env = {
        "RAG_RELIABILITY_KILL_CYCLES": "50",  # the documented figure; make test runs 12
        "RAG_RELIABILITY_OPERATIONS": "10000",  # the documented figure; make test runs 4,000
        **os.environ,
        "RAG_RELIABILITY_FIGURES": str(FIGURES),
    }
    cmd = [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *TEST_FILES]
    print("$", " ".join(cmd), flush=True)
    started = time.monotonic()
    subprocess.run(cmd, cwd=REPO, env=env, check=False)
    out: dict[str, Any] = {"test_seconds": round(time.monotonic() - started)}
    out["tests"] = junit_summary(report)
    for path in sorted(FIGURES.glob("*.json")):
        out[path.stem] = json.loads(path.read_text())
    return out


def junit_summary(report: Path) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = (case.get("classname") or "").split(".")[-1]
        entry = summary.setdefault(module, {"passed": 0, "failed": 0, "skipped": 0})
        if case.find("failure") is not None or case.find("error") is not None:
            entry["failed"] += 1
        elif case.find("skipped") is not None:
            entry["skipped"] += 1
        else:
            entry["passed"] += 1
    return summary


# --------------------------------------------------------------------------- the load


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_corpus() -> tuple[Path, Path, list[str]]:
    """The SQuAD articles in a data folder of their own, and their real questions."""
    from eval.squad import DEFAULT_PATH, load_squad2
    from rag.load import write_article

    articles = load_squad2(DEFAULT_PATH, titles=TITLES)
    data = WORK / "load" / "data"
    if not data.is_dir():
        for article in articles:
            write_article(data, article.document)
    questions = [q.question for a in articles for q in a.questions]
    return data, WORK / "load" / "index", questions


@contextmanager
def served(data: Path, index: Path, settings: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        {
            "RAG_DATA_DIR": str(data),
            "RAG_INDEX_DIR": str(index),
            "RAG_MODEL_CACHE_DIR": str(REPO / "var" / "models"),
            **settings,
        }
    )
    log = open(WORK / "load" / "server.log", "ab")  # noqa: SIM115 (the child keeps it)
    cmd = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rag serve exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("rag serve not ready")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def load(base: str, questions: list[str], clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    answered: list[float] = []
    refused: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def asker(n: int) -> None:
            while time.monotonic() < deadline:
                question = questions[n % len(questions)]
                n += clients
                started = time.perf_counter()
                try:
                    response = await client.post("/ask", json={"question": question})
                except httpx.TransportError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                took = time.perf_counter() - started
                if response.status_code == 200:
                    answered.append(took)
                elif response.status_code in (429, 503) and response.headers.get("retry-after"):
                    refused.append(took)
                    await asyncio.sleep(float(response.headers["retry-after"]))
                else:
                    key = str(response.status_code)
                    errors[key] = errors.get(key, 0) + 1

        await asyncio.gather(*(asker(i) for i in range(clients)))
    total = len(answered) + len(refused) + sum(errors.values())

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "clients": clients,
        "seconds": seconds,
        "requests": total,
        "answered": len(answered),
        "answered_per_second": round(len(answered) / seconds, 1),
        "refused": len(refused),
        "share_refused": round(len(refused) / total, 3) if total else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_ms_answered": ms(percentile(answered, 50)),
        "p99_ms_answered": ms(percentile(answered, 99)),
        "p99_ms_all": ms(percentile(answered + refused, 99)),
        "p99_ms_to_refuse": ms(percentile(refused, 99)),
    }


def run_load(clients: int, seconds: float, settings: dict[str, str]) -> dict[str, Any]:
    data, index, questions = prepare_corpus()
    log = WORK / "load" / "server.log"
    log.unlink(missing_ok=True)
    with served(data, index, {"RAG_ASK_RATE_LIMIT": "", **settings}) as base:
        print(f"load: {clients} clients for {seconds:.0f} s against {base} {settings}", flush=True)
        load_before = os.getloadavg()[0]
        result = asyncio.run(load(base, questions, clients, seconds))
        load_after = os.getloadavg()[0]
    result["settings"] = settings
    # The machine's load (other processes compete for the CPUs), and the server's own time
    # to refuse, from its access log (the client's includes waiting for the event loop).
    result["load_average"] = [round(load_before, 1), round(load_after, 1)]
    server_refusals = []
    for line in log.read_text("utf-8", errors="replace").splitlines():
        if line.startswith("{") and '"status": 503' in line and '"/ask"' in line:
            server_refusals.append(json.loads(line)["latency_ms"] / 1000)
    server_p99 = percentile(server_refusals, 99)
    result["server_p99_ms_to_refuse"] = None if server_p99 is None else round(server_p99 * 1e3, 2)
    return result


# --------------------------------------------------------------------------- the doc


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(figures: dict[str, Any]) -> str:
    tests = figures.get("tests", {})

    def failed(module: str) -> int:
        return int(tests.get(module, {}).get("failed", 0))

    crash = figures.get("crash", {})
    sweep = figures.get("corruption_sweep", {})
    server = figures.get("corruption_server", {})
    fuzz = figures.get("schemathesis", {})
    conc = figures.get("concurrency", {})
    over = figures.get("overload", {})
    body = figures.get("body_limit", {})
    lines = [
        _row("property", "figure", "result"),
        _row("---", "---", "---"),
        _row(
            "crash safety",
            f"{crash.get('kill_cycles')} SIGKILL cycles during writes "
            f"({crash.get('writes_acknowledged')} writes acknowledged)",
            f"**{crash.get('documents_lost')} documents lost**; "
            f"{crash.get('restarts_ready')} restarts ready",
        ),
        _row(
            "corruption",
            f"{sweep.get('tried')} random flips/truncations + {server.get('tried')} damaged "
            "live generations served",
            f"**{sweep.get('detected')} of {sweep.get('tried')} detected**; "
            f"{server.get('tried')} of {server.get('tried')} fell back",
        ),
        _row(
            "concurrency",
            f"{conc.get('operations')} operations, 8 readers + 1 writer "
            f"({conc.get('generations')} index versions)",
            f"**{conc.get('unexplained')} inconsistent answers** of {conc.get('answers_checked')}",
        ),
        _row(
            "full disk",
            "PUT and DELETE on a full tmpfs",
            "507 `insufficient_storage`; index unchanged and loadable"
            if failed("test_reliability_disk") == 0
            else "FAILED",
        ),
        _row(
            "input (schemathesis)",
            f"{fuzz.get('requests')} generated requests",
            f"**{fuzz.get('server_errors')} server errors**, "
            f"{failed('test_api_schemathesis')} failed checks",
        ),
        _row(
            "input (10 MB body)",
            "declared and streamed, to /ask and PUT /documents",
            f"413 in at most {max(body.get('seconds', {0: 0}).values()) * 1000:.0f} ms"
            if body
            else "",
        ),
        _row(
            "overload (test)",
            f"{over.get('offered_per_second')}/s offered, 3x the sustained "
            f"{over.get('sustainable_per_second')}/s",
            f"{over.get('share_refused', 0) * 100:.0f}% refused, p99 time to refuse "
            f"{over.get('p99_seconds_to_refuse', 0) * 1000:.0f} ms, "
            f"**{over.get('other_errors')} other errors**",
        ),
    ]
    loaded = figures.get("load")
    if loaded:
        lines.append(
            _row(
                f"load ({loaded['clients']} clients, {loaded['seconds']:.0f} s)",
                f"{loaded['answered_per_second']}/s answered, p99 "
                f"{loaded['p99_ms_answered']} ms (p50 {loaded['p50_ms_answered']} ms)",
                f"**{loaded['errors']} errors**; {loaded['share_refused'] * 100:.0f}% "
                f"refused (503), p99 time to refuse {loaded['p99_ms_to_refuse']} ms at the "
                f"client, {loaded.get('server_p99_ms_to_refuse')} ms in the server",
            )
        )
        lines += [
            "",
            f"The load run's machine load average was {loaded.get('load_average')} "
            "(start, end) on "
            f"{os.cpu_count()} CPUs; `var/reliability/figures.json` has every raw figure.",
        ]
    failures = {m: t["failed"] for m, t in tests.items() if t["failed"]}
    lines += [
        "",
        f"Tests: {sum(t['passed'] for t in tests.values())} passed, "
        f"{sum(t['failed'] for t in tests.values())} failed "
        f"{failures or ''} in {figures.get('test_seconds')} s; measured "
        f"{figures.get('measured')} on {os.cpu_count()} CPUs.",
    ]
    return "\n".join(lines)


def write_doc(figures: dict[str, Any]) -> None:
    text = DOC.read_text("utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{render(figures)}\n{END}{tail}", "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--skip-tests", action="store_true", help="reuse the last test figures")
    parser.add_argument("--skip-load", action="store_true", help="no 60 s load run")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the doc")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "figures.json"
    figures: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if not args.skip_tests:
        figures.update(run_tests())
    else:  # the figures of tests run since (e.g. one file re-run with RAG_RELIABILITY_FIGURES)
        for figure in sorted(FIGURES.glob("*.json")):
            figures[figure.stem] = json.loads(figure.read_text())
    if not args.skip_load:
        figures["load"] = run_load(args.clients, args.seconds, {})
    figures["measured"] = time.strftime("%Y-%m-%d", time.gmtime())
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(render(figures))
    if not args.no_doc:
        write_doc(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

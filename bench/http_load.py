"""HTTP ``POST /ask`` under load, with wrk (``apt-get install wrk``), fast and accurate modes.

``python -m bench.http_load [--duration 30] [--clients 1 16 64]``: starts ``rag serve`` on
the benchmark corpus (the seed article, data/) with the
per-client rate limit off (wrk is one client), then for each mode and number of concurrent
connections runs wrk for ``--duration`` seconds with questions of the evaluation set, each
made unique (no cache hits). Then one client repeating one question (cache hits). Reports
throughput (200s per second), p50/p95/p99, and every non-200 status and socket error.
Plots latency and throughput against concurrency to docs/bench-http.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

from bench.common import DOCS, WORK, Server, corpus_settings, eval_questions, save
from rag.settings import AnswerMode

LUA = Path(__file__).with_name("ask.lua")


def wrk(url: str, clients: int, duration: int, mode: str, repeat: bool = False) -> dict[str, Any]:
    questions = WORK / "questions.txt"
    questions.parent.mkdir(parents=True, exist_ok=True)
    questions.write_text("\n".join(eval_questions()) + "\n")
    env = dict(os.environ, BENCH_QUESTIONS=str(questions), BENCH_MODE=mode)
    if repeat:
        env["BENCH_REPEAT"] = "1"
    cmd = [
        "wrk",
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    ok = result["statuses"].get("200", 0)
    result["ok_per_s"] = ok / result["duration_s"]
    result["errors"] = {k: v for k, v in result["statuses"].items() if k != "200"}
    result["clients"] = clients
    return result


def drain(url: str, limit_s: float = 120.0) -> None:
    """Wait until the server has worked off the previous level's queue (a new question is
    answered within a second), so one level's backlog does not count against the next."""
    import time

    from bench.common import post_json

    deadline = time.perf_counter() + limit_s
    n = 0
    while time.perf_counter() < deadline:
        n += 1
        t = time.perf_counter()
        status, _ = post_json(f"{url}/ask", {"question": f"drain {n}", "mode": "fast"}, 30)
        if status == 200 and time.perf_counter() - t < 1.0:
            return
        time.sleep(0.5)


def run(duration: int = 30, clients: tuple[int, ...] = (1, 16, 64)) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does)")
    settings = corpus_settings()
    from bench.cold_start import ensure_index

    ensure_index(settings)
    results: dict[str, Any] = {"duration_s": duration, "modes": {}}
    with Server(settings) as server:
        server.first_answer()
        for mode in get_args(AnswerMode):
            wrk(server.url, 2, 3, mode)  # warm-up
            rows = []
            for c in clients:
                drain(server.url)
                rows.append(wrk(server.url, c, duration, mode))
            results["modes"][mode] = rows
        drain(server.url)
        results["cached"] = wrk(server.url, 1, duration, "fast", repeat=True)
    plot(results)
    return results


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, rows in results["modes"].items():
        xs = [r["clients"] for r in rows]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--o")):
            left.plot(xs, [r[key] for r in rows], style, label=f"{mode} {key[:3]}")
        right.plot(xs, [r["ok_per_s"] for r in rows], "-o", label=mode)
    left.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="latency (ms)")
    left.set_title("POST /ask latency (new questions)")
    right.set(xscale="log", xlabel="concurrent clients", ylabel="answers (200) per second")
    right.set_title("throughput")
    for ax in (left, right):
        ax.set_xticks([r["clients"] for r in next(iter(results["modes"].values()))])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "bench-http.png", dpi=100)


def table(results: dict[str, Any]) -> str:
    rows = [
        "| mode | clients | 200/s | p50 ms | p95 ms | p99 ms | non-200 / socket errors |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    entries = [(m, r) for m, rs in results["modes"].items() for r in rs]
    entries.append(("fast, repeated question (cache)", results["cached"]))
    for mode, r in entries:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        if r["socket_errors"] or r["timeouts"]:
            errors += f"; socket {r['socket_errors']}, timeouts {r['timeouts']}"
        rows.append(
            f"| {mode} | {r['clients']} | {r['ok_per_s']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {errors} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__)
    parser.add_argument("--duration", type=int, default=30, help="seconds per level (>= 30)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args(argv)
    results = run(args.duration, tuple(args.clients))
    save("http_load", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Answers per second for 1, 2 and 4 ``rag serve`` replicas sharing one PostgreSQL
(docs/scale-out.md), and indexing throughput with 1 and 2 ``rag index --shard`` processes.

``python -m bench.pg_replicas [serve] [--replicas 1 2 4] [--duration 20] [--clients 8]``
``python -m bench.pg_replicas index [--documents 60] [--shards 1 2]``

``serve``: an embedded PostgreSQL 18 with pgvector (started here, unless ``--database-url``)
holds the seed article (``rag index --database-url``); then for each replica count, that many
``rag serve`` replicas (one worker each, fast mode, per-client rate limit off) start on their
own ports and wrk (``apt-get install wrk``) sends ``--clients`` concurrent connections in all,
split evenly over the replicas (each client talking to one replica, as a balancer would route
it), for ``--duration`` seconds, asking the evaluation set's questions made unique (no cache
hits). Answers per second counts 200s only. Everything runs on this machine: the replicas,
PostgreSQL and wrk share its cores, so the figure is a ratio between replica counts, not a
capacity.

``index``: ``--documents`` synthetic articles (10 paragraphs of 3 sentences each) in a data
folder; ``rag index --shard i/n`` for n in ``--shards``, all n processes at once, into a fresh
database each time, with the real model; documents, chunks and sentences embedded per second
of wall time.

Results: var/bench/results/pg_replicas_{serve,index}.json, with CPU flags and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bench.common import REPO, Server, cpu_summary, load_average, save
from bench.pg_common import postgres, synthetic_documents

RAG = str(Path(sys.executable).parent / "rag")
T = TypeVar("T")


def parallel(calls: list[Callable[[], T]]) -> list[T]:
    """Run ``calls`` at once, each in a thread; their results in order (the first error
    is raised)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def replica_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rag_index(url: str, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"RAG_DATABASE_URL": url, "RAG_DATA_DIR": str(data_dir)}
    env["RAG_INDEX_DIR"] = str(Path(tempfile.mkdtemp(prefix="unused-index-")))
    done = subprocess.run(
        [RAG, "index", *extra], env=env, capture_output=True, text=True, cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rag index {' '.join(extra)} failed: {done.stderr[-2000:]}")
    return done


def serve(url: str, replicas: list[int], duration: int, clients: int) -> list[dict[str, Any]]:
    from bench.http_load import drain, wrk
    from rag.settings import Settings

    settings = Settings(data_dir=REPO / "data")
    rag_index(url, REPO / "data")
    rows = []
    for n in replicas:
        servers = []
        try:
            for _ in range(n):
                servers.append(
                    Server(
                        settings,
                        RAG_DATABASE_URL=url,
                        RAG_RERANKER="",
                        RAG_INDEX_DIR=tempfile.mkdtemp(prefix="unused-index-"),
                    )
                )
            started = [s.first_answer() for s in servers]
            for s in servers:
                wrk(s.url, 1, 2, "fast")  # warm-up
                drain(s.url)
            per = max(1, clients // n)
            before = load_average()
            results = parallel([partial(wrk, s.url, per, duration, "fast") for s in servers])
            row = {
                "replicas": n,
                "clients": per * n,
                "answers_per_s": sum(r["ok_per_s"] for r in results),
                "p50_ms": max(r["p50_ms"] for r in results),
                "p99_ms": max(r.get("p99_ms", 0.0) for r in results),
                "errors": [r["errors"] for r in results if r["errors"]],
                "start_s": max(started),
                "rss_mb": [replica_rss_mb(s.proc.pid) for s in servers],
                "load_average": [before, load_average()],
            }
        finally:
            for s in servers:
                s.stop()
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]["answers_per_s"] or 1.0
    for row in rows:
        row["ratio"] = row["answers_per_s"] / base
    return rows


def index(server: Any, documents: int, shards: list[int]) -> list[dict[str, Any]]:
    from rag.load import write_article

    data = Path(tempfile.mkdtemp(prefix="shard-data-"))
    for doc in synthetic_documents(documents * 10):
        write_article(data, doc)
    rows = []
    for n in shards:
        url = server.database(f"shards_{n}")
        before = load_average()
        t = time.perf_counter()
        parallel([partial(rag_index, url, data, "--shard", f"{i}/{n}") for i in range(1, n + 1)])
        wall = time.perf_counter() - t
        from index import pg

        with pg.connect(url) as conn:
            manifest = pg.read_manifest(conn)
        server.drop(url)
        counts = manifest.counts
        row = {
            "shards": n,
            "wall_s": wall,
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "sentences": counts["sentences"],
            "documents_per_s": counts["documents"] / wall,
            "texts_per_s": (counts["chunks"] + counts["sentences"]) / wall,
            "load_average": [before, load_average()],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    shutil.rmtree(data, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_replicas", description=__doc__)
    parser.add_argument("part", nargs="?", choices=("serve", "index"), default="serve")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8, help="in all, over the replicas")
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--database-url", help="default: an embedded PostgreSQL, started here")
    args = parser.parse_args(argv)
    print(f"{cpu_summary()}; load average {load_average()}", flush=True)
    with postgres(args.database_url) as server:
        if args.part == "serve":
            if shutil.which("wrk") is None:
                raise SystemExit("wrk is not installed: apt-get install -y wrk")
            rows = serve(server.database("replicas"), args.replicas, args.duration, args.clients)
            path = save("pg_replicas_serve", {"duration_s": args.duration, "rows": rows})
            print("\n| replicas | clients | answers/s | ratio | p50 ms (worst replica) |")
            print("|---:|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['replicas']} | {r['clients']} | {r['answers_per_s']:.1f} "
                    f"| {r['ratio']:.2f} | {r['p50_ms']:.0f} |"
                )
        else:
            rows = index(server, args.documents, args.shards)
            path = save("pg_replicas_index", {"rows": rows})
            print("\n| shards | documents | chunks + sentences | wall | docs/s | texts/s |")
            print("|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['shards']} | {r['documents']} | {r['chunks'] + r['sentences']:,} "
                    f"| {r['wall_s']:.1f} s | {r['documents_per_s']:.2f} "
                    f"| {r['texts_per_s']:.1f} |"
                )
    print(f"load average after: {load_average()}; results in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

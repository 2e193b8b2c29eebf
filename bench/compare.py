"""Fast mode against a plain reference server, in one run, on the same corpus and questions.

``python -m bench.compare [--duration 15] [--corpus seed many] [--paragraphs 2000] [--write]``:
for each corpus, starts the service (``rag serve``, the per-client rate limit lifted with
``RAG_ASK_RATE_LIMIT=""``, requests in ``fast`` mode) and the reference server
(``bench/reference.py``: FastAPI, sentence-transformers, exact numpy search, top 3
paragraphs) side by side, and measures each with wrk (``bench/ask.lua``):

- one client, sequential, for ``--duration`` seconds: p50 and p95 latency;
- ``--clients`` (16) concurrent connections for ``--duration`` seconds: answers (200s) per
  second, and every non-200 status, socket error and timeout.

Every request asks a question no earlier request to that server has asked (the question
file first, then the same questions with prefixes), so the service's answer cache never
hits; both servers get the same sequence. The one-client runs go service first, the
concurrent runs reference first, so that a drift in the machine's speed does not favour
one side. Corpora: ``seed``, the seed article (``data/``) with its 158 questions
(``eval/questions.jsonl``); ``many``, ``--paragraphs`` paragraphs of
``../shared/benchmarks/retrieval_bench`` (``bench.common.prepare_many_corpus``) with the
benchmark's questions about them. Writes ``var/bench/results/compare.json`` (named after the
options when given: ``compare-static-workers2.json``; CPU model and
flags, load average before and after each measurement) and, with ``--write``, the section
"Fast mode against a plain reference server" of docs/benchmarks.md.

``--fast-query-encoder static`` serves fast answers with static question vectors
(``RAG_FAST_QUERY_ENCODER=static``, docs/static-query.md; build the table first with ``rag
eval static-query``); its figures go to their own part of that section.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DOCS,
    WORK,
    Server,
    corpus_settings,
    cpu,
    cpu_flags,
    cpu_summary,
    eval_questions,
    load_average,
    machine,
    many_corpus_settings,
    many_questions,
    median,
    post_json,
    report_command,
    save,
)
from bench.reference import ReferenceServer

LUA = Path(__file__).with_name("ask.lua")
SECTION = "Fast mode against a plain reference server"
START, END = "<!-- bench.compare: start -->", "<!-- bench.compare: end -->"
#: The issue's targets: the service's one-client p50 at most this share of the reference's,
#: and its concurrent throughput at least this multiple of the reference's.
P50_TARGET, THROUGHPUT_TARGET = 0.4, 5.0
SIDES = ("ours", "reference")


def markers(encoder: str, workers: int = 1) -> tuple[str, str]:
    """The docs markers of a run's figures: one pair per fast-mode question encoder and
    number of workers."""
    tag = "bench.compare" + (f" {encoder}" if encoder != "model" else "")
    tag += f" workers={workers}" if workers != 1 else ""
    return f"<!-- {tag}: start -->", f"<!-- {tag}: end -->"


def wrk(url: str, clients: int, duration: float, questions: Path, offset: int) -> dict[str, Any]:
    """wrk against POST /ask in fast mode, questions from ``offset`` on (bench/ask.lua)."""
    threads = min(clients, 2)
    env = dict(
        os.environ,
        BENCH_QUESTIONS=str(questions),
        BENCH_MODE="fast",
        BENCH_THREADS=str(threads),
        BENCH_OFFSET=str(offset),
    )
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    out = subprocess.run(
        [*cmd, "-s", str(LUA), url], env=env, capture_output=True, text=True, check=True
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    ok = result["statuses"].get("200", 0)
    result["clients"] = clients
    result["ok_per_s"] = ok / result["duration_s"] if result["duration_s"] else 0.0
    result["errors"] = {k: v for k, v in result["statuses"].items() if k != "200"}
    result["error_count"] = (
        sum(result["errors"].values()) + result["socket_errors"] + result["timeouts"]
    )
    return result


def warm_up(url: str, questions: list[str], n: int = 40) -> list[int]:
    """Answered questions first (prefixed, so the measured ones stay new), each on a new
    connection: with several workers, every one of them answers some and so knows its answer
    rate, which its admission control needs (api/admission.py) before the load starts."""
    asked = [
        f"Warm-up {i // len(questions) + 1}: {questions[i % len(questions)]}" for i in range(n)
    ]
    return [post_json(f"{url}/ask", {"question": q, "mode": "fast"})[0] for q in asked]


def count_paragraphs(data_dir: Path) -> tuple[int, int]:
    """(articles, paragraphs) of a data folder, as rag.chunk counts paragraphs."""
    from rag.chunk import is_layout_noise, split_paragraphs
    from rag.load import load_data_dir

    docs = load_data_dir(data_dir)
    paragraphs = sum(
        1
        for d in docs
        for p in split_paragraphs(d.text)
        if not is_layout_noise(d.text[p.start : p.end])
    )
    return len(docs), paragraphs


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One measurement's rounds as one row: the median of each latency and rate, the sum of
    each count; the rounds themselves under ``rounds``."""
    merged: dict[str, Any] = {
        key: median([r[key] for r in rounds]) for key in ("p50_ms", "p95_ms", "p99_ms", "ok_per_s")
    }
    statuses: dict[str, int] = {}
    for r in rounds:
        for code, n in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    merged.update(
        clients=rounds[0]["clients"],
        requests=sum(r["requests"] for r in rounds),
        statuses=statuses,
        errors={k: v for k, v in statuses.items() if k != "200"},
        socket_errors=sum(r["socket_errors"] for r in rounds),
        timeouts=sum(r["timeouts"] for r in rounds),
        error_count=sum(r["error_count"] for r in rounds),
        load_average_before=rounds[0]["load_average_before"],
        rounds=rounds,
    )
    return merged


def compare_corpus(
    name: str,
    settings: Any,
    questions: list[str],
    duration: float,
    clients: int,
    rounds: int = 2,
    work: Path = WORK,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Both servers on one corpus. Each round measures one client, then ``clients``; the
    side that goes first alternates from measurement to measurement and round to round.
    ``env``: extra environment of the service (not of the reference)."""
    from bench.cold_start import ensure_index

    ensure_index(settings)
    file = work / f"compare-{name}-questions.txt"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("\n".join(questions) + "\n")
    articles, paragraphs = count_paragraphs(settings.data_dir)
    result: dict[str, Any] = {
        "data_dir": str(settings.data_dir),
        "articles": articles,
        "paragraphs": paragraphs,
        "questions": len(questions),
        "rounds": rounds,
        "load_average_before": load_average(),
        "measurements": [],
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        side: {"one_client": [], "concurrent": []} for side in SIDES
    }
    with (
        Server(settings, **(env or {})) as ours,
        ReferenceServer(settings.data_dir) as reference,
    ):
        servers = {"ours": ours, "reference": reference}
        # The reference embeds every chunk at start: minutes for a large corpus.
        result["ready_s"] = {side: s.first_answer(timeout=1800) for side, s in servers.items()}
        result["warm_up_statuses"] = {
            side: warm_up(s.url, questions) for side, s in servers.items()
        }
        offsets = dict.fromkeys(SIDES, 0)
        turn = 0
        for _ in range(rounds):
            for label, n in (("one_client", 1), ("concurrent", clients)):
                for side in SIDES if turn % 2 == 0 else SIDES[::-1]:
                    before = load_average()
                    started = time.time()
                    r = wrk(servers[side].url, n, duration, file, offsets[side])
                    offsets[side] = int(r["next_offset"])
                    r.update(load_average_before=before, load_average_after=load_average())
                    runs[side][label].append(r)
                    result["measurements"].append(
                        {"side": side, "measure": label, "started": started}
                    )
                turn += 1
            turn += 1  # the next round starts with the other side
    result["load_average_after"] = load_average()
    for side in SIDES:
        result[side] = {label: merge_rounds(rs) for label, rs in runs[side].items()}
    one = {side: result[side]["one_client"] for side in SIDES}
    many = {side: result[side]["concurrent"] for side in SIDES}
    one_runs = [runs[side]["one_client"] for side in SIDES]
    many_runs = [runs[side]["concurrent"] for side in SIDES]
    result["ratios"] = {
        "p50": one["ours"]["p50_ms"] / one["reference"]["p50_ms"],
        "p95": one["ours"]["p95_ms"] / one["reference"]["p95_ms"],
        "throughput": many["ours"]["ok_per_s"] / max(many["reference"]["ok_per_s"], 1e-9),
        "p50_per_round": [a["p50_ms"] / b["p50_ms"] for a, b in zip(*one_runs, strict=True)],
        "throughput_per_round": [
            a["ok_per_s"] / max(b["ok_per_s"], 1e-9) for a, b in zip(*many_runs, strict=True)
        ],
    }
    return result


def run(
    duration: float = 15,
    corpora: tuple[str, ...] = ("seed", "many"),
    paragraphs: int = 2000,
    clients: int = 16,
    rounds: int = 2,
    *,
    sources: dict[str, tuple[Any, list[str]]] | None = None,
    work: Path = WORK,
    fast_query_encoder: str = "model",
    workers: int = 1,
) -> dict[str, Any]:
    """Both servers on each corpus; ``sources`` (name: (settings, questions)) replaces the
    named corpora (the tests serve the seed article from a temporary index);
    ``fast_query_encoder`` and ``workers``: the service's ``RAG_FAST_QUERY_ENCODER`` and
    ``RAG_WORKERS`` (the reference runs as it is)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does)")
    env = {"RAG_FAST_QUERY_ENCODER": fast_query_encoder, "RAG_WORKERS": str(workers)}
    results: dict[str, Any] = {
        "duration_s": duration,
        "clients": clients,
        "rounds": rounds,
        "fast_query_encoder": fast_query_encoder,
        "workers": workers,
        "cpu": cpu(),
        "load_average_before": load_average(),
        "corpora": {},
    }
    for name in sources or corpora:
        if sources:
            settings, questions = sources[name]
        elif name == "seed":
            settings, questions = corpus_settings(), eval_questions()
        elif name == "many":
            settings, questions = many_corpus_settings(paragraphs), many_questions(paragraphs)
        else:
            raise SystemExit(f"unknown corpus {name!r}: seed or many")
        results["corpora"][name] = compare_corpus(
            name, settings, questions, duration, clients, rounds, work, env
        )
    results["load_average_after"] = load_average()
    return results


def _errors(r: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in sorted(r["errors"].items())]
    if r["socket_errors"] or r["timeouts"]:
        parts.append(f"socket {r['socket_errors']}, timeouts {r['timeouts']}")
    return ", ".join(parts) or "none"


def table(results: dict[str, Any]) -> str:
    """The figures, each row with the CPU flags and load average it was measured under."""
    clients = results["clients"]
    flags = cpu_flags(results["cpu"])
    rows = [
        f"| corpus | server | 1 client p50 ms | p95 ms | {clients} clients answers/s | "
        "p50 ms | p99 ms | non-200 / socket errors | load average | CPU flags |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    ratios = []
    for name, c in results["corpora"].items():
        articles = f"{c['articles']} article{'s' if c['articles'] != 1 else ''}"
        label = f"{name} ({articles}, {c['paragraphs']} paragraphs)"
        for side in SIDES:
            one, many = c[side]["one_client"], c[side]["concurrent"]
            load = "; ".join(
                "/".join(f"{r['load_average_before'][0]:.2f}" for r in m["rounds"])
                for m in (one, many)
            )
            errors = [f"{n}: {_errors(r)}" for n, r in ((1, one), (clients, many))]
            shown = "; ".join(e for e in errors if not e.endswith("none")) or "none"
            server = "reference"
            if side == "ours":
                encoder = results.get("fast_query_encoder", "model")
                workers = results.get("workers", 1)
                server = (
                    ", ".join(
                        ["this service (fast"]
                        + ([f"{encoder} questions"] if encoder != "model" else [])
                        + ([f"{workers} workers"] if workers != 1 else [])
                    )
                    + ")"
                )
            rows.append(
                f"| {label} | {server} | {one['p50_ms']:.1f} | {one['p95_ms']:.1f} | "
                f"{many['ok_per_s']:.0f} | {many['p50_ms']:.1f} | {many['p99_ms']:.1f} | "
                f"{shown} | {load} | {flags} |"
            )
        r = c["ratios"]
        p50_ok = "met" if r["p50"] <= P50_TARGET else "not met"
        tp_ok = "met" if r["throughput"] >= THROUGHPUT_TARGET else "not met"
        no_errors = all(c[side]["concurrent"]["error_count"] == 0 for side in SIDES)
        p50_rounds = ", ".join(f"{x:.2f}" for x in r["p50_per_round"])
        tp_rounds = ", ".join(f"{x:.1f}" for x in r["throughput_per_round"])
        ratios.append(
            f"| {name} | {r['p50']:.2f}x ({p50_ok}; rounds {p50_rounds}) | "
            f"{r['throughput']:.1f}x ({tp_ok}{'' if no_errors else ', with errors'}; "
            f"rounds {tp_rounds}) | {flags} |"
        )
    rows += [
        "",
        f"| corpus | ours/reference, 1-client p50 (target <= {P50_TARGET}x) | ours/reference, "
        f"{clients}-client answers/s (target >= {THROUGHPUT_TARGET:.0f}x, no errors) | "
        "CPU flags |",
        "|---|---:|---:|---|",
        *ratios,
    ]
    return "\n".join(rows)


def section(results: dict[str, Any], command: str) -> str:
    corpora = results["corpora"]
    date = results.get("machine", machine())["date"]
    questions = ", ".join(f"{n} {c['questions']}" for n, c in corpora.items())
    start, end = markers(results.get("fast_query_encoder", "model"), results.get("workers", 1))
    return "\n".join(
        [
            start,
            f"`{command}` ({date}; {results['duration_s']:g} s per measurement, "
            f"{results['rounds']} rounds, medians shown; questions: {questions}; CPU: "
            f"{cpu_summary(results['cpu'])}; load average (1 minute) "
            f"{results['load_average_before'][0]:.2f} before the run and "
            f"{results['load_average_after'][0]:.2f} after. The load column: before each "
            "round's one-client run; before each round's concurrent run, which load the two "
            "cores themselves):",
            "",
            table(results),
            end,
        ]
    )


def update_docs(
    text: str, path: Path = DOCS / "benchmarks.md", encoder: str = "model", workers: int = 1
) -> None:
    """Put ``text`` between the markers of its run's figures in docs/benchmarks.md (the
    default run's before "## 1." the first time, another's after the last figures of the
    section); the rest of the file is kept."""
    doc = path.read_text()
    start, end = markers(encoder, workers)
    if start in doc and end in doc:
        doc = re.sub(
            re.escape(start) + ".*?" + re.escape(end), lambda _: text, doc, count=1, flags=re.S
        )
    elif (encoder, workers) != ("model", 1) and END in doc:
        ends = [m.end() for m in re.finditer(r"<!-- bench\.compare[^>]*: end -->", doc)]
        at = max(ends)
        doc = doc[:at] + "\n\n" + text + doc[at:]
    else:
        heading = f"## {SECTION}\n\n{text}\n\n"
        at = doc.find("## 1. ")
        doc = doc[:at] + heading + doc[at:] if at >= 0 else doc.rstrip() + "\n\n" + heading
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--corpus", nargs="+", default=["seed", "many"], choices=["seed", "many"])
    parser.add_argument("--paragraphs", type=int, default=2000, help="size of the many corpus")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="each measurement this often")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--fast-query-encoder",
        choices=["model", "static"],
        default="model",
        help="the service's RAG_FAST_QUERY_ENCODER (static: build the table first with "
        "`rag eval static-query`)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the service's RAG_WORKERS (default 1)"
    )
    args = parser.parse_args(argv)
    results = run(
        args.duration,
        tuple(args.corpus),
        args.paragraphs,
        args.clients,
        args.rounds,
        fast_query_encoder=args.fast_query_encoder,
        workers=args.workers,
    )
    # One results file per configuration: compare.json, compare-static-workers2.json, ...
    name = "compare" + (f"-{args.fast_query_encoder}" if args.fast_query_encoder != "model" else "")
    path = save(name + (f"-workers{args.workers}" if args.workers != 1 else ""), results)
    results = json.loads(path.read_text())
    text = section(results, report_command("bench.compare", argv))
    print(text)
    if args.write:
        update_docs(text, encoder=args.fast_query_encoder, workers=args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

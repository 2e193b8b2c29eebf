"""Profile fast-mode answering: where does a request's time go?

``python -m bench.profile [--n 300] [--backend torch onnx] [--http]``:

- in process, with pyinstrument: ``--n`` fast-mode ``answer()`` calls per encoder backend;
  the reports go to ``var/bench/profile-<backend>.txt`` (and ``.html``);
- ``--http``: py-spy samples a real ``rag serve`` (all threads, native frames off) while wrk
  sends it new questions at 16 connections for 20 s; a flame graph goes to
  ``var/bench/py-spy-serve.svg`` and the top of py-spy's table is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from typing import Any

from bench.common import WORK, Server, corpus_settings, eval_questions


def profile_in_process(backend: str, n: int) -> str:
    from pyinstrument import Profiler

    from rag.build import build_index, load_corpus
    from rag.embed import SentenceTransformerEncoder
    from rag.pipeline import answer

    settings = corpus_settings()
    encoder = SentenceTransformerEncoder(backend=backend).load()  # type: ignore[arg-type]
    if not settings.index_dir.is_dir():
        build_index(settings, encoder)
    corpus = load_corpus(settings, encoder)
    questions = eval_questions()
    for q in questions[:10]:
        answer(corpus, encoder, q, settings=settings, mode="fast")
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(n):
        answer(corpus, encoder, questions[i % len(questions)], settings=settings, mode="fast")
    profiler.stop()
    WORK.mkdir(parents=True, exist_ok=True)
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (WORK / f"profile-{backend}.txt").write_text(text)
    (WORK / f"profile-{backend}.html").write_text(profiler.output_html())
    return text


def profile_http(seconds: int = 20) -> str:
    from bench.http_load import wrk

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    settings = corpus_settings()
    svg = WORK / "py-spy-serve.svg"
    raw = WORK / "py-spy-serve.txt"
    with Server(settings) as server:
        server.first_answer()
        load: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: load.update(wrk(server.url, 16, seconds + 2, "fast"))
        )
        thread.start()
        pid = str(server.proc.pid)
        subprocess.run(
            [py_spy, "record", "-p", pid, "-d", str(seconds), "-o", str(svg), "--idle"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [py_spy, "record", "-p", pid, "-d", "5", "-f", "raw", "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        thread.join()
    return summarise_raw(raw.read_text())


def summarise_raw(text: str, top: int = 25) -> str:
    """Self and total sample shares per function from py-spy's collapsed stacks."""
    total_samples = 0
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total_samples += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    rows = ["total%  self%  function"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        rows.append(
            f"{100 * count / total_samples:5.1f}  {100 * own.get(frame, 0) / total_samples:5.1f}"
            f"  {frame}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--backend", nargs="*", default=["torch", "onnx"])
    parser.add_argument("--http", action="store_true")
    args = parser.parse_args(argv)
    for backend in args.backend:
        print(f"== {backend}: {args.n} fast answers ==")
        print(profile_in_process(backend, args.n))
    if args.http:
        print("== rag serve under wrk (16 connections), py-spy ==")
        print(profile_http())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

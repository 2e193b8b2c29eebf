"""Cold start: a new ``rag serve`` process to its first answered ``POST /ask``.

``python -m bench.cold_start [--runs 3]``: the index and the ONNX export already exist (as
after ``make run`` once); each run starts a fresh process and polls /ask until a 200. Runs
both encoder backends in the same session: ``onnx`` (default) and ``torch`` (before).
Also records, with ``python -X importtime``, what importing the service costs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from bench.common import REPO, Server, corpus_settings, median, save


def ensure_index(settings: Any) -> None:
    from rag.engine import Engine

    engine = Engine(settings, use_reranker="off")
    engine.load_models()  # makes the cached ONNX export if missing
    if not settings.index_dir.is_dir():
        engine.build_index()


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return float(out.stdout.strip())


def run(runs: int = 3) -> dict[str, Any]:
    settings = corpus_settings()
    ensure_index(settings)
    results: dict[str, Any] = {"runs": runs}
    for backend in ("onnx", "torch"):
        times = []
        for _ in range(runs):
            with Server(settings, RAG_ENCODER_BACKEND=backend) as server:
                times.append(server.first_answer())
        results[backend] = {"seconds": times, "median": median(times)}
    results["imports"] = {
        m: import_seconds(m) for m in ("api.app", "onnxruntime", "sentence_transformers")
    }
    return results


def table(results: dict[str, Any]) -> str:
    rows = ["| encoder backend | runs (s) | median (s) |", "|---|---|---:|"]
    for backend in ("torch", "onnx"):
        r = results.get(backend)
        if r:
            runs = ", ".join(f"{s:.2f}" for s in r["seconds"])
            rows.append(f"| {backend} | {runs} | {r['median']:.2f} |")
    if "torch" in results and "onnx" in results:
        ratio = results["torch"]["median"] / results["onnx"]["median"]
        rows.append(f"| torch/onnx | | {ratio:.1f}x |")
    rows.append("")
    rows.append("| import | seconds |")
    rows.append("|---|---:|")
    for module, seconds in results.get("imports", {}).items():
        rows.append(f"| `{module}` | {seconds:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    results = run(args.runs)
    save("cold_start", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

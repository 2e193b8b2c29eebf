"""In-process ``answer()`` latency over the evaluation questions, fast and accurate modes.

``python -m bench.latency [--n 1000] [--before-n 200] [--accurate-n 200]``: answers ``--n``
questions (the seed article's 158 evaluation questions, cycled) in fast mode and
``--accurate-n`` in accurate mode with the ONNX encoder, questions on its int8 copy
(``onnx-int8q``) and in fp32 (``onnx``, the service's default since issue 14), and
``--before-n`` with the torch one (sentence-transformers, the backend before the ONNX change),
in the same run so the ratios are fair on a machine whose speed drifts. Also times the query
encoding alone, the cost the profile pointed at. When the static question table is built
(``rag eval static-query``), ``static`` times fast answers with it as the service gives them
(``RAG_FAST_QUERY_ENCODER=static``: static questions over the fp32 ONNX model's index).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import corpus_settings, eval_questions, percentiles, save


def measure(
    corpus: Any,
    encoder: Any,
    reranker: Any,
    settings: Any,
    questions: list[str],
    n: int,
    accurate_n: int,
) -> dict[str, Any]:
    from rag.pipeline import answer

    out: dict[str, Any] = {}
    for q in questions[:10]:  # warm-up: first calls allocate
        encoder.encode([q], kind="query")
    samples = []
    for i in range(n):
        q = questions[i % len(questions)]
        t = time.perf_counter()
        encoder.encode([q], kind="query")
        samples.append((time.perf_counter() - t) * 1000)
    out["encode_query"] = percentiles(samples)
    modes = ["fast"] + (["accurate"] if reranker is not None and accurate_n > 0 else [])
    for mode in modes:
        for q in questions[:5]:
            answer(corpus, encoder, q, settings=settings, mode=mode, reranker=reranker)
        samples = []
        for i in range(n if mode == "fast" else min(n, accurate_n)):
            q = questions[i % len(questions)]
            t = time.perf_counter()
            answer(corpus, encoder, q, settings=settings, mode=mode, reranker=reranker)
            samples.append((time.perf_counter() - t) * 1000)
        out[mode] = percentiles(samples)
    return out


def run(n: int = 1000, before_n: int = 200, accurate_n: int = 200) -> dict[str, Any]:
    from rag.build import build_index, load_corpus
    from rag.embed import Backend, SentenceTransformerEncoder
    from rag.engine import Engine

    settings = corpus_settings()
    questions = eval_questions()
    # The cross-encoder as the service loads it; the encoders below are the experiment.
    reranker = Engine(settings).load_models().reranker
    results: dict[str, Any] = {"questions": len(questions)}
    encoders: dict[str, Any] = {}
    # (label, backend, int8 questions, how many): "onnx" is the service's default
    # (RAG_QUERY_INT8 is off), and the static rows reuse its encoder.
    plan: tuple[tuple[str, Backend, bool, int], ...] = (
        ("onnx-int8q", "onnx", True, n),
        ("onnx", "onnx", False, n),
        ("torch", "torch", False, before_n),
    )
    for label, backend, query_int8, count in plan:
        if count <= 0:
            continue
        encoder = SentenceTransformerEncoder(
            settings.model,
            backend=backend,
            cache_dir=settings.model_cache_dir,
            query_int8=query_int8,
        ).load()
        if not settings.index_dir.is_dir():
            build_index(settings, encoder)
        corpus = load_corpus(settings, encoder)
        results[label] = measure(corpus, encoder, reranker, settings, questions, count, accurate_n)
        results[label]["chunks"] = len(corpus.chunks)
        encoders[label] = encoder
    static = static_encoder(settings, encoders.get("onnx"))
    if static is None:
        print("no static question table: build it with `rag eval static-query` to time it")
    elif n > 0:
        corpus = load_corpus(settings, static)
        # Fast answers only: the service never uses static questions in accurate mode.
        results["static"] = measure(corpus, static, None, settings, questions, n, 0)
        results["static"]["chunks"] = len(corpus.chunks)
    return results


def static_encoder(settings: Any, onnx: Any = None) -> Any:
    """The service's static question encoder over the fp32 ONNX model (``onnx`` when it is
    already loaded), or None without a table."""
    from rag.engine import Engine
    from rag.static_query import table_path

    static = settings.model_copy(update={"fast_query_encoder": "static"})
    if not table_path(static).is_file():
        return None
    return Engine(static, encoder=onnx, use_reranker="off").load_models().fast_encoder


def table(results: dict[str, Any]) -> str:
    rows = [
        "| backend | stage | n | p50 ms | p95 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for backend in ("torch", "onnx", "onnx-int8q", "static"):
        for stage in ("encode_query", "fast", "accurate"):
            s = results.get(backend, {}).get(stage)
            if s:
                rows.append(
                    f"| {backend} | {stage} | {s['n']} | {s['p50']:.2f} | {s['p95']:.2f} | "
                    f"{s['p99']:.2f} |"
                )
    for slow, fast in (("torch", "onnx"), ("onnx", "onnx-int8q"), ("onnx", "static")):
        if slow in results and fast in results:
            for stage in ("encode_query", "fast", "accurate"):
                a, b = results[slow].get(stage), results[fast].get(stage)
                if a and b:
                    ratio = a["p50"] / b["p50"]
                    rows.append(f"| {slow}/{fast} | {stage} p50 ratio | | {ratio:.1f}x | | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="questions per mode (ONNX)")
    parser.add_argument("--before-n", type=int, default=200, help="questions per mode (torch)")
    parser.add_argument(
        "--accurate-n", type=int, default=200, help="at most this many in accurate mode"
    )
    args = parser.parse_args(argv)
    results = run(args.n, args.before_n, args.accurate_n)
    save("latency", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

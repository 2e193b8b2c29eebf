"""Indexing throughput: paragraphs per second and peak memory embedding the external
benchmark corpus (``../shared/benchmarks/retrieval_bench``), and what each speed-up costs in
retrieval quality (dense Recall@5 against the benchmark's gold paragraphs).

``python -m bench.indexing [--paragraphs N] [--queries-per-source 300]``: each variant runs
in its own process (so its peak memory is its own), with a progress bar:

- ``st-loop``: a plain ``SentenceTransformer.encode`` loop over batches of 32 in file order
  (the baseline the issue names);
- ``st-call``: one ``SentenceTransformer.encode`` call (it sorts by length itself);
- ``onnx``: this project's encoder, the ONNX export, length-sorted batches under a token
  budget (same vectors as torch);
- ``onnx-int8``: the same with int8 weights (different vectors: quality measured).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

from bench.common import REPO, RETRIEVAL_BENCH, WORK, peak_rss_mb, require_shared, save

VARIANTS = ("st-loop", "st-call", "onnx", "onnx-int8")


def corpus(paragraphs: int | None, per_source: int, seed: int = 0) -> tuple[list[str], Any]:
    from eval.bench import choose_paragraphs, load_bench, sample_queries

    require_shared()
    data = load_bench(RETRIEVAL_BENCH)
    queries = sample_queries(data.queries, per_source, seed)
    ids = choose_paragraphs(list(data.texts), queries, paragraphs, seed)
    known = set(ids)
    queries = [q for q in queries if any(p in known for p in q.relevant)]
    return ids, (data, queries)


def encode_variant(variant: str, texts: list[str], queries: list[str]) -> dict[str, Any]:
    """Runs in the child process: embed ``texts`` with ``variant``; time and vectors."""
    from rag.embed import SentenceTransformerEncoder, resolve_model_path
    from rag.settings import BUNDLED_MODEL

    start_rss = peak_rss_mb()
    if variant.startswith("st-"):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(resolve_model_path(BUNDLED_MODEL), device="cpu")
        model.encode(texts[:64], batch_size=32)  # warm-up

        def encode(items: list[str], progress: bool) -> np.ndarray:
            if variant == "st-call":
                return np.asarray(
                    model.encode(
                        items,
                        batch_size=32,
                        normalize_embeddings=True,
                        show_progress_bar=progress,
                    )
                )
            from tqdm import tqdm

            out = []
            for i in tqdm(range(0, len(items), 32), disable=not progress, desc="st-loop"):
                out.append(model.encode(items[i : i + 32], normalize_embeddings=True))
            return np.concatenate(out)

        t = time.perf_counter()
        docs = encode(texts, True)
        seconds = time.perf_counter() - t
        qv = encode(queries, False)
    else:
        encoder = SentenceTransformerEncoder(
            backend="onnx", quantized=variant == "onnx-int8"
        ).load()
        encoder.encode(texts[:64])  # warm-up
        t = time.perf_counter()
        docs = encoder.encode(texts, progress=True)
        seconds = time.perf_counter() - t
        qv = encoder.encode(queries, kind="query")
    return {
        "seconds": seconds,
        "docs": docs.astype(np.float32),
        "queries": qv.astype(np.float32),
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": start_rss,
    }


def recall_at_5(docs: np.ndarray, qv: np.ndarray, ids: list[str], queries: list[Any]) -> dict:
    top = np.argsort(-(qv @ docs.T), axis=1)[:, :5]
    by_source: dict[str, list[float]] = {}
    for q, row in zip(queries, top, strict=True):
        hit = any(ids[i] in q.relevant for i in row)
        by_source.setdefault(q.source, []).append(float(hit))
    out = {s: float(np.mean(v)) for s, v in sorted(by_source.items())}
    out["all"] = float(np.mean([x for v in by_source.values() for x in v]))
    return out


def run(paragraphs: int | None, per_source: int, variants: tuple[str, ...]) -> dict[str, Any]:
    ids, (data, queries) = corpus(paragraphs, per_source)
    texts = [data.texts[i] for i in ids]
    work = WORK / "indexing"
    work.mkdir(parents=True, exist_ok=True)
    (work / "texts.json").write_text(json.dumps(texts))
    (work / "queries.json").write_text(json.dumps([q.text for q in queries]))
    results: dict[str, Any] = {"paragraphs": len(texts), "queries": len(queries), "variants": {}}
    for variant in variants:
        subprocess.run(
            [sys.executable, "-m", "bench.indexing", "--child", variant],
            cwd=REPO,
            check=True,
        )
        meta = json.loads((work / f"{variant}.json").read_text())
        vectors = np.load(work / f"{variant}.npz")
        meta["paragraphs_per_s"] = len(texts) / meta["seconds"]
        meta["recall@5"] = recall_at_5(vectors["docs"], vectors["queries"], ids, queries)
        results["variants"][variant] = meta
    base = results["variants"].get("st-loop")
    if base:
        for meta in results["variants"].values():
            meta["speedup_vs_st_loop"] = meta["paragraphs_per_s"] / base["paragraphs_per_s"]
            meta["recall@5_delta"] = meta["recall@5"]["all"] - base["recall@5"]["all"]
    return results


def child(variant: str) -> None:
    work = WORK / "indexing"
    texts = json.loads((work / "texts.json").read_text())
    queries = json.loads((work / "queries.json").read_text())
    out = encode_variant(variant, texts, queries)
    np.savez(work / f"{variant}.npz", docs=out.pop("docs"), queries=out.pop("queries"))
    (work / f"{variant}.json").write_text(json.dumps(out))


def table(results: dict[str, Any]) -> str:
    rows = [
        f"{results['paragraphs']} paragraphs, {results['queries']} queries",
        "",
        "| variant | paragraphs/s | vs st-loop | peak RSS MB | Recall@5 | Δ Recall@5 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in results["variants"].items():
        rows.append(
            f"| {name} | {m['paragraphs_per_s']:.1f} | {m.get('speedup_vs_st_loop', 1):.2f}x | "
            f"{m['peak_rss_mb']:.0f} | {m['recall@5']['all']:.3f} | "
            f"{m.get('recall@5_delta', 0):+.3f} |"
        )
    sources = sorted(next(iter(results["variants"].values()))["recall@5"])
    rows += ["", "| variant | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    for name, m in results["variants"].items():
        rows.append(f"| {name} | " + " | ".join(f"{m['recall@5'][s]:.3f}" for s in sources) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.indexing", description=__doc__)
    parser.add_argument("--paragraphs", type=int, default=0, help="0: the whole corpus (7,733)")
    parser.add_argument("--queries-per-source", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    results = run(args.paragraphs or None, args.queries_per_source, tuple(args.variants))
    save("indexing", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Experiment: a static question encoder in the bundled MiniLM's own 384-d space (issue 16).

``python -m bench.static_query [--fit 8000] [--per-source 500] [--latency-n 300] [--seed 0]``

Fast mode spends most of an answer in the ONNX all-MiniLM-L6-v2 question encoder. This asks
whether a *static* question encoder (a table of one vector per vocabulary token, a weighted
mean of the question's rows, normalised) can stand in for it while the index stays as it is:
passages and sentences keep their MiniLM vectors, so the static vectors must land in the same
space. Nothing is downloaded; everything is built here from the bundled model, by the
service's own recipe (:mod:`rag.static_build`):

1. **distilled** (model2vec's distillation, done here with torch so that no new dependency is
   needed: ``distill`` with ``pca_dims=None``, ``sif_coefficient=1e-4``, mean pooling): each
   vocabulary token alone, ``[CLS] token [SEP]``, through MiniLM, mean-pooled: a 30,522 x 384
   table. A question is the SIF-weighted mean of its tokens' rows (no special tokens).
2. **mapped**: an affine map (ridge least squares, lambda chosen on a validation part) fitted
   so that map(distilled(q)) approximates MiniLM(q) on training questions. The map is linear,
   so it is folded into the table: the encoder stays a table look-up.
3. **tuned**: the mapped table fine-tuned by gradient descent (sparse Adam, cosine loss to
   MiniLM's vector, early stop on the validation part), as model2vec's *tokenlearn* does.

Training questions come from ``../shared/benchmarks/retrieval_bench`` only: its gold
paragraphs are split in two with ``--seed``; ``--fit`` questions about one half train (the last
tenth of them validates), and ``--per-source`` questions of each source about the other half
evaluate. The project's own question sets are never fitted on. The seed article's questions
(``eval/questions.jsonl``) are reported only.

Measured, each against the service's ONNX encoder (fp32, the default; int8 questions,
``RAG_QUERY_INT8``, alongside):

- encode latency per question, one thread, the service's call (``encode([q], kind="query")``),
  the encoders taking turns on the same questions;
- cosine to MiniLM's (fp32) vector on the held-out questions;
- first-stage Recall@1/@5, dense alone and hybrid (BM25 fused as the service fuses, from the
  settings), over all 7,733 benchmark paragraphs (``eval.bench``: ``paragraph_corpus``,
  ``rank_queries``), per source, with a paired bootstrap interval of the change;
- the seed article: its questions through the service's own evaluation path
  (``eval.runner.run_questions``, fast answers, abstention by the support threshold for every
  encoder), Recall@1/@5 and answer hit; and the in-process fast ``answer()`` latency.

Artefacts (the distilled table, MiniLM's vectors of the training questions, the fitted tables,
a seed index) go to ``var/static-query/``; the results to
``var/bench/results/static_query.json``. The service's table (``rag eval static-query``,
``RAG_FAST_QUERY_ENCODER=static``) is fitted by the same recipe on all the training half's
questions, not ``--fit`` of them; when it is built (and ``--seed`` is its split's, 0), it is
measured too, as ``service``. docs/static-query.md has the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    REPO,
    RETRIEVAL_BENCH,
    SEED_DATA,
    SQUAD2,
    cpu_summary,
    load_average,
    percentiles,
    save,
)
from rag.static_build import Pairs, Recipe, distill, fit_map, tune
from rag.static_query import StaticQueryEncoder, sif_weights

OUT = REPO / "var" / "static-query"
#: Where eval.bench caches the benchmark paragraphs' MiniLM vectors (shared, read-only here).
BENCH_CACHE = REPO / "var" / "cache"
VARIANTS = ("distilled", "mapped", "tuned")


# ------------------------------------------------------------------------- building it


def model_folder() -> Path:
    from rag.embed import resolve_model_path
    from rag.settings import BUNDLED_MODEL

    return Path(resolve_model_path(BUNDLED_MODEL))


def static_tokenizer(folder: Path, max_tokens: int) -> Any:
    from rag.onnx import load_tokenizer

    return load_tokenizer(folder, max_length=max_tokens)


def static_encoder(teacher: Any, table: np.ndarray, folder: Path) -> StaticQueryEncoder:
    return StaticQueryEncoder(teacher, table, folder).load()


def distill_table(folder: Path, out: Path) -> np.ndarray:
    """The whole vocabulary distilled (:func:`rag.static_build.distill`), cached by the
    weights' digest."""
    from rag.embed import weights_digest

    path = out / f"distilled-{weights_digest(folder)[:16]}.npy"
    if path.is_file():
        return np.load(path)
    table = distill(folder)
    out.mkdir(parents=True, exist_ok=True)
    np.save(path, table)
    return table


def key_of(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"\x00" + str(part).encode("utf-8"))
    return digest.hexdigest()[:16]


def teacher_vectors(teacher: Any, texts: Sequence[str], out: Path) -> np.ndarray:
    """MiniLM's (fp32 ONNX) vectors of ``texts``, cached under ``out``."""
    path = out / f"teacher-{key_of(teacher.name, *texts)}.npy"
    if path.is_file():
        return np.load(path)
    vectors = teacher.encode(list(texts), kind="query")
    out.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


# ------------------------------------------------------------------------- the data


def lscpu_flags() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("Flags:"):
            return line.split(":", 1)[1].strip()
    return ""


def uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


# ------------------------------------------------------------------------- measuring


def time_round_robin(
    encoders: dict[str, Any], questions: Sequence[str], call: Any
) -> dict[str, dict[str, float]]:
    """``call(encoder, question)`` timed per question, the encoders taking turns (the order
    rotating) so that a drift in the machine's speed falls on all of them alike."""
    names = list(encoders)
    for q in questions[:10]:  # warm-up
        for name in names:
            call(encoders[name], q)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i, q in enumerate(questions):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t = time.perf_counter()
            call(encoders[name], q)
            samples[name].append((time.perf_counter() - t) * 1000)
    return {n: percentiles(s) for n, s in samples.items()}


def paired_interval(new: Sequence[float], old: Sequence[float]) -> tuple[float, float]:
    from eval.metrics import mean_interval

    lo, hi = mean_interval([a - b for a, b in zip(new, old, strict=True)])
    return round(lo, 4), round(hi, 4)


def bench_retrieval(
    encoders: dict[str, Any], teacher: Any, queries: Sequence[Any], settings: Any, seed: int
) -> dict[str, Any]:
    """Recall@1/@5 per source, dense and hybrid, over every benchmark paragraph; the change
    against ``onnx-fp32`` with a paired bootstrap interval."""
    from eval.bench import (
        choose_paragraphs,
        embed_cached,
        load_bench,
        paragraph_corpus,
        rank_queries,
        source_values,
    )

    data = load_bench(RETRIEVAL_BENCH)
    ids = choose_paragraphs(list(data.texts), queries, None, seed)  # all of them
    texts = [data.texts[i] for i in ids]
    vectors = embed_cached(teacher, texts, BENCH_CACHE, progress=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus = paragraph_corpus(
            ids,
            texts,
            vectors,
            model=teacher.name,
            stemming=settings.bm25_stemming,
            spelling=settings.spell_correction,
        )
    values: dict[str, Any] = {}
    for name, encoder in encoders.items():
        modes = ["bm25", "dense", "hybrid"] if name == "onnx-fp32" else ["dense", "hybrid"]
        runs = rank_queries(corpus, encoder, queries, modes, settings)
        values[name] = source_values(queries, runs, ("recall@1", "recall@5"))
    base = values["onnx-fp32"]
    result: dict[str, Any] = {"paragraphs": len(ids), "questions": len(queries), "rows": []}
    for name, by_source in values.items():
        for source, by_mode in by_source.items():
            for mode, metrics in by_mode.items():
                row = {"encoder": name, "source": source, "mode": mode}
                for metric, vals in metrics.items():
                    row[metric] = round(float(np.mean(vals)), 4)
                    if name != "onnx-fp32" and mode in base[source]:
                        row[f"{metric} change"] = round(
                            float(np.mean(vals)) - float(np.mean(base[source][mode][metric])), 4
                        )
                        row[f"{metric} interval"] = paired_interval(
                            vals, base[source][mode][metric]
                        )
                result["rows"].append(row)
    return result


def support_auc(outcomes: Sequence[Any]) -> float | None:
    """How well the answer's support (margin over the threshold) tells answerable questions
    from unanswerable ones, whatever the threshold: P(answerable's > unanswerable's), ties
    half. Questions the service asks as *who said what* keep its decision, as elsewhere."""
    pos = np.array([o.support for o in outcomes if o.answerable], dtype=float)
    neg = np.array([o.support for o in outcomes if not o.answerable], dtype=float)
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return round(float(greater + ties / 2), 4)


def seed_results(
    encoders: dict[str, Any], teacher: Any, settings: Any, latency_n: int
) -> dict[str, Any]:
    """The seed article's questions through the evaluation path (fast answers, support
    threshold), and the in-process fast answer() latency with each encoder."""
    from eval.dataset import DEFAULT_QUESTIONS, load_question_set
    from eval.metrics import answer_hit, ranking_scores, summarize
    from eval.runner import eval_engine, index_dir_for, open_eval_corpus, run_questions
    from rag.pipeline import answer

    qset = load_question_set(DEFAULT_QUESTIONS, squad_path=SQUAD2, data_dir=SEED_DATA)
    corpus = open_eval_corpus(
        list(qset.documents.values()), teacher, settings, index_dir_for(OUT, teacher)
    )
    modes = ["dense", "hybrid"]
    quality: dict[str, Any] = {}
    per_question: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name, encoder in encoders.items():
        engine = eval_engine(settings, modes, encoder=encoder, abstention={})
        outcomes = run_questions(list(qset.questions), corpus, engine, modes)
        quality[name] = {}
        for mode, items in outcomes.items():
            kept = summarize(items, 0.0)  # outcomes hold margins over the threshold
            every = summarize(items, -math.inf)  # no abstention: is the quote chosen right?
            quality[name][mode] = {
                "recall@1": kept["recall@1"],
                "recall@5": kept["recall@5"],
                "answer_hit": kept["answer_hit"],
                "false_abstention": kept["false_abstention"],
                "abstention_recall": kept["abstention_recall"],
                "answer_hit_no_abstention": every["answer_hit"],
                "support_auc": support_auc(items),
            }
            answerable = [o for o in items if o.answerable]
            r1 = ranking_scores(
                {o.id: o.gold_paragraphs for o in answerable},
                {o.id: o.ranked for o in answerable},
                ("recall@1",),
            )["recall@1"]
            per_question.setdefault(name, {})[mode] = {
                "recall@1": [r1[o.id] for o in answerable],
                "answer_hit_no_abstention": [float(answer_hit(o, -math.inf)) for o in answerable],
            }
    changes: dict[str, Any] = {}
    for name, by_mode in per_question.items():
        if name == "onnx-fp32":
            continue
        changes[name] = {
            mode: {
                metric: {
                    "change": round(
                        float(np.mean(vals))
                        - float(np.mean(per_question["onnx-fp32"][mode][metric])),
                        4,
                    ),
                    "interval": paired_interval(vals, per_question["onnx-fp32"][mode][metric]),
                }
                for metric, vals in by_metric.items()
            }
            for mode, by_metric in by_mode.items()
        }
    questions = [q.question for q in qset.questions]
    asked = (questions * (latency_n // max(len(questions), 1) + 1))[:latency_n]
    latency = time_round_robin(
        encoders,
        asked,
        lambda enc, q: answer(corpus, enc, q, settings=settings, mode="fast", abstention={}),
    )
    return {
        "questions": len(questions),
        "answerable": sum(1 for q in qset.questions if q.answerable),
        "quality": quality,
        "changes": changes,
        "fast_answer_ms": latency,
    }


# ------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from eval.bench import load_bench, sample_queries, split_by_paragraph
    from eval.cli import STATIC_SPLIT_SEED
    from rag.embed import SentenceTransformerEncoder
    from rag.settings import BUNDLED_MODEL, Settings
    from rag.static_query import table_path

    started = time.perf_counter()
    out: Path = args.out
    load_before = load_average()
    settings = Settings()
    folder = model_folder()
    teacher = SentenceTransformerEncoder(
        BUNDLED_MODEL, backend="onnx", cache_dir=settings.model_cache_dir
    ).load()
    int8 = SentenceTransformerEncoder(
        BUNDLED_MODEL, backend="onnx", cache_dir=settings.model_cache_dir, query_int8=True
    ).load()
    tokenizer = static_tokenizer(folder, teacher.max_tokens)

    data = load_bench(RETRIEVAL_BENCH)
    train_pool, test_pool = split_by_paragraph(data, args.seed)
    rng = random.Random(args.seed)
    fit = rng.sample(train_pool, min(args.fit, len(train_pool)))
    n_val = max(200, len(fit) // 10)
    tests = sample_queries(test_pool, args.per_source, args.seed)

    table = distill_table(folder, out)
    weights = sif_weights(len(table))
    y_fit = teacher_vectors(teacher, [q.text for q in fit], out)
    ids = [list(tokenizer.encode(q.text, add_special_tokens=False).ids) or [101] for q in fit]
    pairs = Pairs.split(ids, y_fit, n_val)

    fitted: dict[str, Any] = {"train": len(pairs.train), "validation": n_val}
    key = key_of(len(table), *[q.id for q in fit])
    mapped_path = out / f"mapped-{key}.npz"
    if mapped_path.is_file():
        saved = np.load(mapped_path)
        mapped, lam, map_val = saved["table"], float(saved["lam"]), float(saved["val"])
    else:
        mapped, lam, map_val = fit_map(table, weights, pairs)
        np.savez(mapped_path, table=mapped, lam=lam, val=map_val)
    fitted["map"] = {"lambda": lam, "validation_cosine": round(map_val, 4)}
    tuned_path = out / f"tuned-{key_of(key, args.epochs, args.lr, args.seed)}.npz"
    t0 = time.perf_counter()
    if tuned_path.is_file():
        saved = np.load(tuned_path)
        tuned, epoch, tune_val = saved["table"], int(saved["epoch"]), float(saved["val"])
    else:
        recipe = Recipe(epochs=args.epochs, lr=args.lr, seed=args.seed)
        tuned, epoch, tune_val = tune(mapped, weights, pairs, recipe, say=lambda _: None)
        np.savez(tuned_path, table=tuned, epoch=epoch, val=tune_val)
    fitted["tune"] = {
        "best_epoch": epoch,
        "validation_cosine": round(tune_val, 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "lr": args.lr,
    }

    statics = {
        name: static_encoder(teacher, t, folder)
        for name, t in (("distilled", table), ("mapped", mapped), ("tuned", tuned))
    }
    # The service's own table (`rag eval static-query`: the same recipe on all the training
    # half's questions), when it is built and this run's split is the one it trained on.
    service = table_path(settings)
    if args.seed == STATIC_SPLIT_SEED and service.is_file():
        statics["service"] = StaticQueryEncoder(teacher, service, folder).load()
    encoders: dict[str, Any] = {"onnx-fp32": teacher, "onnx-int8q": int8, **statics}

    # Cosine to MiniLM (fp32) on the held-out questions.
    test_texts = [q.text for q in tests]
    reference = teacher.encode(test_texts, kind="query")
    cos: dict[str, Any] = {}
    for name, encoder in encoders.items():
        if name == "onnx-fp32":
            continue
        c = np.sum(encoder.encode(test_texts, kind="query") * reference, axis=1)
        cos[name] = {
            "mean": round(float(c.mean()), 4),
            "p10": round(float(np.percentile(c, 10)), 4),
            "min": round(float(c.min()), 4),
        }
    print("cosine done", flush=True)

    # Encode latency, one thread, the service's call.
    latency = time_round_robin(
        {"onnx-fp32": teacher, "onnx-int8q": int8, "static": statics["tuned"]},
        test_texts[: args.latency_n],
        lambda enc, q: enc.encode([q], kind="query"),
    )
    print("latency done", flush=True)

    retrieval = bench_retrieval(encoders, teacher, tests, settings, args.seed)
    print("retrieval done", flush=True)
    seed = seed_results(
        {
            "onnx-fp32": teacher,
            "onnx-int8q": int8,
            "static (tuned)": statics["tuned"],
            "static (mapped)": statics["mapped"],
            **({"static (service)": statics["service"]} if "service" in statics else {}),
        },
        teacher,
        settings,
        args.latency_n,
    )
    return {
        "command": "python -m bench.static_query " + " ".join(sys.argv[1:]),
        "cpu": cpu_summary(),
        "lscpu_flags": lscpu_flags(),
        "uptime_before": load_before,
        "uptime_after": uptime(),
        "seconds": round(time.perf_counter() - started),
        "settings": {
            "fusion": settings.fusion,
            "dense_weight": settings.tuning.dense_weight,
            "candidates": settings.tuning.candidates,
            "rrf_k": settings.tuning.rrf_k,
        },
        "split": {
            "seed": args.seed,
            "train_pool": len(train_pool),
            "test_pool": len(test_pool),
            "fit": len(fit),
            "evaluated": len(tests),
        },
        "fitted": fitted,
        "cosine": cos,
        "encode_ms": latency,
        "retrieval": retrieval,
        "seed_article": seed,
    }


# ------------------------------------------------------------------------- printing


def change(row: dict[str, Any], metric: str) -> str:
    """``+0.012 (-0.003..+0.027)``: a row's change against onnx-fp32 and its interval."""
    if f"{metric} change" not in row:
        return ""
    lo, hi = row[f"{metric} interval"]
    return f"{row[f'{metric} change']:+.3f} ({lo:+.3f}..{hi:+.3f})"


def table(result: dict[str, Any]) -> str:
    lines = [
        f"CPU: {result['cpu']}; load average before {result['uptime_before']}, "
        f"after: {result['uptime_after']}",
        "",
        "Encode one question, one thread (ms):",
        "| encoder | p50 | p95 | mean |",
        "|---|---:|---:|---:|",
    ]
    for name, p in result["encode_ms"].items():
        lines.append(f"| {name} | {p['p50']:.3f} | {p['p95']:.3f} | {p['mean']:.3f} |")
    lines += [
        "",
        "Cosine to MiniLM fp32, held-out questions:",
        "| encoder | mean | p10 | min |",
        "|---|---:|---:|---:|",
    ]
    for name, c in result["cosine"].items():
        lines.append(f"| {name} | {c['mean']:.3f} | {c['p10']:.3f} | {c['min']:.3f} |")
    r = result["retrieval"]
    lines += [
        "",
        f"First stage over {r['paragraphs']} benchmark paragraphs, {r['questions']} held-out "
        "questions (change vs onnx-fp32, 95% paired bootstrap interval):",
        "| source | mode | encoder | R@1 | R@5 | R@1 change | R@5 change |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    rows = sorted(
        r["rows"], key=lambda x: (x["source"] != "all", x["source"], x["mode"] != "bm25", x["mode"])
    )
    for row in rows:
        lines.append(
            f"| {row['source']} | {row['mode']} | {row['encoder']} | {row['recall@1']:.3f} | "
            f"{row['recall@5']:.3f} | {change(row, 'recall@1')} | {change(row, 'recall@5')} |"
        )
    s = result["seed_article"]
    lines += [
        "",
        f"Seed article, {s['questions']} questions ({s['answerable']} answerable), fast answers:",
        "| encoder | mode | R@1 | R@5 | answer hit | false abst. | abst. recall "
        "| hit, no abst. | support AUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_mode in s["quality"].items():
        for mode, m in by_mode.items():
            lines.append(
                f"| {name} | {mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | "
                f"{m['answer_hit']:.3f} | {m['false_abstention']:.3f} | "
                f"{m['abstention_recall']:.3f} | {m['answer_hit_no_abstention']:.3f} | "
                f"{m['support_auc']:.3f} |"
            )
    lines += [
        "",
        "Seed article, answerable questions, change vs onnx-fp32 (95% paired bootstrap interval):",
        "| encoder | mode | R@1 change | hit, no abst. change |",
        "|---|---|---:|---:|",
    ]
    for name, by_mode in s.get("changes", {}).items():
        for mode, m in by_mode.items():
            cells = [
                f"{m[k]['change']:+.3f} ({m[k]['interval'][0]:+.3f}..{m[k]['interval'][1]:+.3f})"
                for k in ("recall@1", "answer_hit_no_abstention")
            ]
            lines.append(f"| {name} | {mode} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "Seed article, fast answer() in process (ms):",
        "| encoder | p50 | p95 |",
        "|---|---:|---:|",
    ]
    for name, p in s["fast_answer_ms"].items():
        lines.append(f"| {name} | {p['p50']:.2f} | {p['p95']:.2f} |")
    f = result["fitted"]
    lines += [
        "",
        f"Fitted on {f['train']} questions (validation {f['validation']}): map lambda "
        f"{f['map']['lambda']:g}, validation cosine {f['map']['validation_cosine']:.3f}; tuned "
        f"{f['tune']['best_epoch']} epochs, validation cosine "
        f"{f['tune']['validation_cosine']:.3f}. Run took {result['seconds']} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.static_query",
        description="A static question encoder mapped into MiniLM's space against the ONNX "
        "encoder: latency, cosine, first-stage recall (docs/static-query.md).",
    )
    parser.add_argument("--fit", type=int, default=8000, help="training questions (default 8000)")
    parser.add_argument(
        "--per-source", type=int, default=500, help="held-out questions per source (500)"
    )
    parser.add_argument(
        "--latency-n", type=int, default=300, help="questions timed per encoder (300)"
    )
    parser.add_argument("--epochs", type=int, default=12, help="most tuning epochs (12)")
    parser.add_argument("--lr", type=float, default=1e-3, help="tuning learning rate (1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="split and sampling seed (0)")
    parser.add_argument("--out", type=Path, default=OUT, help="artefacts folder (var/static-query)")
    args = parser.parse_args(argv)
    if not (RETRIEVAL_BENCH / "queries.jsonl").is_file():
        print(f"the external benchmark is missing ({RETRIEVAL_BENCH})", file=sys.stderr)
        return 2
    result = run(args)
    path = save("static_query", result)
    print(table(result))
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

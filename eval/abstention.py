"""Learn the abstention rule on real questions: ``rag eval --learn-abstention --squad2 FILE``.

Every SQuAD 2.0 dev article is indexed together; each question (answerable or not) is
answered in both modes with abstention off, and the signals the pipeline saw are kept
(:func:`rag.abstain.signals`). Articles are split in two by a hash of their id: a logistic
model per mode is fitted on the questions of one part and reported on the other, so no
article's questions are on both sides. The parameters are written to ``rag/abstention/`` with
the models they belong to and the held-out figures.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.dataset import EvalQuestion
from eval.run import in_calibration_part, index_dir_for, one_thread, open_eval_corpus
from rag.abstain import (
    ACCURATE_SIGNALS,
    FAST_SIGNALS,
    SHIPPED_DIR,
    AbstentionModel,
    fit,
    shipped_path,
)
from rag.chunk import CHUNKER_VERSION
from rag.embed import Encoder
from rag.rerank import Reranker
from rag.retrieve import Corpus
from rag.settings import Settings

MODES = ("fast", "accurate")
#: The shipped threshold keeps false abstentions on the training part's answerable questions
#: at or below this share: refusing an answerable question costs the reader more than
#: quoting a near miss, which they can check against the span.
MAX_FALSE_ABSTENTION = 0.05
FEATURES = {"fast": FAST_SIGNALS, "accurate": ACCURATE_SIGNALS}


@dataclass(frozen=True)
class Row:
    id: str
    doc_id: str
    answerable: bool
    signals: Mapping[str, Mapping[str, float]]  # mode -> signal name -> value


def collect(
    questions: Sequence[EvalQuestion],
    corpus: Corpus,
    encoder: Encoder,
    reranker: Reranker,
    settings: Settings,
    *,
    progress: bool = False,
) -> list[Row]:
    """Each question answered in both modes (abstention off), with the signals seen."""
    from rag.pipeline import answer

    rows = []
    with one_thread():
        for q in tqdm(questions, desc="signals", unit="q", disable=not progress):
            seen: dict[str, Mapping[str, float]] = {}
            for mode in MODES:
                result = answer(
                    corpus,
                    encoder,
                    q.question,
                    settings=settings,
                    mode=mode,
                    reranker=reranker,
                    abstain=False,
                )
                seen[mode] = dict(result.signals)
            rows.append(Row(q.id, q.doc_id or "", q.answerable, seen))
    return rows


def cache_key(encoder: Encoder, reranker: Reranker, settings: Settings, ids: Sequence[str]) -> str:
    parts = [
        encoder.query_name,
        reranker.name,
        CHUNKER_VERSION,
        str(settings.pair_margin),
        ",".join(ACCURATE_SIGNALS),  # a new signal needs new rows
        f"{settings.retrieval_mode}/{settings.candidates}/{settings.fusion}",
        f"{settings.dense_weight}/{settings.rrf_k}",
        f"{settings.rerank_candidates}/{settings.rerank_max_length}/{settings.top_k}",
        f"{settings.rerank_first}/{settings.rerank_stop}",
        f"{settings.rerank_window_words}/{settings.rerank_window_margin}",
        *sorted(ids),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def load_rows(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        rows.append(Row(d["id"], d["doc_id"], d["answerable"], d["signals"]))
    return rows


def save_rows(path: Path, rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "".join(
            json.dumps(
                {"id": r.id, "doc_id": r.doc_id, "answerable": r.answerable, "signals": r.signals}
            )
            + "\n"
            for r in rows
        ),
        encoding="utf-8",
    )
    tmp.replace(path)


def decision_metrics(model: AbstentionModel, rows: Sequence[Row]) -> dict[str, float | int]:
    """Accuracy of the answer/abstain decision, and abstention recall, precision and false
    abstentions, over ``rows``."""
    usable = [r for r in rows if r.signals.get(model.mode)]
    refused = [r for r in usable if model.probability(r.signals[model.mode]) < model.threshold]
    refused_ids = {r.id for r in refused}
    answerable = [r for r in usable if r.answerable]
    unanswerable = [r for r in usable if not r.answerable]
    right = sum(1 for r in usable if (r.id in refused_ids) != r.answerable)
    refused_unanswerable = sum(1 for r in unanswerable if r.id in refused_ids)
    refused_answerable = sum(1 for r in answerable if r.id in refused_ids)

    def share(n: int, d: int) -> float:
        return round(n / d, 4) if d else 0.0

    return {
        "questions": len(usable),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "accuracy": share(right, len(usable)),
        "abstention_recall": share(refused_unanswerable, len(unanswerable)),
        "abstention_precision": share(refused_unanswerable, len(refused)),
        "false_abstention": share(refused_answerable, len(answerable)),
    }


def learn(
    rows: Sequence[Row],
    encoder: Encoder,
    reranker: Reranker,
    *,
    source: str,
    command: str,
) -> dict[str, tuple[AbstentionModel, dict[str, Any]]]:
    """Per mode: the model fitted on the training articles, and its figures on both parts."""
    train = [r for r in rows if in_calibration_part(r.doc_id)]
    held = [r for r in rows if not in_calibration_part(r.doc_id)]
    out: dict[str, tuple[AbstentionModel, dict[str, Any]]] = {}
    for mode in MODES:
        usable = [r for r in train if r.signals.get(mode)]
        model = fit(
            [r.signals[mode] for r in usable],
            [r.answerable for r in usable],
            FEATURES[mode],
            mode=mode,
            encoder=encoder.query_name,
            reranker=reranker.name if mode == "accurate" else "",
            chunker_version=CHUNKER_VERSION,
            max_false_abstention=MAX_FALSE_ABSTENTION,
        )
        balanced = AbstentionModel(**{**model.__dict__, "threshold": 0.5})
        figures = {
            "train": decision_metrics(model, train),
            "held_out": decision_metrics(model, held),
            "held_out_at_0.5": decision_metrics(balanced, held),
        }
        provenance = {
            "command": command,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "data": source,
            "split": "articles whose id hashes even train, the others are held out",
            "retrieval": "hybrid (the rule applies to hybrid retrieval only)",
            "train_articles": len({r.doc_id for r in train}),
            "held_out_articles": len({r.doc_id for r in held}),
            **figures,
        }
        out[mode] = (
            AbstentionModel(**{**model.__dict__, "provenance": provenance}),
            figures,
        )
    return out


def write_models(models: Mapping[str, AbstentionModel], directory: Path = SHIPPED_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for mode, model in models.items():
        path = shipped_path(mode, directory)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(model.to_json(), encoding="utf-8")
        tmp.replace(path)


def markdown(learned: Mapping[str, tuple[AbstentionModel, Mapping[str, Any]]], command: str) -> str:
    lines = [
        "## Learned abstention (SQuAD 2.0 dev)",
        "",
        f"Command: `{command}`. Every SQuAD 2.0 dev article is indexed together; a logistic "
        "model per mode over the pipeline's signals is fitted on the questions of half of the "
        "articles and measured on the other half (held out). The shipped threshold keeps false "
        f"abstentions on the training part's answerable questions at or below "
        f"{MAX_FALSE_ABSTENTION:.0%}; the `held-out at 0.5` rows show the most accurate "
        "decision on this balanced data instead.",
        "",
        "| mode | part | questions | accuracy | abst. recall | abst. precision | false abst. |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, (_, figures) in learned.items():
        for part in ("train", "held_out", "held_out_at_0.5"):
            f = figures[part]
            label = part.replace("_", "-").replace("-at-", " at ")
            lines.append(
                f"| {mode} | {label} | {f['questions']} | {f['accuracy']:.3f} | "
                f"{f['abstention_recall']:.3f} | {f['abstention_precision']:.3f} | "
                f"{f['false_abstention']:.3f} |"
            )
    lines.append("")
    for mode, (model, _) in learned.items():
        pairs = zip(model.features, model.coef, strict=True)
        weights = ", ".join(f"{n} {c:+.2f}" for n, c in pairs)
        lines.append(
            f"- {mode}: threshold {model.threshold:.3f} on P(answerable); weights on "
            f"standardised signals: {weights}."
        )
    return "\n".join(lines)


def sample_questions(
    questions: Sequence[EvalQuestion], sample: int | None, seed: int
) -> list[EvalQuestion]:
    if sample is None:
        return list(questions)
    rng = random.Random(seed)
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    return [
        *(answerable if len(answerable) <= sample else rng.sample(answerable, sample)),
        *(unanswerable if len(unanswerable) <= sample else rng.sample(unanswerable, sample)),
    ]


def run_learning(
    path: Path,
    encoder: Encoder,
    reranker: Reranker,
    settings: Settings,
    cache_dir: Path,
    *,
    sample: int | None,
    seed: int,
    command: str,
    progress: bool = False,
) -> dict[str, tuple[AbstentionModel, dict[str, Any]]]:
    from eval.bench import squad2_questions
    from eval.squad import load_squad2

    articles = load_squad2(path)
    questions = sample_questions(squad2_questions(articles, None, seed), sample, seed)
    key = cache_key(encoder, reranker, settings, [q.id for q in questions])
    cached = cache_dir / "abstention" / f"signals-{key}.jsonl"
    if cached.is_file():
        rows = load_rows(cached)
    else:
        corpus = open_eval_corpus(
            [a.document for a in articles],
            encoder,
            settings,
            index_dir_for(cache_dir / "squad2-all", encoder),
            progress=progress,
        )
        rows = collect(questions, corpus, encoder, reranker, settings, progress=progress)
        save_rows(cached, rows)
    return learn(rows, encoder, reranker, source=str(path.name), command=command)

"""Experiment: does *semantic coverage* of a question's words by its article help abstention?

``python -m eval.coverage`` (docs/coverage-experiment.md). Not wired into the service.

A question's content words (lower-cased word tokens, minus spaCy's English stop words and the
words that frame a question rather than say what it is about: interrogatives, auxiliaries,
reporting verbs, words for the article and its author) are each embedded with the bundled
encoder, as are the article's distinct content words; a word's coverage is its best cosine to
any article word. An answerable question worded otherwise ("truce" for "ceasefire") keeps its
words close to the article's; a question about something the article never touches should not.
Three features per question, from the question and article text only:

* ``coverage_min``: the lowest coverage of its words;
* ``coverage_low2``: the mean of its two lowest (the lowest alone when there is one word);
* ``coverage_below``: how many of its words are covered below :data:`LOW_COSINE`.

A question without content words is fully covered (1.0, 1.0, 0). The article is the indexed
articles together (:func:`coverage_by_question`), never the question's own ``doc_id``.

The experiment takes each question's existing signals as ``rag eval learn-abstention`` does
(:func:`eval.abstention.run_learning`'s cached rows, built the same way when missing), fits per
mode the same logistic model (:func:`eval.fit.fit`, threshold by
:data:`eval.abstention.MAX_FALSE_ABSTENTION`) on the tuning half, without the vetoed rows, with
the shipped signals and with the shipped signals plus one coverage feature (chosen by repeated
cross-validation on the tuning half only), and prints both models' figures on both halves
(:func:`eval.abstention.decision_metrics`) and each feature's AUROC per half. Only aggregate
figures of the reported half are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS as SPACY_STOP_WORDS

from eval.abstention import (
    FEATURES,
    MAX_FALSE_ABSTENTION,
    MODES,
    Row,
    cache_key,
    collect,
    decision_metrics,
    load_rows,
    save_rows,
    vetoed,
)
from eval.calibration import in_calibration_part
from eval.dataset import QuestionSet
from eval.fit import fit
from eval.runner import index_dir_for, open_eval_corpus
from rag.abstain import AbstentionModel
from rag.chunk import CHUNKER_VERSION
from rag.embed import Encoder
from rag.engine import Engine
from rag.static_build import unit

#: The coverage features, by name (see the module's docstring).
COVERAGE_FEATURES: tuple[str, ...] = ("coverage_min", "coverage_low2", "coverage_below")
#: Words covered below this cosine count towards ``coverage_below``.
LOW_COSINE = 0.5

#: Words that frame a question (or point at the article) rather than say what it asks about;
#: generic, in addition to spaCy's stop words.
_FRAME = """
what when where who whom whose which why how whether
is are was were be been being am do does did done doing have has had having
can could will would shall should may might must
say says said saying tell tells told think thinks thought believe believes
mean means meant describe describes described explain explains explained
mention mentions mentioned argue argues argued claim claims claimed
view views according regard regarding
article text piece essay op ed oped author writer columnist commentator
"""
FRAME_WORDS = frozenset(_FRAME.split())

STOP_WORDS = frozenset(SPACY_STOP_WORDS) | FRAME_WORDS

_WORD = re.compile(r"[a-z0-9]+")


def content_words(text: str) -> list[str]:
    """The distinct content words of ``text``, lower-cased, in order of first occurrence:
    word tokens (letters and digits; hyphens and apostrophes split) of two or more characters,
    minus :data:`STOP_WORDS`."""
    words = _WORD.findall(text.lower().replace("’", "'"))
    return list(dict.fromkeys(w for w in words if len(w) > 1 and w not in STOP_WORDS))


@dataclass(frozen=True)
class ArticleWords:
    """An article's distinct content words and their unit vectors (rows)."""

    words: tuple[str, ...]
    vectors: np.ndarray


def article_words(text: str, encoder: Encoder) -> ArticleWords:
    words = tuple(content_words(text))
    return ArticleWords(words, _unit(encoder.encode(list(words), kind="query")))


def _unit(vectors: np.ndarray) -> np.ndarray:
    return unit(np.asarray(vectors, dtype=np.float64))


def word_coverage(words: Sequence[str], article: ArticleWords, encoder: Encoder) -> np.ndarray:
    """Per word, its best cosine to any of the article's words."""
    if not words or not article.words:
        return np.zeros(len(words), dtype=np.float64)
    vectors = _unit(encoder.encode(list(words), kind="query"))
    return np.asarray((vectors @ article.vectors.T).max(axis=1), dtype=np.float64)


def features_of(cosines: Iterable[float]) -> dict[str, float]:
    """The coverage features from the question words' best cosines."""
    low = sorted(float(c) for c in cosines)
    if not low:
        return {"coverage_min": 1.0, "coverage_low2": 1.0, "coverage_below": 0.0}
    return {
        "coverage_min": low[0],
        "coverage_low2": float(np.mean(low[:2])),
        "coverage_below": float(sum(1 for c in low if c < LOW_COSINE)),
    }


class Coverage:
    """Coverage features of questions against their articles; each article's words are
    embedded once."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._articles: dict[str, ArticleWords] = {}

    def article(self, text: str) -> ArticleWords:
        key = hashlib.sha256(text.encode()).hexdigest()
        if key not in self._articles:
            self._articles[key] = article_words(text, self.encoder)
        return self._articles[key]

    def features(self, question: str, article_text: str) -> dict[str, float]:
        words = content_words(question)
        return features_of(word_coverage(words, self.article(article_text), self.encoder))


# --------------------------------------------------------------------------- the experiment


def signal_rows(
    qset: QuestionSet, engine: Engine, cache_dir: Path, *, progress: bool = False
) -> tuple[list[Row], bool]:
    """Every question's signals in both modes, as :func:`eval.abstention.run_learning` gets
    them (the same cache file; built and saved the same way when missing). Also whether the
    cache held them."""
    settings, reranker = engine.settings, engine.reranker
    if reranker is None:
        raise ValueError("the accurate mode's signals need the reranker")
    encoders = [engine.models.for_request(mode, settings.retrieval_mode)[0] for mode in MODES]
    questions = list(qset.questions)
    key = cache_key(encoders, reranker, settings, [q.id + q.question for q in questions])
    cached = cache_dir / "abstention" / f"signals-{key}.jsonl"
    if cached.is_file():
        return load_rows(cached), True
    corpus = open_eval_corpus(
        list(qset.documents.values()),
        engine.encoder,
        settings,
        index_dir_for(cache_dir, engine.encoder),
        progress=progress,
    )
    rows = collect(questions, corpus, engine, progress=progress)
    save_rows(cached, rows)
    return rows, False


def with_coverage(rows: Sequence[Row], coverage: Mapping[str, Mapping[str, float]]) -> list[Row]:
    """``rows`` with each mode's signals extended by the question's coverage features."""
    return [
        Row(
            r.id,
            r.doc_id,
            r.answerable,
            {mode: {**s, **coverage[r.id]} for mode, s in r.signals.items() if s},
        )
        for r in rows
    ]


def auroc(scores: Sequence[float], answerable: Sequence[bool]) -> float:
    """P(an answerable question scores above an unanswerable one), ties counting half
    (scikit-learn's ROC AUC); NaN when one kind is missing."""
    from sklearn.metrics import roc_auc_score

    if len(set(answerable)) < 2:
        return math.nan
    return float(roc_auc_score(list(answerable), list(scores)))


#: Oriented so that a higher value means better covered (``coverage_below`` counts misses).
ORIENTATION = {"coverage_min": 1.0, "coverage_low2": 1.0, "coverage_below": -1.0}


def _auroc_of(
    feature: str, rows: Sequence[Row], coverage: Mapping[str, Mapping[str, float]]
) -> float:
    scores = [ORIENTATION[feature] * coverage[r.id][feature] for r in rows]
    return round(auroc(scores, [r.answerable for r in rows]), 3)


def _fit(mode: str, rows: Sequence[Row], features: Sequence[str], *, threshold: bool) -> Any:
    return fit(
        [r.signals[mode] for r in rows],
        [r.answerable for r in rows],
        features,
        mode=mode,
        encoder="",
        reranker="",
        chunker_version=CHUNKER_VERSION,
        max_false_abstention=MAX_FALSE_ABSTENTION[mode] if threshold else None,
    )


def cv_log_loss(
    mode: str, rows: Sequence[Row], features: Sequence[str], *, folds: int, repeats: int
) -> float:
    """Mean held-out log loss of the model over repeated stratified ``folds``-fold splits."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    y = np.array([r.answerable for r in rows], dtype=np.int64)
    splits = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=0)
    losses = []
    for train, test in splits.split(np.zeros((len(y), 1)), y):
        model: AbstentionModel = _fit(mode, [rows[i] for i in train], features, threshold=False)
        for i in test:
            p = min(max(model.probability(rows[i].signals[mode]), 1e-6), 1 - 1e-6)
            losses.append(-math.log(p if y[i] else 1 - p))
    return float(np.mean(losses))


def experiment(
    rows: Sequence[Row],
    coverage: Mapping[str, Mapping[str, float]],
    *,
    folds: int = 5,
    repeats: int = 20,
) -> dict[str, Any]:
    """Per mode: cross-validated log loss of each candidate on the tuning half, the chosen
    coverage feature, and both models' decision figures on both halves; plus each coverage
    feature's AUROC per half. Nothing about individual reported-half questions."""
    rows = with_coverage(rows, coverage)
    tuning = [r for r in rows if in_calibration_part(r.id)]
    reported = [r for r in rows if not in_calibration_part(r.id)]
    out: dict[str, Any] = {"modes": {}, "auroc": {}}
    for mode in MODES:
        usable = [r for r in tuning if r.signals.get(mode) and not vetoed(r.signals[mode])]
        shipped = list(FEATURES[mode])
        cv = {
            name: cv_log_loss(mode, usable, [*shipped, *extra], folds=folds, repeats=repeats)
            for name, extra in [("shipped", []), *((f, [f]) for f in COVERAGE_FEATURES)]
        }
        chosen = min(COVERAGE_FEATURES, key=lambda f: cv[f])
        models = {
            "shipped": _fit(mode, usable, shipped, threshold=True),
            "coverage": _fit(mode, usable, [*shipped, chosen], threshold=True),
        }
        out["modes"][mode] = {
            "fitted_on": len(usable),
            # Where the model decides: each half's rows that no veto refuses.
            "auroc_unvetoed": {
                part: {
                    f: _auroc_of(
                        f,
                        [
                            r
                            for r in part_rows
                            if r.signals.get(mode) and not vetoed(r.signals[mode])
                        ],
                        coverage,
                    )
                    for f in COVERAGE_FEATURES
                }
                for part, part_rows in (("tuning", tuning), ("reported", reported))
            },
            "cv_log_loss": {k: round(v, 4) for k, v in cv.items()},
            "chosen": chosen,
            "models": {
                name: {
                    "features": list(m.features),
                    "coef": [round(c, 3) for c in m.coef],
                    "threshold": m.threshold,
                    "tuning": decision_metrics(m, tuning),
                    "reported": decision_metrics(m, reported),
                }
                for name, m in models.items()
            },
        }
    for part, part_rows in (("tuning", tuning), ("reported", reported)):
        out["auroc"][part] = {f: _auroc_of(f, part_rows, coverage) for f in COVERAGE_FEATURES}
        out["auroc"][part]["questions"] = len(part_rows)
        out["auroc"][part]["unanswerable"] = sum(1 for r in part_rows if not r.answerable)
    return out


def table(result: Mapping[str, Any]) -> str:
    lines = [
        "| mode | model | half | accuracy | abst. recall | abst. precision | false abst. |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in result["modes"].items():
        for name, figures in m["models"].items():
            label = "shipped" if name == "shipped" else f"+{m['chosen']}"
            for half in ("tuning", "reported"):
                f = figures[half]
                lines.append(
                    f"| {mode} | {label} | {half} ({f['questions']}) | {f['accuracy']:.3f} | "
                    f"{f['abstention_recall']:.3f} | {f['abstention_precision']:.3f} | "
                    f"{f['false_abstention']:.3f} |"
                )
    return "\n".join(lines)


def coverage_by_question(qset: QuestionSet, encoder: Encoder) -> dict[str, dict[str, float]]:
    """Each question's coverage by the indexed articles, all of them, as the service searches
    them. Never by the question's own ``doc_id``: the set's unanswerable questions have none,
    so that would give away the label."""
    cov = Coverage(encoder)
    text = "\n\n".join(d.text for _, d in sorted(qset.documents.items()))
    return {q.id: cov.features(q.question, text) for q in qset.questions}


def main(argv: Iterable[str] | None = None) -> int:
    from eval.cli import DEFAULT_CACHE
    from eval.dataset import DEFAULT_QUESTIONS, load_question_set
    from eval.runner import ACCURATE, eval_engine, one_thread
    from eval.squad import DEFAULT_PATH as SQUAD2_PATH
    from rag.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m eval.coverage", description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(list(argv) if argv is not None else None)
    started = time.perf_counter()
    settings = get_settings()
    engine = eval_engine(settings, [ACCURATE], abstention={})
    qset = load_question_set(DEFAULT_QUESTIONS, squad_path=SQUAD2_PATH, data_dir=settings.data_dir)
    rows, from_cache = signal_rows(qset, engine, args.cache_dir)
    with one_thread():
        coverage = coverage_by_question(qset, engine.encoder)
    result = experiment(rows, coverage)
    result["signals_from_cache"] = from_cache
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(table(result))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

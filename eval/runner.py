"""Running a question set through the pipeline: each question, in each evaluated mode, becomes
an :class:`~eval.metrics.Outcome`.

Questions are asked through the façade (:meth:`rag.engine.Engine.ask`), twice per mode: with
``top_k=10`` for the ranking metrics, and with the service's own ``top_k`` for the answer span.
Both calls run with abstention switched off, so that the answer and its confidence are kept;
the outcome records the confidence's margin over the mode's threshold, and
:mod:`eval.metrics` abstains below a margin of 0 (the service's own decision). The modes are
the retrieval modes of :data:`rag.retrieve.MODES` answering in ``fast`` mode, and ``accurate``
(reranked hybrid).

A question that asks for someone's words ("what did X say about ...", "according to X, ...",
:func:`rag.speakers.parse_question`) is asked with abstention on, as the service asks it: with
it off, the pipeline keeps the speaker's best statement and skips the who-said-what decisions
(a speaker the articles never quote is refused whatever the confidence, and so is a statement
that does not speak to the question; a question about what X thinks falls back to the other
sentences). Its outcome is the service's decision: a refusal whose confidence cleared the
threshold is recorded with margin -inf, so that no threshold answers it, and the ranking is
that of the passages the service shows. (``rag eval learn-abstention`` still learns from
answers with abstention off, :mod:`eval.abstention`.)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from core.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from core.types import Answer, Document
from eval.dataset import EvalQuestion, QuestionSet, paragraph_id
from eval.metrics import Outcome, TextSpan
from rag.abstain import AbstentionModel
from rag.chunk import CHUNKER_VERSION
from rag.embed import Encoder
from rag.engine import Engine, Request
from rag.rerank import BUNDLED_RERANKER
from rag.rerank import available as reranker_available
from rag.retrieve import MODES, Corpus
from rag.settings import AnswerMode, RetrievalMode, Settings
from rag.speakers import parse_question

REPO = Path(__file__).resolve().parent.parent
EVAL_DIR = REPO / "eval"
DEFAULT_CACHE = REPO / "var" / "cache"
RANKING_DEPTH = 10

#: The evaluated mode that re-ranks hybrid candidates with the cross-encoder; the others are
#: ``fast`` answers with each first-stage retrieval mode.
ACCURATE = "accurate"


@dataclass(frozen=True)
class ModeOptions:
    """How an evaluated mode asks: the answer mode and the first-stage retrieval."""

    answer: AnswerMode
    retrieval: RetrievalMode


def available_modes(reranker: str = BUNDLED_RERANKER) -> tuple[str, ...]:
    """Every mode that can be evaluated here: each retrieval mode (fast), and ``accurate``
    when the reranker model ``reranker`` is installed."""
    return (*MODES, ACCURATE) if reranker and reranker_available(reranker) else tuple(MODES)


def mode_options(mode: str) -> ModeOptions:
    """The answer mode and retrieval of an evaluated mode name."""
    if mode == ACCURATE:
        return ModeOptions("accurate", "hybrid")
    for retrieval in MODES:
        if retrieval == mode:
            return ModeOptions("fast", retrieval)
    raise ValueError(f"unknown evaluated mode {mode!r}")


def eval_engine(
    settings: Settings,
    modes: Sequence[str],
    *,
    encoder: Encoder | None = None,
    abstention: Mapping[str, AbstentionModel] | None = None,
) -> Engine:
    """The engine an evaluation runs on, its models loaded: the cross-encoder only when
    ``accurate`` is among ``modes``, and always with exact integer arithmetic, so that the
    gate gives the same verdict on every CPU. ``encoder`` and ``abstention`` may be given
    ready-made (``{}``: no learned abstention, the support threshold in every mode)."""
    engine = Engine(
        settings,
        encoder=encoder,
        abstention=abstention,
        use_reranker="required" if ACCURATE in modes else "off",
        exact_reranker=True,
    )
    engine.load_models()
    return engine


# --------------------------------------------------------------------------- the corpus


def index_dir_for(cache_dir: Path, encoder: Encoder) -> Path:
    """A persistent index folder for the evaluation, one per model and chunker version; the
    pipeline itself re-embeds only documents that changed."""
    key = hashlib.sha256(f"{encoder.name}\x00{CHUNKER_VERSION}".encode()).hexdigest()[:16]
    return cache_dir / "eval-index" / key


def open_eval_corpus(
    documents: Sequence[Document],
    encoder: Encoder,
    settings: Settings,
    index_dir: Path,
    *,
    progress: bool = False,
) -> Corpus:
    """A corpus holding exactly ``documents``, reusing the cached index when it matches."""
    from rag.build import build_index, load_corpus

    local = settings.model_copy(update={"index_dir": index_dir, "data_dir": index_dir.parent})
    wanted = {d.id: d.sha256 for d in documents}
    rebuild = False
    try:
        corpus = load_corpus(local, encoder)
        if {i: d.sha256 for i, d in corpus.documents.items()} == wanted:
            return corpus
    except IndexNotFound:
        pass
    except (IndexMismatch, IndexCorrupt):
        rebuild = True
    build_index(local, encoder, documents=documents, rebuild=rebuild, progress=progress)
    return load_corpus(local, encoder)


# --------------------------------------------------------------------------- one question


def returned_texts_exact(corpus: Corpus, answer: Answer) -> bool:
    """Whether every text the answer returns equals the document text at its span."""
    items = []
    if answer.answer is not None:
        q = answer.answer
        items.append((q.doc_id, q.start, q.end, q.text))
    for passage in answer.passages:
        c = passage.hit.chunk
        items.append((c.doc_id, c.start, c.end, c.text))
        items.extend((q.doc_id, q.start, q.end, q.text) for q in passage.quotes)
    return all(corpus.documents[d].text[s:e] == t for d, s, e, t in items)


def ranked_paragraphs(answer: Answer) -> tuple[str, ...]:
    """The paragraphs of the answer's passages, best first, each once."""
    ids = (paragraph_id(p.hit.chunk.doc_id, p.hit.chunk.paragraph) for p in answer.passages)
    return tuple(dict.fromkeys(ids))


def asks_for_a_speaker(corpus: Corpus, question: EvalQuestion) -> bool:
    """Whether the pipeline reads ``question`` as asking for someone's words (it parses the
    question with its misspellings corrected, as here)."""
    return parse_question(corpus.speller.correct(question.question)) is not None


def margin(result: Answer, served: bool) -> float:
    """The answer's confidence minus its threshold (-inf without a candidate answer). A
    question asked as the service asks it (``served``) keeps the service's decision: an answer
    has a margin of at least 0, a refusal a negative one (-inf when the confidence cleared the
    threshold and the service refused for who said what)."""
    value = result.confidence - result.threshold
    if result.answer is None:
        return value if served and result.abstained and value < 0 else -math.inf
    return max(value, 0.0) if served else value


def evaluate_question(engine: Engine, corpus: Corpus, question: EvalQuestion, mode: str) -> Outcome:
    """What the pipeline does with ``question`` in the evaluated ``mode``."""
    options = mode_options(mode)
    settings = engine.settings
    served = asks_for_a_speaker(corpus, question)

    def ask(top_k: int | None) -> Answer:
        request = Request(
            question.question,
            top_k=top_k,
            mode=options.answer,
            retrieval=options.retrieval,
            history=question.previous,
            abstain=served,
        )
        return engine.ask(request, corpus)

    ranking = ask(RANKING_DEPTH)
    # In accurate mode the answer and its confidence come from the reranked top passage and
    # the cross-encoder's scores, the same whatever top_k (the reranker reads
    # max(top_k, rerank_candidates) candidates either way), so one call serves both; fast
    # mode weighs every returned passage, so it is asked again with the service's top_k.
    same = mode == ACCURATE and max(settings.top_k, settings.rerank_candidates) >= RANKING_DEPTH
    result = ranking if same else ask(None)
    quote = result.answer
    return Outcome(
        id=question.id,
        category=question.category,
        answerable=question.answerable,
        gold_paragraphs=question.paragraph_ids(),
        gold_spans=tuple(
            TextSpan(question.doc_id or "", s.start, s.end) for s in question.gold_spans
        ),
        ranked=ranked_paragraphs(ranking),
        answer=None if quote is None else TextSpan(quote.doc_id, quote.start, quote.end),
        support=margin(result, served),
        n_hits=len(result.passages),
        exact=returned_texts_exact(corpus, ranking) and returned_texts_exact(corpus, result),
        threshold=result.threshold,
        gold_speaker=question.speaker,
        speaker=quote.speaker.name if quote is not None and quote.speaker is not None else None,
    )


# --------------------------------------------------------------------------- a set


@contextmanager
def one_thread() -> Iterator[None]:
    """Encode one query at a time on one thread: a single short query gains nothing from more,
    and on a busy machine (other processes on the cores) extra threads make it ten times
    slower. The previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_questions(
    questions: Sequence[EvalQuestion],
    corpus: Corpus,
    engine: Engine,
    modes: Sequence[str],
    *,
    progress: bool = False,
) -> dict[str, list[Outcome]]:
    """``mode -> outcomes``, one per question, in question order."""
    with one_thread():
        return {
            mode: [
                evaluate_question(engine, corpus, q, mode)
                for q in tqdm(questions, desc=f"eval {mode}", unit="q", disable=not progress)
            ]
            for mode in modes
        }


@dataclass(frozen=True)
class SetRun:
    """A question set's outcomes, by mode, and the settings they were answered with."""

    qset: QuestionSet
    outcomes: dict[str, list[Outcome]]
    settings: Settings


def run_set(
    qset: QuestionSet,
    engine: Engine,
    modes: Sequence[str],
    cache_dir: Path,
    *,
    progress: bool = False,
) -> SetRun:
    """Index the set's documents (cached) and answer every question in every mode."""
    corpus = open_eval_corpus(
        list(qset.documents.values()),
        engine.encoder,
        engine.settings,
        index_dir_for(cache_dir, engine.encoder),
        progress=progress,
    )
    outcomes = run_questions(qset.questions, corpus, engine, modes, progress=progress)
    return SetRun(qset=qset, outcomes=outcomes, settings=engine.settings)


def mode_thresholds(outcomes: Mapping[str, Sequence[Outcome]]) -> dict[str, float]:
    """The threshold each mode applied to its confidence score."""
    return {m: round(items[0].threshold, 4) for m, items in outcomes.items() if items}

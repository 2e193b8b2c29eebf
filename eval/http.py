"""Evaluating a running service over HTTP (``rag eval own --url URL``, ``rag eval check --url
URL``): the same question file, metrics, report and gate as in process, with the questions
asked through ``POST /ask`` instead of the in-process :class:`~rag.engine.Engine`.

* Documents come from the service: ``GET /documents/{id}`` gives the text every gold span is
  checked against, and every text an answer returns (answer, passages, quotes) must equal
  ``text[start:end]`` of that document (quote exactness).
* Each question is asked as :func:`eval.runner.evaluate_question` asks it in process: once
  with ``top_k`` 10 for the ranking metrics, once with the service's own ``top_k`` for the
  answer, in the evaluated mode's answer mode (``fast`` for ``hybrid``, ``dense`` or ``bm25``:
  the service's own ``RAG_RETRIEVAL_MODE``, which the caller names with ``--mode``;
  ``accurate``). The service decides whether to abstain; its decision is the outcome's (the
  outcome carries no confidence margin, so the abstention threshold cannot be re-chosen from
  an HTTP run). The answer's speaker is its ``speaker.name`` (who said what, issue 18).
* ``429`` and ``503`` with ``Retry-After`` (the per-client rate limit, the admission control)
  are waited out and asked again, never counted as failures.
* A bearer token, when the service (or a proxy before it) needs one, is read from the
  environment variable :data:`TOKEN_ENV` (``RAG_EVAL_TOKEN``), or another one named by the
  caller.

Nothing here imports the service (``api/``): it speaks HTTP only, with httpx.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from tqdm import tqdm

from core.types import Document, DocumentMeta
from eval.dataset import (
    DatasetError,
    EvalQuestion,
    QuestionSet,
    paragraph_id,
    parse_questions,
    validate_questions,
)
from eval.errors import HttpEvalError
from eval.metrics import Outcome, TextSpan
from eval.runner import ACCURATE, RANKING_DEPTH, SetRun, mode_options
from rag.retrieve import MODES
from rag.settings import Settings

#: The environment variable a bearer token is read from (``--token-env`` names another).
TOKEN_ENV = "RAG_EVAL_TOKEN"
#: The evaluated modes one service answers: ``accurate``, and ``fast`` with the service's
#: ``RAG_RETRIEVAL_MODE`` (``hybrid`` unless it was started otherwise).
DEFAULT_HTTP_MODES: tuple[str, ...] = ("hybrid", ACCURATE)
#: Longest total wait on ``Retry-After`` for one request before giving up.
MAX_WAIT_SECONDS = 600.0
RETRY_STATUSES = frozenset({429, 503})
#: The confidence margin an HTTP outcome records for an answer the service gave.
ANSWERED_MARGIN = 1.0


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body['error']['code']}: {body['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


@dataclass
class HttpAnswerer:
    """Asks a running service: ``POST /ask``, ``GET /documents/{id}``, ``GET /readyz``."""

    url: str
    token: str | None = None
    timeout: float = 120.0
    max_wait: float = MAX_WAIT_SECONDS
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    #: Requests the service asked to repeat later (429 / 503 with Retry-After), and the
    #: seconds waited for them.
    retried: int = 0
    waited: float = 0.0
    _documents: dict[str, Document | None] = field(default_factory=dict)
    _client: httpx.Client | None = None

    @classmethod
    def from_env(cls, url: str, token_env: str = TOKEN_ENV, **kwargs: Any) -> HttpAnswerer:
        """An answerer for ``url`` with the token in ``$token_env``, if it is set."""
        return cls(url=url, token=os.environ.get(token_env) or None, **kwargs)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._client = httpx.Client(
                base_url=self.url.rstrip("/"),
                timeout=self.timeout,
                headers=headers,
                transport=self.transport,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HttpAnswerer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response to ``method path``, after waiting out every ``Retry-After``."""
        waited = 0.0
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise HttpEvalError(f"{method} {self.url}{path}: {exc}") from exc
            delay = response.headers.get("retry-after")
            if response.status_code not in RETRY_STATUSES or delay is None:
                return response
            seconds = retry_after(delay)
            if waited + seconds > self.max_wait:
                raise HttpEvalError(
                    f"{method} {path}: still refused after waiting {waited:.0f} s "
                    f"({response.status_code} {_error_message(response)})"
                )
            self.retried += 1
            waited += seconds
            self.waited += seconds
            self.sleep(seconds)

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``'s body; HttpEvalError when the service is not ready."""
        response = self.request("GET", "/readyz")
        if response.status_code != 200:
            raise HttpEvalError(
                f"{self.url} is not ready: GET /readyz answered {response.status_code} "
                f"({_error_message(response)})"
            )
        body: dict[str, Any] = response.json()
        return body

    def document(self, doc_id: str) -> Document | None:
        """The stored document (``GET /documents/{id}``), None when the service has none."""
        if doc_id not in self._documents:
            response = self.request("GET", f"/documents/{quote(doc_id, safe='')}")
            if response.status_code == 404:
                self._documents[doc_id] = None
            elif response.status_code != 200:
                raise HttpEvalError(
                    f"GET /documents/{doc_id} answered {response.status_code} "
                    f"({_error_message(response)})"
                )
            else:
                data = response.json()
                meta = DocumentMeta(
                    **{k: data.get(k, "") or "" for k in ("title", "author", "affiliation")}
                )
                self._documents[doc_id] = Document(id=data["id"], text=data["text"], meta=meta)
        return self._documents[doc_id]

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: str | None = None,
        history: Sequence[str] = (),
    ) -> dict[str, Any]:
        """``POST /ask``'s body for the question (``top_k``/``mode`` None: the service's)."""
        body: dict[str, Any] = {"question": question}
        if top_k is not None:
            body["top_k"] = top_k
        if mode is not None:
            body["mode"] = mode
        if history:
            body["history"] = list(history)
        response = self.request("POST", "/ask", json=body)
        if response.status_code != 200:
            raise HttpEvalError(
                f"POST /ask ({mode or 'default'} mode) answered {response.status_code}: "
                f"{_error_message(response)}"
            )
        answer: dict[str, Any] = response.json()
        return answer


# --------------------------------------------------------------------------- the set


def served_question_set(path: Path, answerer: HttpAnswerer) -> QuestionSet | None:
    """The question file at ``path``, its gold spans checked against the service's documents;
    None when the service holds none of them (the set is not about this service)."""
    questions = parse_questions(path)
    ids = list(dict.fromkeys(q.doc_id for q in questions if q.doc_id))
    documents = {i: answerer.document(i) for i in ids}
    missing = [i for i, d in documents.items() if d is None]
    if ids and len(missing) == len(ids):
        return None
    if missing:
        raise DatasetError(f"document(s) {missing} are not served at {answerer.url}")
    found = {i: d for i, d in documents.items() if d is not None}
    validate_questions(questions, found)
    return QuestionSet(questions=tuple(questions), documents=found, path=path)


def check_http_modes(modes: Iterable[str]) -> list[str]:
    """``modes`` as one service can answer them: ``accurate`` and one fast mode (the
    service's RAG_RETRIEVAL_MODE); DatasetError otherwise."""
    modes = list(modes)
    known = (*MODES, ACCURATE)
    unknown = [m for m in modes if m not in known]
    if unknown:
        raise DatasetError(f"unknown mode(s) {unknown}; known: {list(known)}")
    fast = [m for m in modes if m != ACCURATE]
    if len(fast) > 1:
        raise DatasetError(
            f"a service answers fast questions with its one RAG_RETRIEVAL_MODE: give one of "
            f"{fast} with --mode (and start the service with that retrieval mode)"
        )
    return modes


def _spans(answer: Mapping[str, Any]) -> list[tuple[str, int, int, str]]:
    items = []
    best = answer.get("answer")
    if best is not None:
        items.append((best["doc_id"], best["start"], best["end"], best["text"]))
    for p in answer.get("passages", ()):
        items.append((p["doc_id"], p["start"], p["end"], p["text"]))
        items.extend((p["doc_id"], q["start"], q["end"], q["text"]) for q in p.get("quotes", ()))
    return items


def returned_texts_exact(answerer: HttpAnswerer, answer: Mapping[str, Any]) -> bool:
    """Whether every text the answer returns equals the served document's text at its span."""
    for doc_id, start, end, text in _spans(answer):
        document = answerer.document(doc_id)
        if document is None or document.text[start:end] != text:
            return False
    return True


def ranked_paragraphs(answer: Mapping[str, Any]) -> tuple[str, ...]:
    """The paragraphs of the answer's passages, best first, each once."""
    ids = (paragraph_id(p["doc_id"], p["paragraph"]) for p in answer.get("passages", ()))
    return tuple(dict.fromkeys(ids))


def answer_speaker(answer: Mapping[str, Any]) -> str | None:
    """Who says the answer: ``speaker.name`` of the answer's JSON (None when the service has
    no attribution, or an older service sends no ``speaker``)."""
    speaker = answer.get("speaker")
    name = speaker.get("name") if isinstance(speaker, Mapping) else None
    return name if isinstance(name, str) and name else None


def evaluate_question(answerer: HttpAnswerer, question: EvalQuestion, mode: str) -> Outcome:
    """What the service does with ``question`` in the evaluated ``mode`` (as
    :func:`eval.runner.evaluate_question` in process)."""
    options = mode_options(mode)

    def ask(top_k: int | None) -> dict[str, Any]:
        return answerer.ask(
            question.question, top_k=top_k, mode=options.answer, history=question.previous
        )

    ranking = ask(RANKING_DEPTH)
    result = ask(None)  # the service's own top_k, as its users are answered
    best = result.get("answer")
    answered = best is not None and not result.get("abstained", True)
    return Outcome(
        id=question.id,
        category=question.category,
        answerable=question.answerable,
        gold_paragraphs=question.paragraph_ids(),
        gold_spans=tuple(
            TextSpan(question.doc_id or "", s.start, s.end) for s in question.gold_spans
        ),
        ranked=ranked_paragraphs(ranking),
        answer=TextSpan(best["doc_id"], best["start"], best["end"]) if answered and best else None,
        # The service's decision, not its margin (its threshold is not in the response):
        # 1 when it answered (eval.metrics.abstains reads any finite margin >= 0 as an
        # answer), -inf when it abstained.
        support=ANSWERED_MARGIN if answered else -math.inf,
        n_hits=len(result.get("passages", ())),
        exact=returned_texts_exact(answerer, ranking) and returned_texts_exact(answerer, result),
        threshold=0.0,
        gold_speaker=question.speaker,
        speaker=answer_speaker(best) if answered and best else None,
    )


def run_set(
    qset: QuestionSet,
    answerer: HttpAnswerer,
    modes: Sequence[str],
    settings: Settings,
    *,
    progress: bool = False,
) -> SetRun:
    """Every question of the set in every mode, asked of the service (in question order)."""
    outcomes = {
        mode: [
            evaluate_question(answerer, q, mode)
            for q in tqdm(qset.questions, desc=f"eval {mode}", unit="q", disable=not progress)
        ]
        for mode in modes
    }
    return SetRun(qset=qset, outcomes=outcomes, settings=settings)

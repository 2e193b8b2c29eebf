"""The façade: one object, built from settings, that loads the models and answers requests.

The CLI, the API's lifespan, ``eval`` and ``bench`` all go through :class:`Engine`; none of
them wires the encoder, the cross-encoder or the abstention models by hand::

    engine = Engine(get_settings()).load()          # models, then the corpus
    result = engine.ask(Request("What did Merz say about German troops?"))

Construction is cheap (no I/O); :meth:`Engine.load` does the loading, once. A service whose
corpus changes while it runs (the API) passes the current corpus to :meth:`Engine.ask`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from core.errors import IndexNotFound, NotReady, RagError
from core.types import Answer, Document
from index.persist import IndexSnapshot
from rag.abstain import AbstentionModel, models_for
from rag.build import BuildReport, corpus_of
from rag.embed import Encoder, make_encoder
from rag.pipeline import answer, resolve_mode
from rag.rerank import Reranker, make_reranker
from rag.retrieve import Corpus
from rag.settings import AnswerMode, RetrievalMode, Settings
from rag.static_query import make_fast_encoder
from rag.storage import Storage, open_storage

log = logging.getLogger(__name__)

#: Whether to load the cross-encoder: ``auto`` loads it when one is configured and keeps
#: going in fast mode (with the reason in :attr:`Engine.reranker_error`) when it cannot;
#: ``required`` raises instead; ``off`` never loads it.
RerankerUse = Literal["auto", "required", "off"]


@dataclass(frozen=True)
class Request:
    """A question and its options, as every client (CLI, HTTP, eval, bench) asks it."""

    question: str
    top_k: int | None = None  # default: the top_k setting
    doc_ids: tuple[str, ...] | None = None
    author: str | None = None
    speaker: str | None = None  # only this speaker's statements (rag.speakers)
    mode: AnswerMode | None = None  # default: the answer_mode setting, else by the reranker
    retrieval: RetrievalMode | None = None  # default: the retrieval_mode setting
    history: tuple[str, ...] = ()  # the conversation's earlier questions, oldest first
    abstain: bool = True  # False: the best candidate answer whatever its confidence


def reranker_use(settings: Settings, mode: str | None) -> RerankerUse:
    """The cross-encoder a client asking in ``mode`` (None: the default) needs: none for
    fast mode, certainly for accurate mode, else whatever is configured."""
    wanted = mode or settings.answer_mode
    if wanted == "fast":
        return "off"
    return "required" if wanted == "accurate" else "auto"


@dataclass(frozen=True)
class Models:
    """The loaded models an answer uses. ``fast_encoder``: the question encoder of fast
    answers with hybrid retrieval, when it is not ``encoder``
    (``RAG_FAST_QUERY_ENCODER=static``), and ``fast_abstention`` the abstention models
    learned on its questions."""

    encoder: Encoder
    reranker: Reranker | None
    abstention: Mapping[str, AbstentionModel]
    reranker_error: str | None = None  # why accurate mode is unavailable, if it is
    fast_encoder: Encoder | None = None
    fast_abstention: Mapping[str, AbstentionModel] | None = None

    def for_request(
        self, mode: AnswerMode, retrieval: RetrievalMode
    ) -> tuple[Encoder, Mapping[str, AbstentionModel]]:
        """The question encoder and abstention models that answer in ``mode`` with
        ``retrieval``: static questions serve fast hybrid answers only, where they were
        measured to cost nothing on the seed article; with dense retrieval, or with BM25
        alone (whose sentences the question vector picks, and whose refusals the support
        threshold makes), they lose answers (docs/static-query.md)."""
        if self.fast_encoder is None or mode != "fast" or retrieval != "hybrid":
            return self.encoder, self.abstention
        # The model's fast-mode parameters belong to its own question vectors: never these.
        kept = {m: v for m, v in self.abstention.items() if m != "fast"}
        return self.fast_encoder, {**kept, **(self.fast_abstention or {})}


class Engine:
    """Settings -> encoder, cross-encoder, abstention models and corpus -> answers.

    ``encoder``, ``reranker`` and ``abstention`` may be given ready-made (tests pass a fake
    encoder, benchmarks share one); whatever is not given is made from ``settings`` by
    :meth:`load`. ``exact_reranker`` (or the setting of that name) makes the cross-encoder's
    integer arithmetic exact, so an evaluation gives the same figures on every CPU
    (:func:`rag.rerank.make_reranker`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        encoder: Encoder | None = None,
        reranker: Reranker | None = None,
        abstention: Mapping[str, AbstentionModel] | None = None,
        use_reranker: RerankerUse = "auto",
        exact_reranker: bool = False,
        storage: Storage | None = None,
    ) -> None:
        self.settings = settings
        self._storage = storage
        self._given_encoder = encoder
        self._given_reranker = reranker
        self._given_abstention = abstention
        self._use_reranker: RerankerUse = "off" if not settings.reranker else use_reranker
        if reranker is not None:
            self._use_reranker = "required"
        self._exact = exact_reranker or settings.exact_reranker
        self._models: Models | None = None
        self._corpus: Corpus | None = None

    # ------------------------------------------------------------------ loading

    def load_models(self) -> Models:
        """Load the encoder, then the cross-encoder (per ``use_reranker``), then the learned
        abstention models that belong to those two; once."""
        if self._models is not None:
            return self._models
        encoder = self._given_encoder or make_encoder(self.settings).load()
        reranker, error = self._given_reranker, None
        if reranker is None and self._use_reranker != "off":
            config = make_reranker(self.settings, exact=self._exact)
            try:
                reranker = config.load() if config is not None else None
            except RagError as exc:
                if self._use_reranker == "required":
                    raise
                error = str(exc)
                log.warning("accurate mode is unavailable: %s", exc)
        elif reranker is None and self.settings.reranker:
            error = "the cross-encoder was not loaded (fast mode was asked for)"
        abstention = self._given_abstention
        if abstention is None:
            abstention = models_for(
                self.settings,
                encoder=encoder.query_name,
                reranker=reranker.name if reranker is not None else None,
            )
        fast_encoder, fast_abstention = self._fast_models(encoder)
        self._models = Models(encoder, reranker, abstention, error, fast_encoder, fast_abstention)
        return self._models

    def _fast_models(
        self, encoder: Encoder
    ) -> tuple[Encoder | None, Mapping[str, AbstentionModel] | None]:
        """Fast mode's own question encoder (loaded) and the abstention models learned on its
        questions, when the settings ask for one (``fast_query_encoder``); else (None, None)."""
        fast = make_fast_encoder(self.settings, encoder)
        if fast is None:
            return None, None
        fast.load()
        if self._given_abstention is not None:
            given = self._given_abstention.items()
            return fast, {m: v for m, v in given if v.encoder == fast.query_name}
        return fast, models_for(
            self.settings, encoder=fast.query_name, reranker=None, variant="static"
        )

    def load(self, *, progress: bool = False) -> Engine:
        """Load the models and the persisted index (built from the data folder first if
        there is none yet); returns ``self``."""
        self.load_models()
        try:
            self._corpus = self.read_corpus()
        except IndexNotFound:
            log.warning(
                "no index in %s: building it from %s",
                self.storage.describe(),
                self.settings.data_dir,
            )
            self.build_index(progress=progress)
            self._corpus = self.read_corpus()
        return self

    def with_settings(self, settings: Settings) -> Engine:
        """An engine that shares this one's loaded models but answers with other settings
        (benchmarks sweep the tuning knobs this way)."""
        models = self.load_models()
        other = Engine(
            settings,
            encoder=models.encoder,
            reranker=models.reranker,
            abstention=models.abstention,
            use_reranker=self._use_reranker,
        )
        other._models = models
        other._corpus = self._corpus
        other._storage = self._storage
        return other

    @property
    def models(self) -> Models:
        if self._models is None:
            raise NotReady("the engine's models are not loaded: call load() first")
        return self._models

    @property
    def encoder(self) -> Encoder:
        return self.models.encoder

    @property
    def reranker(self) -> Reranker | None:
        return self.models.reranker

    @property
    def abstention(self) -> Mapping[str, AbstentionModel]:
        return self.models.abstention

    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            raise NotReady("the engine has no corpus: call load() first")
        return self._corpus

    # ------------------------------------------------------------------ the index

    @property
    def storage(self) -> Storage:
        """Where the index lives (rag/storage.py): the index folder, or the database when
        ``database_url`` is set; made on first use (it connects to nothing yet)."""
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    def build_index(
        self,
        *,
        documents: Sequence[Document] | None = None,
        rebuild: bool = False,
        progress: bool = False,
    ) -> BuildReport:
        """Build or update the persisted index from the data folder (or ``documents``)."""
        return self.storage.build(documents, self.encoder, rebuild=rebuild, progress=progress)

    def read_corpus(self) -> Corpus:
        """The persisted index as it is now, checked against the encoder (no building)."""
        return self.corpus_of(self.storage.load(self.encoder).snapshot)

    def corpus_of(self, snapshot: IndexSnapshot, previous: Corpus | None = None) -> Corpus:
        """The searchable corpus (FAISS, BM25, speller) of a loaded index version;
        ``previous``: the version it replaces, whose unchanged chunks are not tokenized again."""
        return corpus_of(snapshot, self.settings, previous)

    # ------------------------------------------------------------------ answering

    def ask(self, request: Request, corpus: Corpus | None = None) -> Answer:
        """Answer ``request`` from ``corpus`` (default: the one :meth:`load` opened)."""
        models = self.models
        encoder, abstention = models.encoder, models.abstention
        if models.fast_encoder is not None:
            mode = resolve_mode(request.mode, self.settings, models.reranker)
            retrieval = request.retrieval or self.settings.retrieval_mode
            encoder, abstention = models.for_request(mode, retrieval)
        return answer(
            self.corpus if corpus is None else corpus,
            encoder,
            request.question,
            settings=self.settings,
            top_k=request.top_k,
            doc_ids=request.doc_ids,
            author=request.author,
            speaker=request.speaker,
            mode=request.mode,
            retrieval=request.retrieval,
            history=request.history or None,
            reranker=models.reranker,
            abstention=abstention,
            abstain=request.abstain,
        )

"""The service's state: the encoder, the current searchable index, and how it changes.

Readers take :meth:`ServiceState.current` (an immutable :class:`Loaded`) and keep using it
for the whole request; a write or a reload builds a new one in a worker thread and swaps it
in with one assignment, so a search in flight always sees one consistent version.

Writers are serialised twice: by an asyncio lock within the process and, across processes,
by the storage (rag/storage.py): an exclusive ``flock`` on a file in the index folder (several
uvicorn workers share one index), or a transaction-scoped advisory lock in PostgreSQL
(replicas on many machines share one database). Each write starts from the index as
persisted, never from a copy in memory, so no worker's change is lost; the others see it
through :meth:`ServiceState.watch`, which checks the live generation (woken at once by the
database's ``NOTIFY``) and reloads when it changed. A replica that cannot reach its database
keeps answering from the version it has, and says so on ``/readyz`` until it can again.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread

from api.cache import LRUCache, ask_key
from core.errors import IndexMismatch, IndexNotFound, NotReady, StoreUnavailable
from core.types import Answer, Document
from rag import attribution
from rag.embed import Encoder
from rag.engine import Engine, Request
from rag.retrieve import Corpus
from rag.settings import AnswerMode, Settings
from rag.storage import Written

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ParagraphSpan:
    paragraph: int
    start: int
    end: int


@dataclass(frozen=True)
class Loaded:
    """One version of the index, ready to search and to describe."""

    corpus: Corpus
    generation: int  # the live generation (CURRENT) when this version was read or written
    paragraphs: Mapping[str, tuple[ParagraphSpan, ...]]  # doc id -> its paragraphs, in order
    chunk_counts: Mapping[str, int]  # doc id -> number of chunks

    @classmethod
    def of(cls, corpus: Corpus, generation: int) -> Loaded:
        bounds: dict[str, dict[int, tuple[int, int]]] = {}
        counts: dict[str, int] = {}
        for chunk in corpus.chunks:
            counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
            spans = bounds.setdefault(chunk.doc_id, {})
            lo, hi = spans.get(chunk.paragraph, (chunk.start, chunk.end))
            spans[chunk.paragraph] = (min(lo, chunk.start), max(hi, chunk.end))
        paragraphs = {
            doc_id: tuple(ParagraphSpan(n, s, e) for n, (s, e) in sorted(spans.items()))
            for doc_id, spans in bounds.items()
        }
        return cls(corpus=corpus, generation=generation, paragraphs=paragraphs, chunk_counts=counts)

    @property
    def documents(self) -> Mapping[str, Document]:
        return self.corpus.documents


class ServiceState:
    """Everything the routes need; construction is cheap (no I/O, no model load)."""

    def __init__(
        self,
        settings: Settings,
        *,
        ask_concurrency: int = 1,
        reload_interval: float = 1.0,
        answer_cache_size: int = 1024,
        encoder: Encoder | None = None,
        writes: bool = False,
        rebuild_stale: bool = False,
    ) -> None:
        self.settings = settings
        #: Whether an index built by other versions (IndexMismatch) is rebuilt from the data
        #: folder at start, rather than refused (ApiSettings.rebuild_stale_index).
        self.rebuild_stale = rebuild_stale
        #: Whether this service takes document writes (an admin token is set): it then loads
        #: the attribution parser with the models, so that the first write does not wait ~2 s
        #: for it (rag.attribution.shared_parser; a service that only answers never loads it).
        self.writes = writes
        #: The models, loaded once by :meth:`run` (the cross-encoder when it can be: without
        #: it, fast mode still works and the reason is in the log).
        self.engine = Engine(settings, encoder=encoder)
        self.reload_interval = reload_interval
        self._ask_limiter = anyio.CapacityLimiter(ask_concurrency)
        #: Rendered answers by (generation, question, options, render): a repeated question
        #: skips the model; a new generation (a document change) misses every older entry.
        self.answer_cache: LRUCache[object] = LRUCache(answer_cache_size)
        self._write_lock = anyio.Lock()
        self._loaded: Loaded | None = None
        self._loading = True
        self.error: str | None = None
        #: Why the index's store (the database) cannot be reached, while it cannot.
        self.store_error: str | None = None

    # ------------------------------------------------------------------ reading

    @property
    def encoder(self) -> Encoder:
        return self.engine.encoder

    @property
    def loaded(self) -> Loaded | None:
        """The live index version, or None while there is none."""
        return self._loaded

    def current(self) -> Loaded:
        """The index version to use for this request; NotReady while there is none."""
        loaded = self._loaded
        if loaded is None:
            if self._loading:
                raise NotReady("the service is starting: the model and index are loading")
            raise NotReady(f"the service could not load the model or index: {self.error}")
        return loaded

    def check_store(self) -> None:
        """StoreUnavailable while the index's database cannot be reached (answers still
        come from the version in memory; /readyz reports it)."""
        problem = self.store_error
        if problem is not None:
            loaded = self._loaded
            serving = f"; answering from generation {loaded.generation}" if loaded else ""
            raise StoreUnavailable(f"{problem}{serving}")

    async def ask(
        self,
        question: str,
        render: Callable[[Answer], T],
        *,
        top_k: int | None = None,
        doc_ids: Iterable[str] | None = None,
        author: str | None = None,
        history: Sequence[str] | None = None,
        mode: AnswerMode | None = None,
        speaker: str | None = None,
    ) -> T:
        """Answer ``question`` and ``render`` the answer, both in a worker thread (at most
        ``ask_concurrency`` at once), so that neither blocks the event loop. A question
        asked before with the same options, against the same index generation, is answered
        from :attr:`answer_cache` at once."""
        loaded = self.current()
        doc_ids = None if doc_ids is None else tuple(doc_ids)  # read once: it is in the key
        key = (
            ask_key(
                loaded.generation,
                question,
                top_k=top_k,
                doc_ids=doc_ids,
                author=author,
                history=history,
                mode=mode,
                speaker=speaker,
            ),
            render,
        )
        cached = self.answer_cache.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]  # stored by this method: a T

        request = Request(
            question,
            top_k=top_k,
            doc_ids=doc_ids,
            author=author,
            speaker=speaker,
            mode=mode,
            history=tuple(history or ()),
        )

        def work() -> T:
            result = self.engine.ask(request, loaded.corpus)
            rendered = render(result)
            self.answer_cache.put(key, rendered)
            return rendered

        return await anyio.to_thread.run_sync(work, limiter=self._ask_limiter)

    # ------------------------------------------------------------------ loading

    async def run(self) -> None:
        """Load the model and index (building the index if there is none), then watch for
        changes made by other processes. Runs for the life of the app."""
        try:
            loaded = await anyio.to_thread.run_sync(self._load, abandon_on_cancel=True)
        except Exception as exc:  # reported by /readyz; the watcher may still recover
            self.error = str(exc) or type(exc).__name__
            log.error("could not load the model or index: %s", self.error)
        else:
            self._swap(loaded)
        finally:
            self._loading = False
        if self.reload_interval > 0:
            await self.watch()

    def _load(self) -> Loaded:
        if not self.writes:
            self.engine.load_models()
        else:
            # spaCy (mostly its import of torch) loads beside the models, not after them:
            # a restart is ready sooner, with the parser its first write needs.
            with ThreadPoolExecutor(1, thread_name_prefix="load-parser") as pool:
                parser = pool.submit(attribution.shared_parser)
                self.engine.load_models()
                parser.result()
        try:
            loaded = self._reload()
        except IndexNotFound:
            # First start: build the index from the data folder (build_index takes the
            # writer lock itself; flock is per open file, so it must not be held here).
            log.warning(
                "no index in %s: building it from %s",
                self.engine.storage.describe(),
                self.settings.data_dir,
            )
            self.engine.build_index()
            loaded = self._reload()
        except IndexMismatch as exc:
            # Only a local index folder, which the data folder fully describes: a database may
            # hold other machines' documents (docs/scale-out.md), which a rebuild would drop.
            if not self.rebuild_stale or self.settings.database_url is not None:
                raise
            log.warning(
                "rebuilding %s from %s: %s",
                self.engine.storage.describe(),
                self.settings.data_dir,
                exc,
            )
            self.engine.build_index(rebuild=True)
            loaded = self._reload()
        gc.collect()  # once, before the loaded objects are frozen (see _swap)
        return loaded

    def _reload(self) -> Loaded:
        self.engine.load_models()
        version = self.engine.storage.load(self.encoder)
        previous = self._loaded.corpus if self._loaded is not None else None
        return Loaded.of(self.engine.corpus_of(version.snapshot, previous), version.generation)

    def _swap(self, loaded: Loaded) -> None:
        self._loaded = loaded
        self.error = None
        # Keep the model's and index's ~10^5-10^6 long-lived objects out of the cyclic GC's
        # scans: a full collection over them stalls every thread (the event loop too) for
        # hundreds of milliseconds. Old versions are still freed by reference counting.
        gc.freeze()
        log.info(
            "index generation %s live: %d documents, %d chunks",
            loaded.generation,
            len(loaded.corpus.documents),
            len(loaded.corpus.chunks),
        )

    async def refresh(self) -> bool:
        """Reload if the live generation in the store is not the one in memory; True if it
        was."""
        seen = self._loaded.generation if self._loaded else None
        live = await anyio.to_thread.run_sync(self.engine.storage.live_generation)
        if live is None or live == seen or self._loading:
            return False
        async with self._write_lock:
            seen = self._loaded.generation if self._loaded else None
            if live == seen:
                return False
            loaded = await anyio.to_thread.run_sync(self._reload, abandon_on_cancel=True)
            self._swap(loaded)
        return True

    async def _wait_for_change(self) -> None:
        """Until the next check: ``reload_interval`` seconds, or less when the store
        announces a change (the database's NOTIFY) before that."""
        storage = self.engine.storage
        if not storage.announces_changes or self.store_error is not None:
            await anyio.sleep(self.reload_interval)
            return
        try:
            await anyio.to_thread.run_sync(
                storage.wait_for_change, self.reload_interval, abandon_on_cancel=True
            )
        except StoreUnavailable as exc:
            self._store_lost(exc)
            await anyio.sleep(self.reload_interval)

    def _store_lost(self, exc: StoreUnavailable) -> None:
        problem = str(exc) or type(exc).__name__
        if self.store_error is None:
            log.warning("lost the index's database (serving what is loaded): %s", problem)
        self.store_error = problem

    async def watch(self) -> None:
        last_problem = ""
        while True:
            await self._wait_for_change()
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                self._store_lost(exc)
                continue
            except Exception as exc:  # keep watching; log each new problem once
                problem = str(exc) or type(exc).__name__
                if problem != last_problem:
                    log.warning("could not reload the index: %s", problem)
                last_problem = problem
            else:
                last_problem = ""
            if self.store_error is not None:
                log.warning("the index's database is reachable again")
                self.store_error = None

    # ------------------------------------------------------------------ writing

    async def _write(self, change: Callable[[], Written]) -> Written:
        self.current()  # no writes before the model is loaded
        async with self._write_lock:
            loaded, written = await anyio.to_thread.run_sync(self._write_sync, change)
            self._swap(loaded)
        return written

    def _write_sync(self, change: Callable[[], Written]) -> tuple[Loaded, Written]:
        written = change()
        # Only the written article's chunks are tokenized: the others keep theirs.
        previous = self._loaded.corpus if self._loaded is not None else None
        corpus = self.engine.corpus_of(written.version.snapshot, previous)
        return Loaded.of(corpus, written.version.generation), written

    async def upsert(self, document: Document) -> bool:
        """Add or replace a document, persisted before returning; True if it was new."""
        written = await self._write(lambda: self.engine.storage.upsert(document, self.encoder))
        return written.created

    async def remove(self, doc_id: str) -> None:
        """Remove a document, persisted before returning; DocumentNotFound if absent."""
        await self._write(lambda: self.engine.storage.remove(doc_id, self.encoder))

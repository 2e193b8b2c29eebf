"""Where the index lives: one seam, two backends.

:class:`Storage` is what the façade (:class:`rag.engine.Engine`) and the service
(:class:`api.state.ServiceState`) need of a persisted index: load the live version, build it,
add, replace or remove one document, and follow changes made by other processes.

- :class:`FileStorage`, the embedded default: the index folder's generations
  (:mod:`index.persist`, with its ``flock``) and the article files of the data folder.
- :class:`rag.pgstore.PostgresStorage`, when ``RAG_DATABASE_URL`` is set: everything in
  PostgreSQL with pgvector (:mod:`index.pg`), shared by replicas on any number of machines.

:func:`open_storage` chooses by the settings; psycopg is imported only for the second.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import DocumentNotFound, IndexNotFound, RagError
from core.types import Document
from index.persist import (
    IndexSnapshot,
    append_delta,
    apply_deltas,
    compaction_due,
    has_deltas,
    live_generation,
    load_newer,
    load_snapshot,
    next_generation,
    writer_lock,
)
from rag.build import (
    BuildReport,
    build_index,
    expectation,
    make_delta,
    replace_documents,
    save_snapshot_of,
)
from rag.embed import Encoder
from rag.journal import (
    Pending,
    clear_pending,
    needs_recovery,
    previous_files,
    recover,
    write_pending,
)
from rag.load import replace_article, restore_articles
from rag.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Version:
    """A loaded version of the index and the live generation it is known by."""

    snapshot: IndexSnapshot
    generation: int


@dataclass(frozen=True)
class Written:
    """The version a document write produced, and whether the document was new."""

    version: Version
    created: bool


class Storage(Protocol):
    """A persisted index. Every method may block (call it from a worker thread); writes are
    serialised across processes and machines by the implementation."""

    #: True when :meth:`wait_for_change` returns as soon as another process writes (the
    #: service then waits on it rather than sleeping between checks).
    announces_changes: bool

    def describe(self) -> str:
        """Where the index is, for messages (never with credentials)."""
        ...

    def live_generation(self) -> int | None:
        """The live generation (None: no index yet). Cheap: the service polls it.
        StoreUnavailable if the store cannot be reached."""
        ...

    def wait_for_change(self, timeout: float) -> None:
        """Return when another process may have changed the index, or after ``timeout``."""
        ...

    def load(self, encoder: Encoder) -> Version:
        """The live version, checked against the encoder: IndexNotFound, IndexMismatch,
        IndexCorrupt, StoreUnavailable."""
        ...

    def build(
        self,
        documents: Sequence[Document] | None,
        encoder: Encoder,
        *,
        rebuild: bool = False,
        progress: bool = False,
    ) -> BuildReport:
        """Store ``documents`` (default: the data folder's articles), embedding only those
        whose text changed; ``rebuild``: re-embed everything."""
        ...

    def upsert(self, document: Document, encoder: Encoder) -> Written:
        """Add or replace one document, persisted (all of it, or nothing) before returning."""
        ...

    def remove(self, doc_id: str, encoder: Encoder) -> Written:
        """Remove one document; DocumentNotFound if it is absent."""
        ...

    def close(self) -> None:
        """Release connections (the object stays usable: they are made again on demand)."""
        ...


class FileStorage:
    """The embedded default: generations in ``settings.index_dir``, serialised by its
    ``flock``, and the articles in ``settings.data_dir`` kept in step with them.

    A document write appends one delta (:func:`index.persist.append_delta`): its cost is the
    article's, not the corpus's. The deltas are merged into a whole generation in the
    background once they are a quarter of it (:func:`index.persist.compaction_due`). The
    version last loaded or written is kept, so the next load or write reads only the deltas
    it has not seen. An interrupted write is finished or undone (:mod:`rag.journal`) before
    the next one, and before a load."""

    announces_changes = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._known: IndexSnapshot | None = None  # the newest version this process has seen
        self._guard = threading.Lock()
        self._merging: threading.Thread | None = None

    def describe(self) -> str:
        return str(self.settings.index_dir)

    def live_generation(self) -> int | None:
        try:
            return live_generation(self.settings.index_dir)
        except (RagError, OSError):
            return None

    def wait_for_change(self, timeout: float) -> None:
        time.sleep(timeout)

    def _newest(self, encoder: Encoder) -> IndexSnapshot:
        """The live version (under the writer lock), from the one last seen when possible."""
        expect = expectation(encoder)
        with self._guard:
            known = self._known
        if known is not None and known.manifest.model == encoder.name:
            snapshot = load_newer(self.settings.index_dir, known, expect)
        else:
            snapshot = load_snapshot(self.settings.index_dir, expect)
        with self._guard:
            self._known = snapshot
        return snapshot

    def _recover(self) -> None:
        """Finish or undo an interrupted write (caller holds the exclusive lock)."""
        recover(self.settings.index_dir, self.settings.data_dir)

    def load(self, encoder: Encoder) -> Version:
        index_dir = self.settings.index_dir
        if needs_recovery(index_dir):
            with writer_lock(index_dir):
                self._recover()
        with writer_lock(index_dir, exclusive=False):
            snapshot = self._newest(encoder)
            # The live generation, even when a damaged one fell back to its predecessor: the
            # service must not reload it again and again.
            generation = self.live_generation()
        return Version(snapshot, generation or 0)

    def build(
        self,
        documents: Sequence[Document] | None,
        encoder: Encoder,
        *,
        rebuild: bool = False,
        progress: bool = False,
    ) -> BuildReport:
        self.wait_for_merge()
        return build_index(
            self.settings, encoder, documents=documents, rebuild=rebuild, progress=progress
        )

    def _previous(self, encoder: Encoder) -> IndexSnapshot | None:
        try:
            return self._newest(encoder)
        except IndexNotFound:
            return None

    def _write(
        self, doc_id: str, document: Document | None, encoder: Encoder
    ) -> tuple[IndexSnapshot, bool]:
        """Write ``document`` as ``doc_id`` (None: remove it) to the data folder and the index,
        all or nothing; returns the new version and whether the document is new."""
        settings = self.settings
        index_dir, data_dir = settings.index_dir, settings.data_dir
        # Embedding (the slow part) happens before the lock: no other writer waits for it.
        delta = make_delta(doc_id, document, encoder, generation=0)
        with writer_lock(index_dir):
            self._recover()
            previous = self._previous(encoder)
            known = previous is not None and any(d.id == doc_id for d in previous.documents)
            if document is None and not known:
                raise DocumentNotFound(f"no document with id {doc_id!r}")
            generation = next_generation(index_dir)
            write_pending(index_dir, Pending(generation, doc_id, previous_files(data_dir, doc_id)))
            try:
                old_files = replace_article(data_dir, document, doc_id)
            except BaseException:  # it put the old files back itself
                clear_pending(index_dir)
                raise
            try:
                if previous is not None and previous.manifest.generation == generation - 1:
                    delta = dataclasses.replace(delta, generation=generation)
                    append_delta(index_dir, delta)
                    snapshot = apply_deltas(previous, [delta], index_type=settings.index_type)
                else:  # no index yet, or a damaged delta ended the chain: a whole generation
                    others = [d for d in (previous.documents if previous else ()) if d.id != doc_id]
                    documents = [*others, document] if document is not None else others
                    snapshot = replace_documents(
                        index_dir, previous, documents, encoder, index_type=settings.index_type
                    )
            except BaseException:
                restore_articles(data_dir, doc_id, old_files, stray=document)
                clear_pending(index_dir)
                raise
            clear_pending(index_dir)
            with self._guard:
                self._known = snapshot
        self._merge_if_due(encoder)
        return snapshot, not known

    def upsert(self, document: Document, encoder: Encoder) -> Written:
        snapshot, created = self._write(document.id, document, encoder)
        return Written(Version(snapshot, snapshot.manifest.generation), created)

    def remove(self, doc_id: str, encoder: Encoder) -> Written:
        snapshot, _ = self._write(doc_id, None, encoder)
        return Written(Version(snapshot, snapshot.manifest.generation), False)

    # ------------------------------------------------------------------ background merge

    def _merge_if_due(self, encoder: Encoder) -> None:
        if not compaction_due(self.settings.index_dir):
            return
        with self._guard:
            if self._merging is not None and self._merging.is_alive():
                return
            self._merging = threading.Thread(
                target=self.merge, args=(encoder,), name="rag-merge-deltas", daemon=True
            )
            self._merging.start()

    def merge(self, encoder: Encoder, *, force: bool = False) -> bool:
        """Merge the live generation's deltas into a whole generation of the same number (so
        readers need not reload) if they are due (``force``: if there are any); True if it
        did. Writers wait meanwhile; a crash leaves the deltas as they were."""
        index_dir = self.settings.index_dir
        try:
            with writer_lock(index_dir):
                self._recover()
                due = compaction_due(index_dir)
                if not due and not (force and has_deltas(index_dir)):
                    return False
                snapshot = self._newest(encoder)
                if snapshot.manifest.generation != live_generation(index_dir):
                    return False  # a damaged delta: the next write saves a whole generation
                started = time.perf_counter()
                save_snapshot_of(index_dir, snapshot, merge=True)
            log.info(
                "merged the deltas into generation %s in %.2f s",
                snapshot.manifest.generation,
                time.perf_counter() - started,
            )
            return True
        except (RagError, OSError, ValueError) as exc:
            log.warning("could not merge the index deltas (they stay as they are): %s", exc)
            return False

    def wait_for_merge(self, timeout: float | None = None) -> None:
        """Wait for a background merge, if one is running."""
        with self._guard:
            merging = self._merging
        if merging is not None:
            merging.join(timeout)

    def close(self) -> None:
        self.wait_for_merge()


def open_storage(settings: Settings) -> Storage:
    """The backend the settings ask for: PostgreSQL when ``database_url`` is set, else the
    index folder. Connects to nothing yet."""
    if settings.database_url is not None and settings.database_url.get_secret_value():
        from rag.pgstore import PostgresStorage

        return PostgresStorage(settings, settings.database_url.get_secret_value())
    return FileStorage(settings)

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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import DocumentNotFound, RagError
from core.types import Document
from index.persist import IndexSnapshot, load_snapshot, read_manifest, writer_lock
from rag.build import (
    BuildReport,
    build_index,
    expectation,
    read_previous,
    remove_document,
    upsert_document,
)
from rag.embed import Encoder
from rag.load import replace_article, restore_articles
from rag.settings import Settings


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
    ``flock``, and the articles in ``settings.data_dir`` kept in step with them."""

    announces_changes = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> str:
        return str(self.settings.index_dir)

    def live_generation(self) -> int | None:
        try:
            return read_manifest(self.settings.index_dir).generation
        except (RagError, OSError):
            return None

    def wait_for_change(self, timeout: float) -> None:
        time.sleep(timeout)

    def load(self, encoder: Encoder) -> Version:
        index_dir = self.settings.index_dir
        with writer_lock(index_dir, exclusive=False):
            snapshot = load_snapshot(index_dir, expectation(encoder))
            # CURRENT's generation, even when a corrupt one fell back to its predecessor:
            # the service must not reload it again and again.
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
        return build_index(
            self.settings, encoder, documents=documents, rebuild=rebuild, progress=progress
        )

    def _with_article_files(
        self, doc_id: str, document: Document | None, update_index: Callable[[], IndexSnapshot]
    ) -> IndexSnapshot:
        """Change the article files in the data folder, then the index; if the index write
        fails, put the files back. So ``rag index`` (which follows the data folder) and the
        service always agree on which documents exist."""
        data_dir = self.settings.data_dir
        previous_files = replace_article(data_dir, document, doc_id)
        try:
            return update_index()
        except BaseException:
            restore_articles(data_dir, doc_id, previous_files)
            raise

    def upsert(self, document: Document, encoder: Encoder) -> Written:
        index_dir, index_type = self.settings.index_dir, self.settings.index_type
        # Each write starts from the index as persisted (never a copy in memory), under the
        # exclusive lock, so no other worker's change is lost.
        with writer_lock(index_dir):
            previous = read_previous(index_dir, encoder, rebuild=False)
            created = previous is None or all(d.id != document.id for d in previous.documents)
            snapshot = self._with_article_files(
                document.id,
                document,
                lambda: upsert_document(
                    index_dir, previous, document, encoder, index_type=index_type
                ),
            )
        return Written(Version(snapshot, snapshot.manifest.generation), created)

    def remove(self, doc_id: str, encoder: Encoder) -> Written:
        index_dir, index_type = self.settings.index_dir, self.settings.index_type
        with writer_lock(index_dir):
            previous = read_previous(index_dir, encoder, rebuild=False)
            if previous is None or all(d.id != doc_id for d in previous.documents):
                raise DocumentNotFound(f"no document with id {doc_id!r}")
            snapshot = self._with_article_files(
                doc_id,
                None,
                lambda: remove_document(
                    index_dir, previous, doc_id, encoder, index_type=index_type
                ),
            )
        return Written(Version(snapshot, snapshot.manifest.generation), False)

    def close(self) -> None:
        return None


def open_storage(settings: Settings) -> Storage:
    """The backend the settings ask for: PostgreSQL when ``database_url`` is set, else the
    index folder. Connects to nothing yet."""
    if settings.database_url is not None and settings.database_url.get_secret_value():
        from rag.pgstore import PostgresStorage

        return PostgresStorage(settings, settings.database_url.get_secret_value())
    return FileStorage(settings)

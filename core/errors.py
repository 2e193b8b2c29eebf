"""The project's exceptions. Mapping to HTTP status codes happens only in ``api/``."""

from __future__ import annotations


class RagError(Exception):
    """Base class: every error the pipeline raises on purpose."""

    code = "rag_error"


class InvalidQuestion(RagError):
    code = "invalid_question"


class InvalidParameter(RagError):
    code = "invalid_parameter"


class UnknownFilter(RagError):
    """A ``doc_ids`` or ``author`` filter names nothing in the corpus."""

    code = "unknown_filter"


class InvalidDocumentId(RagError):
    code = "invalid_document_id"


class DocumentNotFound(RagError):
    code = "document_not_found"


class DocumentError(RagError):
    """A missing, unreadable or malformed article or metadata file."""

    code = "document_error"


class IndexNotFound(RagError):
    code = "index_not_found"


class IndexMismatch(RagError):
    """The persisted index was built with other settings (model, chunker, FAISS version)."""

    code = "index_mismatch"


class IndexCorrupt(RagError):
    """A persisted index file fails its checksum or cannot be parsed."""

    code = "index_corrupt"


class StoreUnavailable(RagError):
    """The database that holds the index cannot be reached (the Postgres backend)."""

    code = "store_unavailable"


class ModelError(RagError):
    """The embedding model cannot be found or loaded."""

    code = "model_error"


class RerankerUnavailable(ModelError):
    """Accurate mode was asked for, but no cross-encoder is configured or loadable."""

    code = "reranker_unavailable"


class NotReady(RagError):
    code = "not_ready"

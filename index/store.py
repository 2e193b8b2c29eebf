"""The vector store: exact inner-product search over int64 ids, behind a small Protocol.

Thread-safety: :meth:`VectorIndex.search` may run concurrently with other searches (FAISS
searches are read-only). Writers (``add``, ``remove``) are *not* locked here: the caller must
serialise them and must not run them concurrently with searches.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

import faiss
import numpy as np

_KEY_MASK = 0x7FFF_FFFF_FFFF_FFFF
_HEX_ID = re.compile(r"[0-9a-fA-F]{16,}")


def chunk_key(chunk_id: str) -> int:
    """Map a hex content-hash chunk id to a non-negative int63 FAISS id.

    Uses the first 16 hex digits, masked to 63 bits. Raises ValueError unless ``chunk_id``
    is at least 16 ASCII hex digits and nothing else.
    """
    if not isinstance(chunk_id, str) or _HEX_ID.fullmatch(chunk_id) is None:
        raise ValueError(f"chunk id must be a hex string of at least 16 digits: {chunk_id!r}")
    return int(chunk_id[:16], 16) & _KEY_MASK


@runtime_checkable
class VectorIndex(Protocol):
    """A vector store keyed by int64 ids, scored by inner product."""

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n, dim) under new ``ids`` (n,); ValueError on bad input."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many were removed."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product: (scores float32 (m, k), ids int64 (m, k)), best first.

        Padded with score ``-inf`` and id ``-1``. When ``allowed`` is given, only those ids
        may be returned.
        """
        ...

    def ids(self) -> np.ndarray:
        """All ids currently stored (int64)."""
        ...


def build_faiss_index(dim: int) -> faiss.IndexIDMap2:
    """Construct the empty FAISS index used by :class:`FaissIndex` (exact inner product)."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _as_ids(ids: np.ndarray, what: str = "ids") -> np.ndarray:
    """Validate and convert to a contiguous 1-d int64 array."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{what} do not fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_vectors(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    """Validate and convert to a contiguous, finite (n, dim) float32 array."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain non-finite values")
    return arr


class FaissIndex:
    """:class:`VectorIndex` backed by ``faiss.IndexIDMap2(faiss.IndexFlatIP(dim))``.

    Searches may run concurrently; ``add``/``remove`` must be serialised by the caller.
    """

    def __init__(self, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self._dim = dim
        self._index: faiss.IndexIDMap2 = build_faiss_index(dim)

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"FaissIndex(dim={self._dim}, n={len(self)})"

    def ids(self) -> np.ndarray:
        """All ids currently stored, int64, in insertion order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=True)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids; ValueError on bad shape, non-finite or reused ids."""
        id_arr = _as_ids(ids)
        vec_arr = _as_vectors(vectors, self._dim, "vectors")
        if vec_arr.shape[0] != id_arr.shape[0]:
            raise ValueError(f"{id_arr.shape[0]} ids for {vec_arr.shape[0]} vectors")
        if id_arr.size == 0:
            return
        if (id_arr < 0).any():
            raise ValueError("ids must be non-negative (-1 marks padding in search results)")
        if np.unique(id_arr).size != id_arr.size:
            raise ValueError("duplicate ids within the batch")
        present = id_arr[np.isin(id_arr, self.ids())]
        if present.size:
            raise ValueError(f"ids already present: {present[:10].tolist()}")
        self._index.add_with_ids(vec_arr, id_arr)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones ignored); returns how many were removed."""
        id_arr = _as_ids(ids)
        if id_arr.size == 0 or len(self) == 0:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` by inner product, best first, padded with (-inf, -1)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        k = int(k)
        q = _as_vectors(queries, self._dim, "queries")
        m = q.shape[0]
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        labels = np.full((m, k), -1, dtype=np.int64)
        if m == 0 or len(self) == 0:
            return scores, labels
        if allowed is None:
            dist, found = self._index.search(q, k)
        else:
            allowed_arr = _as_ids(allowed, "allowed")
            if allowed_arr.size == 0:
                return scores, labels
            selector = faiss.IDSelectorBatch(allowed_arr)
            params = faiss.SearchParameters()
            params.sel = selector  # the selector must outlive the search: kept by `selector`
            dist, found = self._index.search(q, k, params=params)
        found = np.asarray(found, dtype=np.int64)
        valid = found >= 0
        labels[valid] = found[valid]
        scores[valid] = np.asarray(dist, dtype=np.float32)[valid]
        return scores, labels

    def to_bytes(self) -> bytes:
        """Serialise with ``faiss.serialize_index``."""
        return bytes(faiss.serialize_index(self._index).tobytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> FaissIndex:
        """Inverse of :meth:`to_bytes`; ValueError if ``data`` is not such an index."""
        try:
            raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except (RuntimeError, MemoryError) as exc:
            raise ValueError(f"cannot deserialise FAISS index: {exc}") from exc
        if not isinstance(raw, faiss.IndexIDMap2):
            raise ValueError(f"expected a FAISS IndexIDMap2, got {type(raw).__name__}")
        if raw.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("expected an inner-product FAISS index")
        obj = cls.__new__(cls)
        obj._dim = int(raw.d)
        obj._index = raw
        return obj
